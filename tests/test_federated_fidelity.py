"""Federated fidelity checks of issue 27: FedDA's full-batch phase under resume and its
bounds, FedDA clients under ``train.grad_clip``, and FedAT's weighting of tiers that have
not reported, each against a definition computed apart from the code."""
import collections
import copy

import numpy as np
import paddle
import pytest
import yaml

from ppzoo.core.errors import ConfigError
from ppzoo.federated import strategies as S
from ppzoo.federated.client import local_train
from ppzoo.federated.trainer import FederatedTrainer
from test_federated import (FULL, assert_close, fixed_modules, grad_at, make_cfg,  # noqa: F401
                            parts_of, records, train)

FEDDA = {"type": "FedDA", "form": "sgdm", "beta_1": 0.5, "full_batch_rounds": 2}
LOCAL = {"steps": 1, "batch_size": 16, "optimizer": {"type": "SGD", "learning_rate": 0.1}}


def _fedda_cfg(rounds):
    return make_cfg(FEDDA, parts_of([20, 20, 20]), rounds=rounds, per_round=2, local=LOCAL)


def _full_batch_rounds(t):
    return [r["round"] for r in records(t) if r.get("full_batch")]


# ---------------------------------------------------------------- FedDA: the full-batch phase
def test_fedda_resume_to_more_rounds_does_the_full_batch_rounds_of_the_new_total(tmp_path, monkeypatch):
    """Cut after round 1 of a 3-round run (no full-batch round done yet), resumed with
    rounds=5: the full-batch rounds are 4-5 and the weights those of an uninterrupted 5-round run."""
    full = train(_fedda_cfg(5), tmp_path, "full")
    assert _full_batch_rounds(full) == [4, 5]

    from ppzoo.federated import client as client_mod
    real = client_mod.local_train

    class Killed(BaseException):
        pass

    def dies_in_round_2(trainer, *a, **kw):
        if trainer.round == 1:
            raise Killed()
        return real(trainer, *a, **kw)

    monkeypatch.setattr(client_mod, "local_train", dies_in_round_2)
    with pytest.raises(Killed):
        train(_fedda_cfg(3), tmp_path, "cut")
    monkeypatch.setattr(client_mod, "local_train", real)
    resumed = train(_fedda_cfg(5), tmp_path, "cut", resume=True)
    assert resumed.round == 5 and _full_batch_rounds(resumed) == [4, 5]
    for k in full.global_weights:
        assert np.array_equal(full.global_weights[k], resumed.global_weights[k]), k


def test_fedda_resume_to_more_rounds_after_its_full_batch_rounds_is_refused(tmp_path):
    """A finished 3-round run did rounds 2-3 full-batch; an uninterrupted 5-round run does
    4-5 only, so resuming it to 5 rounds cannot equal that run: one ConfigError naming
    both keys, before any round runs (it used to run 4-5 full-batch as well)."""
    done = train(_fedda_cfg(3), tmp_path, "run")
    assert _full_batch_rounds(done) == [2, 3]
    with pytest.raises(ConfigError, match=r"federated\.rounds.*full_batch_rounds") as err:
        train(_fedda_cfg(5), tmp_path, "run", resume=True)
    assert "\n" not in str(err.value)
    assert [r["round"] for r in records(done)] == [1, 2, 3]
    with open(f"{done.work_dir}/config.yml") as f:  # the run folder still says 3 rounds
        assert yaml.safe_load(f)["federated"]["rounds"] == 3


@pytest.mark.parametrize("old,new,saved,ok", [
    (3, 5, 1, True),   # cut before either phase: the new total decides
    (3, 5, 3, False),  # rounds 2-3 done full-batch, the new run's are 4-5
    (5, 3, 3, False),  # round 2-3 done locally, the new run's full-batch rounds are 2-3
    (6, 8, 4, True),   # nothing full-batch by round 4 under either total
    (5, 5, 4, True),   # the same total: round 4 was full-batch in both
])
def test_fedda_resume_check_counts_the_full_batch_rounds_by_hand(old, new, saved, ok):
    F = 2
    done = sum(1 for r in range(1, saved + 1) if r > old - F)  # the saved run's full-batch rounds
    s = S.FedDA(full_batch_rounds=F).bind(num_clients=3, total_rounds=new)
    state = {"m": {}, "v": {}, "t": saved, "full_batch_done": done}
    if ok:
        s.client_config(saved + 1, state)
    else:
        with pytest.raises(ConfigError, match="full_batch_rounds"):
            s.client_config(saved + 1, state)


@pytest.mark.parametrize("fb", [3, 4])
def test_fedda_full_batch_rounds_not_below_rounds_is_a_config_error(tmp_path, fb):
    cfg = make_cfg(dict(FEDDA, full_batch_rounds=fb), parts_of([20, 20]), rounds=3, local=LOCAL)
    with pytest.raises(ConfigError, match=r"full_batch_rounds \(%d\).*federated\.rounds \(3\)" % fb):
        FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    FederatedTrainer(make_cfg(dict(FEDDA, full_batch_rounds=2), parts_of([20, 20]), rounds=3,
                              local=LOCAL), work_dir=str(tmp_path / "ok"))  # 2 < 3 is fine


# ---------------------------------------------------------------- FedDA: train.grad_clip
def _clipped(g, clip):
    """paddle.nn.ClipGradByGlobalNorm's rule: g * clip / max(||g||_global, clip)."""
    norm = np.sqrt(sum(float((v ** 2).sum()) for v in g.values()))
    return {k: v * clip / max(norm, clip) for k, v in g.items()}


def test_fedda_client_honours_train_grad_clip(tmp_path):
    """The FedDA client step clips its gradient by the global norm as a plain SGD client does;
    checked against the step computed by hand, and a tiny clip bounds the move."""
    clip, lr, b1 = 0.05, FULL["optimizer"]["learning_rate"], 0.7
    cfg = make_cfg({"type": "FedDA", "form": "sgdm", "beta_1": b1}, parts_of([32]), rounds=2,
                   local=FULL)
    cfg["train"] = {"grad_clip": clip}
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = t.global_weights
    rng = np.random.default_rng(3)
    m = collections.OrderedDict((k, rng.normal(0, 0.05, v.shape).astype(np.float32)) for k, v in w0.items())
    conf = t.strategy.client_config(1, {"m": m, "v": m, "t": 0, "full_batch_done": 0})
    res = local_train(t, w0, np.arange(32), conf, FULL, seed=0)
    w = collections.OrderedDict((k, v.astype(np.float64)) for k, v in w0.items())
    gs = []
    for _ in range(FULL["steps"]):
        g = grad_at(t, collections.OrderedDict((k, v.astype(np.float32)) for k, v in w.items()), range(32))
        assert np.sqrt(sum((v ** 2).sum() for v in g.values())) > clip  # the clip is active
        g = _clipped(g, clip)
        gs.append(g)
        for k in w:
            w[k] = w[k] - lr * (b1 * m[k] + (1 - b1) * g[k])
    assert_close(res.weights, w, atol=1e-5)
    # the statistics sent to the server are those of the clipped gradients it stepped with
    np.testing.assert_allclose(res.extras["grad_mean"]["classifier.bias"],
                               np.mean([g["classifier.bias"] for g in gs], axis=0), atol=1e-6)

    # a clip of 1e-4 (well above float32 round-off) with zero moments: the move is at most steps * lr * (1 - b1) * clip,
    # as a plain SGD client's is at most steps * lr * clip
    tiny = 1e-4
    t.train_cfg["grad_clip"] = tiny
    zeros = collections.OrderedDict((k, np.zeros_like(v)) for k, v in w0.items())
    conf = t.strategy.client_config(1, {"m": zeros, "v": zeros, "t": 0, "full_batch_done": 0})
    moved = local_train(t, w0, np.arange(32), conf, FULL, seed=0).weights
    sgd = local_train(t, w0, np.arange(32), {}, FULL, seed=0).weights

    def dist(a):
        return np.sqrt(sum(((a[k].astype(np.float64) - w0[k]) ** 2).sum() for k in w0))
    assert dist(moved) <= FULL["steps"] * lr * (1 - b1) * tiny * 1.01
    assert dist(sgd) <= FULL["steps"] * lr * tiny * 1.01


# ---------------------------------------------------------------- FedAT: unreported tiers
def _weights_by_hand(counts, unreported):
    """The documented cross-tier weights, written apart from the strategy: ``initial`` sums all
    M tiers (tier m weighs T_{M+1-m}/T, an unreported tier holding the initial model);
    ``skip`` sums only the reported tiers R (sorted) and mirrors the counts among them."""
    M = len(counts)
    if unreported == "initial":
        T = float(sum(counts))
        return {m: counts[M - 1 - m] / T for m in range(M)}
    R = [m for m in range(M) if counts[m] > 0]
    T = float(sum(counts[m] for m in R))
    return {m: counts[R[len(R) - 1 - j]] / T for j, m in enumerate(R)}


@pytest.mark.parametrize("counts", [[1, 0, 0], [8, 1, 0], [5, 3, 0], [8, 3, 1], [20, 7, 2]])
def test_fedat_unreported_initial_and_skip_weigh_the_tiers_as_documented(counts):
    """``initial``: the fastest tier weighs 0 until the slowest reports and the initial model
    (the unreported tiers) holds T_1/T, 8/9 = 0.889 at counts (8, 1, 0); ``skip``: unreported
    tiers weigh nothing and the fastest tier weighs from its first report."""
    w0 = collections.OrderedDict(a=np.zeros(2, np.float32))
    for mode in ("initial", "skip"):
        s = S.FedAT(num_tiers=3, unreported=mode).bind(num_clients=6)
        state = s.init_state(w0)
        tier_value = {}
        g = w0
        order = [m for m in range(3) for _ in range(counts[m])]
        for i, m in enumerate(order):  # tier m's model after its update: the constant i + 1
            tier_value[m] = float(i + 1)
            res = [S.ClientResult(m, collections.OrderedDict(a=np.full(2, i + 1.0, np.float32)), 10)]
            g, state = s.aggregate(i + 1, g, res, state, tier=m)
        want = _weights_by_hand(counts, mode)
        expect = sum(wt * tier_value.get(m, 0.0) for m, wt in want.items())  # initial model: 0
        np.testing.assert_allclose(g["a"], expect, rtol=1e-6)
        got = s.tier_weights(state["counts"], state["tier_models"].keys())
        assert set(got) == {m for m in want if mode == "initial" or counts[m] > 0}
        for m in got:
            assert got[m] == pytest.approx(want[m])
        if mode == "initial" and counts[2] == 0:
            assert got[0] == 0.0  # the fastest tier does not weigh yet
            assert sum(want[m] for m in range(3) if counts[m] == 0) == pytest.approx(
                counts[0] / sum(counts))  # the initial model's share
        if mode == "skip":
            assert got[0] > 0
    assert _weights_by_hand([8, 1, 0], "initial")[2] == pytest.approx(0.889, abs=5e-4)
