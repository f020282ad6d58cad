"""Pretrained weights: local paths, URLs and zoo names; download, cache, verify, load."""


def load_pretrained(model, source, logger=None):
    raise NotImplementedError
