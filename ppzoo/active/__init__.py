"""Active learning: the round loop shared by every active-learning method, and its
query strategies."""
from .strategies import STRATEGIES, QueryStrategy, RandomStrategy  # noqa: F401
from .loop import ActiveLoop, ActiveSubset, CommitteeHook, Oracle, area_under_budget_curve  # noqa: F401
from . import classification, noise_stability, poal, data, learners, trainer  # noqa: F401,E402
