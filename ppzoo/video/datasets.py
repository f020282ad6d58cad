"""PaddleVideo-format datasets: ``path label`` list files for videos/frame folders, and the
FSD-10 skeleton arrays (``*_data.npy`` N x C x T x V x M, ``*_label.npy``)."""
import os

import numpy as np

from ..core.builder import DATASETS
from ..core.errors import ConfigError, DataError
from ..core.paths import resolve_data_path
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
    """Videos (or frame folders) listed in ``file_path`` as ``<path> <label>`` lines,
    PaddleVideo's ``<frame_dir> <frames_len> <label>`` frame lists, or ``<path>`` lines
    alone for an unlabelled test set (``has_labels`` is then false).

    Paths are relative to ``data_prefix`` when given.  The pipeline (``transforms``) starts
    with ``VideoDecoder`` or ``FrameDecoder`` and ``Sampler``.  Samples are
    ``{"video": (T, C, H, W) float32, "label": int64}``.
    """

    def __init__(self, file_path, data_prefix=None, transforms=None, class_names=None,
                 num_classes=None, seed=0):
        super().__init__(transforms, seed)
        file_path, data_prefix = resolve_data_path(file_path), resolve_data_path(data_prefix)
        if not os.path.isfile(file_path):
            raise DataError(f"video list file not found: {file_path}")
        self.items, first_line = [], {}
        with open(file_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    self.items.append(self._parse_line(file_path, lineno, line.strip(), data_prefix))
                    first_line.setdefault(self.items[-1][2] is not None, lineno)
        if not self.items:
            raise DataError(f"video list file {file_path} is empty")
        if len(first_line) > 1:
            raise DataError(f"{file_path}:{first_line[False]}: no label, but line "
                            f"{first_line[True]} has one; label every line or none (an "
                            f"unlabelled test list)")
        self.has_labels = True in first_line
        self.class_names = _class_names(class_names, num_classes)
        if self.class_names and self.has_labels:
            bad = [(p, lab) for p, _, lab in self.items if not 0 <= lab < len(self.class_names)]
            if bad:
                raise DataError(f"{file_path}: label {bad[0][1]} of {bad[0][0]} is outside "
                                f"0..{len(self.class_names) - 1}")

    @staticmethod
    def _parse_line(file_path, lineno, line, data_prefix):
        """``<path> <label>``, PaddleVideo's frame lists ``<frame_dir> <frames_len> <label>``,
        or ``<path>`` alone (unlabelled test list).  Paths may contain spaces."""
        parts = line.rsplit(None, 2)
        isint = [p.lstrip("-").isdigit() for p in parts]
        if len(parts) == 3 and isint[1] and isint[2]:
            path, frames_len, label = parts[0], int(parts[1]), int(parts[2])
            if frames_len < 1:
                raise DataError(f"{file_path}:{lineno}: frames_len {frames_len} of {parts[0]!r} must be >= 1")
        elif len(parts) >= 2 and isint[-1]:
            path, frames_len, label = line.rsplit(None, 1)[0], None, int(parts[-1])
        elif len(parts) == 1 or not any(isint):
            path, frames_len, label = line, None, None
        else:
            raise DataError(f"{file_path}:{lineno}: expected '<path> <label>', '<frame_dir> "
                            f"<frames_len> <label>' or '<path>', got {line!r}")
        path = os.path.join(data_prefix, path) if data_prefix else path
        return path, frames_len, label

    def __len__(self):
        return len(self.items)

    def write_predictions(self, path, scores):
        """Unlabelled list: ``sample_index,predict_category,filename`` rows."""
        from .submission import write_csv
        classes = np.asarray(scores).argmax(axis=1)
        return write_csv(path, ["sample_index", "predict_category", "filename"],
                         [(i, int(c), item[0]) for i, (c, item) in enumerate(zip(classes, self.items))])

    def load(self, idx):
        path, frames_len, label = self.items[idx]
        sample = {"filename": path}
        if frames_len is not None:
            sample["list_frames_len"] = frames_len
        if label is not None:
            sample["label"] = np.int64(label)
        return sample


def read_skeleton_array(path, mmap=False):
    """A ``.npy`` skeleton array; an unreadable or empty file is one DataError."""
    try:
        data = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read skeleton array {path}: {err or 'empty or truncated file'}") from None
    if not isinstance(data, np.ndarray) or data.size == 0:
        raise DataError(f"{path}: skeleton array is empty (shape {getattr(data, 'shape', None)})")
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(f"{path}: skeleton array must be numeric, got dtype {data.dtype}")
    return data


def check_skeleton_layout(shape, path):
    """(C, T, V, M): C is 2 or 3 (x, y[, confidence or z]) and M (persons) small.  A
    (T, V, C, M) or (M, T, V, C) array is named as such instead of failing in the model."""
    c, t, v, m = shape
    if c > 4 or m > 10:
        hint = ""
        if shape[2] in (2, 3) and shape[1] in (17, 18, 25):
            hint = " (it looks like T x V x C x M: transpose to C x T x V x M with .transpose(2, 0, 1, 3))"
        elif shape[-1] in (2, 3):
            hint = " (it looks like M x T x V x C or T x V x M x C: the channels come first)"
        raise DataError(f"{path}: skeleton sequences must be C x T x V x M with C = 2 or 3 "
                        f"channels and M persons, got {list(shape)}{hint}")


def read_skeleton_labels(path):
    """``*_label.npy`` (N integers) or PaddleVideo's / ST-GCN's ``.pkl`` of
    ``(sample_names, labels)``; anything else is one DataError naming the file.  Both are
    read by ``ppzoo.core.safeload`` (arrays, numbers, strings, containers: never code)."""
    from ..core.safeload import load_npy, unpickle
    if path.endswith(".pkl"):
        labels = unpickle(path, DataError, "skeleton label file")
    else:
        labels = load_npy(path, DataError, "skeleton label file")
    if isinstance(labels, np.ndarray) and labels.dtype == object and labels.shape == (2,):
        labels = tuple(labels)
    if isinstance(labels, (tuple, list)) and len(labels) == 2 and not np.isscalar(labels[0]):
        names, labels = labels
        if len(names) != len(labels):
            raise DataError(f"{path}: (names, labels) pickle has {len(names)} names and "
                            f"{len(labels)} labels")
    try:
        arr = np.asarray(labels)
        if arr.size and not np.all(np.mod(arr.astype(np.float64), 1) == 0):
            raise ValueError("labels are not integers")
        arr = arr.astype(np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: labels must be integers (a .npy of N ids or a (names, labels) "
                        f".pkl): {err}") from None
    return arr


@DATASETS.register()
class SkeletonDataset(BaseDataset):
    """FSD-10 / PaddleVideo skeleton arrays: ``file_path`` holds N x C x T x V x M float data
    (C = x, y, confidence), ``label_path`` N integer labels (``.npy``) or a ``(names, labels)``
    ``.pkl``; omit it for unlabelled test data (``has_labels`` is then false).

    ``mmap: true`` keeps the (large) data array on disk.  Samples are
    ``{"data": (C, T, V, M) float32, "label": int64}``.
    """

    def __init__(self, file_path, label_path=None, transforms=None, class_names=None,
                 num_classes=None, mmap=True, seed=0):
        super().__init__(transforms, seed)
        file_path, label_path = resolve_data_path(file_path), resolve_data_path(label_path)
        for p in (file_path, label_path):
            if p is not None and not os.path.isfile(p):
                raise DataError(f"skeleton file not found: {p}")
        self.data = read_skeleton_array(file_path, mmap)
        if self.data.ndim != 5:
            raise DataError(f"{file_path}: skeleton data must be N x C x T x V x M, got shape "
                            f"{self.data.shape}")
        check_skeleton_layout(self.data.shape[1:], file_path)
        if label_path is not None:
            self.labels = read_skeleton_labels(label_path)
            if len(self.labels) != len(self.data):
                raise DataError(f"{label_path}: {len(self.labels)} labels for {len(self.data)} "
                                f"sequences in {file_path}")
        else:
            self.labels = None
        self.has_labels = self.labels is not None
        self.class_names = _class_names(class_names, num_classes)

    def __len__(self):
        return len(self.data)

    def write_predictions(self, path, scores):
        """PaddleVideo's FSD-10 ``submission.csv`` (``sample_index,predict_category``)."""
        from .submission import write_submission
        return write_submission(path, scores)

    def load(self, idx):
        sample = {"data": np.array(self.data[idx], dtype="float32")}
        if self.labels is not None:
            sample["label"] = self.labels[idx]
        return sample
