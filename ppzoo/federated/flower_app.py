"""Run a ppzoo federated config on Flower: a ServerApp and a ClientApp.

The same YAML config that ``tools/train.py`` runs in the in-process simulator
(``FederatedTrainer``) runs here on Flower's deployment engine (a SuperLink and SuperNodes
on other machines) or on its simulation engine, with the same code on both sides:

* the **ServerApp** builds ``FlowerFederatedTrainer``, the simulator itself
  (``FederatedTrainer``) with one change: a client's local work is not run in-process but
  sent to a SuperNode as a Flower ``train`` message. Client selection, the virtual clock,
  deadlines, the strategy's ``client_config`` and ``aggregate``, evaluation, ``metrics.jsonl``
  and the round checkpoints in ``latest/`` (``--resume``) are the simulator's code.
* the **ClientApp** builds the same trainer from the config the server sends with the task
  (the resolved config, so nodes need the data but not the YAML file) and runs
  ``ppzoo.federated.client.local_train``, the simulator's one client code path, on its
  partition; it replies with the ``ClientResult`` (weights, example count, metrics, extras).

Clients and nodes: a SuperNode started with ``--node-config "partition-id=<i>
num-partitions=<n>"`` is client ``i`` of ``federated.num_clients == n`` (the server waits up
to ``node-wait-s`` until every partition id is there). SuperNodes without a ``partition-id``
form a pool: client ``c`` runs on the ``c mod len(pool)``-th node (sorted by node id), which
computes partition ``c`` from the config itself. Flower's simulation engine gives its
virtual SuperNodes ``partition-id``/``num-partitions`` itself.

Synchronous rounds send every selected client's task at once (``Grid.send_and_receive``);
FedAT's tiers and FedHiSyn's ring steps run client by client. FedHiSyn's ring is hub and
spoke here: a device's weights go back to the server, which sends them to the ring's next
device (Flower has no node-to-node messages). SCAFFOLD's client control variates are kept by
the server, as in the simulator, and travel with each task.

Run config (``[tool.flwr.app.config]`` of the app folder ``write_app`` makes, or
``flwr run --run-config``): ``config`` (the YAML path on the server machine), ``opts``
(space-separated ``key=value`` overrides), ``work-dir`` (the server's run folder; empty:
``output/<name>``), ``resume`` / ``overwrite`` (as ``tools/train.py``), ``node-wait-s``
(120), ``reply-timeout-s`` (600; a client that has not answered by then is left out of the
round). Node config: ``partition-id``, ``num-partitions``, ``opts`` (overrides applied on
that node only, e.g. ``train_dataset.root=/data/cifar10``).

Wire format: named arrays travel as Flower ``ArrayRecord`` s (NumPy dtype and shape kept, bit
for bit); the structure around them (dicts, lists, numbers, strings) as JSON in a
``ConfigRecord``. Nothing is unpickled.
"""
import collections
import json
import os
import shlex
import shutil
import tempfile
import time

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from ..core.config import apply_opts, load_config
from ..core.errors import ConfigError
from ..engine.trainer import close_logger
from . import client as client_mod
from .strategies import ClientResult
from .trainer import FederatedError, FederatedTrainer

RUN_DEFAULTS = {"config": "", "opts": "", "work-dir": "", "resume": False, "overwrite": False,
                "node-wait-s": 120.0, "reply-timeout-s": 600.0}


# ---------------------------------------------------------------------------- wire format
def pack(obj):
    """``obj`` (dicts, lists, tuples, NumPy arrays and scalars, numbers, strings, None) as a
    JSON string plus an ``ArrayRecord`` holding its arrays."""
    arrays = {}

    def enc(x):
        if isinstance(x, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = x
            return {"__nd__": key}
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, dict):
            return {"__map__": [[enc(k), enc(v)] for k, v in x.items()],
                    "od": isinstance(x, collections.OrderedDict)}
        if isinstance(x, (list, tuple)):
            return {"__seq__": [enc(v) for v in x], "tuple": isinstance(x, tuple)}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot send a {type(x).__name__} to or from a Flower node")

    text = json.dumps(enc(obj))
    return text, ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})


def unpack(text, record):
    """The inverse of ``pack``."""

    def dec(x):
        if isinstance(x, dict):
            if "__nd__" in x:
                return np.array(record[x["__nd__"]].numpy(), copy=True)
            if "__map__" in x:
                items = [(_hashable(dec(k)), dec(v)) for k, v in x["__map__"]]
                return collections.OrderedDict(items) if x.get("od") else dict(items)
            if "__seq__" in x:
                seq = [dec(v) for v in x["__seq__"]]
                return tuple(seq) if x.get("tuple") else seq
        return x

    return dec(json.loads(text))


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def _payload(obj, name):
    text, arrays = pack(obj)
    return {f"{name}.json": ConfigRecord({"v": text}), f"{name}.arrays": arrays}


def _read(content, name):
    return unpack(content[f"{name}.json"]["v"], content[f"{name}.arrays"])


def _weights_record(weights):
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in weights.items()})


def _weights_of(record, order):
    missing = [k for k in order if k not in record]
    if missing:
        raise ValueError(f"the reply lacks weights {missing[:3]}")
    return collections.OrderedDict((k, np.array(record[k].numpy(), copy=True)) for k in order)


# ---------------------------------------------------------------------------- client side
_CLIENT_TRAINERS = {}


def client_trainer(cfg_text, node_opts=""):
    """The trainer a node trains with: built from the server's resolved config (plus the
    node's own ``opts``) without its validation set, once per process and config."""
    key = (cfg_text, node_opts)
    if key not in _CLIENT_TRAINERS:
        cfg = json.loads(cfg_text)
        if node_opts:
            apply_opts(cfg, shlex.split(node_opts), source="node-config opts")
        for k in ("val_dataset", "test_dataset"):
            cfg.pop(k, None)
        folder = tempfile.mkdtemp(prefix="ppzoo-flower-client-")
        try:
            trainer = FederatedTrainer(cfg, work_dir=os.path.join(folder, "run"))
            trainer._release_lock()
            close_logger(trainer.logger)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        _CLIENT_TRAINERS.clear()
        _CLIENT_TRAINERS[key] = trainer
    return _CLIENT_TRAINERS[key]


def run_task(task, weights, node_opts=""):
    """One client's local work on this node: ``local_train`` on its partition."""
    trainer = client_trainer(task["cfg"], node_opts)
    cid = int(task["client_id"])
    if not 0 <= cid < len(trainer.partitions):
        raise ConfigError(f"client id {cid} is outside federated.num_clients "
                          f"({len(trainer.partitions)})")
    return client_mod.local_train(trainer, weights, trainer.partitions[cid], task["client_config"],
                                  trainer.local_cfg, int(task["seed"]))


def handle_train(msg, context):
    """The ClientApp's ``train``: unpack the task, ``run_task``, pack the ``ClientResult``."""
    task = _read(msg.content, "task")
    order = list(task["order"])
    weights = _weights_of(msg.content["weights"], order)
    res = run_task(task, weights, str(context.node_config.get("opts", "")))
    content = {"weights": _weights_record(res.weights)}
    content.update(_payload({"client_id": res.client_id, "num_examples": int(res.num_examples),
                             "metrics": res.metrics, "extras": res.extras}, "result"))
    return Message(RecordDict(content), reply_to=msg)


#: The Flower components as a module of their own: ``write_app`` puts this text beside the
#: app's pyproject.toml, so a SuperNode answers the server's query without importing ppzoo
#: (and Paddle); ``train`` and the server's ``main`` import ppzoo when they run.
COMPONENTS = '''"""Flower components of a ppzoo federated run (ppzoo.federated.flower_app)."""
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

client_app = ClientApp()
server_app = ServerApp()


@client_app.query()
def query(msg, context):
    """Tell the server which client this node is: its node config."""
    conf = {k: v for k, v in context.node_config.items() if isinstance(v, (int, float, str, bool))}
    return Message(RecordDict({"node": ConfigRecord(conf)}), reply_to=msg)


@client_app.train()
def train(msg, context):
    from ppzoo.federated.flower_app import handle_train
    return handle_train(msg, context)


@server_app.main()
def main(grid, context):
    from ppzoo.federated.flower_app import handle_main
    handle_main(grid, context)
'''
COMPONENTS_MODULE = "ppzoo_flower_components"


def components():
    """The module ``COMPONENTS`` defines (``client_app``, ``server_app``), made in memory."""
    import types
    mod = types.ModuleType(COMPONENTS_MODULE)
    exec(compile(COMPONENTS, f"<{COMPONENTS_MODULE}>", "exec"), mod.__dict__)  # noqa: S102
    return mod


# ---------------------------------------------------------------------------- server side
class FlowerFederatedTrainer(FederatedTrainer):
    """The simulator with its clients on Flower SuperNodes (see the module doc)."""

    def attach(self, grid, node_wait_s=120.0, reply_timeout_s=600.0):
        self.grid = grid
        self.reply_timeout_s = float(reply_timeout_s) if reply_timeout_s else None
        self._cfg_text = json.dumps(self.cfg)
        self._prefetched = {}
        self._msg_no = 0
        self.node_of = self._map_nodes(float(node_wait_s))
        self.logger.info(f"Flower: {len(set(self.node_of.values()))} SuperNode(s) serve "
                         f"{self.num_clients} clients")
        return self

    def _map_nodes(self, wait_s):
        deadline = time.time() + wait_s
        known = {}
        while True:
            new = [n for n in self.grid.get_node_ids() if n not in known]
            if new:
                msgs = [Message(RecordDict({}), dst_node_id=n, message_type="query",
                                group_id="nodes") for n in new]
                for r in self.grid.send_and_receive(msgs, timeout=max(wait_s, 1.0)):
                    if not r.has_error():
                        known[r.metadata.src_node_id] = dict(r.content["node"])
            with_id = {n: c for n, c in known.items() if "partition-id" in c}
            if with_id and len(with_id) != len(known):
                raise ConfigError(f"Flower: SuperNodes {sorted(set(known) - set(with_id))} have no "
                                  f"partition-id in their node config but {sorted(with_id)} do: "
                                  f"give every node one, or none")
            if with_id:
                for n, c in with_id.items():
                    total = c.get("num-partitions")
                    if total is not None and int(total) != self.num_clients:
                        raise ConfigError(f"Flower: SuperNode {n} has num-partitions={total}, the "
                                          f"config federated.num_clients={self.num_clients}")
                    if not 0 <= int(c["partition-id"]) < self.num_clients:
                        raise ConfigError(f"Flower: SuperNode {n} has partition-id="
                                          f"{c['partition-id']} outside 0..{self.num_clients - 1}")
                node_of = {}
                for n, c in sorted(with_id.items()):
                    node_of.setdefault(int(c["partition-id"]), n)
                if len(node_of) == self.num_clients:
                    return node_of
            elif known:
                pool = sorted(known)
                return {c: pool[c % len(pool)] for c in range(self.num_clients)}
            if time.time() > deadline:
                have = sorted(int(c["partition-id"]) for c in known.values() if "partition-id" in c)
                raise FederatedError(f"Flower: waited {wait_s:g}s (node-wait-s) for SuperNodes; "
                                     f"{len(known)} answered, with partition ids {have} of "
                                     f"0..{self.num_clients - 1}")
            time.sleep(0.5)

    def _task(self, rnd, cid, weights, conf, seed):
        c = dict(conf)
        c["client_id"] = cid
        c["client_state"] = self.client_states.get(cid)
        task = {"cfg": self._cfg_text, "client_id": cid, "seed": int(seed), "round": rnd,
                "client_config": c, "order": list(weights)}
        content = {"weights": _weights_record(weights)}
        content.update(_payload(task, "task"))
        self._msg_no += 1
        return Message(RecordDict(content), dst_node_id=self.node_of[cid], message_type="train",
                       group_id=f"{rnd}.{self._msg_no}")

    def dispatch(self, rnd, jobs):
        """Send ``jobs`` [(cid, weights, conf, seed)] at once; returns {(cid, seed): result},
        a result being a ``ClientResult`` or the error text of a client that failed."""
        msgs, keys = [], {}
        for cid, weights, conf, seed in jobs:
            m = self._task(rnd, cid, weights, conf, seed)
            msgs.append(m)
            keys[m.metadata.group_id] = (cid, int(seed), list(weights))
        out = {(cid, int(seed)): f"no reply within reply-timeout-s={self.reply_timeout_s}"
               for cid, _, _, seed in jobs}
        for r in self.grid.send_and_receive(msgs, timeout=self.reply_timeout_s):
            key = keys.get(r.metadata.group_id)
            if key is None:
                continue
            cid, seed, order = key
            if r.has_error():
                out[(cid, seed)] = f"ClientApp error {r.error.code}: {r.error.reason}"
                continue
            try:
                body = _read(r.content, "result")
                out[(cid, seed)] = ClientResult(int(body["client_id"]),
                                                _weights_of(r.content["weights"], order),
                                                int(body["num_examples"]), body["metrics"],
                                                body["extras"])
            except Exception as err:  # noqa: BLE001  (a malformed reply is a failed client)
                out[(cid, seed)] = f"malformed reply: {type(err).__name__}: {err}"
        return out

    def _run_client(self, rnd, cid, weights, conf, seed, log):
        key = (cid, int(seed))
        res = self._prefetched.pop(key, None)
        if res is None:
            res = self.dispatch(rnd, [(cid, weights, conf, seed)])[key]
        if isinstance(res, str):
            self.logger.info(f"round {rnd}: client {cid} failed ({res.splitlines()[0]}); "
                             f"left out of the round")
            log.append((cid, res))
            return None
        return res

    def _before_clients(self, rnd, jobs):
        """Send a synchronous round's tasks at once (clients the virtual clock drops as late
        get none); ``_run_client`` then takes their replies."""
        self._prefetched = self.dispatch(rnd, jobs) if jobs else {}

    def _sync_round(self, rnd):
        try:
            return super()._sync_round(rnd)
        finally:
            self._prefetched = {}


def _settings(context, defaults):
    s = dict(RUN_DEFAULTS)
    s.update(defaults or {})
    s.update({k: v for k, v in (context.run_config or {}).items() if k in RUN_DEFAULTS})
    return s


def serve(grid, settings):
    """The ServerApp's work: load the config, wait for the SuperNodes, train."""
    if not settings.get("config"):
        raise ConfigError("Flower ServerApp: set the run config 'config' to the YAML file "
                          "(flwr run --run-config \"config='/path/to/cfg.yml'\")")
    cfg = load_config(settings["config"], shlex.split(str(settings.get("opts") or "")))
    trainer = FlowerFederatedTrainer(cfg, work_dir=settings.get("work-dir") or None,
                                     resume=bool(settings.get("resume")),
                                     overwrite=bool(settings.get("overwrite")))
    trainer.attach(grid, settings.get("node-wait-s"), settings.get("reply-timeout-s"))
    return trainer.train()


def handle_main(grid, context):
    """The ServerApp's ``main`` with the run config of ``flwr run``."""
    serve(grid, _settings(context, None))


def make_server_app(**defaults):
    """A ServerApp whose run-config defaults are ``defaults`` (keys of ``RUN_DEFAULTS``,
    with ``_`` or ``-``), e.g. for ``flwr.simulation.run_simulation``."""
    defaults = {k.replace("_", "-"): v for k, v in defaults.items()}
    unknown = sorted(set(defaults) - set(RUN_DEFAULTS))
    if unknown:
        raise ConfigError(f"make_server_app: unknown setting(s) {unknown}; known: "
                          f"{sorted(RUN_DEFAULTS)}")
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context):
        serve(grid, _settings(context, defaults))

    return app


_COMPONENTS = components()
client_app = _COMPONENTS.client_app
server_app = _COMPONENTS.server_app


# ---------------------------------------------------------------------------- app folder
PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.0.0"
description = "ppzoo federated config {config} on Flower"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "ppzoo"

[tool.flwr.app.components]
serverapp = "{module}:server_app"
clientapp = "{module}:client_app"

[tool.flwr.app.config]
{run_config}
"""


def write_app(folder, config, opts="", work_dir="", node_wait_s=120.0, reply_timeout_s=600.0,
              name="ppzoo-federated"):
    """Write a Flower app folder (``pyproject.toml`` and the components module) for
    ``flwr run <folder> <superlink>``.
    ppzoo itself must be importable where the SuperLink and SuperNodes run."""
    run_config = {"config": os.path.abspath(config), "opts": opts, "work-dir": work_dir,
                  "resume": False, "overwrite": False, "node-wait-s": float(node_wait_s),
                  "reply-timeout-s": float(reply_timeout_s)}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in run_config.items())
    text = PYPROJECT.format(name=name, config=os.path.basename(config), run_config=lines,
                            module=COMPONENTS_MODULE)
    os.makedirs(folder, exist_ok=True)
    _write(os.path.join(folder, COMPONENTS_MODULE + ".py"), COMPONENTS)
    path = os.path.join(folder, "pyproject.toml")
    _write(path, text)
    return path


def _write(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="Write a Flower app folder for a ppzoo federated "
                                            "config (then: flwr run <folder> <superlink>)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--out", required=True, help="the app folder to write")
    p.add_argument("--opts", default="", help="space-separated key=value overrides")
    p.add_argument("--work-dir", default="", help="the server's run folder")
    args = p.parse_args(argv)
    load_config(args.config, shlex.split(args.opts))  # a bad config fails here, not on the link
    print(write_app(args.out, args.config, args.opts, args.work_dir))


if __name__ == "__main__":
    main()
