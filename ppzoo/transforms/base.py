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
        return self.apply(sample, rng)

    def apply(self, sample, rng=None, start=0, stop=None):
        """Apply transforms ``start:stop`` (all by default)."""
        rng = rng if rng is not None else np.random.default_rng()
        for t in self.transforms[start:stop]:
            sample = t(sample, rng)
        return sample

    def deterministic_prefix(self):
        """How many leading transforms draw no randomness (class attribute ``deterministic``)."""
        n = 0
        for t in self.transforms:
            if not getattr(t, "deterministic", False):
                break
            n += 1
        return n

    def __len__(self):
        return len(self.transforms)


#: "auto": OpenCV for PNG (lossless, so the same pixels as PIL; 1.16x CamVid samples per
#: CPU second in benchmarks/bench_data.py), PIL for the rest; "pil": PIL for every file
IMAGE_BACKEND = "auto"
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _read_cv2(path, mode):
    """The image through OpenCV, or None where PIL must decide (or report the error)."""
    try:
        import cv2
    except ImportError:
        return None
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        return None
    if arr.dtype != np.uint8:
        raise DataError(f"cannot read image {path}: it has {arr.dtype.itemsize * 8}-bit samples; "
                        f"ppzoo reads 8-bit images (convert it first)")
    if arr.ndim == 2:
        if mode == "L":
            return arr
        if mode == "RGB":
            return np.repeat(arr[:, :, None], 3, axis=2)
        return None
    if mode == "RGB" and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if mode == "RGB" and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    return None  # colour to grey and the rest: PIL's conversion


def read_image(path, mode="RGB"):
    """Read an image file as an HxWxC uint8 array; one clear error if it cannot be read."""
    if not os.path.isfile(path):
        raise DataError(f"image file not found: {path}")
    if IMAGE_BACKEND == "auto" and path.lower().endswith(".png"):
        arr = _read_cv2(path, mode)
        if arr is not None:
            return arr if arr.ndim == 3 else arr[:, :, None]
    try:
        with Image.open(path) as img:
            if img.mode in _HIGH_DEPTH:
                raise DataError(f"cannot read image {path}: it has {img.mode!r} (16/32-bit) "
                                f"samples; ppzoo reads 8-bit images (convert it first)")
            img = img.convert(mode)
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read image {path}: {err}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr
