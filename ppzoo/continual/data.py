"""Continual scenarios over registered datasets, and the synthetic multi-factor images.

A scenario cuts a classification dataset into tasks:

* ``split: {by: classes}``: each task owns a set of classes (``tasks: [[0, 1], [2, 3]]``, or
  ``classes_per_task`` over ``order``/``order_seed``); labels stay the dataset's own class ids.
* ``split: {by: factors}``: for a dataset with several labelled factors (``MultiFactorImages``)
  task ``k``'s label is factor ``factors[k]``; its classes are numbered after the earlier
  tasks' (factor value + offset), so one output layer covers every task.

``ContinualTaskSet`` (a ``DATASETS`` entry) is the data of one or more tasks of a scenario;
its samples carry ``task`` beside ``image`` and ``label``.
"""
import json

import numpy as np

from ..core.builder import DATASETS
from ..core.errors import ConfigError, DataError
from ..datasets.base import BaseDataset

SPLIT_KEYS = {"by", "tasks", "classes_per_task", "order", "order_seed", "train_per_class",
              "test_per_class", "subset_seed", "factors", "disjoint"}


def labels_of(dataset):
    """Every sample's label without decoding images (``labels``/``samples`` if the dataset has them)."""
    if getattr(dataset, "labels", None) is not None:
        return np.asarray(dataset.labels, dtype=np.int64)
    if getattr(dataset, "samples", None) is not None:
        return np.asarray([s[1] for s in dataset.samples], dtype=np.int64)
    return np.asarray([int(dataset.load(i)["label"]) for i in range(len(dataset))], dtype=np.int64)


class Scenario:
    """The task list of a ``continual.split`` section: ``tasks[k] = {"classes": [...], "factor": f}``."""

    def __init__(self, split, num_classes=None, factor_values=None, where="continual.split"):
        split = dict(split or {})
        unknown = set(split) - SPLIT_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(SPLIT_KEYS))})")
        self.spec = split
        self.by = split.get("by", "classes")
        if self.by == "classes":
            self.tasks = [{"classes": [int(c) for c in cls], "factor": None} for cls in self._class_tasks(split, num_classes, where)]
            seen = [c for t in self.tasks for c in t["classes"]]
            if len(set(seen)) != len(seen):
                raise ConfigError(f"{where}: a class is in more than one task: {seen}")
            if num_classes is not None and any(not 0 <= c < num_classes for c in seen):
                raise ConfigError(f"{where}: classes {seen} out of range for {num_classes} classes")
        elif self.by == "factors":
            factors = split.get("factors")
            if not factors:
                raise ConfigError(f"{where}.factors: list the factor of each task, e.g. [stripes, color]")
            if factor_values is None:
                raise ConfigError(f"{where}.by is 'factors' but the dataset has no labelled factors "
                                  "(use a multi-factor dataset such as MultiFactorImages)")
            self.tasks, offset = [], 0
            for f in factors:
                if f not in factor_values:
                    raise ConfigError(f"{where}.factors: unknown factor {f!r} (dataset has {sorted(factor_values)})")
                n = int(factor_values[f])
                self.tasks.append({"classes": list(range(offset, offset + n)), "factor": f})
                offset += n
        else:
            raise ConfigError(f"{where}.by must be 'classes' or 'factors', got {self.by!r}")

    @staticmethod
    def _class_tasks(split, num_classes, where):
        if split.get("tasks"):
            return split["tasks"]
        if num_classes is None:
            raise ConfigError(f"{where}: give tasks: [[...], ...] (the dataset does not say its number of classes)")
        order = split.get("order")
        if order is None:
            order = list(range(num_classes))
            if split.get("order_seed") is not None:
                order = np.random.default_rng(int(split["order_seed"])).permutation(num_classes).tolist()
        k = int(split.get("classes_per_task", 2))
        if k < 1 or len(order) % k:
            raise ConfigError(f"{where}.classes_per_task={k} does not divide the {len(order)} classes")
        return [order[i:i + k] for i in range(0, len(order), k)]

    @property
    def num_tasks(self):
        return len(self.tasks)

    @property
    def num_classes(self):
        return max(c for t in self.tasks for c in t["classes"]) + 1


_BASE_CACHE = {}


def build_base(cfg):
    """Build a dataset config without its transforms, once per process (tasks share it)."""
    cfg = {k: v for k, v in dict(cfg).items() if k != "transforms"}
    key = json.dumps(cfg, sort_keys=True, default=str)
    if key not in _BASE_CACHE:
        _BASE_CACHE[key] = DATASETS.build(cfg, key_path="continual dataset")
    return _BASE_CACHE[key]


def task_indices(base, scenario, task, part):
    """Indices of ``base`` that belong to ``task`` and their labels in the scenario."""
    spec, t = scenario.spec, scenario.tasks[task]
    if scenario.by == "classes":
        labels = labels_of(base)
        per_class = spec.get(f"{part}_per_class")
        idx = []
        for c in t["classes"]:
            cidx = np.flatnonzero(labels == c)
            if per_class is not None:
                rng = np.random.default_rng([int(spec.get("subset_seed", 0)), int(c), 0 if part == "train" else 1])
                cidx = np.sort(rng.permutation(cidx)[: int(per_class)])
            idx.append(cidx)
        idx = np.concatenate(idx) if idx else np.zeros(0, np.int64)
        return idx, labels[idx]
    fi = base.factor_names.index(t["factor"])
    idx = np.arange(len(base))
    if spec.get("disjoint", True):
        idx = np.array_split(idx, scenario.num_tasks)[task]
    return idx, base.factors[idx, fi] + t["classes"][0]


@DATASETS.register()
class ContinualTaskSet(BaseDataset):
    """The samples of ``tasks`` (indices into the scenario) of ``dataset`` under ``split``.

    ``part`` (``train``/``test``) picks ``train_per_class``/``test_per_class`` subsets.
    Samples are ``{image, label, task}`` with the scenario's (global) labels.
    """
    _lazy_keys = ("dataset",)

    def __init__(self, dataset, split, tasks, part="train", transforms=None):
        super().__init__(transforms)
        self.base = build_base(dataset)
        self.scenario = Scenario(split, getattr(self.base, "num_classes", None),
                                 getattr(self.base, "factor_values", None))
        tasks = [int(t) for t in (tasks if isinstance(tasks, (list, tuple)) else [tasks])]
        for t in tasks:
            if not 0 <= t < self.scenario.num_tasks:
                raise ConfigError(f"ContinualTaskSet.tasks: task {t} out of range ({self.scenario.num_tasks} tasks)")
        idx, lab, tid = [], [], []
        for t in tasks:
            i, y = task_indices(self.base, self.scenario, t, part)
            idx.append(i)
            lab.append(y)
            tid.append(np.full(len(i), t, np.int64))
        self.indices = np.concatenate(idx).astype(np.int64)
        self.labels = np.concatenate(lab).astype(np.int64)
        self.task_ids = np.concatenate(tid)
        if not len(self.indices):
            raise DataError(f"ContinualTaskSet: tasks {tasks} of the {part} part hold no samples")
        self.class_names = None

    def __len__(self):
        return len(self.indices)

    def load(self, idx):
        sample = dict(self.base.load(int(self.indices[idx])))
        sample["label"] = np.int64(self.labels[idx])
        sample["task"] = np.int64(self.task_ids[idx])
        sample.pop("factors", None)
        return sample


# ---------------------------------------------------------------------- synthetic data
FACTORS = ("color", "shape", "stripes", "position")
_PALETTE = np.array([[0.85, 0.25, 0.25], [0.25, 0.75, 0.3], [0.3, 0.4, 0.9], [0.85, 0.8, 0.25]], np.float32)


@DATASETS.register()
class MultiFactorImages(BaseDataset):
    """Seeded synthetic images of one object whose look is set by independent factors.

    Factors (each uniform over ``values`` levels, 2 to 4): ``color`` (the object's hue),
    ``shape`` (square, disc, triangle, cross), ``stripes`` (the orientation of a grating
    inside the object: 0, 90, 45, 135 degrees), ``position`` (left/right half, or quadrant).
    ``strength`` scales how visible each factor is (colour saturation, grating contrast),
    ``noise`` is the pixel noise std.  ``label_factor`` is the factor ``label`` reports;
    ``factors`` (all of them) is in every sample and in ``self.factors``.  Nothing is read
    from disk: sample ``i`` of ``split`` is a function of ``(seed, split, i)``.
    """

    def __init__(self, num_samples=2000, image_size=32, values=2, factors=FACTORS, label_factor=None,
                 strength=None, noise=0.08, seed=0, split="train", transforms=None):
        super().__init__(transforms)
        factors = list(factors)
        bad = [f for f in factors if f not in FACTORS]
        if bad:
            raise ConfigError(f"MultiFactorImages.factors: unknown {bad} (known: {', '.join(FACTORS)})")
        if not 2 <= int(values) <= 4:
            raise ConfigError(f"MultiFactorImages.values must be 2..4, got {values}")
        if split not in ("train", "val", "test"):
            raise ConfigError(f"MultiFactorImages.split must be train, val or test, got {split!r}")
        if int(image_size) < 12:
            raise ConfigError(f"MultiFactorImages.image_size must be at least 12, got {image_size}")
        self.factor_names, self.size, self.noise = factors, int(image_size), float(noise)
        self.factor_values = {f: int(values) for f in factors}
        self.strength = {"color": 1.0, "stripes": 1.0}
        self.strength.update(dict(strength or {}))
        self.gen_seed = [int(seed), {"train": 0, "val": 1, "test": 1}[split]]
        rng = np.random.default_rng(self.gen_seed + [7])
        self.factors = rng.integers(0, int(values), size=(int(num_samples), len(factors))).astype(np.int64)
        self.label_factor = label_factor or factors[0]
        if self.label_factor not in factors:
            raise ConfigError(f"MultiFactorImages.label_factor {label_factor!r} is not among {factors}")
        self.labels = self.factors[:, factors.index(self.label_factor)]
        self.class_names = [f"{self.label_factor}={v}" for v in range(int(values))]

    def __len__(self):
        return len(self.factors)

    def factor(self, idx, name, default=0):
        return int(self.factors[idx, self.factor_names.index(name)]) if name in self.factor_names else default

    def render(self, idx):
        s = self.size
        rng = np.random.default_rng(self.gen_seed + [int(idx)])
        pos, shape = self.factor(idx, "position"), self.factor(idx, "shape")
        col, stripe = self.factor(idx, "color", 2), self.factor(idx, "stripes", None)
        cx = (0.28 if pos % 2 == 0 else 0.72) * s
        cy = (0.5 if self.factor_values.get("position", 2) <= 2 else (0.28 if pos < 2 else 0.72)) * s
        cx, cy = cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1)
        r = s * rng.uniform(0.17, 0.21)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        dx, dy = xx - cx, yy - cy
        if shape == 0:
            mask = (np.abs(dx) <= r * 0.9) & (np.abs(dy) <= r * 0.9)
        elif shape == 1:
            mask = dx ** 2 + dy ** 2 <= r ** 2
        elif shape == 2:
            mask = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
        else:
            mask = ((np.abs(dx) <= r * 0.35) | (np.abs(dy) <= r * 0.35)) & (np.abs(dx) <= r) & (np.abs(dy) <= r)
        gray = np.full(3, 0.6, np.float32)
        rgb = gray + self.strength["color"] * (_PALETTE[col] - gray)
        if stripe is None:
            grating = np.ones((s, s), np.float32)
        else:
            theta = [0.0, np.pi / 2, np.pi / 4, 3 * np.pi / 4][stripe]
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / 4.0 + phase)
            grating = 1.0 + 0.35 * self.strength["stripes"] * wave
        img = np.full((s, s, 3), 0.35, np.float32)
        img[mask] = (rgb[None, :] * grating[mask][:, None])
        img += rng.normal(0, self.noise, size=img.shape).astype(np.float32)
        return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)

    def load(self, idx):
        return {"image": self.render(idx), "label": np.int64(self.labels[idx]),
                "factors": self.factors[idx].copy()}
