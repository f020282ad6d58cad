"""The trainer of the localization models: the engine's loop, with a loss that sees
the whole batch (BMN needs three target maps, AttentionLSTM a class and an IoU)."""
import paddle

from ..core.builder import TRAINERS
from ..engine.trainer import Trainer


@TRAINERS.register()
class LocalizationTrainer(Trainer):
    """``loss(outputs, batch) -> (loss, {name: value})``; ``predict`` returns the model's
    outputs as NumPy arrays (metrics get the tuple)."""

    def forward_loss(self, batch):
        outputs = self.train_model(*self.inputs_of(batch))
        return self.loss_fn(outputs, batch)

    def predict(self, batch):
        out = self.model(*self.inputs_of(batch))
        out = out if isinstance(out, (list, tuple)) else [out]
        return tuple(o.numpy() if isinstance(o, paddle.Tensor) else o for o in out)
