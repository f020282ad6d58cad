"""PaddleVideo-format datasets: ``path label`` list files for videos/frame folders, and the
FSD-10 skeleton arrays (``*_data.npy`` N x C x T x V x M, ``*_label.npy``)."""
import os

import numpy as np

from ..core.builder import DATASETS
from ..core.errors import ConfigError, DataError
from ..datasets.base import BaseDataset
from . import classes as class_lists


def _class_names(class_names, num_classes=None):
    """``class_names`` may be a list, a preset name (``fsd10``, ``football``, ...) or a text
    file with one name per line."""
    if class_names is None:
        return [str(i) for i in range(int(num_classes))] if num_classes else None
    if isinstance(class_names, str):
        if class_names in class_lists.PRESETS:
            return list(class_lists.PRESETS[class_names])
        if not os.path.isfile(class_names):
            raise ConfigError(f"class_names: {class_names!r} is neither a preset "
                              f"({', '.join(class_lists.PRESETS)}) nor a file")
        with open(class_names, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return [str(c) for c in class_names]


@DATASETS.register()
class VideoDataset(BaseDataset):
    """Videos (or frame folders) listed in ``file_path`` as ``<path> <label>`` lines.

    Paths are relative to ``data_prefix`` when given.  The pipeline (``transforms``) starts
    with ``VideoDecoder`` or ``FrameDecoder`` and ``Sampler``.  Samples are
    ``{"video": (T, C, H, W) float32, "label": int64}``.
    """

    def __init__(self, file_path, data_prefix=None, transforms=None, class_names=None,
                 num_classes=None, seed=0):
        super().__init__(transforms, seed)
        if not os.path.isfile(file_path):
            raise DataError(f"video list file not found: {file_path}")
        self.items = []
        with open(file_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.strip().rsplit(None, 1)
                if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                    raise DataError(f"{file_path}:{lineno}: expected '<path> <label>', got {line.strip()!r}")
                path = os.path.join(data_prefix, parts[0]) if data_prefix else parts[0]
                self.items.append((path, int(parts[1])))
        if not self.items:
            raise DataError(f"video list file {file_path} is empty")
        self.class_names = _class_names(class_names, num_classes)
        if self.class_names:
            bad = [(p, lab) for p, lab in self.items if not 0 <= lab < len(self.class_names)]
            if bad:
                raise DataError(f"{file_path}: label {bad[0][1]} of {bad[0][0]} is outside "
                                f"0..{len(self.class_names) - 1}")

    def __len__(self):
        return len(self.items)

    def load(self, idx):
        path, label = self.items[idx]
        return {"filename": path, "label": np.int64(label)}


@DATASETS.register()
class SkeletonDataset(BaseDataset):
    """FSD-10 / PaddleVideo skeleton arrays: ``file_path`` holds N x C x T x V x M float data
    (C = x, y, confidence), ``label_path`` N integer labels (omit it for unlabeled test data).

    ``mmap: true`` keeps the (large) data array on disk.  Samples are
    ``{"data": (C, T, V, M) float32, "label": int64}``.
    """

    def __init__(self, file_path, label_path=None, transforms=None, class_names=None,
                 num_classes=None, mmap=True, seed=0):
        super().__init__(transforms, seed)
        for p in (file_path, label_path):
            if p is not None and not os.path.isfile(p):
                raise DataError(f"skeleton file not found: {p}")
        try:
            self.data = np.load(file_path, mmap_mode="r" if mmap else None)
        except ValueError as err:
            raise DataError(f"cannot read skeleton array {file_path}: {err}") from None
        if self.data.ndim != 5:
            raise DataError(f"{file_path}: skeleton data must be N x C x T x V x M, got shape "
                            f"{self.data.shape}")
        if label_path is not None:
            labels = np.load(label_path, allow_pickle=True)
            if isinstance(labels, np.ndarray) and labels.dtype == object and labels.shape == (2,):
                labels = labels[1]  # (names, labels) pickles of the ST-GCN tools
            self.labels = np.asarray(labels).astype(np.int64).reshape(-1)
            if len(self.labels) != len(self.data):
                raise DataError(f"{label_path}: {len(self.labels)} labels for {len(self.data)} "
                                f"sequences in {file_path}")
        else:
            self.labels = None
        self.class_names = _class_names(class_names, num_classes)

    def __len__(self):
        return len(self.data)

    def load(self, idx):
        sample = {"data": np.array(self.data[idx], dtype="float32")}
        if self.labels is not None:
            sample["label"] = self.labels[idx]
        return sample
