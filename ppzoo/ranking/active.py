"""Active learning to rank: query strategies over a committee of checkpoints, and the trainer.

The committee is the ranker's weights at evenly spaced iterations of a round's training
(the last member is the current model); ``outputs[i]`` is the [members, documents] score
matrix of candidate query ``i`` (see ``ppzoo.active.strategies``).

Readings of the paper (arXiv 2205.10137) that its abstract leaves open are options:

* ``RankingEntropy(form="softmax")``: the entropy of the committee's mean softmax
  distribution over the query's documents (``temperature`` scales the scores first);
  ``form="vote"``: the entropy of the committee's votes for the top document
  (0 when every member ranks the same document first, ``log(members)`` when all differ).
  ``normalize=True`` divides by the largest entropy the query can have (``log D``, or
  ``log min(D, members)`` for votes), so long and short queries compare on one scale.
* ``PredictionVariance(source="current")``: the variance of the current model's scores
  over the query's documents; ``source="committee"``: that variance averaged over the
  members; ``over="members"``: the variance of each document's score across the members,
  averaged over documents (disagreement rather than spread).
* ``REPV``: ``RE + alpha * PV`` with both terms ``normalize``-d over the candidate pool
  first: ``none`` (the raw sum), ``minmax`` (each term scaled to [0, 1]), ``zscore`` or
  ``rank`` (each term's rank among the candidates, in [0, 1]).
"""
import numpy as np
import paddle

from ..active.loop import ActiveLoop
from ..active.strategies import STRATEGIES, QueryStrategy
from ..core.builder import TRAINERS
from ..core.errors import ConfigError
from .data import pad_queries


def _softmax(s, t):
    z = s / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def ranking_entropy(scores, form="softmax", temperature=1.0, normalize=False):
    """RE of one query from its committee score matrix ``scores`` [members, documents]."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    m, d = scores.shape
    if form == "softmax":
        h = _entropy(_softmax(scores, float(temperature)).mean(0))
        top = np.log(d)
    elif form == "vote":
        votes = np.bincount(np.argmax(scores, axis=1), minlength=d) / m  # ties: first document
        h = _entropy(votes)
        top = np.log(min(d, m))
    else:
        raise ConfigError(f"RankingEntropy.form must be 'softmax' or 'vote', got {form!r}")
    if normalize:
        return h / top if top > 0 else 0.0
    return h


def prediction_variance(scores, source="current", over="documents"):
    """PV of one query from its committee score matrix [members, documents]."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    if over == "documents":
        if source == "current":
            return float(scores[-1].var())
        if source == "committee":
            return float(scores.var(axis=1).mean())
        raise ConfigError(f"PredictionVariance.source must be 'current' or 'committee', got {source!r}")
    if over == "members":
        return float(scores.var(axis=0).mean())
    raise ConfigError(f"PredictionVariance.over must be 'documents' or 'members', got {over!r}")


def normalize_scores(values, mode):
    v = np.asarray(values, np.float64)
    if mode == "none" or len(v) == 0:
        return v
    if mode == "minmax":
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)
    if mode == "zscore":
        sd = v.std()
        return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)
    if mode == "rank":
        if len(v) == 1:
            return np.zeros_like(v)
        ranks = np.argsort(np.argsort(v, kind="stable"), kind="stable")
        return ranks / (len(v) - 1)
    raise ConfigError(f"normalize must be one of none, minmax, zscore, rank; got {mode!r}")


@STRATEGIES.register()
class RankingEntropy(QueryStrategy):
    def __init__(self, form="softmax", temperature=1.0, normalize=False):
        ranking_entropy(np.zeros((1, 2)), form, temperature)  # checks the options
        self.form, self.temperature, self.normalize = form, float(temperature), bool(normalize)

    def score(self, outputs, rng):
        return np.array([ranking_entropy(o, self.form, self.temperature, self.normalize)
                         for o in outputs])


@STRATEGIES.register()
class PredictionVariance(QueryStrategy):
    def __init__(self, source="current", over="documents"):
        prediction_variance(np.zeros((1, 2)), source, over)
        self.source, self.over = source, over

    def score(self, outputs, rng):
        return np.array([prediction_variance(o, self.source, self.over) for o in outputs])


@STRATEGIES.register()
class REPV(QueryStrategy):
    """``f(q) = RE(q) + alpha * PV(q)`` (each term normalised over the candidates first)."""

    def __init__(self, alpha=1.0, normalize="none", re=None, pv=None):
        self.alpha = float(alpha)
        normalize_scores([0.0], normalize)
        self.normalize = normalize
        self.re = RankingEntropy(**dict(re or {}))
        self.pv = PredictionVariance(**dict(pv or {}))

    def score(self, outputs, rng):
        return (normalize_scores(self.re.score(outputs, rng), self.normalize)
                + self.alpha * normalize_scores(self.pv.score(outputs, rng), self.normalize))


@TRAINERS.register()
class ActiveRankingTrainer(ActiveLoop):
    """Active learning to rank on the shared round loop: units are the queries of
    ``train_dataset`` (an ``LTRDataset``); the oracle labels all documents of a chosen
    query; a round trains the ranker through the engine and evaluates NDCG/DCG on
    ``val_dataset``."""

    #: queries per forward pass when scoring the pool
    chunk = 64

    def unit_outputs(self, model, units):
        out = []
        for start in range(0, len(units), self.chunk):
            samples = [self.pool.load(int(u)) for u in units[start:start + self.chunk]]
            batch = pad_queries(samples)
            scores = model(paddle.to_tensor(batch["features"]),
                           paddle.to_tensor(batch["mask"])).numpy()
            out += [scores[i, :len(s["features"])] for i, s in enumerate(samples)]
        return out

    def unit_cost(self, unit):
        return len(self.pool.queries[self.pool.indices[int(unit)]])
