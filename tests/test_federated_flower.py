"""ppzoo's federated config on Flower's deployment engine, against the in-process simulator.

The deployment test starts a SuperLink and two SuperNodes on loopback (subprocesses,
insecure mode, free ports, a temporary FLWR_HOME), submits the app with ``flwr run`` and
checks that two rounds of FedAvg end where ``FederatedTrainer`` ends with the same config.
"""
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest
import yaml

from ppzoo.core import load_config
from ppzoo.core.ports import free_ports
from ppzoo.federated.flower_app import pack, unpack, write_app

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.dirname(sys.executable)


def tiny_config(path, strategy=None, partition=None, rounds=2):
    """Two clients on sklearn digits with a 4-channel SmallCNN, 3 local SGD steps a round."""
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"))
    cfg.pop("_file_", None)
    cfg.pop("lr_scheduler")
    cfg["name"] = "flower_digits"
    cfg["model"]["width"] = 4
    cfg["metrics"] = [{"type": "TopKAccuracy", "topk": [1]}]
    cfg["trainer"] = {"type": "FederatedTrainer"}
    cfg["train"] = {"batch_size": 16}
    cfg["federated"] = {
        "num_clients": 2, "clients_per_round": 2, "rounds": rounds,
        "local": {"steps": 3, "batch_size": 16,
                  "optimizer": {"type": "SGD", "learning_rate": 0.05}},
        "partition": partition or {"type": "dirichlet", "alpha": 0.5, "min_partition_size": 50},
        "strategy": strategy or {"type": "FedAvg"}}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return str(path)


def test_wire_format_round_trips_bit_for_bit():
    rng = np.random.default_rng(0)
    obj = {"w": collections.OrderedDict([("conv.weight", rng.standard_normal((2, 3)).astype(np.float32)),
                                         ("bn._mean", np.zeros(3, np.float64))]),
           "client_state": {"c_i": collections.OrderedDict(a=np.arange(4, dtype=np.int64))},
           "mu": 0.01, "n": np.int64(7), "flags": [True, None, "x"], "pair": (1, 2.5),
           3: "int key", "nan": float("nan")}
    text, arrays = pack(obj)
    back = unpack(text, arrays)
    assert isinstance(back["w"], collections.OrderedDict) and list(back["w"]) == list(obj["w"])
    for k in obj["w"]:
        assert back["w"][k].dtype == obj["w"][k].dtype
        assert back["w"][k].tobytes() == obj["w"][k].tobytes()
    assert back["client_state"]["c_i"]["a"].tolist() == [0, 1, 2, 3]
    assert back["mu"] == 0.01 and back["n"] == 7 and back["flags"] == [True, None, "x"]
    assert back["pair"] == (1, 2.5) and back[3] == "int key" and np.isnan(back["nan"])
    with pytest.raises(TypeError, match="cannot send a set"):
        pack({"s": {1, 2}})


def _wait_port(port, proc, log, timeout=600.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}):\n{_tail(log)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"port {port} not open after {timeout}s:\n{_tail(log)}")


def _tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def _stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def _rounds(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("mode") == "round"]


def test_flower_deployment_on_loopback_matches_the_simulator(tmp_path):
    cfg_path = tiny_config(tmp_path / "fed.yml")
    app = tmp_path / "app"
    flower_run, sim_run = tmp_path / "flower_run", tmp_path / "sim_run"
    write_app(str(app), cfg_path, work_dir=str(flower_run), node_wait_s=60, reply_timeout_s=120)
    link_port, node_ports = free_ports(1)[0], free_ports(2)
    home = tmp_path / "flwr_home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
        f'address = "127.0.0.1:{link_port}"\ninsecure = true\n')
    env = dict(os.environ, FLWR_HOME=str(home), PATH=BIN + os.pathsep + os.environ["PATH"],
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    procs = []

    def start(args, log):
        f = open(tmp_path / log, "w")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path),
                             start_new_session=True)
        f.close()
        procs.append(p)
        return p

    try:
        link = start([os.path.join(BIN, "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                      "--port", str(link_port), "--disable-runtime-dependency-installation"],
                     "superlink.log")
        _wait_port(link_port, link, tmp_path / "superlink.log")
        for i, port in enumerate(node_ports):
            start([os.path.join(BIN, "flower-supernode"), "--insecure",
                   "--superlink", f"127.0.0.1:{link_port}", "--port", str(port),
                   "--node-config", f"partition-id={i} num-partitions=2"], f"supernode{i}.log")
        run = start([os.path.join(BIN, "flwr"), "run", str(app), "loopback", "--stream"],
                    "flwr_run.log")
        # meanwhile, the same config in the in-process simulator
        import ppzoo  # noqa: F401  (registers the trainers)
        from ppzoo.federated.trainer import FederatedTrainer
        FederatedTrainer(load_config(cfg_path), work_dir=str(sim_run)).train()
        run.wait(timeout=1200)
        logs = "\n".join(f"--- {n}\n{_tail(tmp_path / n)}" for n in
                         ("flwr_run.log", "superlink.log", "supernode0.log", "supernode1.log"))
        assert run.returncode == 0, logs
        assert (flower_run / "metrics.jsonl").exists(), logs
        assert "Flower: 2 SuperNode(s) serve 2 clients" in _tail(flower_run / "train.log", 100000)
    finally:
        for p in reversed(procs):
            _stop(p)

    flower, sim = _rounds(flower_run), _rounds(sim_run)
    assert [r["round"] for r in flower] == [r["round"] for r in sim] == [1, 2]
    for a, b in zip(flower, sim):
        assert a["answered"] == b["answered"] == 2 and a["failed"] == 0
        assert a["bytes_up"] == b["bytes_up"] and a["bytes_down"] == b["bytes_down"]
        for key in ("train_loss", "loss", "top1"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    w_flower = paddle.load(str(flower_run / "latest" / "model.pdparams"))
    w_sim = paddle.load(str(sim_run / "latest" / "model.pdparams"))
    assert list(w_flower) == list(w_sim)
    for k in w_sim:
        np.testing.assert_allclose(np.asarray(w_flower[k]), np.asarray(w_sim[k]), rtol=1e-5,
                                   atol=1e-6, err_msg=k)


@pytest.fixture(autouse=True)
def task_identity():
    """A ServerApp process knows its run and node; give this test process one too."""
    from flwr.supercore.task_identity import TaskIdentity
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


class LoopbackGrid:
    """A Grid that hands each message to the ClientApp in this process (one node config per
    node), so the server's Flower path runs without a SuperLink; ``fail`` makes a client raise."""

    def __init__(self, node_configs, fail=()):
        from flwr.app import Context, RecordDict
        from ppzoo.federated.flower_app import components
        self.app = components().client_app
        self.nodes = {1000 + i: dict(c) for i, c in enumerate(node_configs)}
        self.fail = set(fail)
        self._ctx = lambda n: Context(run_id=1, node_id=n, node_config=self.nodes[n],
                                      state=RecordDict(), run_config={})
        self.sent = []

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, *, timeout=None):
        from ppzoo.federated import flower_app
        out = []
        for m in messages:
            n = m.metadata.dst_node_id
            self.sent.append((m.metadata.message_type, n))
            if m.metadata.message_type == "train":
                cid = flower_app._read(m.content, "task")["client_id"]
                if cid in self.fail:
                    from flwr.app import Error, Message
                    out.append(Message(Error(code=0, reason=f"client {cid} broke"), reply_to=m))
                    continue
            out.append(self.app(message=m, context=self._ctx(n)))
        return out


ONE_CLASS = {"type": "classes", "classes": [
    {"name": "a", "fraction": 1.0, "samples_per_s": 100, "latency_s": 0.01, "bandwidth_mbps": 10}]}
FAST_SLOW = {"type": "classes", "assign": "contiguous", "classes": [
    {"name": "fast", "fraction": 0.5, "samples_per_s": 1000, "latency_s": 0.01, "bandwidth_mbps": 10},
    {"name": "slow", "fraction": 0.5, "samples_per_s": 1, "latency_s": 0.01, "bandwidth_mbps": 10}]}


@pytest.mark.parametrize("strategy,extra", [
    ({"type": "Scaffold"}, {}),
    ({"type": "FedDA", "form": "adam", "full_batch_rounds": 1}, {}),
    ({"type": "FedHiSyn", "num_categories": 1}, {}),
    ({"type": "FedAvg"}, {"profile": FAST_SLOW, "round_deadline_s": 5.0}),
])
def test_flower_server_path_equals_the_simulator(tmp_path, strategy, extra):
    """FlowerFederatedTrainer (tasks packed, sent to the ClientApp, results unpacked) ends
    where FederatedTrainer ends, for strategies with client state (SCAFFOLD's c_i), extras
    (FedDA's moments, its full-batch round), ring passing (FedHiSyn) and a client the round
    deadline drops (the slow one: 3 steps x 16 samples at 1 sample/s)."""
    import ppzoo  # noqa: F401
    from ppzoo.federated.flower_app import FlowerFederatedTrainer
    from ppzoo.federated.trainer import FederatedTrainer
    cfg_path = tiny_config(tmp_path / "fed.yml", strategy=strategy)
    cfg = load_config(cfg_path)
    cfg["federated"]["profile"] = ONE_CLASS
    cfg["federated"].update(extra)
    grid = LoopbackGrid([{"partition-id": 1, "num-partitions": 2},
                         {"partition-id": 0, "num-partitions": 2}])
    flower = FlowerFederatedTrainer(cfg, work_dir=str(tmp_path / "flower")).attach(grid)
    assert flower.node_of == {0: 1001, 1: 1000}
    flower.train()
    sim = FederatedTrainer(load_config(cfg_path) | {"federated": cfg["federated"]},
                           work_dir=str(tmp_path / "sim")).train()
    for k, v in sim.global_weights.items():
        np.testing.assert_allclose(flower.global_weights[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    a, b = _rounds(tmp_path / "flower"), _rounds(tmp_path / "sim")
    assert [r["sim_time_s"] for r in a] == [r["sim_time_s"] for r in b]
    assert [r["bytes_total"] for r in a] == [r["bytes_total"] for r in b]
    assert [r["late"] for r in a] == [r["late"] for r in b]
    if "round_deadline_s" in extra:
        assert [r["answered"] for r in a] == [1, 1] and [r["late"] for r in a] == [1, 1]


def test_a_failing_flower_client_is_left_out_of_the_round(tmp_path):
    import ppzoo  # noqa: F401
    from ppzoo.federated.flower_app import FlowerFederatedTrainer
    cfg = load_config(tiny_config(tmp_path / "fed.yml"))
    grid = LoopbackGrid([{"partition-id": 0}, {"partition-id": 1}], fail={1})
    flower = FlowerFederatedTrainer(cfg, work_dir=str(tmp_path / "run")).attach(grid)
    flower.train()
    rounds = _rounds(tmp_path / "run")
    assert [(r["answered"], r["failed"]) for r in rounds] == [(1, 1), (1, 1)]
    assert "client 1 failed (ClientApp error 0: client 1 broke)" in \
        (tmp_path / "run" / "train.log").read_text()


@pytest.mark.parametrize("nodes,pattern", [
    ([{"partition-id": 0}, {}], r"have no partition-id .* but .* do"),
    ([{"partition-id": 0, "num-partitions": 3}, {"partition-id": 1}], r"num-partitions=3.*num_clients=2"),
    ([{"partition-id": 0}, {"partition-id": 5}], r"partition-id=5 outside 0\.\.1"),
])
def test_node_configs_that_do_not_fit_the_config_are_one_error(tmp_path, nodes, pattern):
    import ppzoo  # noqa: F401
    from ppzoo.core.errors import ConfigError
    from ppzoo.federated.flower_app import FlowerFederatedTrainer
    cfg = load_config(tiny_config(tmp_path / "fed.yml"))
    trainer = FlowerFederatedTrainer(cfg, work_dir=str(tmp_path / "run"))
    try:
        with pytest.raises(ConfigError, match=pattern):
            trainer.attach(LoopbackGrid(nodes), node_wait_s=1)
    finally:
        trainer._release_lock()


def test_nodes_without_partition_ids_form_a_pool(tmp_path):
    import ppzoo  # noqa: F401
    from ppzoo.federated.flower_app import FlowerFederatedTrainer
    cfg = load_config(tiny_config(tmp_path / "fed.yml"))
    cfg["federated"].update(num_clients=3, clients_per_round=3)
    trainer = FlowerFederatedTrainer(cfg, work_dir=str(tmp_path / "run"))
    try:
        assert trainer.attach(LoopbackGrid([{}, {}]), node_wait_s=1).node_of == \
            {0: 1000, 1: 1001, 2: 1000}
    finally:
        trainer._release_lock()


@pytest.mark.skipif(not os.environ.get("PPZOO_TEST_FLOWER_SIMULATION"),
                    reason="Flower's simulation engine starts Ray and its actors (about 70 s on "
                           "2 cores); set PPZOO_TEST_FLOWER_SIMULATION=1 to run it")
def test_flower_simulation_engine_matches_the_simulator(tmp_path):
    import ppzoo  # noqa: F401
    from flwr.simulation import run_simulation
    from ppzoo.federated.flower_app import client_app, make_server_app
    from ppzoo.federated.trainer import FederatedTrainer
    cfg_path = tiny_config(tmp_path / "fed.yml")
    run_simulation(server_app=make_server_app(config=cfg_path, work_dir=str(tmp_path / "flower")),
                   client_app=client_app, num_supernodes=2,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2}})
    FederatedTrainer(load_config(cfg_path), work_dir=str(tmp_path / "sim")).train()
    for a, b in zip(_rounds(tmp_path / "flower"), _rounds(tmp_path / "sim")):
        for key in ("train_loss", "loss", "top1", "bytes_total"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
