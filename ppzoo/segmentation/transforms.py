"""Segmentation augmentations of PaddleSeg's recipes (PSSL pre-training: ResizeByShort 256,
ResizeStepScaling 0.5-2, RandomPaddingCrop 256, flip, RandomDistort), under the same
names, arguments and defaults.  Geometric ones move ``mask`` with the image (nearest
neighbour).  With ``ImageAsFloat`` first and Normalize 0.5/0.5 last, a chain gives
PaddleSeg's arrays for the same random draws (tests/test_seg_paddleseg_parity.py)."""
import numpy as np
from PIL import Image, ImageEnhance

from ..core.builder import TRANSFORMS
from ..core.errors import ConfigError
from ..transforms.image import _geom, _resize, check_backend


@TRANSFORMS.register()
class ImageAsFloat:
    """The image as float32, as PaddleSeg's Compose reads it (``cv2.imread(...).astype
    ('float32')``): later resizes keep fractional values and RandomDistort truncates them
    to uint8 as PaddleSeg's does; padding keeps 127.5.  Not cached (4x the memory of uint8)."""

    def __call__(self, sample, rng):
        sample["image"] = sample["image"].astype(np.float32)
        return sample


@TRANSFORMS.register()
class ResizeByShort:
    """PaddleSeg's ResizeByShort: the short side to ``short_size`` (the other side
    ``round(side * short_size / short)``), the long side capped at ``max_size``."""

    deterministic = True  # draws nothing from rng: a dataset cache may keep its output

    def __init__(self, short_size, max_size=1e10, backend="cv2"):
        self.short, self.max_size = int(short_size), float(max_size)
        self.backend = check_backend(backend, "ResizeByShort")

    def __call__(self, sample, rng):
        h, w = sample["image"].shape[:2]
        short = self.short
        if short / min(h, w) * max(h, w) > self.max_size:
            short = int((self.max_size / max(h, w)) * min(h, w))
        s = float(short) / float(min(h, w))
        hw = (int(round(h * s)), int(round(w * s)))
        return _geom(sample, lambda a: _resize(a, hw, backend=self.backend),
                     lambda m: _resize(m, hw, True, self.backend))


@TRANSFORMS.register()
class ResizeStepScaling:
    """Scale image and mask by a random factor in [min, max]: uniform when
    ``scale_step_size`` is 0, else one of PaddleSeg's steps ``linspace(min, max,
    int((max - min) / step + 1))``.  ``backend`` cv2 (PaddleSeg's resize) or pil."""

    def __init__(self, min_scale_factor=0.75, max_scale_factor=1.25, scale_step_size=0.25, backend="cv2"):
        if min_scale_factor > max_scale_factor:
            raise ConfigError(f"ResizeStepScaling: min_scale_factor {min_scale_factor} > max {max_scale_factor}")
        self.lo, self.hi, self.step = float(min_scale_factor), float(max_scale_factor), float(scale_step_size)
        self.backend = check_backend(backend, "ResizeStepScaling")

    def __call__(self, sample, rng):
        if self.lo == self.hi:
            f = self.lo
        elif self.step == 0:
            f = float(rng.uniform(self.lo, self.hi))
        else:
            steps = np.linspace(self.lo, self.hi, int((self.hi - self.lo) / self.step + 1))
            f = float(steps[int(rng.integers(0, len(steps)))])
        h, w = sample["image"].shape[:2]
        hw = (max(1, int(round(h * f))), max(1, int(round(w * f))))
        return _geom(sample, lambda a: _resize(a, hw, backend=self.backend),
                     lambda m: _resize(m, hw, True, self.backend))


@TRANSFORMS.register()
class RandomPaddingCrop:
    """Pad the bottom/right up to ``crop_size`` (width, height, as PaddleSeg) where the
    image is smaller (image with ``im_padding_value``, mask with ``label_padding_value``),
    then crop a random ``crop_size`` window.  A uint8 image can only hold 128 for
    PaddleSeg's 127.5: put ``ImageAsFloat`` first for its value."""

    def __init__(self, crop_size=(512, 512), im_padding_value=127.5, label_padding_value=255):
        cw, ch = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        self.cw, self.ch = int(cw), int(ch)
        self.im_pad, self.lab_pad = im_padding_value, label_padding_value

    def __call__(self, sample, rng):
        img = sample["image"]
        h, w = img.shape[:2]
        if (h, w) == (self.ch, self.cw):
            return sample  # PaddleSeg returns here without a draw
        ph, pw = max(self.ch - h, 0), max(self.cw - w, 0)
        if ph or pw:
            fill = int(round(self.im_pad)) if img.dtype == np.uint8 else self.im_pad

            def pad(a, v):
                return np.pad(a, [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2), constant_values=v)
            sample = _geom(sample, lambda a: pad(a, fill), lambda m: pad(m, self.lab_pad))
            h, w = h + ph, w + pw
        top = int(rng.integers(0, h - self.ch + 1))
        left = int(rng.integers(0, w - self.cw + 1))
        crop = lambda a: a[top:top + self.ch, left:left + self.cw]  # noqa: E731
        return _geom(sample, crop, crop)


def _hue(pil, delta):
    """PaddleSeg's hue shift: PIL's HSV, ``delta`` added to H with uint8 wrap-around
    (the value truncated toward zero, modulo 256), back to RGB."""
    hsv = np.array(pil.convert("HSV"))
    shifted = np.trunc(hsv[:, :, 0].astype(np.float64) + float(delta)).astype(np.int64) % 256
    hsv[:, :, 0] = shifted.astype(np.uint8)
    return Image.fromarray(hsv, mode="HSV").convert("RGB")


@TRANSFORMS.register()
class RandomDistort:
    """PaddleSeg's photometric distortion: brightness, contrast, saturation, sharpness and
    (colour images) hue, in a random order, each applied with probability ``*_prob``; the
    factor is drawn from [1 - range, 1 + range], the hue shift from [-hue_range, hue_range]
    (PaddleSeg's defaults: hue +-18 with probability 0.5, sharpness off).  A float image
    (``ImageAsFloat``) is truncated to uint8 first and comes back float32, as PaddleSeg's."""

    def __init__(self, brightness_range=0.5, brightness_prob=0.5, contrast_range=0.5, contrast_prob=0.5,
                 saturation_range=0.5, saturation_prob=0.5, hue_range=18, hue_prob=0.5,
                 sharpness_range=0.5, sharpness_prob=0):
        enh = lambda cls: (lambda im, f: cls(im).enhance(f))  # noqa: E731
        # PaddleSeg's list order before its shuffle: brightness, contrast, saturation, sharpness, hue
        self.ops = [(enh(ImageEnhance.Brightness), 1 - brightness_range, 1 + brightness_range, brightness_prob),
                    (enh(ImageEnhance.Contrast), 1 - contrast_range, 1 + contrast_range, contrast_prob),
                    (enh(ImageEnhance.Color), 1 - saturation_range, 1 + saturation_range, saturation_prob),
                    (enh(ImageEnhance.Sharpness), 1 - sharpness_range, 1 + sharpness_range, sharpness_prob),
                    (_hue, -hue_range, hue_range, hue_prob)]

    def __call__(self, sample, rng):
        img = sample["image"]
        if img.ndim != 3 or img.shape[2] != 3:
            raise ConfigError("RandomDistort needs RGB images (height x width x 3): put it before Normalize")
        as_float = img.dtype != np.uint8
        if as_float and img.min() < -1e-3:
            raise ConfigError("RandomDistort needs 0..255 images: put it before Normalize")
        pil = Image.fromarray(img.astype(np.uint8) if as_float else img)
        for k in rng.permutation(len(self.ops)):
            fn, lo, hi, p = self.ops[int(k)]
            if rng.uniform(0, 1) < p:  # PaddleSeg draws the coin for every op, then the factor
                pil = fn(pil, float(rng.uniform(lo, hi)))
        out = np.asarray(pil)
        sample["image"] = out.astype(np.float32) if as_float else out
        return sample
