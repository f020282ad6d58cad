"""The registries of ppzoo and the helpers that build optimizers and LR schedules."""
import inspect

import paddle

from .errors import ConfigError
from .registry import Registry, build_from_cfg

MODELS = Registry("models")
BACKBONES = Registry("backbones")
HEADS = Registry("heads")
DATASETS = Registry("datasets")
TRANSFORMS = Registry("transforms")
LOSSES = Registry("losses")
METRICS = Registry("metrics")
OPTIMIZERS = Registry("optimizers")
LR_SCHEDULERS = Registry("lr_schedulers")
TRAINERS = Registry("trainers")
HOOKS = Registry("hooks")


def _register_paddle_classes(module, registry, base):
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base and not name.startswith("_"):
            registry.register(obj, name=name, force=True)


_register_paddle_classes(paddle.optimizer, OPTIMIZERS, paddle.optimizer.Optimizer)
_register_paddle_classes(paddle.optimizer.lr, LR_SCHEDULERS, paddle.optimizer.lr.LRScheduler)


def build_model(cfg):
    return MODELS.build(cfg, key_path="model")


def build_lr_scheduler(cfg, base_lr, total_iters):
    """Build the schedule named by ``cfg`` (or a constant ``base_lr``), with optional warm-up.

    ``warmup_iters``/``warmup_start_lr`` wrap it in ``LinearWarmup``; any numeric argument
    given as ``auto`` (``T_max``, ``decay_steps``, ...) becomes the run's total iterations.
    """
    if not cfg:
        return base_lr
    cfg = dict(cfg)
    warmup_iters = int(cfg.pop("warmup_iters", 0) or 0)
    warmup_start_lr = float(cfg.pop("warmup_start_lr", 0.0))
    cfg.setdefault("learning_rate", base_lr)
    for k, v in list(cfg.items()):
        if v == "auto":
            cfg[k] = max(1, total_iters - warmup_iters)
    sched = LR_SCHEDULERS.build(cfg, key_path="lr_scheduler")
    if warmup_iters > 0:
        sched = paddle.optimizer.lr.LinearWarmup(
            learning_rate=sched, warmup_steps=warmup_iters,
            start_lr=warmup_start_lr, end_lr=base_lr)
    return sched


def build_optimizer(cfg, parameters, lr, grad_clip=None):
    """Build any ``paddle.optimizer`` class by name with ``lr`` (float or schedule)."""
    if not cfg or "type" not in cfg:
        raise ConfigError("config key 'optimizer' needs a 'type' such as Momentum, Adam or AdamW")
    cfg = dict(cfg)
    cfg.pop("learning_rate", None)
    clip = None
    if grad_clip:
        clip = paddle.nn.ClipGradByGlobalNorm(clip_norm=float(grad_clip))
    return build_from_cfg(cfg, OPTIMIZERS, key_path="optimizer",
                          learning_rate=lr, parameters=parameters, grad_clip=clip)
