"""PaddleVideo's training-recipe pieces as registered options.

- ``trainer: {type: MixupTrainer, mixup_alpha: 0.2}``: PaddleVideo's ``MIX: Mixup``: each
  training batch is replaced by lam * x + (1 - lam) * x[perm], lam ~ Beta(alpha, alpha),
  and the loss is lam * loss(y) + (1 - lam) * loss(y[perm]).  lam and perm come from
  NumPy's global generator, which the engine reseeds every iteration, so runs and resumed
  runs repeat.
- ``hooks: [{type: PreciseBNHook, interval: 5, num_iters: 200}]``: PaddleVideo's
  ``PRECISEBN``: every ``interval`` epochs, before that epoch's evaluation, BatchNorm
  running statistics are recomputed as the plain average of ``num_iters`` training
  batches' statistics (instead of the exponential average of training).
- Nesterov momentum and the fc's 5x/10x learning rates are optimizer options
  (``use_nesterov: true``, ``optimizer.param_groups``): see ``configs/video/pptsm_r50.yml``.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..core.builder import HOOKS, TRAINERS
from ..core.errors import ConfigError
from ..engine.hooks import Hook
from ..engine.trainer import Trainer


@TRAINERS.register()
class MixupTrainer(Trainer):
    """The engine's trainer with PaddleVideo's Mixup on the float inputs of each batch."""

    def __init__(self, cfg, mixup_alpha=0.2, **kwargs):
        alpha = float(mixup_alpha)
        if not alpha > 0:
            raise ConfigError(f"trainer.mixup_alpha: {mixup_alpha!r} must be > 0")
        self.mixup_alpha = alpha
        self.last_mix = None
        super().__init__(cfg, **kwargs)

    def forward_loss(self, batch):
        inputs = self.inputs_of(batch)
        label = batch[self.label_key]
        n = int(inputs[0].shape[0])
        lam = float(np.random.beta(self.mixup_alpha, self.mixup_alpha))
        perm = np.random.permutation(n)
        index = paddle.to_tensor(perm)
        mixed = [lam * x + (1.0 - lam) * paddle.gather(x, index) if paddle.is_floating_point(x) else x
                 for x in inputs]
        self.last_mix = (lam, perm)
        logits = self.train_model(*mixed)
        loss = lam * self.loss_fn(logits, label) + (1.0 - lam) * self.loss_fn(logits, paddle.gather(label, index))
        return loss, {"loss": loss}


def precise_bn(model, batches, inputs_of):
    """Set every BatchNorm's running mean/variance to the average of the batch statistics
    over ``batches`` (each batch counts once).  Returns the number of batches used."""
    bns = [m for m in model.sublayers() if isinstance(m, nn.layer.norm._BatchNormBase)]
    if not bns:
        return 0
    momenta = [bn._momentum for bn in bns]
    was_training = model.training
    model.train()
    used = 0
    try:
        with paddle.no_grad():
            for i, batch in enumerate(batches):
                for bn in bns:  # running = m * running + (1 - m) * batch: m = i / (i + 1) averages
                    bn._momentum = i / (i + 1.0)
                model(*inputs_of(batch))
                used += 1
    finally:
        for bn, m in zip(bns, momenta):
            bn._momentum = m
        if not was_training:
            model.eval()
    return used


@HOOKS.register()
class PreciseBNHook(Hook):
    """Recomputes BatchNorm statistics every ``interval`` epochs from ``num_iters`` training
    batches, at the epoch's last iteration and before the evaluation there."""

    priority = 25  # before EvalHook (30)

    def __init__(self, interval=1, num_iters=200):
        self.interval, self.num_iters = int(interval), int(num_iters)
        if self.interval < 1 or self.num_iters < 1:
            raise ConfigError(f"PreciseBNHook: interval and num_iters must be >= 1, got {interval}, {num_iters}")

    def after_iter(self, trainer):
        per_epoch = trainer.iters_per_epoch
        if trainer.iter % per_epoch or (trainer.iter // per_epoch) % self.interval:
            return

        def batches():
            for i, batch in enumerate(trainer.train_loader):
                if i >= self.num_iters:
                    return
                yield batch
        used = precise_bn(trainer.model, batches(), trainer.inputs_of)
        trainer.logger.info(f"PreciseBN: BatchNorm statistics from {used} training batches")
