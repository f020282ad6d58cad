"""The fine-tuning trainer: the shared loop with a regularizer composing the step loss."""
from ..core.builder import TRAINERS
from ..engine.trainer import Trainer
from .regularizers import REGULARIZERS


@TRAINERS.register()
class FineTuneTrainer(Trainer):
    """``Trainer`` whose step loss comes from the config's ``regularizer:`` (default plain).

    The regularizer is set up after the pre-trained weights are loaded and before a resume,
    so L2-SP, Mixout and SMART anchor on the pre-trained point.  Metrics that map outputs back
    to the evaluation data (``SquadMetric``) get the validation dataset via ``bind_dataset``.
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

    def forward_loss(self, batch):
        return self.regularizer(self, batch)
