"""Federated learning: strategies against their definitions and Flower's own objects, the
client step, the simulator's clock, faults, reproducibility and exact resume."""
import collections
import copy
import json
import sys
import types

import numpy as np
import paddle
import pytest

from ppzoo.core.errors import ConfigError
from ppzoo.federated import strategies as S
from ppzoo.federated.client import get_weights, local_train, set_weights
from ppzoo.federated.clock import DeviceProfile
from ppzoo.federated.trainer import FederatedError, FederatedTrainer


# ---------------------------------------------------------------- test doubles
# Fixed partitions and fixed device profiles, so every number below can be computed by hand.
def _partition(cfg, labels, num_clients, seed, where=None):
    if cfg.get("type") == "explicit":
        return [np.asarray(p, np.int64) for p in cfg["parts"]]
    rng = np.random.default_rng(seed)
    return np.array_split(rng.permutation(len(labels)), num_clients)


def _build_profile(cfg, num_clients, seed, where=None):
    return [DeviceProfile(*d) for d in cfg["devices"]]


@pytest.fixture(autouse=True)
def fixed_modules(monkeypatch):
    monkeypatch.setitem(sys.modules, "ppzoo.federated.partition",
                        types.SimpleNamespace(partition=_partition))
    monkeypatch.setitem(sys.modules, "ppzoo.federated.clock",
                        types.SimpleNamespace(build_profile=_build_profile))


def make_cfg(strategy, parts, rounds=2, local=None, per_round=None, profile=None, **fed):
    cfg = {
        "_file_": "test_federated.yml", "name": "fed", "seed": 3,
        "model": {"type": "SmallCNN", "num_classes": 10, "in_channels": 1, "width": 4,
                  "depth": 1, "norm": "none"},
        "loss": {"type": "CrossEntropyLoss"},
        "train_dataset": {"type": "DigitsDataset", "split": "train",
                          "transforms": [{"type": "Normalize", "mean": [0.5], "std": [0.5]},
                                         {"type": "ToCHW"}]},
        "val_dataset": {"type": "DigitsDataset", "split": "val",
                        "transforms": [{"type": "Normalize", "mean": [0.5], "std": [0.5]},
                                       {"type": "ToCHW"}]},
        "metrics": [{"type": "TopKAccuracy", "topk": [1]}],
        "eval": {"batch_size": 512},
        "trainer": {"type": "FederatedTrainer"},
        "federated": {"num_clients": len(parts), "clients_per_round": per_round or len(parts),
                      "rounds": rounds, "strategy": strategy,
                      "partition": {"type": "explicit", "parts": [list(map(int, p)) for p in parts]},
                      "local": local or {"steps": 2, "batch_size": 16,
                                         "optimizer": {"type": "SGD", "learning_rate": 0.1}}},
    }
    if profile is not None:
        cfg["federated"]["profile"] = {"devices": profile}
    cfg["federated"].update(fed)
    return cfg


def parts_of(sizes, start=0):
    out, s = [], start
    for n in sizes:
        out.append(list(range(s, s + n)))
        s += n
    return out


def train(cfg, tmp_path, name="run", **kw):
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / name), **kw)
    t.train()
    return t


def records(t):
    with open(f"{t.work_dir}/metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def batch_of(t, idx):
    samples = [t.train_dataset[int(i)] for i in idx]
    x = paddle.to_tensor(np.stack([s["image"] for s in samples]))
    y = paddle.to_tensor(np.asarray([s["label"] for s in samples], np.int64))
    return x, y


def grad_at(t, weights, idx):
    """The gradient of the mean cross-entropy over ``idx``, computed apart from the trainer."""
    set_weights(t.model, weights)
    x, y = batch_of(t, idx)
    loss = paddle.nn.functional.cross_entropy(t.model(x), y)
    names = [k for k, _ in t.model.named_parameters()]
    grads = paddle.grad(loss, [p for _, p in t.model.named_parameters()])
    return collections.OrderedDict((k, g.numpy().astype(np.float64)) for k, g in zip(names, grads))


def gd(t, weights, idx, lr, steps, extra=None):
    """Plain full-batch gradient descent on ``idx`` (``extra(w) -> grad term`` added)."""
    w = collections.OrderedDict((k, v.astype(np.float64)) for k, v in weights.items())
    for _ in range(steps):
        g = grad_at(t, collections.OrderedDict((k, v.astype(np.float32)) for k, v in w.items()), idx)
        add = extra(w) if extra else {}
        for k in g:
            w[k] = w[k] - lr * (g[k] + add.get(k, 0.0))
    return w


def assert_close(a, b, atol=2e-5):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k], np.float64), np.asarray(b[k], np.float64),
                                   atol=atol, rtol=1e-4, err_msg=k)


FULL = {"steps": 3, "batch_size": 64, "shuffle": False,
        "optimizer": {"type": "SGD", "learning_rate": 0.2}}


# ---------------------------------------------------------------- FedAvg and the client step
def test_fedavg_with_one_client_equals_centralized_sgd(tmp_path):
    cfg = make_cfg({"type": "FedAvg"}, parts_of([48]), rounds=2, local=FULL)
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = copy.deepcopy(t.global_weights)
    t.train()
    expect = gd(t, w0, range(48), 0.2, steps=6)
    assert_close(t.global_weights, expect)
    assert not np.allclose(t.global_weights["classifier.weight"], w0["classifier.weight"])


def test_fedavg_weights_clients_by_data_size(tmp_path):
    parts = parts_of([40, 20])
    cfg = make_cfg({"type": "FedAvg"}, parts, rounds=1,
                   local={"steps": 1, "batch_size": 64, "shuffle": False,
                          "optimizer": {"type": "SGD", "learning_rate": 0.2}})
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = copy.deepcopy(t.global_weights)
    t.train()
    a, b = gd(t, w0, parts[0], 0.2, 1), gd(t, w0, parts[1], 0.2, 1)
    assert_close(t.global_weights, {k: (40 * a[k] + 20 * b[k]) / 60 for k in a})


def test_fedprox_adds_the_proximal_gradient(tmp_path):
    cfg = make_cfg({"type": "FedProx", "proximal_mu": 0.5}, parts_of([32]), rounds=1, local=FULL)
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = copy.deepcopy(t.global_weights)
    t.train()
    trainable = {k for k, _ in t.model.named_parameters()}
    expect = gd(t, w0, range(32), 0.2, 3,
                extra=lambda w: {k: 0.5 * (w[k] - w0[k]) for k in w if k in trainable})
    assert_close(t.global_weights, expect)
    plain = gd(t, w0, range(32), 0.2, 3)
    assert not np.allclose(plain["classifier.weight"], expect["classifier.weight"], atol=1e-5)


def test_scaffold_client_step_is_corrected_by_the_control_variates(tmp_path):
    cfg = make_cfg({"type": "Scaffold"}, parts_of([32]), rounds=1, local=FULL)
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = t.global_weights
    rng = np.random.default_rng(0)
    c = collections.OrderedDict((k, rng.normal(0, 0.1, v.shape).astype(np.float32))
                                for k, v in w0.items())
    c_i = collections.OrderedDict((k, rng.normal(0, 0.1, v.shape).astype(np.float32))
                                  for k, v in w0.items())
    res = local_train(t, w0, np.arange(32), {"scaffold_c": c, "client_state": {"c_i": c_i}},
                      FULL, seed=1)
    expect = gd(t, w0, range(32), 0.2, 3, extra=lambda w: {k: c[k] - c_i[k] for k in c})
    assert_close(res.weights, expect)
    # option II: c_i+ = c_i - c + (x - y) / (K lr)
    new_ci = res.extras["client_state"]["c_i"]
    for k in c:
        np.testing.assert_allclose(new_ci[k], c_i[k] - c[k] + (w0[k] - res.weights[k]) / (3 * 0.2),
                                   atol=1e-5)
        np.testing.assert_allclose(res.extras["delta_c"][k], new_ci[k] - c_i[k], atol=1e-6)


def test_scaffold_on_identical_client_data_behaves_as_fedavg(tmp_path):
    parts = [list(range(40))] * 3
    local = {"steps": 2, "batch_size": 16, "shuffle": False,
             "optimizer": {"type": "SGD", "learning_rate": 0.1}}
    a = train(make_cfg({"type": "Scaffold"}, parts, rounds=3, local=local), tmp_path, "s")
    b = train(make_cfg({"type": "FedAvg"}, parts, rounds=3, local=local), tmp_path, "a")
    assert_close(a.global_weights, b.global_weights, atol=1e-6)
    c = a.server_state["c"]
    assert max(float(np.abs(v).max()) for v in c.values()) > 1e-3  # the variates did move
    for cid in range(3):  # every c_i equals c: the correction c - c_i is zero
        for k in c:
            np.testing.assert_allclose(a.client_states[cid]["c_i"][k], c[k], atol=1e-6)


def test_scaffold_server_update_of_c():
    s = S.Scaffold().bind(num_clients=4)
    w = collections.OrderedDict(a=np.zeros(3, np.float32))
    st = s.init_state(w)
    res = [S.ClientResult(i, collections.OrderedDict(a=np.full(3, i + 1.0, np.float32)), 10 * (i + 1),
                          {}, {"delta_c": collections.OrderedDict(a=np.full(3, 2.0 * (i + 1), np.float32))})
           for i in range(2)]
    new, st = s.aggregate(1, w, res, st)
    np.testing.assert_allclose(new["a"], 1.5)              # plain mean of the y_i (eta_g = 1)
    np.testing.assert_allclose(st["c"]["a"], (2 + 4) / 4)  # sum of delta c over N = 4 clients


# ---------------------------------------------------------------- FedOpt against Flower
def _flower_fit_res(weights, n):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    return FitRes(status=Status(code=Code.OK, message=""),
                  parameters=ndarrays_to_parameters(list(weights.values())), num_examples=n,
                  metrics={})


@pytest.mark.parametrize("name,kwargs", [
    ("FedAvgM", {"server_learning_rate": 0.7, "server_momentum": 0.9}),
    ("FedAvgM", {}),
    ("FedAdam", {}),
    ("FedAdam", {"eta": 0.05, "beta_1": 0.8, "beta_2": 0.95, "tau": 1e-3}),
    ("FedYogi", {}),
    ("FedAdagrad", {}),
    ("FedAdagrad", {"eta": 0.3, "tau": 1e-2}),
])
def test_server_steps_equal_flowers_strategies(name, kwargs):
    import flwr.server.strategy as fs
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    rng = np.random.default_rng(7)
    shapes = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (8, 4)}
    w = collections.OrderedDict((k, rng.normal(size=s).astype(np.float32)) for k, s in shapes.items())
    ours = S.STRATEGIES.build(dict({"type": name}, **kwargs))
    theirs = getattr(fs, name)(initial_parameters=ndarrays_to_parameters(list(w.values())), **kwargs)
    state = ours.init_state(w)
    for rnd in (1, 2, 3):
        results = [S.ClientResult(i, collections.OrderedDict(
            (k, (v + rng.normal(0, 0.1, v.shape)).astype(np.float32)) for k, v in w.items()),
            int(n), {}, {}) for i, n in enumerate((30, 50, 20))]
        w, state = ours.aggregate(rnd, w, results, state)
        params, _ = theirs.aggregate_fit(rnd, [(None, _flower_fit_res(r.weights, r.num_examples))
                                               for r in results], [])
        for a, b in zip(w.values(), parameters_to_ndarrays(params)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 sums in another order


def test_flower_defaults_are_kept():
    assert (S.FedAdam().eta, S.FedAdam().beta_1, S.FedAdam().beta_2, S.FedAdam().tau) == (0.1, 0.9, 0.99, 1e-9)
    assert (S.FedYogi().eta, S.FedYogi().tau) == (1e-2, 1e-3)
    assert (S.FedAdagrad().eta, S.FedAdagrad().beta_1) == (0.1, 0.0)
    assert (S.FedAvgM().server_learning_rate, S.FedAvgM().server_momentum) == (1.0, 0.0)


# ---------------------------------------------------------------- FedDA
def _moments(w, seed):
    rng = np.random.default_rng(seed)
    return collections.OrderedDict((k, rng.normal(0, 0.05, v.shape).astype(np.float32)) for k, v in w.items())


@pytest.mark.parametrize("form", ["sgdm", "adam", "adagrad"])
def test_fedda_full_batch_round_equals_a_centralized_full_batch_step(tmp_path, form):
    parts = parts_of([30, 50, 20])
    strat = {"type": "FedDA", "form": form, "full_batch_rounds": 1, "beta_1": 0.8, "beta_2": 0.9}
    cfg = make_cfg(strat, parts, rounds=2, per_round=1,
                   local={"steps": 2, "batch_size": 16,
                          "optimizer": {"type": "SGD", "learning_rate": 0.3}})
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = copy.deepcopy(t.global_weights)
    m0, v0 = _moments(w0, 1), collections.OrderedDict((k, np.abs(x)) for k, x in _moments(w0, 2).items())
    t.server_state = {"m": m0, "v": v0, "t": 5, "full_batch_done": 0}
    t.round = 1  # only round 2, the full-batch one, runs
    t.train()
    G = grad_at(t, w0, range(100))  # the union of the data, one centralized gradient
    b1, b2, eps, lr = 0.8, 0.9, 1e-8, 0.3
    expect = {}
    for k in G:
        m = b1 * m0[k] + (1 - b1) * G[k]
        v = b2 * v0[k] + (1 - b2) * G[k] ** 2
        step = {"sgdm": m, "adam": m / (np.sqrt(v) + eps),
                "adagrad": G[k] / (np.sqrt(v0[k] + G[k] ** 2) + eps)}[form]
        expect[k] = w0[k] - lr * step
    assert_close(t.global_weights, expect, atol=1e-5)
    assert records(t)[0]["full_batch"] is True and records(t)[0]["answered"] == 3  # every client


def test_fedda_client_applies_the_global_moments_at_every_iteration(tmp_path):
    cfg = make_cfg({"type": "FedDA", "form": "sgdm", "beta_1": 0.7}, parts_of([32]), rounds=1,
                   local=FULL)
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0, m = t.global_weights, _moments(t.global_weights, 3)
    conf = t.strategy.client_config(1, {"m": m, "v": m, "t": 0})
    res = local_train(t, w0, np.arange(32), conf, FULL, seed=0)
    w = collections.OrderedDict((k, v.astype(np.float64)) for k, v in w0.items())
    gs = []
    for _ in range(3):
        g = grad_at(t, collections.OrderedDict((k, v.astype(np.float32)) for k, v in w.items()), range(32))
        gs.append(g)
        for k in w:
            w[k] = w[k] - 0.2 * (0.7 * m[k] + 0.3 * g[k])
    assert_close(res.weights, w)
    np.testing.assert_allclose(res.extras["grad_mean"]["classifier.bias"],
                               np.mean([g["classifier.bias"] for g in gs], axis=0), atol=1e-5)


@pytest.mark.parametrize("form", ["sgdm", "adam", "adagrad"])
def test_fedda_server_moves_the_moments_with_the_clients_gradient_statistics(form):
    s = S.FedDA(form=form, beta_1=0.8, beta_2=0.9).bind(num_clients=2, total_rounds=10)
    w = collections.OrderedDict(a=np.zeros(2, np.float32))
    st = {"m": collections.OrderedDict(a=np.array([1.0, -1.0])),
          "v": collections.OrderedDict(a=np.array([2.0, 0.5])), "t": 0}
    res = [S.ClientResult(i, collections.OrderedDict(a=np.full(2, float(i + 1), np.float32)), n, {},
                          {"grad_mean": collections.OrderedDict(a=np.array([g, -g])),
                           "grad_sq_mean": collections.OrderedDict(a=np.array([g * g + 1, g * g]))})
           for i, (n, g) in enumerate(((10, 1.0), (30, 3.0)))]
    new, st2 = s.aggregate(1, w, res, st)
    gbar, g2bar = np.array([2.5, -2.5]), np.array([7.0 + 1, 7.0])  # (10 x + 30 y) / 40
    np.testing.assert_allclose(st2["m"]["a"], 0.8 * np.array([1.0, -1.0]) + 0.2 * gbar)
    v = {"sgdm": [2.0, 0.5], "adam": 0.9 * np.array([2.0, 0.5]) + 0.1 * g2bar,
         "adagrad": np.array([2.0, 0.5]) + g2bar}[form]
    np.testing.assert_allclose(st2["v"]["a"], v)
    np.testing.assert_allclose(new["a"], 1.75)  # eta_g = 1: the FedAvg of the client weights
    assert st2["t"] == 1


# ---------------------------------------------------------------- FedHiSyn and FedAT
def test_fedhisyn_one_device_equals_local_sgd(tmp_path):
    # one pass = 3 full-batch steps of 48 samples = 144 samples at 144/s: 1 s; no transfer cost
    cfg = make_cfg({"type": "FedHiSyn", "num_categories": 1, "interval_s": 3.5}, parts_of([48]),
                   rounds=1, local=FULL, profile=[["d", 144.0, 0.0, 1e18]])
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = copy.deepcopy(t.global_weights)
    t.train()
    assert records(t)[0]["ring_steps"] == {"0": 3}
    assert_close(t.global_weights, gd(t, w0, range(48), 0.2, steps=9))


def test_fedhisyn_ring_visits_every_device_of_a_category(tmp_path):
    # a pass is 8 samples: 0.25 s on a fast device, 1 s on a slow one (the interval)
    fast = [["fast", 32.0, 0.0, 1e18]] * 4
    slow = [["slow", 8.0, 0.0, 1e18]] * 2
    local = {"steps": 1, "batch_size": 8, "optimizer": {"type": "SGD", "learning_rate": 0.05}}
    cfg = make_cfg({"type": "FedHiSyn", "num_categories": 2, "cluster": "kmeans"},
                   parts_of([16] * 6), rounds=1,
                   local=local, profile=fast + slow)
    t = train(cfg, tmp_path)
    assert t.sched["category"] == [0, 0, 0, 0, 1, 1]
    steps = records(t)[0]["ring_steps"]
    assert steps == {"0": 4, "1": 1}  # the fast ring passes 3 times within the slow one's step
    assert records(t)[0]["round_time_s"] == pytest.approx(1.0)
    for c in range(4):
        visited = t.last_ring_trace[c]
        assert set(visited) == {0, 1, 2, 3} and visited[-1] == c
    for c in (4, 5):
        assert t.last_ring_trace[c] == [c]


def test_fedhisyn_ring_passes_the_models_and_aggregates_by_data_size(tmp_path):
    # two devices of one speed in one ring, two ring steps in the 2 s interval: each device's
    # final model trained on its predecessor's data first, then on its own
    parts = parts_of([24, 40])
    local = {"steps": 2, "batch_size": 64, "shuffle": False,
             "optimizer": {"type": "SGD", "learning_rate": 0.2}}
    cfg = make_cfg({"type": "FedHiSyn", "num_categories": 1, "interval_s": 2.0}, parts, rounds=1,
                   local=local, profile=[["d", 48.0, 0.0, 1e18], ["e", 80.0, 0.0, 1e18]])
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "r"))
    w0 = copy.deepcopy(t.global_weights)
    t.train()
    assert records(t)[0]["ring_steps"] == {"0": 2}
    f32 = lambda w: collections.OrderedDict((k, v.astype(np.float32)) for k, v in w.items())  # noqa: E731
    m0 = gd(t, f32(gd(t, w0, parts[1], 0.2, 2)), parts[0], 0.2, 2)  # held by device 0 at the end
    m1 = gd(t, f32(gd(t, w0, parts[0], 0.2, 2)), parts[1], 0.2, 2)
    assert_close(t.global_weights, {k: (24 * m0[k] + 40 * m1[k]) / 64 for k in m0})


def test_fedhisyn_clustering_by_speed():
    s = S.FedHiSyn(num_categories=3, cluster="kmeans")
    cat = s.categories([1.0, 1.1, 10.0, 0.9, 11.0, 100.0, 95.0])
    assert list(cat) == [0, 0, 1, 0, 1, 2, 2]
    q = S.FedHiSyn(num_categories=2).categories([5.0, 1.0, 4.0, 2.0])
    assert list(q) == [1, 0, 1, 0]


def test_fedat_tiers_run_asynchronously_with_cross_weighting(tmp_path):
    # two tiers; one round of local work is 16 samples: fast 1 s, slow 2.5 s, free transfers
    profile = [["fast", 16.0, 0.0, 1e18]] * 2 + [["slow", 6.4, 0.0, 1e18]] * 2
    local = {"steps": 1, "batch_size": 16, "optimizer": {"type": "SGD", "learning_rate": 0.05}}
    cfg = make_cfg({"type": "FedAT", "num_tiers": 2}, parts_of([16] * 4), rounds=4, local=local,
                   profile=profile)
    t = train(cfg, tmp_path)
    recs = records(t)
    assert [r["tier"] for r in recs] == [0, 0, 1, 0]
    np.testing.assert_allclose([r["sim_time_s"] for r in recs], [1.0, 2.0, 2.5, 3.0])
    assert t.server_state["counts"] == [3, 1]
    # until the slow tier reports, the fast tier weighs T_2 / T = 0: rounds 1-2 leave the
    # initial global model, so its validation loss, unchanged
    assert recs[0]["loss"] == recs[1]["loss"] and recs[2]["loss"] != recs[1]["loss"]
    # cross weighting: the fast tier (3 updates) gets the slow tier's count, and vice versa
    tw = t.strategy.tier_weights([3, 1], [0, 1])
    assert tw == {0: 0.25, 1: 0.75}
    tm = t.server_state["tier_models"]
    assert_close(t.global_weights, {k: 0.25 * tm[0][k] + 0.75 * tm[1][k] for k in tm[0]}, atol=1e-6)
    # a tier restarts from the global model of its finish: tier 0 finished last
    assert all(np.array_equal(t.sched["running"][0]["weights"][k], t.global_weights[k])
               for k in t.global_weights)


def _paper_fedat_global(tier_models, counts):
    """Chai et al., Eq. of the cross-tier aggregation: w = sum_m T_{M+1-m}/T w_tier_m
    (tiers 1..M fastest first), computed apart from the strategy."""
    M, T = len(counts), float(sum(counts))
    out = {}
    for k in tier_models[0]:
        out[k] = sum(counts[M - 1 - m] / T * tier_models[m][k].astype(np.float64) for m in range(M))
    return out


def test_fedat_global_model_is_the_papers_cross_tier_sum():
    rng = np.random.default_rng(3)
    w0 = collections.OrderedDict(a=rng.normal(size=(3, 2)).astype("float32"),
                                 b=rng.normal(size=4).astype("float32"))

    def result(cid, n):
        w = collections.OrderedDict((k, rng.normal(size=v.shape).astype("float32")) for k, v in w0.items())
        return S.ClientResult(cid, w, n)

    s = S.FedAT(num_tiers=3).bind(num_clients=6)
    state = s.init_state(w0)
    models = {m: dict(w0) for m in range(3)}  # the paper's tier models start at w0
    counts = [0, 0, 0]
    g = w0
    for tier in [0, 0, 1, 0, 0, 2, 1, 0]:
        res = [result(2 * tier, 10), result(2 * tier + 1, 30)]
        g, state = s.aggregate(1, g, res, state, tier=tier)
        models[tier] = {k: (10 * res[0].weights[k].astype(np.float64) + 30 * res[1].weights[k]) / 40
                        for k in w0}
        counts[tier] += 1
        assert state["counts"] == counts
        assert_close(g, _paper_fedat_global(models, counts), atol=1e-6)
    # the first fast-tier update has weight T_3 / T = 0: the global model stays at w0
    g1, _ = s.aggregate(1, w0, [result(0, 10)], s.init_state(w0), tier=0)
    assert all(np.array_equal(g1[k], w0[k]) for k in w0)
    # unreported: skip sums only the tiers that reported, mirrored among them
    s2 = S.FedAT(num_tiers=3, unreported="skip").bind(num_clients=6)
    st2 = s2.init_state(w0)
    r = result(0, 10)
    g2, st2 = s2.aggregate(1, w0, [r], st2, tier=0)
    assert all(np.array_equal(g2[k], r.weights[k]) for k in w0)
    r2 = result(2, 10)
    g3, st2 = s2.aggregate(2, g2, [r2], st2, tier=1)
    assert_close(g3, {k: 0.5 * r.weights[k] + 0.5 * r2.weights[k] for k in w0}, atol=1e-6)
    with pytest.raises(ConfigError, match="unreported"):
        S.FedAT(unreported="zero")


# ---------------------------------------------------------------- clock, faults, config
def test_round_times_and_bytes_by_hand(tmp_path):
    # client c: latency l, bandwidth b, speed s; one round = 2 steps of 16 samples = 32 samples
    profile = [["a", 32.0, 0.1, 1e6], ["b", 16.0, 0.2, 2e6], ["c", 64.0, 0.0, 1e5]]
    cfg = make_cfg({"type": "FedAvg"}, parts_of([40, 40, 40]), rounds=2, profile=profile)
    t = train(cfg, tmp_path)
    nb = sum(v.nbytes for v in t.global_weights.values())
    times = [0.1 + nb / 1e6 + 32 / 32.0 + 0.1 + nb / 1e6,
             0.2 + nb / 2e6 + 32 / 16.0 + 0.2 + nb / 2e6,
             nb / 1e5 + 32 / 64.0 + nb / 1e5]
    recs = records(t)
    np.testing.assert_allclose(recs[0]["round_time_s"], max(times))
    np.testing.assert_allclose(recs[1]["sim_time_s"], 2 * max(times))
    assert recs[0]["bytes_down"] == 3 * nb and recs[0]["bytes_up"] == 3 * nb
    assert {"top1", "loss", "sim_time_s", "bytes_total"} <= set(recs[0])


def test_deadline_and_raising_clients_are_left_out(tmp_path, monkeypatch):
    profile = [["a", 1e6, 0.0, 1e18], ["b", 1e6, 0.0, 1e18], ["slow", 1.0, 0.0, 1e18]]
    cfg = make_cfg({"type": "FedAvg"}, parts_of([20, 20, 20]), rounds=2, profile=profile,
                   round_deadline_s=5.0, min_clients=1)
    from ppzoo.federated import client as client_mod
    real = client_mod.local_train

    def flaky(trainer, w, idx, conf, local, seed):
        if conf["client_id"] == 1:
            raise RuntimeError("device lost")
        return real(trainer, w, idx, conf, local, seed)

    monkeypatch.setattr(client_mod, "local_train", flaky)
    t = train(cfg, tmp_path)
    r = records(t)[0]
    assert (r["answered"], r["failed"], r["late"]) == (1, 1, 1)
    assert r["round_time_s"] == 5.0  # the server waited until the deadline
    log = open(f"{t.work_dir}/train.log").read()
    assert "client 1 failed (RuntimeError: device lost)" in log and "client 2 would take" in log
    cfg["federated"]["min_clients"] = 2
    with pytest.raises(FederatedError, match=r"only 1 of 3 clients answered.*min_clients is 2"):
        train(cfg, tmp_path, "strict")


def test_config_errors_name_the_key(tmp_path):
    cfg = make_cfg({"type": "FedAvg"}, parts_of([10, 10]), per_round=3)
    with pytest.raises(ConfigError, match="clients_per_round"):
        FederatedTrainer(cfg, work_dir=str(tmp_path / "a"))
    cfg = make_cfg({"type": "FedAvg"}, parts_of([10, 10]))
    cfg["federated"]["local"]["epoch"] = 1
    with pytest.raises(ConfigError, match="federated.local.epoch"):
        FederatedTrainer(cfg, work_dir=str(tmp_path / "b"))
    cfg = make_cfg({"type": "FedHiSyn"}, parts_of([10, 10]))
    with pytest.raises(ConfigError, match="federated.profile"):
        FederatedTrainer(cfg, work_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="FedDA.form"):
        FederatedTrainer(make_cfg({"type": "FedDA", "form": "rmsprop"}, parts_of([10, 10])),
                         work_dir=str(tmp_path / "d"))


# ---------------------------------------------------------------- reproducibility and resume
PROFILE4 = [["a", 400.0, 0.01, 1e6], ["b", 200.0, 0.02, 1e6], ["c", 100.0, 0.0, 5e5],
            ["d", 50.0, 0.05, 1e6]]


def _strip(recs):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in recs]


@pytest.mark.parametrize("strategy", [{"type": "Scaffold"}, {"type": "FedHiSyn", "num_categories": 2},
                                      {"type": "FedDA", "form": "adam", "full_batch_rounds": 1},
                                      {"type": "FedAT", "num_tiers": 2}, {"type": "FedAdam"}],
                         ids=lambda s: s["type"])
def test_resume_after_a_kill_mid_round_equals_an_uninterrupted_run(tmp_path, monkeypatch, strategy):
    cfg = make_cfg(strategy, parts_of([30, 30, 30, 30]), rounds=3, per_round=3, profile=PROFILE4)
    full = train(cfg, tmp_path, "full")
    again = train(cfg, tmp_path, "again")  # bit-reproducible under the seed
    for k in full.global_weights:
        assert np.array_equal(full.global_weights[k], again.global_weights[k]), k
    assert _strip(records(full)) == _strip(records(again))

    from ppzoo.federated import client as client_mod
    real, calls = client_mod.local_train, []

    class Killed(BaseException):
        pass

    def dies_in_round_3(trainer, *a, **kw):
        if trainer.round == 2:
            calls.append(1)
            if len(calls) == 2:
                raise Killed()
        return real(trainer, *a, **kw)

    monkeypatch.setattr(client_mod, "local_train", dies_in_round_3)
    with pytest.raises(Killed):
        train(cfg, tmp_path, "cut")
    monkeypatch.setattr(client_mod, "local_train", real)
    resumed = train(cfg, tmp_path, "cut", resume=True)
    assert resumed.round == 3
    for k in full.global_weights:
        assert np.array_equal(full.global_weights[k], resumed.global_weights[k]), k
    assert _strip(records(resumed)) == _strip(records(full))
    if strategy["type"] == "Scaffold":
        for c in full.client_states:
            for k in full.client_states[c]["c_i"]:
                assert np.array_equal(full.client_states[c]["c_i"][k], resumed.client_states[c]["c_i"][k])


def test_resume_refuses_a_changed_federated_setting(tmp_path):
    from ppzoo.engine.rundir import RunFolderError
    cfg = make_cfg({"type": "FedAvg"}, parts_of([10, 10]), rounds=1)
    train(cfg, tmp_path, "r")
    cfg["federated"]["strategy"] = {"type": "FedProx"}
    with pytest.raises(RunFolderError, match="federated.strategy"):
        FederatedTrainer(cfg, work_dir=str(tmp_path / "r"), resume=True)
    cfg["federated"]["strategy"] = {"type": "FedAvg"}
    cfg["federated"]["rounds"] = 2  # train longer: allowed
    t = train(cfg, tmp_path, "r", resume=True)
    assert [r["round"] for r in records(t)] == [1, 2]


def test_a_signal_stops_after_the_round_and_resume_continues(tmp_path):
    from ppzoo.engine.rundir import Interrupted
    cfg = make_cfg({"type": "FedAvgM", "server_momentum": 0.9}, parts_of([20, 20, 20]), rounds=3,
                   per_round=2)
    full = train(cfg, tmp_path, "full")
    t = FederatedTrainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "cut"))

    def on_record(rec):  # what the SIGTERM handler does, after round 1's record
        if rec.get("round") == 1:
            t._interrupt, t.stop_requested = "SIGTERM", True

    t.metric_listeners.append(on_record)
    with pytest.raises(Interrupted, match="latest/ holds round 1") as err:
        t.train()
    assert err.value.exit_code == 130
    resumed = train(cfg, tmp_path, "cut", resume=True)
    for k in full.global_weights:
        assert np.array_equal(full.global_weights[k], resumed.global_weights[k]), k
    assert _strip(records(resumed)) == _strip(records(full))


def test_a_damaged_file_in_a_clients_data_stops_the_run_with_one_line(tmp_path, monkeypatch):
    """A RuntimeError is a simulated device failure (the client is left out); a DataError is a
    damaged file on this machine, the same in every round: it stops the run naming the file."""
    from ppzoo.core.errors import DataError
    cfg = make_cfg({"type": "FedAvg"}, parts_of([20, 20, 20]), rounds=2, min_clients=1)
    from ppzoo.federated import client as client_mod
    real = client_mod.local_train

    def damaged(trainer, w, idx, conf, local, seed):
        if conf["client_id"] == 1:
            raise DataError("cannot read image /data/cifar10/train/cat/0042.jpg: Truncated File Read")
        return real(trainer, w, idx, conf, local, seed)

    monkeypatch.setattr(client_mod, "local_train", damaged)
    with pytest.raises(DataError, match=r"^round 1, client 1: cannot read image .*0042\.jpg"):
        train(cfg, tmp_path)
