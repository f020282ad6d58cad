"""Image classification datasets: scikit-learn's digits, an image folder, a list file."""
import os

import numpy as np

from ..core.builder import DATASETS
from ..core.errors import DataError
from ..core.paths import resolve_data_path
from ..transforms import read_image
from .base import BaseDataset

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@DATASETS.register()
class DigitsDataset(BaseDataset):
    """scikit-learn's bundled handwritten digits (1797 images of 8x8, 10 classes).

    Real data that needs no download.  Images are returned as 8x8x1 uint8 (0..255),
    the same form as the PNG files ``tools/quickstart.sh`` writes for inference.
    ``split`` is ``train`` or ``val``: a fixed stratified split of ``val_fraction``.
    """
    class_names = [str(i) for i in range(10)]

    def __init__(self, split="train", val_fraction=0.2, transforms=None, split_seed=0):
        super().__init__(transforms)
        from sklearn.datasets import load_digits
        if split not in ("train", "val", "all"):
            raise DataError(f"DigitsDataset.split must be train, val or all, got {split!r}")
        digits = load_digits()
        images = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        rng = np.random.default_rng(split_seed)
        val_idx = []
        for c in range(10):
            idx = np.flatnonzero(labels == c)
            val_idx.extend(rng.permutation(idx)[: int(round(len(idx) * val_fraction))].tolist())
        val_mask = np.zeros(len(labels), bool)
        val_mask[val_idx] = True
        keep = {"train": ~val_mask, "val": val_mask, "all": np.ones_like(val_mask)}[split]
        self.images, self.labels = images[keep][..., None], labels[keep]

    def __len__(self):
        return len(self.labels)

    def load(self, idx):
        return {"image": self.images[idx], "label": self.labels[idx]}


def _check_label(label, num_classes, where):
    if num_classes is not None and not 0 <= label < num_classes:
        raise DataError(f"{where}: label {label} is out of range for {num_classes} classes")


@DATASETS.register()
class ImageFolder(BaseDataset):
    """``root/<class name>/<image>``: one sub-folder per class, sorted by name."""

    def __init__(self, root, transforms=None, mode="RGB", extensions=IMG_EXTENSIONS, cache=False):
        super().__init__(transforms, cache=cache)
        root = resolve_data_path(root)
        if not os.path.isdir(root):
            raise DataError(f"ImageFolder root not found: {root}")
        self.mode = mode
        self.class_names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not self.class_names:
            raise DataError(f"ImageFolder root {root} has no class sub-folders")
        self.samples = []
        for label, name in enumerate(self.class_names):
            folder = os.path.join(root, name)
            for f in sorted(os.listdir(folder)):
                if f.lower().endswith(tuple(extensions)):
                    self.samples.append((os.path.join(folder, f), label))
        if not self.samples:
            raise DataError(f"ImageFolder root {root} holds no images ({', '.join(extensions)})")

    def __len__(self):
        return len(self.samples)

    def load(self, idx):
        path, label = self.samples[idx]
        return {"image": read_image(path, self.mode), "label": np.int64(label)}


@DATASETS.register()
class ImageList(BaseDataset):
    """A list file of ``relative/path.jpg label`` lines (PaddleClas style).

    Paths are relative to ``root`` (default: the list file's folder).  Every line is
    checked when the dataset is built: a missing file or out-of-range label fails at
    once with the file and line, not in the middle of an epoch.
    """

    def __init__(self, list_file, root=None, transforms=None, mode="RGB", class_names=None,
                 num_classes=None, delimiter=None, cache=False):
        super().__init__(transforms, cache=cache)
        list_file, root = resolve_data_path(list_file), resolve_data_path(root)
        if not os.path.isfile(list_file):
            raise DataError(f"list file not found: {list_file}")
        root = root if root is not None else os.path.dirname(os.path.abspath(list_file))
        self.mode = mode
        self.class_names = list(class_names) if class_names else None
        n_cls = num_classes or (len(self.class_names) if self.class_names else None)
        self.samples = []
        with open(list_file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.rsplit(delimiter, 1) if delimiter else line.rsplit(None, 1)
                where = f"{list_file}:{lineno}"
                if len(parts) != 2:
                    raise DataError(f"{where}: expected 'path label', got {line!r}")
                try:
                    label = int(parts[1])
                except ValueError:
                    raise DataError(f"{where}: label {parts[1]!r} is not an integer") from None
                _check_label(label, n_cls, where)
                path = parts[0] if os.path.isabs(parts[0]) else os.path.join(root, parts[0])
                if not os.path.isfile(path):
                    raise DataError(f"{where}: image file not found: {path}")
                self.samples.append((path, label))
        if not self.samples:
            raise DataError(f"list file {list_file} holds no samples")
        if self.class_names is None:
            self.class_names = [str(i) for i in range((n_cls or max(s[1] for s in self.samples) + 1))]

    def __len__(self):
        return len(self.samples)

    def load(self, idx):
        path, label = self.samples[idx]
        return {"image": read_image(path, self.mode), "label": np.int64(label)}
