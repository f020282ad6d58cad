"""Weighted cross-entropy for segmentation (PSSL pre-training and fine-tuning)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import LOSSES


@LOSSES.register()
class SegCrossEntropyLoss(nn.Layer):
    """Pixel cross-entropy with class weights, an ignore value and optional per-pixel
    confidence weights.

    PSSL pseudo labels are noisy on the background, so the released configs weight the
    background class 0.1; ``background_weight`` sets that (``background_index`` is the
    background class).  ``confidence`` (B,H,W in [0,1]) further weights each pixel by how
    much the explainers agreed.  Multi-output models (OCRNet, PSPNet aux) pass a list of
    logits; ``coefs`` weights each.
    """

    def __init__(self, num_classes=None, ignore_index=255, class_weights=None,
                 background_index=None, background_weight=None, coefs=None):
        super().__init__()
        self.ignore_index = int(ignore_index)
        w = list(class_weights) if class_weights is not None else None
        if background_weight is not None:
            if w is None:
                w = [1.0] * int(num_classes)
            w[int(background_index)] = float(background_weight)
        self.weights = w
        self.coefs = coefs

    def single(self, logits, label, confidence=None):
        c = logits.shape[1]
        label = label.astype("int64")
        valid = (label != self.ignore_index).astype("float32")
        safe = paddle.where(label == self.ignore_index, paddle.zeros_like(label), label)
        logp = F.log_softmax(logits, axis=1)
        nll = -paddle.take_along_axis(logp, safe.unsqueeze(1), axis=1).squeeze(1)
        pw = valid
        if self.weights is not None:
            wt = paddle.to_tensor(self.weights, dtype="float32")
            pw = pw * paddle.gather(wt, safe.flatten()).reshape(safe.shape)
        if confidence is not None:
            pw = pw * confidence.astype("float32")
        return (nll * pw).sum() / paddle.clip(pw.sum(), min=1e-6)

    def forward(self, logits, label, confidence=None):
        outs = logits if isinstance(logits, (list, tuple)) else [logits]
        coefs = self.coefs or [1.0] + [0.4] * (len(outs) - 1)
        total = 0.0
        for co, lo in zip(coefs, outs):
            if lo.shape[2:] != label.shape[1:]:
                lo = F.interpolate(lo, size=label.shape[1:], mode="bilinear", align_corners=False)
            total = total + co * self.single(lo, label, confidence)
        return total
