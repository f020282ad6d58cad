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
    opts = ["federated.rounds=2", "federated.num_clients=6", "federated.clients_per_round=3",
            "federated.local.batch_size=64", "federated.eval_every=1"]
    if "fedda" in os.path.basename(path):  # full_batch_rounds must stay below rounds
        opts.append("federated.strategy.full_batch_rounds=1")
    cfg = load_config(path, opts)
    t = FederatedTrainer(cfg, work_dir=str(tmp_path / "run"))
    t.train()
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        recs = [json.loads(line) for line in f]
    assert [r["round"] for r in recs] == [1, 2]
    assert all(r["sim_time_s"] > 0 and r["bytes_total"] > 0 and 0 <= r["top1"] <= 1 for r in recs)
    assert recs[1]["sim_time_s"] > recs[0]["sim_time_s"]


def test_eval_and_export_tools_read_a_federated_run(tmp_path):
    import subprocess
    import sys
    cfg = os.path.join(ROOT, "configs", "federated", "digits_fedavg.yml")
    run = str(tmp_path / "run")
    opts = ["--opts", "federated.rounds=1", "federated.num_clients=4", "federated.clients_per_round=2"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    printed = {}
    for cmd in (["tools/train.py", "-c", cfg, "--save-dir", run] + opts,
                ["tools/eval.py", "-c", cfg, "--weights", f"{run}/latest/model.pdparams"] + opts,
                ["tools/export.py", "-c", cfg, "--weights", f"{run}/latest/model.pdparams",
                 "--save-dir", f"{run}/inference"] + opts):
        out = subprocess.run([sys.executable] + cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        printed[cmd[0]] = out.stdout + out.stderr
    assert "top1" in printed["tools/eval.py"]
    assert os.path.isfile(f"{run}/inference/model.pdiparams")


def test_runs_with_the_real_partitioner_and_profiles_are_bit_reproducible(tmp_path):
    import numpy as np
    opts = ["federated.rounds=2", "federated.num_clients=6", "federated.clients_per_round=3",
            "federated.profile={type: lognormal, median_samples_per_s: 100, sigma: 1.0, "
            "latency_s: 0.05, bandwidth_mbps: 20}"]
    path = os.path.join(ROOT, "configs", "federated", "digits_scaffold.yml")
    runs = []
    for name in ("a", "b"):
        t = FederatedTrainer(load_config(path, opts), work_dir=str(tmp_path / name))
        t.train()
        runs.append(t)
    a, b = runs
    assert all(np.array_equal(a.global_weights[k], b.global_weights[k]) for k in a.global_weights)
    assert a.clock == b.clock > 0
    assert [len(p) for p in a.partitions] == [len(p) for p in b.partitions]
