"""Rankers: a score per document from ``features`` [Q, D, F] and ``mask`` [Q, D].

``LinearRanker`` and ``MLPRanker`` score each document alone; ``ListwiseRanker`` lets a
query's documents see each other (masked self-attention over the list, as in
set-based rankers) before scoring.  Padding positions (``mask`` 0) score ``PAD_SCORE``, so
they rank last; losses and metrics ignore them anyway.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import MODELS
from ..core.errors import ConfigError

PAD_SCORE = -1.0e4


def masked(scores, mask):
    if mask is None:
        return scores
    return paddle.where(mask > 0, scores, paddle.full_like(scores, PAD_SCORE))


@MODELS.register()
class LinearRanker(nn.Layer):
    def __init__(self, num_features):
        super().__init__()
        self.fc = nn.Linear(int(num_features), 1)

    def forward(self, features, mask=None):
        return masked(self.fc(features).squeeze(-1), mask)


def _mlp(sizes, dropout):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@MODELS.register()
class MLPRanker(nn.Layer):
    def __init__(self, num_features, hidden=(64, 32), dropout=0.0):
        super().__init__()
        sizes = [int(num_features)] + [int(h) for h in hidden]
        self.body = _mlp(sizes, float(dropout))
        self.out = nn.Linear(sizes[-1], 1)

    def forward(self, features, mask=None):
        return masked(self.out(self.body(features)).squeeze(-1), mask)


class _ListBlock(nn.Layer):
    """Pre-norm masked multi-head self-attention over a query's documents + a feed-forward."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.dim = heads, dim
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def forward(self, h, mask):
        q_, d_ = h.shape[0], h.shape[1]
        hd = self.dim // self.heads
        qkv = self.qkv(self.norm1(h)).reshape([q_, d_, 3, self.heads, hd]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = paddle.matmul(q, k, transpose_y=True) / math.sqrt(hd)
        logits = logits + ((1.0 - mask) * -1e9).unsqueeze(1).unsqueeze(2)
        att = paddle.matmul(F.softmax(logits, axis=-1), v)
        h = h + self.proj(att.transpose([0, 2, 1, 3]).reshape([q_, d_, self.dim]))
        return h + self.ff(self.norm2(h))


@MODELS.register()
class ListwiseRanker(nn.Layer):
    """Per-document embedding, ``num_layers`` attention blocks over the list, linear score.

    Without ``mask`` every position counts as a document."""

    def __init__(self, num_features, dim=64, heads=4, num_layers=1, dropout=0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"ListwiseRanker: dim {dim} is not divisible by heads {heads}")
        self.embed = _mlp([int(num_features), int(dim)], float(dropout))
        self.blocks = nn.LayerList([_ListBlock(int(dim), int(heads)) for _ in range(int(num_layers))])
        self.norm = nn.LayerNorm(int(dim))
        self.out = nn.Linear(int(dim), 1)

    def forward(self, features, mask=None):
        if mask is None:
            mask = paddle.ones(features.shape[:2], dtype=features.dtype)
        h = self.embed(features)
        for blk in self.blocks:
            h = blk(h, mask)
        return masked(self.out(self.norm(h)).squeeze(-1), mask)
