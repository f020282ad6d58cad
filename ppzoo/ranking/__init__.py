"""Learning to rank and active learning to rank (arXiv 2205.10137): LETOR/LightGBM data,
rankers, pointwise/pairwise/listwise losses, DCG/NDCG, the ``ranking`` inference task
and ``ActiveRankingTrainer``."""
from . import data, metrics, losses, models, active, infer, synthetic  # noqa: F401
from .data import LTRDataset, read_ltr_file, write_ltr_file  # noqa: F401
from .active import ActiveRankingTrainer  # noqa: F401
