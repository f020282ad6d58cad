"""Image transforms.  Geometric ones move ``mask`` (if present) with the image."""
import numpy as np
from PIL import Image

from ..core.builder import TRANSFORMS


def _pair(size):
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def _resize_plane(plane, hw, method):
    """One 2-D plane through PIL: uint8 as is, integer labels as int32, the rest as float32."""
    if plane.dtype == np.uint8:
        src = plane
    elif np.issubdtype(plane.dtype, np.integer):
        src = plane.astype(np.int32)
    else:
        src = plane.astype(np.float32)
    out = np.asarray(Image.fromarray(src).resize((hw[1], hw[0]), method))
    return out.astype(plane.dtype, copy=False)


def _resize_cv2(arr, hw, nearest):
    """OpenCV's resize as PaddleSeg calls it (INTER_LINEAR for images, INTER_NEAREST for
    labels): float images stay float (PaddleSeg reads images as float32), integer labels
    go through as int32 (cv2 has no int64), a trailing channel of 1 is kept."""
    import cv2
    src = arr
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
        src = arr.astype(np.int32)
    out = cv2.resize(src, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
    if arr.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out.astype(arr.dtype, copy=False)


RESIZE_BACKENDS = ("pil", "cv2")


def check_backend(backend, where):
    if backend not in RESIZE_BACKENDS:
        from ..core.errors import ConfigError
        raise ConfigError(f"{where}.backend: {backend!r} is not one of {', '.join(RESIZE_BACKENDS)}")
    return backend


def _resize(arr, hw, nearest=False, backend="pil"):
    """``backend`` "pil": PIL's BILINEAR / NEAREST (ppzoo's own pipelines); "cv2": OpenCV's
    INTER_LINEAR / INTER_NEAREST, as PaddleSeg resizes (the two differ: PIL samples pixel
    centres with an antialiasing filter on downscaling, cv2 does not)."""
    if backend == "cv2":
        return _resize_cv2(arr, hw, nearest)
    method = Image.NEAREST if nearest else Image.BILINEAR
    if arr.ndim == 2:
        return _resize_plane(arr, hw, method)
    if arr.dtype == np.uint8 and arr.shape[2] in (3, 4):
        return np.asarray(Image.fromarray(arr).resize((hw[1], hw[0]), method))
    return np.stack([_resize_plane(arr[..., c], hw, method) for c in range(arr.shape[2])], axis=-1)


def _geom(sample, fn_img, fn_mask):
    sample["image"] = fn_img(sample["image"])
    if sample.get("mask") is not None:
        sample["mask"] = fn_mask(sample["mask"])
    return sample


@TRANSFORMS.register()
class Resize:
    """Resize to ``size`` (h, w) or an int for a square; masks use nearest neighbour.
    ``mask: false`` leaves the mask at its own size: evaluation then scores the prediction,
    upsampled to the label, against the label as annotated (PaddleSeg's evaluation)."""

    deterministic = True  # draws nothing from rng: a dataset cache may keep its output

    def __init__(self, size, backend="pil", mask=True):
        self.size = _pair(size)
        self.backend = check_backend(backend, "Resize")
        self.mask = bool(mask)

    def __call__(self, sample, rng):
        fm = (lambda m: _resize(m, self.size, True, self.backend)) if self.mask else (lambda m: m)
        return _geom(sample, lambda a: _resize(a, self.size, backend=self.backend), fm)


@TRANSFORMS.register()
class ResizeShort:
    """Resize so the short side is ``short_size``, keeping the aspect ratio."""

    deterministic = True  # draws nothing from rng: a dataset cache may keep its output

    def __init__(self, short_size):
        self.short = int(short_size)

    def __call__(self, sample, rng):
        h, w = sample["image"].shape[:2]
        s = self.short / min(h, w)
        hw = (max(1, round(h * s)), max(1, round(w * s)))
        return _geom(sample, lambda a: _resize(a, hw), lambda m: _resize(m, hw, True))


@TRANSFORMS.register()
class CenterCrop:
    deterministic = True  # draws nothing from rng: a dataset cache may keep its output

    def __init__(self, size):
        self.size = _pair(size)

    def __call__(self, sample, rng):
        h, w = sample["image"].shape[:2]
        ch, cw = self.size
        top, left = max(0, (h - ch) // 2), max(0, (w - cw) // 2)
        return _geom(sample, lambda a: a[top:top + ch, left:left + cw],
                     lambda m: m[top:top + ch, left:left + cw])


@TRANSFORMS.register()
class RandomCrop:
    """Random crop of ``size`` after zero ``padding`` (masks padded with ``mask_pad``)."""

    def __init__(self, size, padding=0, mask_pad=255):
        self.size = _pair(size)
        self.padding = int(padding)
        self.mask_pad = mask_pad

    def __call__(self, sample, rng):
        p = self.padding
        if p:
            pad = lambda a, v: np.pad(a, [(p, p), (p, p)] + [(0, 0)] * (a.ndim - 2), constant_values=v)
            sample = _geom(sample, lambda a: pad(a, 0), lambda m: pad(m, self.mask_pad))
        h, w = sample["image"].shape[:2]
        ch, cw = self.size
        if h < ch or w < cw:
            raise ValueError(f"RandomCrop size {self.size} is larger than the image {h}x{w}")
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        return _geom(sample, lambda a: a[top:top + ch, left:left + cw],
                     lambda m: m[top:top + ch, left:left + cw])


@TRANSFORMS.register()
class RandomResizedCrop:
    """Crop a random area fraction ``scale`` and aspect ``ratio``, then resize to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = _pair(size)
        self.scale = scale
        self.ratio = ratio

    def __call__(self, sample, rng):
        h, w = sample["image"].shape[:2]
        area = h * w
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1])))
            cw = int(round(np.sqrt(target * aspect)))
            ch = int(round(np.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(rng.integers(0, h - ch + 1))
                left = int(rng.integers(0, w - cw + 1))
                break
        else:
            ch, cw = min(h, w), min(h, w)
            top, left = (h - ch) // 2, (w - cw) // 2
        crop = lambda a: a[top:top + ch, left:left + cw]
        return _geom(sample, lambda a: _resize(crop(a), self.size),
                     lambda m: _resize(crop(m), self.size, True))


@TRANSFORMS.register()
class RandomHorizontalFlip:
    def __init__(self, prob=0.5):
        self.prob = float(prob)

    def __call__(self, sample, rng):
        if rng.random() < self.prob:
            sample = _geom(sample, lambda a: a[:, ::-1].copy(), lambda m: m[:, ::-1].copy())
        return sample


@TRANSFORMS.register()
class Normalize:
    """``(image * scale - mean) / std`` per channel, as float32 (the division by 1/scale is
    written as PaddleSeg writes it, so 0.5/0.5 gives its values to the last bit).  The
    default mean/std are ImageNet's; PaddleSeg's default is 0.5/0.5, so configs of models
    trained there state it."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255.0):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.scale = float(scale)

    def __call__(self, sample, rng):
        img = sample["image"].astype(np.float32) / np.float32(1.0 / self.scale)
        sample["image"] = (img - self.mean) / self.std
        return sample


@TRANSFORMS.register()
class ToCHW:
    """HWC -> CHW float32 (the layout models take)."""

    def __call__(self, sample, rng):
        sample["image"] = np.ascontiguousarray(sample["image"].transpose(2, 0, 1)).astype(np.float32)
        if sample.get("mask") is not None:
            m = sample["mask"]
            sample["mask"] = np.ascontiguousarray(m[:, :, 0] if m.ndim == 3 else m).astype(np.int64)
        return sample
