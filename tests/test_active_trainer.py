"""ActiveLearningTrainer on the shared round loop: the OOD scenario, classical and deep
rounds, per-round records, AUBC by hand, and resume equal to an uninterrupted run."""
import json
import os

import numpy as np
import pytest
import yaml

import ppzoo
from ppzoo.active.data import OODPool, ood_pool_indices
from ppzoo.active.trainer import ActiveLearningTrainer
from ppzoo.core import load_config
from ppzoo.core.errors import ConfigError
from ppzoo.datasets.classification import DigitsDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def records(work_dir):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    return [r for r in recs if r["mode"] == "round"], [r for r in recs if r["mode"] == "summary"]


def strip_times(recs):
    return [{k: v for k, v in r.items() if k != "query_time"} for r in recs]


def run(cfg, work_dir, resume=False):
    return ppzoo.build_trainer(cfg, work_dir=str(work_dir), resume=resume).train()


def run_interrupted(cfg, work_dir, crash_round):
    """Stop the run as a kill would after ``crash_round - 1`` rounds, then resume it."""
    orig = ActiveLearningTrainer.run_round

    def crashing(self, r, labelled):
        if r == crash_round:
            raise KeyboardInterrupt
        return orig(self, r, labelled)

    ActiveLearningTrainer.run_round = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            run(cfg, work_dir)
    finally:
        ActiveLearningTrainer.run_round = orig
    return run(cfg, work_dir, resume=True)


def classical_cfg(strategy="POAL", **over):
    cfg = load_config(os.path.join(ROOT, "configs/active/synthetic2d_poal.yml"))
    cfg["active"].update(rounds=4, strategy={"type": strategy})
    cfg["active"].update(over)
    return cfg


def test_ood_pool_ratio_and_labels():
    base = DigitsDataset(split="train")
    pool = OODPool(base, id_classes=[3, 1, 0], ood_classes=[7, 8], ood_ratio=0.25, split_seed=1)
    n_id = int(np.isin(base.labels, [3, 1, 0]).sum())
    assert len(pool) - n_id == round(0.25 / 0.75 * n_id)
    assert pool.is_ood.mean() == pytest.approx(0.25, abs=1e-3)
    src = base.labels[pool.indices]
    np.testing.assert_array_equal(pool.labels[pool.is_ood], -1)
    np.testing.assert_array_equal(np.isin(src, [7, 8]), pool.is_ood)
    np.testing.assert_array_equal(pool.labels[~pool.is_ood], np.array([2, 1, -1, 0])[src[~pool.is_ood]])
    assert pool[0]["label"] == pool.labels[0]
    with pytest.raises(ConfigError, match="both"):
        ood_pool_indices(base.labels, [1, 2], [2], 0.1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="needs"):
        ood_pool_indices(base.labels, list(range(9)), [9], 0.9, np.random.default_rng(0))


def test_classical_run_records_aubc_and_ood(tmp_path):
    cfg = classical_cfg()
    t = run(cfg, tmp_path / "a")
    recs, summary = records(tmp_path / "a")
    assert [r["labelled"] for r in recs] == [10, 20, 30, 40]
    # AUBC: trapezoids over the labelled counts divided by the budget span, by hand
    acc = [r["top1"] for r in recs]
    hand = ((acc[0] + acc[1]) * 10 / 2 + (acc[1] + acc[2]) * 10 / 2 + (acc[2] + acc[3]) * 10 / 2) / 30
    assert summary[0]["aubc"]["top1"] == pytest.approx(hand, abs=1e-12)
    # OOD bookkeeping: what was queried, against the pool's truth
    labelled = json.load(open(tmp_path / "a" / "active_state.json"))["labelled"]
    assert recs[-1]["ood_queried"] == int(t.is_ood[labelled].sum()) == summary[0]["ood_queried"]
    assert all(r["query_time"] > 0 for r in recs[:-1])
    assert os.path.isfile(tmp_path / "a" / "final" / "estimator.pkl")
    # the estimator is fitted on in-distribution samples only
    import pickle
    est = pickle.load(open(tmp_path / "a" / "rounds" / "round_003" / "estimator.pkl", "rb"))
    assert set(est.classes_.tolist()) <= {0, 1, 2}


def test_classical_poal_queries_fewer_ood_than_entropy(tmp_path):
    ood = {}
    for s in ("POAL", "EntropySampling", "IdealEntropy", "RandomStrategy"):
        run(classical_cfg(s), tmp_path / s)
        ood[s] = records(tmp_path / s)[1][0]["ood_queried"]
    assert ood["IdealEntropy"] <= ood["POAL"] < ood["EntropySampling"], ood


def test_classical_resume_equals_uninterrupted(tmp_path):
    cfg = classical_cfg("BADGE")
    run(cfg, tmp_path / "full")
    run_interrupted(cfg, tmp_path / "cut", crash_round=2)
    a, sa = records(tmp_path / "full")
    b, sb = records(tmp_path / "cut")
    assert strip_times(a) == strip_times(b)
    assert sa[0]["aubc"] == sb[0]["aubc"]


def deep_cfg(strategy):
    cfg = load_config(os.path.join(ROOT, "configs/active/digits_ood_entropy.yml"))
    cfg["model"]["width"] = 8
    cfg["train"].update(iters=12, log_interval=12, eval_interval=12)
    cfg["active"].update(initial=30, per_round=10, rounds=3, candidates=300, strategy=strategy)
    return cfg


def test_deep_rounds_train_on_id_only_and_resume_exactly(tmp_path):
    cfg = deep_cfg({"type": "NoiseStability", "passes": 3})
    full = run(cfg, tmp_path / "full")
    run_interrupted(cfg, tmp_path / "cut", crash_round=2)
    a, sa = records(tmp_path / "full")
    b, sb = records(tmp_path / "cut")
    assert strip_times(a) == strip_times(b) and sa[0]["aubc"] == sb[0]["aubc"]
    assert [r["candidates"] for r in a] == [300, 300, 0]
    for r in range(3):
        child = yaml.safe_load(open(tmp_path / "full" / "rounds" / f"round_{r:03d}" / "config.yml"))
        idx = child["train_dataset"]["indices"]
        assert not full.is_ood[idx].any()      # OOD samples are never trained on
        assert child["val_dataset"]["type"] == "OODPool"
    labelled = json.load(open(tmp_path / "full" / "active_state.json"))["labelled"]
    assert len(labelled) == 50 and a[-1]["ood_queried"] == int(full.is_ood[labelled].sum())


@pytest.mark.parametrize("strategy", [{"type": "POAL"}, {"type": "BALD", "passes": 3},
                                      {"type": "CoreSet"}, {"type": "RandomStrategy"}])
def test_deep_strategies_run_through_the_engine(tmp_path, strategy):
    cfg = deep_cfg(strategy)
    cfg["active"].update(rounds=2, warm_start=True)
    run(cfg, tmp_path / "r")
    recs, summary = records(tmp_path / "r")
    assert [r["labelled"] for r in recs] == [30, 40] and 0 <= summary[0]["final"]["top1"] <= 1
    child = yaml.safe_load(open(tmp_path / "r" / "rounds" / "round_001" / "config.yml"))
    assert child["pretrained"].endswith(os.path.join("round_000", "latest", "model.pdparams"))


def test_config_errors(tmp_path):
    cfg = classical_cfg()
    cfg["active"]["candidate"] = 10
    with pytest.raises(ConfigError, match="candidates"):
        run(cfg, tmp_path / "x")
    cfg = classical_cfg()
    cfg["model"]["num_classes"] = 4
    with pytest.raises(ConfigError, match="num_classes"):
        run(cfg, tmp_path / "y")
    cfg = classical_cfg()
    cfg["active"]["ood"]["ratios"] = 0.2
    with pytest.raises(ConfigError, match="ratio"):
        run(cfg, tmp_path / "z")
