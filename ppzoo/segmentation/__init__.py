"""Semantic segmentation: models (a small CPU net, PaddleSeg's PSPNet/DeepLabV3/OCRNet),
CamVid, mIoU, weighted cross-entropy and the segmentation trainer."""
from . import datasets, infer, losses, metrics, models, trainer, transforms  # noqa: F401
