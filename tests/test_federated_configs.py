"""Every shipped federated config loads, builds its strategy, and (digits) trains through
the real partitioner and device profiles."""
import glob
import json
import os

import pytest

from ppzoo.core import load_config
from ppzoo.federated.strategies import build_strategy
from ppzoo.federated.trainer import FederatedTrainer, check_federated_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "federated", "*.yml")))
STRATEGIES = {"FedAvg", "FedProx", "FedAvgM", "FedAdam", "FedYogi", "FedAdagrad", "Scaffold",
              "FedDA", "FedAT", "FedHiSyn"}


def test_every_strategy_has_a_digits_and_a_cifar10_config():
    for base in ("digits", "cifar10"):
        found = {load_config(p)["federated"]["strategy"]["type"] for p in CONFIGS
                 if os.path.basename(p).startswith(base + "_")}
        assert found == STRATEGIES, base


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_is_valid(path):
    cfg = load_config(path)
    check_federated_config(cfg)
    build_strategy(cfg["federated"]["strategy"])
    assert cfg["trainer"]["type"] == "FederatedTrainer"


@pytest.mark.parametrize("path", [p for p in CONFIGS if os.path.basename(p).startswith("digits_")],
                         ids=os.path.basename)
def test_digits_config_trains_two_rounds(path, tmp_path):
    cfg = load_config(path, ["federated.rounds=2", "federated.num_clients=6",
                             "federated.clients_per_round=3", "federated.local.batch_size=64"])
    t = FederatedTrainer(cfg, work_dir=str(tmp_path / "run"))
    t.train()
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        recs = [json.loads(line) for line in f]
    assert [r["round"] for r in recs] == [1, 2]
    assert all(r["sim_time_s"] > 0 and r["bytes_total"] > 0 and 0 <= r["top1"] <= 1 for r in recs)
    assert recs[1]["sim_time_s"] > recs[0]["sim_time_s"]
