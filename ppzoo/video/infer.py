"""Inference tasks for ``tools/infer.py``: a video file or a skeleton ``.npy`` -> top-k labels.

Both reuse the classification postprocess (softmax, top-k, label names from deploy.yml);
they differ in how a file becomes a sample: a video is decoded and sampled by the val
pipeline saved at export, a skeleton array is read as one (C, T, V, M) sequence.
"""
import os

import numpy as np

from ..core.errors import DataError
from ..engine.predictor import INFER_TASKS, ClassificationTask


@INFER_TASKS.register(name="video")
class VideoTask(ClassificationTask):
    """A video file (or a frame folder given directly) -> top-k action labels."""

    extensions = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg")

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        return {"reader": {}, "postprocess": {"topk": 5, "softmax": True}}

    def read(self, path):
        if not os.path.exists(path):
            raise DataError(f"video file not found: {path}")
        return {"filename": path}


@INFER_TASKS.register(name="skeleton")
class SkeletonTask(ClassificationTask):
    """A ``.npy`` skeleton sequence, C x T x V x M (or 1 x C x T x V x M) -> top-k labels."""

    extensions = (".npy",)

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        return {"reader": {}, "postprocess": {"topk": 5, "softmax": True}}

    def read(self, path):
        try:
            data = np.load(path)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read skeleton array {path}: {err}") from None
        if data.ndim == 5 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 4:
            raise DataError(f"{path}: a skeleton sequence must be C x T x V x M (or 1 x C x T x V "
                            f"x M), got shape {list(data.shape)}")
        return {"data": data.astype("float32")}
