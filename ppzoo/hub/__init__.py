"""Pretrained weights: local paths, URLs and zoo names; download, cache, verify, load.

``pretrained:`` in a config is handed to :func:`load_pretrained`.  See docs/weights.md.
"""
from .download import cache_path, cache_root, download, file_hash, weights_dir  # noqa: F401
from .load import LoadReport, load_pretrained, load_state_dict, read_state_dict, resolve  # noqa: F401
from .table import DEFAULT_TABLE, load_table, lookup, table_path  # noqa: F401
