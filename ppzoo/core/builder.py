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
    """Build any ``paddle.optimizer`` class by name with ``lr`` (float or schedule).

    ``param_groups`` (a list of ``{pattern, lr_mult, weight_decay}``) gives parameters whose
    name matches ``pattern`` (a regex searched in the names of ``model.named_parameters()``)
    their own learning-rate multiplier and, optionally, weight decay: e.g. a backbone at 0.1x
    or a head at 10x, as PaddleSeg and PaddleVideo recipes do. The first matching group wins;
    the rest keep the optimizer's own settings. ``parameters`` must then be the
    ``(name, parameter)`` pairs.
    """
    if not cfg or "type" not in cfg:
        raise ConfigError("config key 'optimizer' needs a 'type' such as Momentum, Adam or AdamW")
    cfg = dict(cfg)
    cfg.pop("learning_rate", None)
    groups = cfg.pop("param_groups", None)
    parameters = list(parameters)
    named = bool(parameters) and isinstance(parameters[0], tuple)
    if groups:
        if not named:
            raise ConfigError("optimizer.param_groups needs the model's named parameters")
        parameters = _param_groups(groups, parameters)
    elif named:
        parameters = [p for _, p in parameters]
    clip = None
    if grad_clip:
        clip = paddle.nn.ClipGradByGlobalNorm(clip_norm=float(grad_clip))
    return build_from_cfg(cfg, OPTIMIZERS, key_path="optimizer",
                          learning_rate=lr, parameters=parameters, grad_clip=clip)


def _param_groups(groups, named_parameters):
    """Split ``(name, parameter)`` pairs into Paddle parameter groups by regex."""
    import re
    if not isinstance(groups, (list, tuple)):
        raise ConfigError("optimizer.param_groups must be a list of {pattern, lr_mult, weight_decay}")
    compiled = []
    for i, group in enumerate(groups):
        key = f"optimizer.param_groups[{i}]"
        if not isinstance(group, dict) or "pattern" not in group:
            raise ConfigError(f"{key} must be a mapping with a 'pattern' (a regex on parameter names)")
        unknown = set(group) - {"pattern", "lr_mult", "weight_decay"}
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)}; "
                              "known: pattern, lr_mult, weight_decay")
        try:
            regex = re.compile(str(group["pattern"]))
        except re.error as err:
            raise ConfigError(f"{key}.pattern={group['pattern']!r} is not a valid regex: {err}")
        try:
            lr_mult = float(group.get("lr_mult", 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{key}.lr_mult={group.get('lr_mult')!r} is not a number")
        if lr_mult < 0:
            raise ConfigError(f"{key}.lr_mult={lr_mult} must be >= 0")
        options = {"learning_rate": lr_mult}
        if group.get("weight_decay") is not None:
            try:
                options["weight_decay"] = float(group["weight_decay"])
            except (TypeError, ValueError):
                raise ConfigError(f"{key}.weight_decay={group['weight_decay']!r} is not a number")
        compiled.append((key, regex, options, []))
    rest = []
    for name, param in named_parameters:
        for _, regex, _, members in compiled:
            if regex.search(name):
                members.append(param)
                break
        else:
            rest.append(param)
    out = []
    for key, regex, options, members in compiled:
        if not members:
            raise ConfigError(f"{key}.pattern={regex.pattern!r} matches no parameter of the model")
        out.append({"params": members, **options})
    if rest:
        # Paddle stores the multiplier on the parameter itself: reset it for the rest, so a
        # model reused with a new optimizer never keeps an earlier group's multiplier.
        out.append({"params": rest, "learning_rate": 1.0})
    return out
