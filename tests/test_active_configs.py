"""Every shipped active-learning config loads and builds its strategy; the digits and
CIFAR-10 OOD scenarios have one config per strategy, sharing one base per scenario; the
digits ones run a tiny query round through the engine, the CIFAR-10 ones build their pool
(where the data is present)."""
import glob
import json
import os

import numpy as np
import pytest
import yaml

import ppzoo
from ppzoo.active.strategies import STRATEGIES
from ppzoo.core import load_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "active", "*.yml")))
SCENARIOS = ("digits_ood", "cifar10_ood")
# the strategies docs/active.md lists (POAL's ideal-entropy reference included)
EXPECTED = {"RandomStrategy", "EntropySampling", "MarginSampling", "LeastConfidence", "BALD",
            "CoreSet", "BADGE", "NoiseStability", "POAL", "IdealEntropy"}
POAL_KEYS = {"informativeness", "ood_model", "sign", "preselect_factor", "iters_factor",
             "max_iters", "check_every", "patience", "tol", "shrinkage"}
DATA = os.environ.get("PPZOO_DATA", os.path.join(ROOT, "..", "shared", "data"))


def scenario_configs(scenario):
    return [p for p in CONFIGS if os.path.basename(p).startswith(scenario + "_")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_strategy_has_one_config_per_scenario(scenario):
    found = [load_config(p)["active"]["strategy"]["type"] for p in scenario_configs(scenario)]
    assert sorted(found) == sorted(EXPECTED)  # each once
    bases = {yaml.safe_load(open(p))["_base_"] for p in scenario_configs(scenario)}
    assert bases == {f"_base_/{scenario}.yml"}
    assert "strategy" not in load_config(os.path.join(ROOT, "configs", "active", "_base_",
                                                      f"{scenario}.yml"))["active"]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_its_strategy(path):
    cfg = load_config(path)
    spec = cfg["active"]["strategy"]
    strategy = STRATEGIES.build(dict(spec), key_path="active.strategy")
    assert type(strategy).__name__ == spec["type"]
    assert cfg["trainer"]["type"] == "ActiveLearningTrainer"
    assert cfg["name"] == "active_" + os.path.basename(path)[:-4]
    if spec["type"] != "POAL":  # POAL's options live in POAL's configs only
        assert not POAL_KEYS & set(spec), path
    for key in ("train_dataset", "val_dataset"):
        root = cfg[key].get("root")
        assert root is None or not root.startswith(".."), (path, root)  # relative to $PPZOO_DATA


def tiny(path, tmp_path):
    """One query round on digits at test size (the config's own strategy and scenario)."""
    cfg = load_config(path, ["model.width=8", "train.iters=4", "train.log_interval=4",
                             "train.eval_interval=4", "active.initial=20", "active.per_round=10",
                             "active.rounds=2", "active.candidates=200"])
    if "passes" in cfg["active"]["strategy"]:
        cfg["active"]["strategy"]["passes"] = 2
    work = str(tmp_path / "run")
    trainer = ppzoo.build_trainer(cfg, work_dir=work)
    trainer.train()
    with open(os.path.join(work, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    return trainer, [r for r in recs if r["mode"] == "round"], json.load(
        open(os.path.join(work, "active_state.json")))


@pytest.mark.parametrize("path", scenario_configs("digits_ood"), ids=os.path.basename)
def test_digits_config_runs_a_query_round(path, tmp_path):
    trainer, rounds, state = tiny(path, tmp_path)
    assert type(trainer.strategy).__name__ == load_config(path)["active"]["strategy"]["type"]
    assert [r["labelled"] for r in rounds] == [20, 30]
    picked = state["labelled"][20:]
    assert len(set(picked)) == 10 and not set(picked) & set(state["labelled"][:20])
    assert rounds[0]["candidates"] == 200 and rounds[1]["ood_selected"] == int(
        trainer.is_ood[picked].sum())
    if type(trainer.strategy).__name__ == "IdealEntropy":
        assert not trainer.is_ood[picked].any()


@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "cifar10", "train")),
                    reason="CIFAR-10 not found under $PPZOO_DATA (../shared/data)")
@pytest.mark.parametrize("path", scenario_configs("cifar10_ood"), ids=os.path.basename)
def test_cifar10_config_builds_its_pool(path, tmp_path):
    cfg = load_config(path)
    for key in ("train_dataset", "val_dataset"):
        cfg[key]["root"] = os.path.join(DATA, cfg[key]["root"])
    t = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "c"))
    assert type(t.strategy).__name__ == cfg["active"]["strategy"]["type"]
    assert t.pool_size == 3000 + round(0.3 / 0.7 * 3000) and t.max_candidates == 2000
    assert np.bincount(t.pool.labels[~t.is_ood]).min() > 400
