"""Transforms act on a sample dict and draw randomness only from the ``rng`` they get.

The dataset makes that ``rng`` from (seed, epoch, index), so augmentation is the same
with any number of loader workers and after a resume.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.builder import TRANSFORMS
from ..core.errors import DataError


class Compose:
    """Applies a list of transforms (objects or config dicts) in order."""

    def __init__(self, transforms=None):
        self.transforms = [TRANSFORMS.build(t, key_path="transforms") if isinstance(t, dict) else t
                           for t in (transforms or [])]

    def __call__(self, sample, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __len__(self):
        return len(self.transforms)


def read_image(path, mode="RGB"):
    """Read an image file as an HxWxC uint8 array; one clear error if it cannot be read."""
    if not os.path.isfile(path):
        raise DataError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr
