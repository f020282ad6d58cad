"""Federated learning: server strategies, the client's local training and a simulator."""
from . import strategies, client, trainer  # noqa: F401
from .strategies import STRATEGIES, ClientResult, ServerStrategy  # noqa: F401
from .client import get_weights, local_train, set_weights  # noqa: F401
from .trainer import FederatedTrainer  # noqa: F401
