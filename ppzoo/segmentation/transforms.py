"""Segmentation augmentations of PaddleSeg's recipes (PSSL pre-training: ResizeByShort 256,
ResizeStepScaling 0.5-2, RandomPaddingCrop 256, flip, RandomDistort), under the same
names and arguments.  Geometric ones move ``mask`` with the image (nearest neighbour)."""
import numpy as np
from PIL import Image, ImageEnhance

from ..core.builder import TRANSFORMS
from ..core.errors import ConfigError
from ..transforms.image import _geom, _resize


@TRANSFORMS.register()
class ResizeStepScaling:
    """Scale image and mask by a random factor in [min, max]: uniform when
    ``scale_step_size`` is 0, else one of the steps min, min + step, ..., max."""

    def __init__(self, min_scale_factor=0.75, max_scale_factor=1.25, scale_step_size=0.25):
        if min_scale_factor > max_scale_factor:
            raise ConfigError(f"ResizeStepScaling: min_scale_factor {min_scale_factor} > max {max_scale_factor}")
        self.lo, self.hi, self.step = float(min_scale_factor), float(max_scale_factor), float(scale_step_size)

    def __call__(self, sample, rng):
        if self.lo == self.hi:
            f = self.lo
        elif self.step == 0:
            f = float(rng.uniform(self.lo, self.hi))
        else:
            steps = np.arange(self.lo, self.hi + 1e-9, self.step)
            f = float(steps[int(rng.integers(0, len(steps)))])
        h, w = sample["image"].shape[:2]
        hw = (max(1, int(round(h * f))), max(1, int(round(w * f))))
        return _geom(sample, lambda a: _resize(a, hw), lambda m: _resize(m, hw, True))


@TRANSFORMS.register()
class RandomPaddingCrop:
    """Pad the bottom/right up to ``crop_size`` (width, height, as PaddleSeg) where the
    image is smaller (image with ``im_padding_value``, mask with ``label_padding_value``),
    then crop a random ``crop_size`` window."""

    def __init__(self, crop_size=(512, 512), im_padding_value=127.5, label_padding_value=255):
        cw, ch = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        self.cw, self.ch = int(cw), int(ch)
        self.im_pad, self.lab_pad = im_padding_value, label_padding_value

    def __call__(self, sample, rng):
        img = sample["image"]
        h, w = img.shape[:2]
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


@TRANSFORMS.register()
class RandomDistort:
    """Photometric distortion: brightness, contrast, saturation (and hue, sharpness when
    their ranges are set), each applied with probability ``*_prob`` with a factor drawn
    from [1 - range, 1 + range], in a random order (PIL's ImageEnhance, uint8 RGB)."""

    def __init__(self, brightness_range=0.5, brightness_prob=0.5, contrast_range=0.5, contrast_prob=0.5,
                 saturation_range=0.5, saturation_prob=0.5, sharpness_range=0.5, sharpness_prob=0):
        self.ops = [(ImageEnhance.Brightness, brightness_range, brightness_prob),
                    (ImageEnhance.Contrast, contrast_range, contrast_prob),
                    (ImageEnhance.Color, saturation_range, saturation_prob),
                    (ImageEnhance.Sharpness, sharpness_range, sharpness_prob)]

    def __call__(self, sample, rng):
        img = sample["image"]
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ConfigError("RandomDistort needs uint8 RGB images: put it before Normalize")
        pil = Image.fromarray(img)
        for k in rng.permutation(len(self.ops)):
            enh, r, p = self.ops[int(k)]
            if p > 0 and rng.uniform() < p:
                pil = enh(pil).enhance(float(rng.uniform(1 - r, 1 + r)))
        sample["image"] = np.asarray(pil)
        return sample
