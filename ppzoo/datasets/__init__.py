from .base import BaseDataset  # noqa: F401
from . import classification  # noqa: F401
