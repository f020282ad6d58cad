"""Synthetic LETOR data with a query-frequency structure.

Search logs are long-tailed: a few head queries are issued often, most tail queries
rarely.  The generator draws query frequencies from a Zipf law and lets frequency shape a
query the way it does in search data:

* head queries have more documents (``min_docs`` .. ``max_docs``, growing with
  log-frequency), tail queries few;
* every query's relevance follows a shared linear model of the features plus a
  query-specific deviation whose size grows towards the tail (``tail_shift``): tail
  queries are the ones a model trained on head queries ranks worst;
* feature 1 is the query's normalised log-frequency (a query-level feature, as LETOR sets
  carry), the others are document features in [0, 1].

Grades 0..4 come from the noisy relevance by fixed quantile cut points over all
documents.  ``make_queries`` returns :class:`~ppzoo.ranking.data.Query` objects and the
frequencies; ``write_ltr_file`` stores them.
"""
import numpy as np

from .data import Query

GRADE_QUANTILES = (0.35, 0.7, 0.88, 0.97)


def make_queries(num_queries=200, num_features=20, seed=0, zipf=1.1, min_docs=4, max_docs=30,
                 tail_shift=1.5, noise=0.3):
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(num_queries) + 1
    freq = ranks.astype(np.float64) ** -float(zipf)
    logf = np.log(freq)
    pos = (logf - logf.min()) / max(logf.max() - logf.min(), 1e-12)  # 0 tail .. 1 head
    w = rng.normal(size=num_features - 1)
    w /= np.linalg.norm(w)
    rel, feats = [], []
    for q in range(num_queries):
        n = int(np.clip(round(min_docs + (max_docs - min_docs) * pos[q] + rng.normal(0, 2)),
                        min_docs, max_docs))
        x = rng.uniform(size=(n, num_features - 1))
        dev = rng.normal(size=num_features - 1)
        wq = w + float(tail_shift) * (1.0 - pos[q]) * dev / np.linalg.norm(dev)
        r = (x - 0.5) @ wq * 3.0 + rng.normal(0, noise, size=n)
        feats.append(np.hstack([np.full((n, 1), pos[q]), x]).astype(np.float32))
        rel.append(r)
    cuts = np.quantile(np.concatenate(rel), GRADE_QUANTILES)
    queries = [Query(str(q), feats[q], np.searchsorted(cuts, rel[q]).astype(np.int64),
                     np.arange(1, len(rel[q]) + 1)) for q in range(num_queries)]
    return queries, freq
