"""Segmentation trainer: handles multi-output models and per-pixel confidence."""
from ..core.builder import TRAINERS
from ..engine.trainer import Trainer


@TRAINERS.register()
class SegTrainer(Trainer):
    """Losses get every logits a model returns in train mode (OCRNet: soft + main,
    PSPNet: main + aux) and a ``confidence`` map when the dataset yields one."""

    def forward_loss(self, batch):
        logits = self.train_model(*self.inputs_of(batch))
        conf = batch.get("confidence")
        loss = self.loss_fn(logits, batch[self.label_key], confidence=conf)
        return loss, {"loss": loss}

    def predict(self, batch):
        out = self.model(*self.inputs_of(batch))
        return out[0] if isinstance(out, (list, tuple)) else out
