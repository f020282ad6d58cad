import paddle
import paddle.nn.functional as F

from ..core.builder import LOSSES


@LOSSES.register()
class CrossEntropyLoss(paddle.nn.Layer):
    """Cross-entropy over axis 1 (classes) with optional label smoothing, class weights and
    an ignored label; works for (N, C) logits and (N, C, H, W) dense logits."""

    def __init__(self, label_smoothing=0.0, weight=None, ignore_index=-100):
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.weight = paddle.to_tensor(weight, dtype="float32") if weight is not None else None
        self.ignore_index = int(ignore_index)

    def forward(self, logits, label):
        label = label.astype("int64")
        if label.ndim == logits.ndim:
            label = label.squeeze(1)
        if self.label_smoothing > 0:
            num_classes = logits.shape[1]
            valid = (label != self.ignore_index)
            safe = paddle.where(valid, label, paddle.zeros_like(label))
            onehot = F.one_hot(safe, num_classes)
            if logits.ndim > 2:
                onehot = onehot.transpose([0, onehot.ndim - 1] + list(range(1, onehot.ndim - 1)))
            soft = onehot * (1 - self.label_smoothing) + self.label_smoothing / num_classes
            logp = F.log_softmax(logits, axis=1)
            if self.weight is not None:
                logp = logp * self.weight.reshape([1, -1] + [1] * (logits.ndim - 2))
            per = -(soft * logp).sum(axis=1)
            validf = valid.astype(per.dtype)
            return (per * validf).sum() / validf.sum().clip(min=1.0)
        return F.cross_entropy(logits, label, weight=self.weight, ignore_index=self.ignore_index,
                               axis=1)
