"""A batch sampler whose order depends only on (seed, epoch) and can start mid-epoch.

Resuming a run needs the exact batches an uninterrupted run would have seen, and
data-parallel training needs each rank to see its own shard; paddle's samplers
draw from the global RNG, so ppzoo uses this one.
"""
import math

import numpy as np


class ResumableBatchSampler:
    def __init__(self, num_samples, batch_size, shuffle=True, drop_last=False, seed=0,
                 rank=0, world_size=1):
        if num_samples <= 0:
            raise ValueError("the dataset is empty")
        self.num_samples = num_samples
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0
        # every rank gets the same number of samples (the tail wraps around)
        self.per_rank = int(math.ceil(num_samples / world_size))

    def set_epoch(self, epoch, start_batch=0):
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def indices(self):
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = self.per_rank * self.world_size
        if total > self.num_samples:
            order = np.concatenate([order, order[: total - self.num_samples]])
        return order[self.rank:total:self.world_size].tolist()

    def __len__(self):
        if self.drop_last:
            return self.per_rank // self.batch_size
        return int(math.ceil(self.per_rank / self.batch_size))

    def __iter__(self):
        idx = self.indices()
        for b in range(self.start_batch, len(self)):
            batch = idx[b * self.batch_size:(b + 1) * self.batch_size]
            if batch:
                yield batch
        self.start_batch = 0
