from .classification import CrossEntropyLoss  # noqa: F401
