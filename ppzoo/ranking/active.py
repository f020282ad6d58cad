"""Active learning to rank: query strategies over a committee of checkpoints, and the trainer.

The committee is the ranker's weights at evenly spaced iterations of a round's training
(the last member is the current model); ``outputs[i]`` is the [members, documents] score
matrix of candidate query ``i`` (see ``ppzoo.active.strategies``).

Readings of the paper (arXiv 2205.10137) that its abstract leaves open are options:

* ``RankingEntropy(form=...)``, each form named for what it measures (``RANKING_ENTROPY_FORMS``):

  - ``rank_disagreement`` (default): for each document, the entropy of the rank positions
    the members give it, averaged over the query's documents.  The paper describes RE as
    the entropy of the query's webpages as ranked by a committee of checkpoints (query by
    committee), i.e. the committee's disagreement: this is 0 whenever every member ranks
    the documents the same way, whatever the scores and the list length, and at most
    ``log min(members, D)``.
  - ``top_vote``: the entropy of the members' votes for the top document (0 when every
    member ranks the same document first, ``log min(members, D)`` when all differ);
    disagreement about the first place only.
  - ``softmax_disagreement``: ``H(mean_k p_k) - mean_k H(p_k)`` of the members' top-one
    softmax distributions over the documents (their Jensen-Shannon divergence; 0 for
    identical members, at most ``log members``).
  - ``consensus_entropy``: ``H(mean_k p_k)``, the entropy of the committee's mean softmax.
    It is not a disagreement: identical members score their own uncertainty, and it grows
    like ``log D`` with the list length (ppzoo's default before, named ``softmax``).

  ``temperature`` scales the scores of the softmax forms; ``normalize=True`` divides by the
  form's largest value for the query (``log min(members, D)``, ``log min(members, D)``,
  ``log members``, ``log D``), so long and short queries compare on one scale.
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
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: no -0.0 for a point mass


RANKING_ENTROPY_FORMS = ("rank_disagreement", "top_vote", "softmax_disagreement",
                         "consensus_entropy")
_RENAMED = {"softmax": "consensus_entropy", "vote": "top_vote"}


def rank_positions(scores):
    """[members, documents] rank of each document in each member's ranking (0 = first;
    tied scores keep the document order, as the metrics do)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), 1)
    return ranks


def ranking_entropy(scores, form="rank_disagreement", temperature=1.0, normalize=False):
    """RE of one query from its committee score matrix ``scores`` [members, documents]."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    m, d = scores.shape
    if form == "rank_disagreement":
        ranks = rank_positions(scores)
        h = float(np.mean([_entropy(np.bincount(ranks[:, j], minlength=d) / m) for j in range(d)]))
        top = np.log(min(d, m))
    elif form == "top_vote":
        votes = np.bincount(np.argmax(scores, axis=1), minlength=d) / m  # ties: first document
        h = _entropy(votes)
        top = np.log(min(d, m))
    elif form == "softmax_disagreement":
        p = _softmax(scores, float(temperature))
        h = max(_entropy(p.mean(0)) - float(np.mean([_entropy(row) for row in p])), 0.0)
        top = np.log(m)
    elif form == "consensus_entropy":
        h = _entropy(_softmax(scores, float(temperature)).mean(0))
        top = np.log(d)
    elif form in _RENAMED:
        raise ConfigError(f"RankingEntropy.form {form!r} is now {_RENAMED[form]!r} (forms: "
                          f"{', '.join(RANKING_ENTROPY_FORMS)})")
    else:
        raise ConfigError(f"RankingEntropy.form must be one of {', '.join(RANKING_ENTROPY_FORMS)}; "
                          f"got {form!r}")
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
    """RE of each candidate query; ``form`` says which (module docstring)."""

    def __init__(self, form="rank_disagreement", temperature=1.0, normalize=False):
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
