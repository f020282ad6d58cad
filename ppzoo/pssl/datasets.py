"""PSSL datasets: image-level labels derived from masks, the released ImageNet labels,
and a multi-label loss/metric to train the classifiers that get explained."""
import numpy as np
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import DATASETS, LOSSES, METRICS
from ..datasets.base import BaseDataset
from ..transforms import read_image
from .released import BACKGROUND, IGNORE, read_released_label, scan_released


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
        import os
        return os.path.splitext(os.path.basename(self.base.items[idx][0]))[0]


@DATASETS.register()
class PSSLReleased(BaseDataset):
    """The officially released PSSL ImageNet labels (``<wnid>/<img>.JPEG_eiseg.npz``)
    with the ImageNet images under ``image_root/<wnid>/<img>.JPEG``."""

    def __init__(self, label_root, image_root, wnids=None, background=BACKGROUND,
                 ignore_index=IGNORE, transforms=None, seed=0):
        super().__init__(transforms, seed)
        self.items = scan_released(label_root, image_root, wnids)
        self.background, self.ignore_index = int(background), int(ignore_index)

    def __len__(self):
        return len(self.items)

    def load(self, idx):
        img, lab, cls = self.items[idx]
        m = read_released_label(lab, cls, self.background, self.ignore_index)
        return {"image": read_image(img), "mask": m[:, :, None].astype(np.int32)}


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
