"""Pools for active learning of classifiers: the OOD scenario (some classes in-distribution,
others out-of-distribution, mixed into the pool at a stated ratio), scikit-learn's bundled
tabular data sets and a 2-D synthetic set whose picks can be drawn."""
import numpy as np

from ..core.builder import DATASETS
from ..core.errors import ConfigError, DataError
from ..datasets.base import BaseDataset
from .loop import ActiveSubset

OOD_LABEL = -1


def dataset_labels(dataset):
    """Every sample's class, read without decoding images where the dataset keeps them
    (``labels`` array or ``samples`` list of (path, label))."""
    if hasattr(dataset, "labels"):
        return np.asarray(dataset.labels, dtype=np.int64)
    if hasattr(dataset, "samples"):
        return np.asarray([s[1] for s in dataset.samples], dtype=np.int64)
    return np.asarray([int(dataset.load(i)["label"]) for i in range(len(dataset))], dtype=np.int64)


def ood_pool_indices(labels, id_classes, ood_classes, ood_ratio, rng, max_id=None):
    """Indices of a pool holding every sample of ``id_classes`` (at most ``max_id`` of them,
    drawn at random) and enough samples of ``ood_classes`` that they are ``ood_ratio`` of the
    pool.  Returns (indices in a fixed random order, is_ood mask)."""
    labels = np.asarray(labels)
    id_classes, ood_classes = [int(c) for c in id_classes], [int(c) for c in (ood_classes or [])]
    if set(id_classes) & set(ood_classes):
        raise ConfigError(f"OOD scenario: classes {sorted(set(id_classes) & set(ood_classes))} are "
                          "both in-distribution and OOD")
    ratio = float(ood_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"OOD scenario: ood_ratio must be in [0, 1), got {ood_ratio}")
    if ratio > 0 and not ood_classes:
        raise ConfigError("OOD scenario: ood_ratio > 0 needs ood_classes")
    id_idx = np.flatnonzero(np.isin(labels, id_classes))
    if len(id_idx) == 0:
        raise ConfigError(f"OOD scenario: no sample has an in-distribution class {id_classes}")
    if max_id is not None and len(id_idx) > int(max_id):
        id_idx = np.sort(rng.choice(id_idx, int(max_id), replace=False))
    ood_all = np.flatnonzero(np.isin(labels, ood_classes))
    n_ood = int(round(ratio / (1.0 - ratio) * len(id_idx)))
    if n_ood > len(ood_all):
        raise ConfigError(f"OOD scenario: ood_ratio {ratio} over {len(id_idx)} in-distribution "
                          f"samples needs {n_ood} OOD samples, the OOD classes {ood_classes} have "
                          f"{len(ood_all)}")
    ood_idx = rng.choice(ood_all, n_ood, replace=False) if n_ood else np.zeros(0, np.int64)
    idx = np.concatenate([id_idx, ood_idx]).astype(np.int64)
    is_ood = np.concatenate([np.zeros(len(id_idx), bool), np.ones(len(ood_idx), bool)])
    order = rng.permutation(len(idx))
    return idx[order], is_ood[order]


@DATASETS.register()
class OODPool(ActiveSubset):
    """``dataset`` restricted to ``id_classes`` (relabelled 0..k-1 in the given order) plus
    samples of ``ood_classes`` making up ``ood_ratio`` of the pool (label -1; an active
    learner's oracle marks them OOD and they are never trained on).  With ``ood_ratio: 0``
    it is the in-distribution test set.  ``max_id`` caps the in-distribution part (a random
    subset), for CPU-scale runs.  The selection depends only on ``split_seed``."""

    def __init__(self, dataset, id_classes, ood_classes=None, ood_ratio=0.0, max_id=None,
                 split_seed=0):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset, key_path="OODPool.dataset")
        base_labels = dataset_labels(dataset)
        rng = np.random.default_rng([int(split_seed), 4099])
        indices, self.is_ood = ood_pool_indices(base_labels, id_classes, ood_classes, ood_ratio,
                                                rng, max_id)
        super().__init__(dataset, indices)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.id_classes = [int(c) for c in id_classes]
        remap = np.full(max(int(base_labels.max()) + 1, max(self.id_classes) + 1), OOD_LABEL, np.int64)
        remap[self.id_classes] = np.arange(len(self.id_classes))
        self.labels = remap[base_labels[self.indices]]
        self.source_labels = base_labels[self.indices]
        names = getattr(self.dataset, "class_names", None)
        self.class_names = [names[c] for c in self.id_classes] if names else \
            [str(c) for c in self.id_classes]

    @property
    def num_classes(self):
        return len(self.id_classes)

    def __getitem__(self, idx):
        sample = dict(super().__getitem__(idx))
        sample["label"] = np.int64(self.labels[idx])
        return sample


def synthetic_2d(n_per_class=150, seed=0):
    """Three in-distribution Gaussian classes (labels 0-2) around a fourth cluster (label 3)
    that sits where their decision boundaries meet, so that an OOD sample there has the
    highest predictive entropy of the pool."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-2.5, -1.5], [2.5, -1.5], [0.0, 2.8], [0.0, 0.0]])
    scales = np.array([0.8, 0.8, 0.8, 0.45])
    x = np.concatenate([c + s * rng.standard_normal((n_per_class, 2)) for c, s in zip(centers, scales)])
    y = np.repeat(np.arange(4), n_per_class)
    return x.astype(np.float32), y.astype(np.int64)


def _load_tabular(name, seed):
    from sklearn import datasets as skd
    loaders = {"iris": skd.load_iris, "wine": skd.load_wine, "breast_cancer": skd.load_breast_cancer,
               "digits": skd.load_digits}
    if name == "synthetic2d":
        return synthetic_2d(seed=seed)
    if name not in loaders:
        raise ConfigError(f"TabularDataset.name must be one of {sorted(loaders) + ['synthetic2d']}, "
                          f"got {name!r}")
    d = loaders[name]()
    return d.data.astype(np.float32), d.target.astype(np.int64)


@DATASETS.register()
class TabularDataset(BaseDataset):
    """scikit-learn's bundled tabular sets (iris, wine, breast_cancer, digits as 64 pixel
    features) and ``synthetic2d``, as ``{"x": float32 features, "label": int}`` samples.
    ``split``: ``train`` / ``test`` (a fixed stratified split of ``test_fraction``) or ``all``;
    ``standardize`` scales every feature by the training split's mean and deviation."""

    def __init__(self, name, split="train", test_fraction=0.3, split_seed=0, standardize=True,
                 transforms=None):
        super().__init__(transforms)
        if split not in ("train", "test", "all"):
            raise DataError(f"TabularDataset.split must be train, test or all, got {split!r}")
        x, y = _load_tabular(name, split_seed)
        rng = np.random.default_rng([int(split_seed), 17])
        test = np.zeros(len(y), bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            test[rng.permutation(idx)[: int(round(len(idx) * float(test_fraction)))]] = True
        if standardize:
            mu, sd = x[~test].mean(0), x[~test].std(0)
            x = (x - mu) / np.where(sd > 0, sd, 1.0)
        keep = {"train": ~test, "test": test, "all": np.ones(len(y), bool)}[split]
        self.features, self.labels = x[keep].astype(np.float32), y[keep]
        self.class_names = [str(c) for c in range(int(y.max()) + 1)]

    def __len__(self):
        return len(self.labels)

    def load(self, idx):
        return {"x": self.features[idx], "label": np.int64(self.labels[idx])}
