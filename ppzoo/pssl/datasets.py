"""PSSL datasets: image-level labels derived from masks, the released ImageNet labels,
and a multi-label loss/metric to train the classifiers that get explained."""
import os

import numpy as np
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import DATASETS, LOSSES, METRICS
from ..core.errors import DataError
from ..core.paths import resolve_data_path
from ..datasets.base import BaseDataset
from ..transforms import read_image
from .released import (BACKGROUND, IGNORE, LIST_FILE, SYNSETS_FILE, read_released_label, read_synsets,
                       scan_released)


@DATASETS.register()
class ImageLevelLabels(BaseDataset):
    """Wraps a segmentation dataset; ``label`` is the multi-hot set of classes covering
    at least ``min_fraction`` of the valid pixels (what a classification dataset knows).
    The mask is kept (key ``mask``) only for measuring pseudo-label quality."""

    def __init__(self, dataset, min_fraction=0.01, transforms=None, seed=0):
        super().__init__(transforms, seed)
        self.base = DATASETS.build(dataset, key_path="dataset") if isinstance(dataset, dict) else dataset
        self.min_fraction = float(min_fraction)
        self.class_names = getattr(self.base, "class_names", None)
        self.num_classes_ = self.base.num_classes

    @property
    def num_classes(self):
        return self.num_classes_

    def __len__(self):
        return len(self.base)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.base.seed = self.seed
        self.base.set_epoch(epoch)

    def load(self, idx):
        s = self.base[idx]  # the wrapped dataset's own transforms apply
        m = np.asarray(s["mask"])
        m = m[..., 0] if m.ndim == 3 else m
        valid = (m >= 0) & (m < self.num_classes_)
        cnt = np.bincount(m[valid].ravel(), minlength=self.num_classes_)[:self.num_classes_]
        s["label"] = (cnt >= self.min_fraction * max(valid.sum(), 1)).astype(np.float32)
        s["index"] = np.int64(idx)
        return s

    def item_name(self, idx):
        return os.path.splitext(os.path.basename(self.base.items[idx][0]))[0]

    def image_path(self, idx):
        return self.base.items[idx][0]


@DATASETS.register()
class PSSLReleased(BaseDataset):
    """The released PSSL ImageNet labels, read as PaddleSeg's ``PSSLDataset`` reads them
    (see ``ppzoo/pssl/released.py``): ``pssl_root`` holds ``train.txt``, the synsets file
    and ``train/<wnid>/<image>.JPEG_eiseg.npz``; ``imagenet_root`` holds
    ``train/<wnid>/<image>.JPEG``.  Label value 1 -> the image's class, else background."""

    def __init__(self, pssl_root, imagenet_root, list_file=LIST_FILE, synsets_file=SYNSETS_FILE,
                 background=BACKGROUND, ignore_index=IGNORE, transforms=None, seed=0, limit=None):
        super().__init__(transforms, seed)
        pssl_root, imagenet_root = resolve_data_path(pssl_root), resolve_data_path(imagenet_root)
        self.items = scan_released(pssl_root, imagenet_root, list_file, synsets_file)
        if limit:
            self.items = self.items[:int(limit)]
        self.background, self.ignore_index = int(background), int(ignore_index)

    @property
    def num_classes(self):
        return max(self.background, self.ignore_index)  # 1001 with PaddleSeg's values

    def __len__(self):
        return len(self.items)

    def load(self, idx):
        img, lab, cls = self.items[idx]
        m = read_released_label(lab, cls, self.background)
        image = read_image(img)
        if image.shape[:2] != m.shape:
            raise DataError(f"image {img} is {image.shape[1]}x{image.shape[0]} but its label {lab} "
                            f"is {m.shape[1]}x{m.shape[0]} (width x height)")
        return {"image": image, "mask": m[:, :, None].astype(np.int32)}


@DATASETS.register()
class ImageNetFolder(BaseDataset):
    """An ImageNet-layout classification set: ``<root>/<split>/<wnid>/<image>`` with one
    integer label per image.  Class ids: the line number of the wnid in ``synsets_file``
    (e.g. PSSL's ``imagenet_lsvrc_2015_synsets.txt``, the order of the 1000-class
    classifiers), else the sorted wnid folders.  ``list_file`` (lines ``<path rel. to
    root> <int label>``, PaddleClas' ``train_list.txt``) replaces the folder scan."""

    def __init__(self, root, split="train", list_file=None, synsets_file=None, transforms=None, seed=0,
                 limit=None, extensions=(".jpeg", ".jpg", ".png")):
        super().__init__(transforms, seed)
        self.root = root = resolve_data_path(root)
        base = os.path.join(root, split)
        if not os.path.isdir(base) and not list_file:
            raise DataError(f"ImageNetFolder: {base} not found (expected <root>/{split}/<wnid>/<image>)")
        self.synsets = None
        if synsets_file:
            path = synsets_file if os.path.isabs(synsets_file) else os.path.join(root, synsets_file)
            ids = read_synsets(path)
            self.synsets = sorted(ids, key=ids.get)
        self.items = []  # (path, label, wnid)
        if list_file:
            lst = list_file if os.path.isabs(list_file) else os.path.join(root, list_file)
            if not os.path.isfile(lst):
                raise DataError(f"ImageNetFolder list file not found: {lst}")
            with open(lst, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    parts = line.split()
                    if not parts:
                        continue
                    if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                        raise DataError(f"{lst}:{n}: expected '<image path> <integer label>', got {line.strip()!r}")
                    rel = parts[0]
                    self.items.append((os.path.join(root, rel), int(parts[1]),
                                       os.path.basename(os.path.dirname(rel))))
        else:
            wnids = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
            index = {w: i for i, w in enumerate(self.synsets or wnids)}
            for w in wnids:
                if w not in index:
                    raise DataError(f"ImageNetFolder: folder {os.path.join(base, w)} is not in the synsets file")
                for f in sorted(os.listdir(os.path.join(base, w))):
                    if f.lower().endswith(tuple(extensions)):
                        self.items.append((os.path.join(base, w, f), index[w], w))
            if self.synsets is None:
                self.synsets = wnids
        if not self.items:
            raise DataError(f"ImageNetFolder: no images under {base}")
        n = len(self.synsets) if self.synsets else max(i[1] for i in self.items) + 1
        for path, lab, _ in self.items:
            if not 0 <= lab < n:
                raise DataError(f"ImageNetFolder: label {lab} of {path} is outside 0..{n - 1}")
        self.num_classes_ = n
        if limit:
            self.items = self.items[:int(limit)]

    @property
    def num_classes(self):
        return self.num_classes_

    def __len__(self):
        return len(self.items)

    def load(self, idx):
        path, lab, _ = self.items[idx]
        return {"image": read_image(path), "label": np.int64(lab)}

    def image_path(self, idx):
        return self.items[idx][0]

    def wnid(self, idx):
        return self.items[idx][2]

    def item_name(self, idx):
        return f"{self.items[idx][2]}/{os.path.basename(self.items[idx][0])}"


@LOSSES.register()
class MultiLabelBCELoss(nn.Layer):
    """Binary cross-entropy over classes: image-level labels with several classes."""

    def forward(self, logits, label):
        return F.binary_cross_entropy_with_logits(logits, label.astype("float32"))


@METRICS.register()
class MultiLabelF1:
    """Micro F1 and mean average precision of multi-label predictions."""

    def __init__(self, threshold=0.0):
        self.threshold = float(threshold)
        self.reset()

    def reset(self):
        self.out, self.lab = [], []

    def update(self, output, label):
        self.out.append(np.asarray(output))
        self.lab.append(np.asarray(label))

    def accumulate(self):
        from sklearn.metrics import average_precision_score
        o, y = np.concatenate(self.out), np.concatenate(self.lab) > 0.5
        p = o > self.threshold
        tp = (p & y).sum()
        f1 = 2 * tp / max(p.sum() + y.sum(), 1)
        cols = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
        mAP = float(np.mean([average_precision_score(y[:, c], o[:, c]) for c in cols])) if cols else 0.0
        return {"f1": float(f1), "mAP": mAP}
