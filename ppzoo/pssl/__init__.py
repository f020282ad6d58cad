"""PSSL: pseudo semantic segmentation labels from ensembles of classifier explanations
(arXiv 2207.03335).  Explainers, consensus, the released-format reader, generation."""
from . import consensus, datasets, explainers, released  # noqa: F401
from .explainers import EXPLAINERS  # noqa: F401
