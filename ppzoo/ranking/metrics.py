"""DCG and NDCG for ranked lists.

Conventions (the same in the metric class, the losses' deltas and the benchmarks):

* gain ``2**y - 1`` and discount ``1 / log2(i + 1)`` for the document at 1-based rank ``i``;
  ``DCG@k`` sums the first ``k`` ranks (all of them when the query is shorter).
* ``NDCG@k = DCG@k / IDCG@k``, IDCG@k the DCG@k of the labels sorted best first.
* A query without a relevant document (IDCG = 0) gets ``NDCG = empty_value``: 1.0 by
  default, as LightGBM scores such a query (every order is ideal); 0.0 is the other common
  choice, and ``None`` leaves such queries out of the mean.
* Ties in the scores: ``ties="stable"`` orders tied documents by their position in the
  query (the file order), so a result never depends on the sort implementation;
  ``ties="average"`` gives each tied document the mean gain of its tie group at the
  group's ranks (scikit-learn's ``ndcg_score`` with ``ignore_ties=False``).
"""
import numpy as np

from ..core.builder import METRICS
from ..core.errors import ConfigError

DEFAULT_KS = (1, 3, 4, 5, 10)


def gains(labels):
    return np.power(2.0, np.asarray(labels, np.float64)) - 1.0


def discounts(n):
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def rank_order(scores):
    """Document indices best first; ties keep the document order (stable)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def dcg_at_k(scores, labels, k=None, ties="stable"):
    """DCG@k of one query ranked by ``scores``."""
    scores = np.asarray(scores, np.float64)
    g = gains(labels)
    n = len(g)
    k = n if k is None else min(int(k), n)
    if k <= 0:
        return 0.0
    order = rank_order(scores)
    disc = discounts(n)
    if ties == "stable":
        return float(np.sum(g[order[:k]] * disc[:k]))
    if ties != "average":
        raise ConfigError(f"ties must be 'stable' or 'average', got {ties!r}")
    s = scores[order]
    total, start = 0.0, 0
    while start < k:
        end = start
        while end + 1 < n and s[end + 1] == s[start]:
            end += 1
        mean_gain = g[order[start:end + 1]].mean()
        total += mean_gain * disc[start:min(end + 1, k)].sum()
        start = end + 1
    return float(total)


def ideal_dcg_at_k(labels, k=None):
    g = np.sort(gains(labels))[::-1]
    k = len(g) if k is None else min(int(k), len(g))
    return float(np.sum(g[:k] * discounts(len(g))[:k]))


def ndcg_at_k(scores, labels, k=None, ties="stable", empty_value=1.0):
    ideal = ideal_dcg_at_k(labels, k)
    if ideal == 0:
        return empty_value
    return dcg_at_k(scores, labels, k, ties) / ideal


def unpad(scores, labels):
    """Per-query (scores, labels) from padded [Q, D] arrays (label < 0 marks padding)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim == 1:
        scores, labels = scores[None], labels[None]
    for s, y in zip(scores, labels):
        keep = y >= 0
        yield s[keep], y[keep]


@METRICS.register()
class RankingMetrics:
    """NDCG@k for ``ndcg_ks`` and DCG@k for ``dcg_ks``, averaged over queries.

    ``update(scores, labels)`` takes padded [Q, D] arrays (label -1 on padding). Keys are
    ``NDCG@k`` and ``DCG@k``; the first reported is ``NDCG@`` the largest k of ``ndcg_ks``.
    """

    def __init__(self, ndcg_ks=DEFAULT_KS, dcg_ks=DEFAULT_KS, ties="stable", empty_value=1.0):
        if ties not in ("stable", "average"):
            raise ConfigError(f"RankingMetrics.ties must be 'stable' or 'average', got {ties!r}")
        self.ndcg_ks = [int(k) for k in ndcg_ks]
        self.dcg_ks = [int(k) for k in dcg_ks]
        self.ties, self.empty_value = ties, empty_value
        self.reset()

    def reset(self):
        self.ndcg = {k: [] for k in self.ndcg_ks}
        self.dcg = {k: [] for k in self.dcg_ks}

    def update(self, scores, labels):
        for s, y in unpad(scores, labels):
            for k in self.ndcg_ks:
                v = ndcg_at_k(s, y, k, self.ties, self.empty_value)
                if v is not None:
                    self.ndcg[k].append(v)
            for k in self.dcg_ks:
                self.dcg[k].append(dcg_at_k(s, y, k, self.ties))

    def accumulate(self):
        out = {}
        for k in sorted(self.ndcg_ks, reverse=True):
            out[f"NDCG@{k}"] = float(np.mean(self.ndcg[k])) if self.ndcg[k] else 0.0
        for k in self.dcg_ks:
            out[f"DCG@{k}"] = float(np.mean(self.dcg[k])) if self.dcg[k] else 0.0
        return out
