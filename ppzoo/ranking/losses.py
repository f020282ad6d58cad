"""Learning-to-rank losses on padded query batches.

Every loss takes ``scores`` [Q, D] and ``labels`` [Q, D] (relevance grades, ``-1`` on
padding) and returns a scalar.  Pairwise and listwise losses only compare documents of
the same query.

* ``PointwiseRegression``: mean squared error between score and grade over documents.
* ``GradedCrossEntropy``: sigmoid cross entropy with the soft target ``grade / max_grade``.
* ``RankNetLoss``: ``log(1 + exp(-sigma (s_i - s_j)))`` over pairs with ``y_i > y_j``,
  averaged over all such pairs of the batch (Burges et al. 2005).
* ``ListNetLoss``: top-one ListNet, the cross entropy between ``softmax(y)`` and
  ``softmax(s)`` over a query's documents, averaged over queries (Cao et al. 2007).
* ``LambdaRankLoss``: RankNet's pair loss weighted by ``|delta NDCG_ij|``, the change of
  NDCG when documents ``i`` and ``j`` swap ranks in the current ordering (gain ``2**y - 1``,
  discount ``log2(rank + 1)``, normalised by the ideal DCG), summed over a query's pairs
  and averaged over queries; its gradient is LambdaRank's lambda (Burges 2010).
  ``topk`` restricts to NDCG@k (pairs whose swap moves neither document into the top k
  weigh 0).  Queries without a relevant document contribute 0.
"""
import paddle
import paddle.nn.functional as F

from ..core.builder import LOSSES


def _mask(labels):
    return (labels >= 0).astype("float32")


def _pair_mask(labels):
    """[Q, D, D] 1 where both documents are real and ``y_i > y_j``."""
    m = _mask(labels)
    both = m.unsqueeze(2) * m.unsqueeze(1)
    return (labels.unsqueeze(2) > labels.unsqueeze(1)).astype("float32") * both


@LOSSES.register()
class PointwiseRegression(paddle.nn.Layer):
    def forward(self, scores, labels):
        m = _mask(labels)
        return ((scores - labels) ** 2 * m).sum() / m.sum().clip(min=1.0)


@LOSSES.register()
class GradedCrossEntropy(paddle.nn.Layer):
    def __init__(self, max_grade=4):
        super().__init__()
        self.max_grade = float(max_grade)

    def forward(self, scores, labels):
        m = _mask(labels)
        target = (labels.clip(min=0.0) / self.max_grade).clip(max=1.0)
        ce = F.binary_cross_entropy_with_logits(scores, target, reduction="none")
        return (ce * m).sum() / m.sum().clip(min=1.0)


@LOSSES.register()
class RankNetLoss(paddle.nn.Layer):
    def __init__(self, sigma=1.0):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, scores, labels):
        pairs = _pair_mask(labels)
        diff = scores.unsqueeze(2) - scores.unsqueeze(1)
        loss = F.softplus(-self.sigma * diff)
        return (loss * pairs).sum() / pairs.sum().clip(min=1.0)


@LOSSES.register()
class ListNetLoss(paddle.nn.Layer):
    def forward(self, scores, labels):
        m = _mask(labels)
        neg = (1.0 - m) * -1e9
        p_true = F.softmax(labels + neg, axis=1)
        log_p = F.log_softmax(scores + neg, axis=1)
        per_query = -(p_true * log_p * m).sum(1)
        has_docs = (m.sum(1) > 0).astype("float32")
        return (per_query * has_docs).sum() / has_docs.sum().clip(min=1.0)


@LOSSES.register()
class LambdaRankLoss(paddle.nn.Layer):
    def __init__(self, sigma=1.0, topk=None):
        super().__init__()
        self.sigma = float(sigma)
        self.topk = None if topk is None else int(topk)

    def forward(self, scores, labels):
        m = _mask(labels)
        pairs = _pair_mask(labels)
        with paddle.no_grad():
            s = scores.detach() + (1.0 - m) * -1e9  # padding ranks last
            # 1-based rank of every document under the current scores (ties: document order)
            order = paddle.argsort(-s, axis=1, stable=True)
            ranks = paddle.argsort(order, axis=1, stable=True).astype("float32") + 1.0
            gain = (paddle.pow(paddle.to_tensor(2.0), labels.clip(min=0.0)) - 1.0) * m
            disc = 1.0 / paddle.log2(ranks + 1.0)
            if self.topk is not None:
                disc = disc * (ranks <= self.topk).astype("float32")
            ideal_gain = paddle.sort(gain, axis=1, descending=True)
            pos = paddle.arange(1, gain.shape[1] + 1, dtype="float32")
            ideal_disc = 1.0 / paddle.log2(pos + 1.0)
            if self.topk is not None:
                ideal_disc = ideal_disc * (pos <= self.topk).astype("float32")
            idcg = (ideal_gain * ideal_disc.unsqueeze(0)).sum(1, keepdim=True)
            inv_idcg = paddle.where(idcg > 0, 1.0 / idcg.clip(min=1e-12), paddle.zeros_like(idcg))
            delta = paddle.abs((gain.unsqueeze(2) - gain.unsqueeze(1)) *
                               (disc.unsqueeze(2) - disc.unsqueeze(1))) * inv_idcg.unsqueeze(2)
        diff = scores.unsqueeze(2) - scores.unsqueeze(1)
        loss = (F.softplus(-self.sigma * diff) * delta * pairs).sum([1, 2])
        has_docs = (m.sum(1) > 0).astype("float32")
        return (loss * has_docs).sum() / has_docs.sum().clip(min=1.0)
