from .cnn import SmallCNN  # noqa: F401
from .vision import MobileNetV2, MobileNetV3, ResNet  # noqa: F401
