import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("PPZOO_HOME", os.path.join(ROOT, "output", "test_cache"))
# A loaded machine is slow, not broken: Ray and teacher workers get minutes to start (a
# worker imports Paddle and builds a predictor; at load 7 on 2 cores that took over 120 s)
os.environ.setdefault("PPZOO_RAY_START_TIMEOUT_S", "1200")


@pytest.fixture
def digits_cfg():
    """A tiny digits config: two epochs of a small CNN, evaluated every epoch."""
    from ppzoo.core import load_config
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"))
    cfg["model"]["width"] = 8
    cfg["train"].update({"epochs": 2, "batch_size": 64, "log_interval": 5})
    return cfg


@pytest.fixture
def data_root():
    """The shared real data, or a skip where it is absent."""
    root = os.environ.get("PPZOO_DATA", os.path.join(ROOT, "..", "shared", "data"))
    if not os.path.isdir(root):
        pytest.skip(f"shared data folder not found: {root}")
    return root
