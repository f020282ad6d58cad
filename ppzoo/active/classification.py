"""Query strategies for active learning of classifiers: the state a strategy sees, the
model interface it queries, the shared selection routines (scores, greedy k-center,
k-means++ seeding) and the standard strategies.

They live in the one registry of query strategies (``ppzoo.active.strategies.STRATEGIES``)
as ``ClassificationStrategy`` subclasses with one method

    query(learner, state, n) -> array of n pool indices

``learner`` is a :class:`Learner` (a Paddle model or a scikit-learn estimator behind the same
batched interface), ``state`` a :class:`PoolState` (candidates, labelled set, oracle answers).
Everything is computed on whole arrays; nothing loops over samples in Python.
"""
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ConfigError
from .strategies import STRATEGIES, QueryStrategy

EPS = 1e-12


@dataclass
class PoolState:
    """What a strategy may look at.

    ``candidates``: pool indices it may pick from (the unlabelled pool, or a subsample of it).
    ``labelled``: pool indices already queried (in-distribution and OOD).
    ``labels``: pool-sized int array; the class of a labelled ID sample, -1 for a sample the
    oracle marked OOD, -2 for a sample not yet labelled.
    ``is_ood``: pool-sized bool array of the truth; only reference strategies that are allowed
    to know it (``IdealEntropy``) read it.
    ``rng``: a ``numpy.random.Generator`` seeded per round.
    """
    candidates: np.ndarray
    labelled: np.ndarray
    labels: np.ndarray
    is_ood: np.ndarray = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    @property
    def labelled_id(self):
        """Labelled samples the oracle called in-distribution, and their classes."""
        lab = np.asarray(self.labelled, dtype=np.int64)
        y = self.labels[lab]
        keep = y >= 0
        return lab[keep], y[keep]


class Learner:
    """The model interface strategies use; every method takes an array of pool indices.

    Subclasses implement what their model supports and raise ``ConfigError`` otherwise.
    """

    def predict_proba(self, idx):
        """(n, C) class probabilities."""
        raise NotImplementedError

    def embed(self, idx):
        """(n, D) features: the input of the last linear layer (deep) or the raw inputs."""
        raise NotImplementedError

    def mc_proba(self, idx, passes, rng):
        """(passes, n, C) probabilities with dropout active (MC dropout)."""
        raise ConfigError(f"{type(self).__name__} has no dropout to sample: BALD needs a model "
                          "with dropout (e.g. SmallCNN dropout: 0.3)")

    def perturbed_outputs(self, idx, passes, xi, rng, scope="weights"):
        """(outputs (n, C), noisy (passes, n, C)): outputs of the model and of ``passes`` copies
        whose weight tensors were each perturbed by Gaussian noise of norm ``xi * ||W||``."""
        raise ConfigError(f"{type(self).__name__} cannot perturb its weights for noise stability")


class ClassificationStrategy(QueryStrategy):
    """Base of strategies that query a classifier through a :class:`Learner` (features, MC
    dropout, perturbed weights) rather than precomputed outputs; ``query`` returns ``n``
    distinct pool indices.  ``ActiveLearningTrainer`` calls them; the generic
    ``select(outputs, ...)`` of other loops is refused with a clear error."""
    needs_outputs = False

    def query(self, learner, state, n):
        raise NotImplementedError

    def select(self, outputs, candidates, n, rng):
        raise ConfigError(f"{type(self).__name__} queries a classifier's features and outputs: "
                          "use it with trainer ActiveLearningTrainer")

    def __call__(self, learner, state, n):
        cand = np.asarray(state.candidates, dtype=np.int64)
        n = int(n)
        if n <= 0:
            return np.zeros(0, np.int64)
        if n >= len(cand):
            return cand.copy()
        picked = np.asarray(self.query(learner, state, n), dtype=np.int64)
        if len(picked) != n or len(np.unique(picked)) != n or not np.isin(picked, cand).all():
            raise RuntimeError(f"{type(self).__name__} returned {len(picked)} indices "
                               f"({len(np.unique(picked))} distinct) for a query of {n}")
        return picked


# ---------------------------------------------------------------------- scores
def entropy(probs):
    p = np.clip(probs, EPS, 1.0)
    return -(p * np.log(p)).sum(-1)


def margin(probs):
    """Difference of the two largest probabilities (small = uncertain)."""
    part = np.sort(probs, axis=-1)
    return part[..., -1] - part[..., -2]


def least_confidence(probs):
    """One minus the largest probability (large = uncertain)."""
    return 1.0 - probs.max(-1)


def bald(mc_probs):
    """Mutual information between the label and the weights from MC samples (T, n, C):
    H[mean_t p_t] - mean_t H[p_t]."""
    return entropy(mc_probs.mean(0)) - entropy(mc_probs).mean(0)


def top_k(scores, k, rng=None):
    """Indices of the ``k`` largest scores; ties broken by a random permutation if ``rng``."""
    scores = np.asarray(scores, dtype=np.float64)
    if rng is not None:
        perm = rng.permutation(len(scores))
        order = np.argsort(-scores[perm], kind="stable")[:k]
        return perm[order]
    return np.argsort(-scores, kind="stable")[:k]


def _sq_dists(x, centers):
    """Squared Euclidean distances (n, m), computed as one matrix product."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


def k_center_greedy(x, k, centers=None, chunk=4096):
    """Greedy k-center (Sener & Savarese 2018): repeatedly take the point farthest from all
    centers so far.  ``centers`` are existing centers (the labelled set); with none, the
    search starts from the origin, so the first pick is the point of largest norm (as the
    noise-stability reference does).  Returns positions into ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if centers is None or len(centers) == 0:
        min_d = (x * x).sum(1)
    else:
        centers = np.asarray(centers, dtype=np.float64)
        min_d = np.full(len(x), np.inf)
        for s in range(0, len(centers), chunk):
            min_d = np.minimum(min_d, _sq_dists(x, centers[s:s + chunk]).min(1))
    picks = []
    for _ in range(k):
        i = int(np.argmax(min_d))
        picks.append(i)
        min_d = np.minimum(min_d, _sq_dists(x, x[i:i + 1])[:, 0])
        min_d[i] = -1.0  # never again
    return np.asarray(picks, dtype=np.int64)


def kmeans_pp_seeding(x, k, rng):
    """k-means++ seeding as BADGE uses it: the first center is the point of largest norm,
    each next one is drawn with probability proportional to its squared distance to the
    nearest center chosen so far.  Returns positions into ``x``."""
    x = np.asarray(x, dtype=np.float64)
    first = int(np.argmax((x * x).sum(1)))
    picks = [first]
    min_d = _sq_dists(x, x[first:first + 1])[:, 0]
    min_d[first] = 0.0
    for _ in range(k - 1):
        total = min_d.sum()
        if total <= 0:  # all remaining points coincide with a center: take any unpicked one
            rest = np.setdiff1d(np.arange(len(x)), picks)
            i = int(rng.choice(rest))
        else:
            i = int(rng.choice(len(x), p=min_d / total))
        picks.append(i)
        min_d = np.minimum(min_d, _sq_dists(x, x[i:i + 1])[:, 0])
        min_d[picks] = 0.0
    return np.asarray(picks, dtype=np.int64)


def gradient_embedding(probs, feats):
    """BADGE's gradient embedding: the gradient of the cross-entropy loss with the predicted
    class as label w.r.t. the last linear layer's weight, (p - e_yhat) outer h, flattened."""
    g = probs.copy()
    g[np.arange(len(g)), probs.argmax(1)] -= 1.0
    return (g[:, :, None] * feats[:, None, :]).reshape(len(g), -1)


# ---------------------------------------------------------------------- strategies
class _ScoreStrategy(ClassificationStrategy):
    """Take the ``n`` candidates with the largest ``score(probs)``."""

    def score(self, probs):
        raise NotImplementedError

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        return cand[top_k(self.score(learner.predict_proba(cand)), n)]


@STRATEGIES.register()
class EntropySampling(_ScoreStrategy):
    """Largest predictive entropy."""

    def score(self, probs):
        return entropy(probs)


@STRATEGIES.register()
class MarginSampling(_ScoreStrategy):
    """Smallest gap between the two most probable classes."""

    def score(self, probs):
        return -margin(probs)


@STRATEGIES.register()
class LeastConfidence(_ScoreStrategy):
    """Smallest largest-class probability."""

    def score(self, probs):
        return least_confidence(probs)


@STRATEGIES.register()
class IdealEntropy(ClassificationStrategy):
    """Entropy sampling that knows which candidates are OOD and never picks them: the upper
    reference of the POAL paper (no real strategy can know this)."""

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        if state.is_ood is None:
            raise ConfigError("IdealEntropy needs the pool's OOD truth (an OOD scenario)")
        ind = cand[~state.is_ood[cand]]
        scores = entropy(learner.predict_proba(ind))
        picks = ind[top_k(scores, min(n, len(ind)))]
        if len(picks) < n:  # fewer ID candidates than the query: fill with OOD ones
            rest = np.setdiff1d(cand, picks)
            picks = np.concatenate([picks, state.rng.choice(rest, n - len(picks), replace=False)])
        return picks


@STRATEGIES.register()
class BALD(ClassificationStrategy):
    """Bayesian active learning by disagreement with MC dropout (Gal et al. 2017): the
    largest mutual information over ``passes`` stochastic forward passes."""

    def __init__(self, passes=10):
        if int(passes) < 2:
            raise ConfigError(f"BALD.passes must be at least 2, got {passes}")
        self.passes = int(passes)

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        return cand[top_k(bald(learner.mc_proba(cand, self.passes, state.rng)), n)]


@STRATEGIES.register()
class CoreSet(ClassificationStrategy):
    """Core-set by greedy k-center on the model's features (Sener & Savarese 2018): each
    pick is the candidate farthest from the labelled set and the picks before it."""

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        lab = np.asarray(state.labelled, dtype=np.int64)
        feats = learner.embed(np.concatenate([cand, lab]))
        return cand[k_center_greedy(feats[:len(cand)], n, centers=feats[len(cand):])]


@STRATEGIES.register()
class BADGE(ClassificationStrategy):
    """Batch active learning by diverse gradient embeddings (Ash et al. 2020): k-means++
    seeding on (p - e_yhat) outer h; large embeddings are uncertain, spread ones diverse."""

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        g = gradient_embedding(learner.predict_proba(cand), learner.embed(cand))
        return cand[kmeans_pp_seeding(g, n, state.rng)]
