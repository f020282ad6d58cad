"""EDL-Dist: knowledge distillation with teachers served apart from the student."""
from . import losses, trainer  # noqa: F401  (registers losses and DistillTrainer)
