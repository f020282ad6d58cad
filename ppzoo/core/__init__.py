from .builder import (BACKBONES, DATASETS, HEADS, HOOKS, LOSSES, LR_SCHEDULERS, METRICS, MODELS,
                      OPTIMIZERS, TRAINERS, TRANSFORMS, build_lr_scheduler, build_model,
                      build_optimizer)
from .config import apply_opts, load_config, merge_dicts, save_config
from .errors import ConfigError, DataError, PPZooError, WeightsError
from .registry import Registry, all_registries, build_from_cfg
