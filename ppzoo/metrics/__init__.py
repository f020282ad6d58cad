from .classification import ClassificationReport, TopKAccuracy  # noqa: F401
