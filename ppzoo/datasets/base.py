"""Base of ppzoo datasets: samples are dicts, augmentation is seeded per sample.

Every sample's augmentation draws from a generator that depends only on (seed, epoch,
index), so the data a step sees is the same with any number of loader workers and after
a resume.  ``sample_rng`` makes that generator: by default a PCG64 whose 128-bit state is
set directly from a SplitMix64 hash of the three numbers (3 CPU us), instead of
``np.random.default_rng([seed, epoch, index])`` (11.5 CPU us, SeedSequence hashing), which
``SAMPLE_RNG = "seedsequence"`` selects (the streams differ, the property is the same).

``cache=True`` keeps each sample after decoding and the transforms that draw nothing
(``Resize``, ``ResizeShort``, ``CenterCrop`` at the start of the list) in memory, so only
the random transforms run again in later epochs.  Each loader worker process holds its own
cache, so it pays off with ``num_workers: 0`` (the default) or persistent workers.
"""
import threading

import numpy as np
import paddle

from ..transforms import Compose

#: "pcg64" (default) or "seedsequence" (np.random.default_rng([seed, epoch, index]))
SAMPLE_RNG = "pcg64"

_M64 = (1 << 64) - 1
_local = threading.local()


def _splitmix(z):
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def sample_rng(seed, epoch, idx, kind=None):
    """The generator of sample ``idx`` in ``epoch``: a function of the three numbers only.

    The fast kind reuses one generator per thread, re-set for every sample: use it for
    that sample only (transforms do), do not keep it."""
    kind = kind or SAMPLE_RNG
    if kind == "seedsequence":
        return np.random.default_rng([int(seed), int(epoch), int(idx)])
    if kind != "pcg64":
        raise ValueError(f"SAMPLE_RNG must be 'pcg64' or 'seedsequence', got {kind!r}")
    h = _splitmix(_splitmix(_splitmix(int(seed) & _M64) ^ (int(epoch) & _M64)) ^ (int(idx) & _M64))
    lo, hi = _splitmix(h ^ 0xD1B54A32D192ED03), _splitmix(h ^ 0x8CB92BA72F3D8DD7)
    gen = getattr(_local, "gen", None)
    if gen is None:
        _local.bitgen = np.random.PCG64(0)
        gen = _local.gen = np.random.Generator(_local.bitgen)
    _local.bitgen.state = {"bit_generator": "PCG64",
                           "state": {"state": (h << 64) | lo, "inc": (hi << 1 | 1) & ((1 << 128) - 1)},
                           "has_uint32": 0, "uinteger": 0}
    return gen


def _copy(sample):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in sample.items()}


class BaseDataset(paddle.io.Dataset):
    """Subclasses implement ``__len__`` and ``load(idx) -> dict``.

    ``class_names`` lists the label names that export writes into ``deploy.yml``.
    """
    class_names = None

    def __init__(self, transforms=None, seed=0, cache=False):
        self.transforms = Compose(transforms)
        self.seed = int(seed)
        self.epoch = 0
        self.cache = bool(cache)
        self._cache = {}

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def load(self, idx):
        raise NotImplementedError

    def __getitem__(self, idx):
        idx = int(idx)
        start = 0
        if getattr(self, "cache", False):
            start = self.transforms.deterministic_prefix()
            sample = self._cache.get(idx)
            if sample is None:
                sample = self._cache[idx] = self.transforms.apply(self.load(idx), None, stop=start)
            sample = _copy(sample)
        else:
            sample = self.load(idx)
        return self.transforms.apply(sample, sample_rng(self.seed, self.epoch, idx), start=start)

    @property
    def num_classes(self):
        return len(self.class_names) if self.class_names else None
