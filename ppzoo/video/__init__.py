"""Sports action recognition: 2D video recognizers (TSN, TSM, PP-TSM) and skeleton
recognizers (ST-GCN, PaddleVideo's FSD-10 AGCN, 2s-AGCN) with PaddleVideo-compatible data
formats and weights."""
from . import transforms, datasets, backbones, recognizers, skeleton, weights, infer, recipes  # noqa: F401
