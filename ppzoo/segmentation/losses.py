"""Weighted cross-entropy for segmentation (PSSL pre-training and fine-tuning)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import LOSSES
from ..core.errors import ConfigError, DataError


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
        if background_weight is not None and background_index is None:
            raise ConfigError("SegCrossEntropyLoss: background_weight needs background_index")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.class_weights = None if class_weights is None else [float(v) for v in class_weights]
        if self.class_weights is not None and self.num_classes and len(self.class_weights) != self.num_classes:
            raise ConfigError(f"SegCrossEntropyLoss: class_weights has {len(self.class_weights)} entries "
                              f"for num_classes={self.num_classes}")
        self.background_index = None if background_index is None else int(background_index)
        self.background_weight = None if background_weight is None else float(background_weight)
        self.coefs = coefs
        self._w = {}

    def weights(self, c):
        """The per-class weights for ``c`` logit channels (None: all 1)."""
        if self.class_weights is None and self.background_weight is None:
            return None
        if c not in self._w:
            if self.num_classes is not None and c != self.num_classes:
                raise ConfigError(f"SegCrossEntropyLoss(num_classes={self.num_classes}) got logits with {c} channels")
            w = list(self.class_weights) if self.class_weights is not None else [1.0] * c
            if len(w) != c:
                raise ConfigError(f"SegCrossEntropyLoss: class_weights has {len(w)} entries, logits have {c} channels")
            if self.background_weight is not None:
                if not 0 <= self.background_index < c:
                    raise ConfigError(f"SegCrossEntropyLoss: background_index {self.background_index} "
                                      f"outside 0..{c - 1}")
                w[self.background_index] = self.background_weight
            self._w[c] = paddle.to_tensor(w, dtype="float32")
        return self._w[c]

    def single(self, logits, label, confidence=None):
        """sum_p conf_p w_{y_p} (-log softmax(logits_p)_{y_p}) / sum_p conf_p w_{y_p} over the
        pixels not ignored, on Paddle's fused ``cross_entropy`` (no (B,C,H,W) log-softmax
        is kept for the backward pass)."""
        c = logits.shape[1]
        label = label.astype("int64")
        w = self.weights(c)
        valid = label != self.ignore_index
        if bool(((label < 0) | (label >= c)).logical_and(valid).any()):
            bad = paddle.masked_select(label, ((label < 0) | (label >= c)).logical_and(valid))
            raise DataError(f"segmentation label value {int(bad[0])} outside 0..{c - 1} and not the "
                            f"ignore value {self.ignore_index}")
        nll = F.cross_entropy(logits, label.unsqueeze(1), weight=w, ignore_index=self.ignore_index,
                              reduction="none", axis=1).squeeze(1)  # already w_y * nll, 0 if ignored
        pw = valid.astype("float32")
        if w is not None:
            safe = paddle.where(valid, label, paddle.zeros_like(label))
            pw = pw * paddle.gather(w, safe.flatten()).reshape(safe.shape)
        if confidence is not None:
            conf = confidence.astype("float32")
            nll, pw = nll * conf, pw * conf
        return nll.sum() / paddle.clip(pw.sum(), min=1e-6)

    def forward(self, logits, label, confidence=None):
        outs = logits if isinstance(logits, (list, tuple)) else [logits]
        coefs = self.coefs or [1.0] + [0.4] * (len(outs) - 1)
        total = 0.0
        for co, lo in zip(coefs, outs):
            if lo.shape[2:] != label.shape[1:]:
                lo = F.interpolate(lo, size=label.shape[1:], mode="bilinear", align_corners=False)
            total = total + co * self.single(lo, label, confidence)
        return total


@LOSSES.register()
class OhemCrossEntropyLoss(nn.Layer):
    """PaddleSeg's online hard example mining cross-entropy: among the pixels not ignored,
    keep those whose true-class probability is below ``max(thresh, p_(min_kept))`` (the
    min_kept-th smallest), when there are more than ``min_kept``; the loss is
    ``mean(ce * kept) / (mean(kept) + 1e-5)`` over all pixels.  PaddleSeg 2.8's own class
    adds an int64 mask to float probabilities, which Paddle 3 refuses; this one casts it."""

    def __init__(self, thresh=0.7, min_kept=10000, ignore_index=255):
        super().__init__()
        self.thresh, self.min_kept, self.ignore_index = float(thresh), int(min_kept), int(ignore_index)

    def forward(self, logit, label, confidence=None):
        if isinstance(logit, (list, tuple)):
            logit = logit[0]
        n, c, h, w = logit.shape
        label = label.reshape((-1,)).astype("int64")
        valid = (label != self.ignore_index).astype("int64")
        num_valid = int(valid.sum())
        label = label * valid
        if self.min_kept < num_valid and num_valid > 0:
            prob = F.softmax(logit, axis=1).transpose((1, 0, 2, 3)).reshape((c, -1))
            prob = prob + (1 - valid).astype(prob.dtype)  # ignored pixels above any threshold
            prob = (prob * F.one_hot(label, c).transpose((1, 0))).sum(axis=0)
            threshold = self.thresh
            if self.min_kept > 0:
                idx = int(prob.argsort()[min(prob.shape[0], self.min_kept) - 1])
                if float(prob[idx]) > self.thresh:
                    threshold = float(prob[idx])
            kept = (prob < threshold).astype("int64")
            label, valid = label * kept, valid * kept
        label = (label + (1 - valid) * self.ignore_index).reshape((n, 1, h, w))
        mask = valid.reshape((n, 1, h, w)).astype("float32")
        loss = F.softmax_with_cross_entropy(logit, label, ignore_index=self.ignore_index, axis=1) * mask
        return loss.mean() / (mask.mean() + 1e-5)


@LOSSES.register()
class DetailAggregateLoss(nn.Layer):
    """PaddleSeg's STDC boundary loss on the 1/8 detail map (its own class, imported when
    built).  As in PaddleSeg, its 1x1 fuse kernel is a parameter initialised at random and
    not in the optimizer."""

    def __init__(self, ignore_index=255):
        super().__init__()
        from paddleseg.models.losses import DetailAggregateLoss as _D
        self.inner = _D(ignore_index=ignore_index)

    def forward(self, logits, label, confidence=None):
        return self.inner(logits, label)


#: PaddleSeg loss classes that do not run on Paddle 3 as shipped, replaced by ppzoo's
_PADDLESEG_FIXED = {"OhemCrossEntropyLoss": OhemCrossEntropyLoss}


@LOSSES.register()
class PaddleSegLosses(nn.Layer):
    """PaddleSeg's ``loss: {types, coef}``: the i-th logits of the model go to the i-th loss,
    weighted by ``coef[i]`` (PaddleSeg's loss_computation), with PaddleSeg's own loss
    classes (OhemCrossEntropyLoss, DetailAggregateLoss, CrossEntropyLoss, ...), so recipes
    such as STDC-Seg's (three OHEM losses + the detail loss) train as published."""

    _lazy_keys = ("types",)  # PaddleSeg's loss names, not ppzoo registry entries

    def __init__(self, types, coef=None):
        super().__init__()
        from paddleseg.models import losses as L
        built = []
        for i, t in enumerate(types):
            t = dict(t)
            name = t.pop("type", None)
            if not name or not hasattr(L, name):
                raise ConfigError(f"loss.types[{i}].type: {name!r} is not a PaddleSeg loss")
            built.append(_PADDLESEG_FIXED.get(name, getattr(L, name))(**t))
        self.losses = nn.LayerList(built)
        self.coef = [1.0] * len(built) if coef is None else [float(c) for c in coef]
        if len(self.coef) != len(built):
            raise ConfigError(f"loss.coef: {len(self.coef)} values for {len(built)} losses")

    def forward(self, logits, label, confidence=None):
        outs = logits if isinstance(logits, (list, tuple)) else [logits]
        if len(outs) != len(self.losses):
            raise ConfigError(f"loss.types: {len(self.losses)} losses for the {len(outs)} logits the model returns")
        if confidence is not None:
            raise ConfigError("loss: PaddleSegLosses takes no per-pixel confidence (use SegCrossEntropyLoss)")
        label = label.astype("int64")
        total = 0.0
        for c, fn, lo in zip(self.coef, self.losses, outs):
            total = total + c * fn(lo, label)
        return total
