"""Segmentation trainer: handles multi-output models and per-pixel confidence."""
import paddle.nn.functional as F

from ..core.builder import TRAINERS
from ..engine.trainer import Trainer


@TRAINERS.register()
class SegTrainer(Trainer):
    """Losses get every logits a model returns in train mode (OCRNet: soft + main,
    PSPNet: main + aux) and a ``confidence`` map when the dataset yields one.  In
    evaluation, logits of another size than the label (an input resized with ``mask:
    false``) are resized bilinearly to the label, as PaddleSeg restores them, so the score
    is taken on the masks as annotated."""

    def forward_loss(self, batch):
        logits = self.train_model(*self.inputs_of(batch))
        conf = batch.get("confidence")
        loss = self.loss_fn(logits, batch[self.label_key], confidence=conf)
        return loss, {"loss": loss}

    def predict(self, batch):
        out = self.model(*self.inputs_of(batch))
        out = out[0] if isinstance(out, (list, tuple)) else out
        label = batch.get(self.label_key)
        if label is not None and out.ndim == 4 and tuple(out.shape[2:]) != tuple(label.shape[-2:]):
            out = F.interpolate(out, size=list(label.shape[-2:]), mode="bilinear", align_corners=False)
        return out
