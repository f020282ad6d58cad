"""The shared active-learning round loop (ppzoo/active) driving ActiveRankingTrainer: no unit
labelled twice, the budget respected, one fresh child run per round, per-round metrics, exact
resume after a crash mid-round, and the area under the budget curve."""
import json
import os

import numpy as np
import pytest

import ppzoo  # noqa: F401
from ppzoo.active import ActiveLoop, Oracle, area_under_budget_curve
from ppzoo.active.loop import ActiveLoopError
from ppzoo.core import load_config
from ppzoo.core.errors import ConfigError
from ppzoo.engine.rundir import RunFolderError
from ppzoo.engine.trainer import build_trainer
from ppzoo.ranking.data import write_ltr_file
from ppzoo.ranking.synthetic import make_queries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ltr_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ltr")
    train, _ = make_queries(num_queries=30, num_features=8, seed=0, max_docs=12)
    test, _ = make_queries(num_queries=8, num_features=8, seed=1, max_docs=12)
    write_ltr_file(str(d / "train.txt"), train)
    write_ltr_file(str(d / "test.txt"), test, with_qid=False)
    return d


def _cfg(ltr_files, strategy, **active):
    cfg = load_config(os.path.join(ROOT, "configs", "ranking", "active_random.yml"))
    cfg["model"] = {"type": "MLPRanker", "num_features": 8, "hidden": [16]}
    for k, f in (("train_dataset", "train.txt"), ("val_dataset", "test.txt")):
        cfg[k].update(path=str(ltr_files / f), num_features=8)
    cfg["train"].update(iters=8, batch_size=4, log_interval=100, eval_interval=8, checkpoint_interval=8)
    cfg["metrics"] = [{"type": "RankingMetrics", "ndcg_ks": [10], "dcg_ks": [4]}]
    cfg["active"].update({"initial": 4, "per_round": 4, "budget": 14, "committee": 3,
                          "strategy": strategy}, **active)
    return cfg


def _state(work):
    with open(os.path.join(work, "active_state.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("strategy", [
    {"type": "RandomStrategy"},
    {"type": "REPV", "alpha": 0.5, "normalize": "minmax", "re": {"form": "top_vote"}},
])
def test_loop_labels_each_query_once_and_stops_at_the_budget(ltr_files, tmp_path, strategy):
    work = str(tmp_path / "run")
    build_trainer(_cfg(ltr_files, strategy), work_dir=work).train()
    st = _state(work)
    assert len(st["labelled"]) == len(set(st["labelled"])) == 14
    sizes = [len(h["selected"]) for h in st["history"]]
    assert sizes == [4, 4, 4, 2]  # the last round is cut to the budget
    picked = [u for h in st["history"] for u in h["selected"]]
    assert picked == st["labelled"] and st["pending"] == []
    assert [h["labelled"] for h in st["history"]] == [4, 8, 12, 14]
    assert all(h["iters"] == 8 for h in st["history"])
    # one fresh child run folder per round, trained on exactly the labelled queries
    for r, h in enumerate(st["history"]):
        child = load_config(os.path.join(work, "rounds", f"round_{r:03d}", "config.yml"))
        assert child["train_dataset"]["type"] == "ActiveSubset"
        assert child["train_dataset"]["indices"] == sorted(picked[:h["labelled"]])
    with open(os.path.join(work, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    assert [r["mode"] for r in recs] == ["round"] * 4 + ["summary"]
    assert all("NDCG@10" in r and "DCG@4" in r for r in recs[:4])
    xs, ys = [r["labelled"] for r in recs[:4]], [r["DCG@4"] for r in recs[:4]]
    assert recs[-1]["aubc"]["DCG@4"] == pytest.approx(np.trapz(ys, xs) / (xs[-1] - xs[0]))
    assert os.path.isfile(os.path.join(work, "final", "model.pdparams"))


def test_rounds_limit_and_pool_exhaustion(ltr_files, tmp_path):
    cfg = _cfg(ltr_files, {"type": "RandomStrategy"}, budget=None, rounds=2)
    build_trainer(cfg, work_dir=str(tmp_path / "a")).train()
    assert [h["labelled"] for h in _state(str(tmp_path / "a"))["history"]] == [4, 8]
    cfg = _cfg(ltr_files, {"type": "PredictionVariance"}, budget=None, initial=20, per_round=8)
    build_trainer(cfg, work_dir=str(tmp_path / "b")).train()
    st = _state(str(tmp_path / "b"))
    assert [h["labelled"] for h in st["history"]] == [20, 28, 30]
    assert sorted(st["labelled"]) == list(range(30))


@pytest.mark.parametrize("strategy", [{"type": "REPV", "alpha": 1.0, "normalize": "rank"},
                                      {"type": "RandomStrategy"}])
def test_resume_after_a_crash_mid_round_ends_as_an_uninterrupted_run(ltr_files, tmp_path, monkeypatch,
                                                                     strategy):
    full = str(tmp_path / "full")
    build_trainer(_cfg(ltr_files, strategy), work_dir=full).train()

    cut = str(tmp_path / "cut")
    real_run_round = ActiveLoop.run_round

    def crash_in_round_2(self, r, labelled):
        if r == 2:
            os.makedirs(self.round_dir(r), exist_ok=True)
            open(os.path.join(self.round_dir(r), "partial"), "w").close()
            raise KeyboardInterrupt
        return real_run_round(self, r, labelled)

    monkeypatch.setattr(ActiveLoop, "run_round", crash_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        build_trainer(_cfg(ltr_files, strategy), work_dir=cut).train()
    monkeypatch.setattr(ActiveLoop, "run_round", real_run_round)
    assert _state(cut)["round"] == 1
    with pytest.raises(RunFolderError, match="--resume"):  # the engine's run-folder rule
        build_trainer(_cfg(ltr_files, strategy), work_dir=cut)
    build_trainer(_cfg(ltr_files, strategy), work_dir=cut, resume=True).train()
    a, b = _state(full), _state(cut)
    assert a["labelled"] == b["labelled"]
    assert a["history"] == b["history"]  # same selections and the same metrics, exactly
    assert not os.path.exists(os.path.join(cut, "rounds", "round_002", "partial"))
    with open(os.path.join(full, "metrics.jsonl")) as f1, open(os.path.join(cut, "metrics.jsonl")) as f2:
        assert f1.read() == f2.read()


def test_overwrite_moves_a_finished_run_aside(ltr_files, tmp_path):
    work = str(tmp_path / "run")
    cfg = _cfg(ltr_files, {"type": "RandomStrategy"}, budget=8)
    build_trainer(cfg, work_dir=work).train()
    first = _state(work)
    build_trainer(cfg, work_dir=work, overwrite=True).train()
    assert _state(work)["history"] == first["history"]
    assert [n for n in os.listdir(tmp_path) if n.startswith("run.old-")]


def test_active_config_errors(ltr_files, tmp_path):
    cfg = _cfg(ltr_files, {"type": "RankingEntropy", "form": "top"})
    with pytest.raises(ConfigError, match="form"):
        build_trainer(cfg, work_dir=str(tmp_path / "x"))
    cfg = _cfg(ltr_files, {"type": "RandomStrategy"})
    cfg["active"]["per_rond"] = 3
    with pytest.raises(ConfigError, match="active.per_rond.*per_round"):
        build_trainer(cfg, work_dir=str(tmp_path / "x"))
    cfg = _cfg(ltr_files, {"type": "RandomStrategy"}, initial=31)
    with pytest.raises(ConfigError, match="exceeds the pool of 30"):
        build_trainer(cfg, work_dir=str(tmp_path / "x"))


def test_oracle_refuses_a_second_label():
    o = Oracle(5, [1, 3])
    o.label([0])
    assert o.unlabelled() == [2, 4]
    with pytest.raises(ActiveLoopError, match="unit 3 is already labelled"):
        o.label([2, 3])


def test_area_under_budget_curve():
    assert area_under_budget_curve([10, 20, 40], [1.0, 2.0, 2.0]) == pytest.approx(
        (10 * 1.5 + 20 * 2.0) / 30)
    assert area_under_budget_curve([10], [0.7]) == 0.7


def test_eval_tool_builds_an_active_config_without_training(ltr_files):
    trainer = build_trainer(_cfg(ltr_files, {"type": "RandomStrategy"}), build_train=False)
    assert "NDCG@10" in trainer.evaluate()
