"""The fine-tuning trainer: the shared loop with a regularizer composing the step loss."""
import os

from ..core.builder import TRAINERS
from ..engine import checkpoint as ckpt
from ..engine.trainer import Trainer
from .regularizers import REGULARIZERS

#: key of the regularizer's state (SMART's teacher) inside a checkpoint's ``model.pdopt``
REGULARIZER_STATE_KEY = "regularizer"


@TRAINERS.register()
class FineTuneTrainer(Trainer):
    """``Trainer`` whose step loss comes from the config's ``regularizer:`` (default plain).

    The regularizer is set up after the pre-trained weights are loaded and before a resume,
    so L2-SP, Mixout and SMART anchor on the pre-trained point.  It sees the built optimizer
    (``check_optimizer``), runs after every optimizer step (``after_step``), and its state
    (SMART's momentum teacher) is saved with the optimizer state in each checkpoint, so a
    resumed run continues with the same teacher.  Metrics that map outputs back to the
    evaluation data (``SquadMetric``) get the validation dataset via ``bind_dataset``.
    """
    extra_config_keys = {"regularizer"}

    def _build(self, cfg, build_train, resume):
        self.regularizer = REGULARIZERS.build(dict(cfg.get("regularizer") or {"type": "NoRegularizer"}),
                                              key_path="regularizer")
        super()._build(cfg, build_train, resume)

    def _make_eval_loader(self, dataset):
        for m in self.metrics:
            if hasattr(m, "bind_dataset"):
                m.bind_dataset(dataset)
        return super()._make_eval_loader(dataset)

    def _build_training(self, resume):
        self.regularizer.setup(self)
        super()._build_training(resume)
        self.regularizer.check_optimizer(self)

    def forward_loss(self, batch):
        return self.regularizer(self, batch)

    def train_step(self, batch):
        super().train_step(batch)
        self.regularizer.after_step(self)

    def save_checkpoint(self, name):
        if not self.is_main:
            return
        opt_state = self.optimizer.state_dict()
        reg_state = self.regularizer.state_dict()
        if reg_state:
            opt_state = dict(opt_state, **{REGULARIZER_STATE_KEY: reg_state})
        ckpt.save_checkpoint(os.path.join(self.work_dir, name), self.model.state_dict(),
                             opt_state, self.state())

    def resume(self):
        super().resume()
        _, opt_state, _ = ckpt.load_checkpoint(os.path.join(self.work_dir, "latest"))
        self.regularizer.load_state_dict((opt_state or {}).get(REGULARIZER_STATE_KEY) or {})
