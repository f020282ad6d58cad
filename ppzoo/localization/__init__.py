"""Temporal action localization for sports videos: BMN proposals over feature
sequences, AttentionLSTM proposal classification with IoU regression, proposal and event
metrics, and the inference tasks that chain them (PaddleVideo's FootballAction and
BasketballAction pipeline)."""
from . import bmn, attention_lstm, postprocess, datasets, metrics, trainer, infer, features  # noqa: F401,E501
