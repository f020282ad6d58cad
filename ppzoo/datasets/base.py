"""Base of ppzoo datasets: samples are dicts, augmentation is seeded per sample."""
import numpy as np
import paddle

from ..transforms import Compose


class BaseDataset(paddle.io.Dataset):
    """Subclasses implement ``__len__`` and ``load(idx) -> dict``.

    ``class_names`` lists the label names that export writes into ``deploy.yml``.
    """
    class_names = None

    def __init__(self, transforms=None, seed=0):
        self.transforms = Compose(transforms)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def load(self, idx):
        raise NotImplementedError

    def __getitem__(self, idx):
        sample = self.load(idx)
        rng = np.random.default_rng([self.seed, self.epoch, int(idx)])
        return self.transforms(sample, rng)

    @property
    def num_classes(self):
        return len(self.class_names) if self.class_names else None
