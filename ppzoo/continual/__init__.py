"""Continual representation learning: task sequences trained by the engine, strategies,
linear-probe evaluation of the representation, and a synthetic multi-factor dataset."""
from . import data, models, probe, strategies, trainer  # noqa: F401
from .strategies import STRATEGIES  # noqa: F401
from .trainer import ContinualTrainer  # noqa: F401
