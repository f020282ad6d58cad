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
    """``.npy`` skeleton sequences -> top-k labels.  A file holds one sequence,
    C x T x V x M, or several, N x C x T x V x M (FSD-10's test arrays); each sequence of a
    multi-sequence file is an input named ``<file>#<row>``.  With ``--output`` a
    ``submission.csv`` in PaddleVideo's FSD-10 format (``sample_index,predict_category``)
    is written beside ``results.jsonl``."""

    extensions = (".npy",)

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        return {"reader": {}, "postprocess": {"topk": 5, "softmax": True}}

    def _array(self, path):
        from .datasets import check_skeleton_layout, read_skeleton_array
        cache = getattr(self, "_cache", None)
        if cache is None or cache[0] != path:
            data = read_skeleton_array(path, mmap=True)
            if data.ndim not in (4, 5):
                raise DataError(f"{path}: a skeleton file must be C x T x V x M or N x C x T x V "
                                f"x M, got shape {list(data.shape)}")
            check_skeleton_layout(data.shape[-4:], path)
            self._cache = cache = (path, data)
        return cache[1]

    def list_inputs(self, path):
        entries = []
        for f in super().list_inputs(path):
            data = self._array(f)
            if data.ndim == 5 and data.shape[0] > 1:
                entries += [f"{f}#{i}" for i in range(data.shape[0])]
            else:
                entries.append(f)
        return entries

    def read(self, path):
        base, _, row = path.rpartition("#") if "#" in os.path.basename(path) else (path, "", "")
        data = self._array(base)
        if data.ndim == 5:
            data = data[int(row) if row else 0]
        return {"data": np.asarray(data, dtype="float32")}

    def save(self, result, path, out_dir):
        sub = os.path.join(out_dir, "submission.csv")
        new = not os.path.exists(sub)
        self._count = getattr(self, "_count", -1) + 1
        index = int(path.rpartition("#")[2]) if "#" in os.path.basename(path) else self._count
        with open(sub, "a", encoding="utf-8") as f:  # in the staging folder: moved when complete
            if new:
                f.write("sample_index,predict_category\n")
            f.write(f"{index},{result['class_ids'][0]}\n")
