from .hooks import CheckpointHook, EarlyStoppingHook, EvalHook, Hook, LoggerHook  # noqa: F401
from .trainer import Trainer, build_trainer  # noqa: F401
