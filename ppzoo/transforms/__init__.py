from .base import Compose, read_image  # noqa: F401
from . import image  # noqa: F401
