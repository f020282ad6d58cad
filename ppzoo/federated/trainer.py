"""``FederatedTrainer``: a seeded federated-learning simulator with a virtual clock.

``python tools/train.py -c configs/federated/<name>.yml`` with ``trainer: {type:
FederatedTrainer}`` and a ``federated:`` section.  One model object serves every client:
its weights are swapped per client, and each client trains through the engine's own
``train_step``/``forward_loss`` (``ppzoo.federated.client.local_train``).  The server
strategy (``ppzoo.federated.strategies``) is a pure function over named NumPy arrays.

Per round the trainer selects clients (from the seed and the round only), simulates the
round on a virtual clock built from the device profile (``federated.profile``), lets
clients that raise or miss ``round_deadline_s`` drop out (logged, counted), aggregates,
evaluates the global model with the engine's evaluator every ``eval_every`` rounds, appends
one ``"mode": "round"`` record to ``metrics.jsonl`` and writes the round state atomically to
``latest/`` (global weights, server state with SCAFFOLD's control variates or FedDA's
moments, every client's own state, the clock and the tier/ring schedule).  Every random
choice derives from (seed, round, client), so ``--resume`` at a round boundary ends equal
to an uninterrupted run.

Schedules: ``sync`` (FedAvg family, SCAFFOLD, FedDA), ``tiers`` (FedAT: event by event,
one tier update per round) and ``rings`` (FedHiSyn: ring steps inside categories within the
round's interval, synchronous upload).  See docs/federated.md.
"""
import collections
import json
import math
import os
import time

import numpy as np

from ..core import safeload
from ..core.builder import DATASETS, TRAINERS
from ..core.config import check_keys, save_config
from ..core.errors import ConfigError, DataError, PPZooError, WeightsError
from ..engine import checkpoint as ckpt
from ..engine import rundir
from ..engine.trainer import Trainer
from . import client as client_mod
from .client import LOCAL_KEYS, get_weights, samples_of_work, set_weights
from .clock import VirtualClock
from .strategies import FedDA, build_strategy, nbytes

FED_KEYS = {"num_clients", "clients_per_round", "rounds", "local", "partition", "strategy",
            "profile", "min_clients", "round_deadline_s", "eval_every"}
#: federated keys a resume may change (the rest change what latest/ means)
RESUMABLE_FED_KEYS = ("federated.rounds", "federated.eval_every")
STATE_FILE = "federated_state.pdstate"


class FederatedError(PPZooError):
    """A round cannot go on (fewer clients answered than ``federated.min_clients``)."""


def _int(section, key, source, default=None, minimum=1, prefix="federated."):
    v = section.get(key, default)
    if v is None:
        raise ConfigError(f"{source}: {prefix}{key} is required")
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ConfigError(f"{source}: {prefix}{key} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def check_federated_config(cfg):
    """The ``federated:`` section, checked (one ConfigError naming the key and value)."""
    source = cfg.get("_file_", "<config>")
    fed = cfg.get("federated")
    if not isinstance(fed, dict):
        raise ConfigError(f"{source}: FederatedTrainer needs a 'federated:' mapping")
    check_keys(fed, FED_KEYS, "federated.", source)
    n = _int(fed, "num_clients", source)
    k = _int(fed, "clients_per_round", source, default=n)
    if k > n:
        raise ConfigError(f"{source}: federated.clients_per_round ({k}) exceeds "
                          f"federated.num_clients ({n})")
    _int(fed, "rounds", source)
    _int(fed, "eval_every", source, default=1)
    m = _int(fed, "min_clients", source, default=1)
    if m > k:
        raise ConfigError(f"{source}: federated.min_clients ({m}) exceeds "
                          f"federated.clients_per_round ({k})")
    d = fed.get("round_deadline_s")
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or d <= 0):
        raise ConfigError(f"{source}: federated.round_deadline_s must be a number > 0 or null, got {d!r}")
    local = fed.get("local") or {}
    if not isinstance(local, dict):
        raise ConfigError(f"{source}: federated.local must be a mapping, got {local!r}")
    check_keys(local, LOCAL_KEYS, "federated.local.", source)
    if "epochs" in local and "steps" in local:
        raise ConfigError(f"{source}: federated.local: set epochs or steps, not both")
    for key in ("epochs", "steps", "batch_size"):
        if key in local:
            _int(local, key, source, prefix="federated.local.")
    opt = local.get("optimizer", cfg.get("optimizer"))
    if opt is not None and (not isinstance(opt, dict) or "type" not in opt):
        raise ConfigError(f"{source}: federated.local.optimizer needs a type (e.g. SGD), got {opt!r}")
    if "strategy" not in fed:
        raise ConfigError(f"{source}: federated.strategy is required (e.g. {{type: FedAvg}})")
    return fed


def _seed_of(*parts):
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


@TRAINERS.register()
class FederatedTrainer(Trainer):
    """Federated rounds over one model; see the module docstring and docs/federated.md."""
    extra_config_keys = {"federated"}

    def __init__(self, cfg, work_dir=None, resume=False, build_train=True, overwrite=False):
        self.fed_cfg = check_federated_config(cfg)
        self._eval_loss = None
        super().__init__(cfg, work_dir=work_dir, resume=resume, build_train=build_train,
                         overwrite=overwrite)

    # ------------------------------------------------------------------ building
    def _check_resume_folder(self):
        ok = rundir.check_resume(self.work_dir, self.cfg)
        bad = [line for line in ok if line.startswith("federated.")
               and not any(line.startswith(k + ":") for k in RESUMABLE_FED_KEYS)]
        if bad:
            raise rundir.RunFolderError(
                f"--resume: the config changes the federated setting latest/ was trained with: "
                f"{'; '.join(bad)} (only federated.rounds and federated.eval_every may change)")
        return ok

    def _build_training(self, resume):
        cfg, fed = self.cfg, self.fed_cfg
        if not cfg.get("train_dataset"):
            raise ConfigError(f"{self.source}: the config has no 'train_dataset' section")
        self.train_dataset = DATASETS.build(cfg["train_dataset"], key_path="train_dataset")
        if hasattr(self.train_dataset, "seed"):
            self.train_dataset.seed = self.seed
        self.num_clients = int(fed["num_clients"])
        self.clients_per_round = int(fed.get("clients_per_round", self.num_clients))
        self.total_rounds = self.total_iters = int(fed["rounds"])
        self.eval_every = int(fed.get("eval_every", 1))
        self.min_clients = int(fed.get("min_clients", 1))
        self.deadline = fed.get("round_deadline_s")
        self.deadline = None if self.deadline is None else float(self.deadline)
        self.local_cfg = dict(fed.get("local") or {})
        self.local_cfg.setdefault("optimizer", cfg.get("optimizer") or {"type": "SGD", "learning_rate": 0.01})
        self.local_lr = float(self.local_cfg["optimizer"].get("learning_rate", 0.01))

        from ..active.data import dataset_labels
        from .partition import partition
        labels = dataset_labels(self.train_dataset)
        parts = partition(dict(fed.get("partition") or {"type": "iid"}), labels,
                          self.num_clients, self.seed, where="federated.partition")
        if len(parts) != self.num_clients:
            raise ConfigError(f"{self.source}: federated.partition gave {len(parts)} partitions "
                              f"for {self.num_clients} clients")
        self.partitions = [np.asarray(p, dtype=np.int64) for p in parts]
        self.profiles = None
        if fed.get("profile") is not None:
            from .clock import build_profile
            self.profiles = build_profile(dict(fed["profile"]), self.num_clients, self.seed,
                                          where="federated.profile")
        self.strategy = build_strategy(fed["strategy"], self.source)
        trainable = [k for k, p in self.model.named_parameters() if not p.stop_gradient]
        if isinstance(self.strategy, FedDA):
            self.strategy.bind(self.num_clients, trainable, total_rounds=self.total_rounds)
        else:
            self.strategy.bind(self.num_clients, trainable)
        if isinstance(self.strategy, FedDA):
            ignored = sorted(set(self.local_cfg["optimizer"]) - {"type", "learning_rate"})
            self.logger.info("FedDA: clients step with the server's moments (form "
                             f"{self.strategy.form}); federated.local.optimizer contributes only "
                             "its learning_rate" + (f" ({', '.join(ignored)} unused)" if ignored else ""))
        if self.strategy.schedule in ("tiers", "rings") and self.profiles is None:
            raise ConfigError(f"{self.source}: {type(self.strategy).__name__} schedules clients by "
                              f"their speed: set federated.profile")
        # the engine's step reads these; local_train swaps in each client's optimizer
        self.optimizer, self.lr = None, self.local_lr
        self.amp, self.scaler, self.train_model = False, None, self.model
        self.hooks = []
        self.round, self.clock = 0, 0.0
        self.global_weights = get_weights(self.model)
        self.server_state = self.strategy.init_state(self.global_weights)
        self.client_states = {}
        self.sched = {}
        self._events = None  # FedAT's pending tier finishes (its state lives in sched)
        self.last_ring_trace = {}
        if resume:
            self.resume()
            if isinstance(self.strategy, FedDA):  # refuse before config.yml is rewritten
                self.strategy.check_resumed(self.round + 1, self.server_state)
        if self.is_main:
            for line in getattr(self, "_config_changes", []):
                self.logger.info(f"resume with a changed config: {line}")
            save_config(self.cfg, os.path.join(self.work_dir, "config.yml"))
        self.logger.info(
            f"federated: {self.num_clients} clients, {self.clients_per_round} a round, "
            f"{self.total_rounds} rounds, strategy {type(self.strategy).__name__} "
            f"({self.strategy.schedule}), partition sizes {min(map(len, self.partitions))}.."
            f"{max(map(len, self.partitions))}")

    # ------------------------------------------------------------------ state
    def state(self):
        return {"iter": self.round, "round": self.round, "clock": self.clock, "seed": self.seed,
                "total_rounds": self.total_rounds}

    def save_checkpoint(self, name="latest", with_optimizer=None):
        if not self.is_main:
            return
        set_weights(self.model, self.global_weights)
        extra = {STATE_FILE: {"server_state": self.server_state,
                              "client_states": self.client_states, "sched": self.sched}}
        ckpt.save_checkpoint(os.path.join(self.work_dir, name), self.model.state_dict(), None,
                             self.state(), extra=extra)

    def resume(self):
        _, state, found = self.load_latest()
        self.global_weights = get_weights(self.model)
        try:
            extra = safeload.load(os.path.join(found, STATE_FILE), return_numpy=True)
        except Exception as err:  # noqa: BLE001
            raise WeightsError(f"--resume: {found}/{STATE_FILE} cannot be read: {err}") from None
        self.server_state = extra["server_state"]
        self.client_states = {int(k): v for k, v in (extra.get("client_states") or {}).items()}
        self.sched = extra.get("sched") or {}
        self.round = self.iter = int(state["round"])
        self.clock = float(state["clock"])
        self.tidy_resumed_folder(self.round, unit="round")
        self.logger.info(f"resumed from {found} at round {self.round} (clock {self.clock:.3f}s)")

    def _stop_on_interrupt(self):
        msg = (f"interrupted by {self._interrupt} at round {self.round}/{self.total_rounds}; "
               f"latest/ holds round {self.round}, continue with --resume")
        self.logger.info(msg)
        raise rundir.Interrupted(f"{msg} ({self.work_dir})")

    # ------------------------------------------------------------------ clock
    def _profile(self, cid):
        return None if self.profiles is None else self.profiles[cid]

    def client_time(self, cid, down_bytes, samples, up_bytes):
        """Virtual seconds of one client's round: download, local compute, upload."""
        p = self._profile(cid)
        return 0.0 if p is None else float(p.round_s(samples, down_bytes, up_bytes))

    def _trainable_bytes(self):
        names = set(self.strategy.trainable or self.global_weights)
        return sum(int(v.nbytes) for k, v in self.global_weights.items() if k in names)

    def upload_bytes(self, rnd):
        """What a client sends: its weights plus the strategy's extras (SCAFFOLD's delta c,
        FedDA's gradient mean and mean square), or only the gradient in a full-batch round."""
        s = self.strategy
        if isinstance(s, FedDA):
            return self._trainable_bytes() if s.is_full_batch(rnd) else \
                nbytes(self.global_weights) + 2 * self._trainable_bytes()
        if "scaffold_c" in s.client_config(rnd, self.server_state):
            return nbytes(self.global_weights) + self._trainable_bytes()
        return nbytes(self.global_weights)

    def _work(self, cid, rnd):
        n = len(self.partitions[cid])
        if isinstance(self.strategy, FedDA) and self.strategy.is_full_batch(rnd):
            return n
        return samples_of_work(n, self.local_cfg)

    # ------------------------------------------------------------------ clients
    def select_clients(self, rnd, pool=None, k=None, salt=0):
        pool = np.arange(self.num_clients) if pool is None else np.asarray(pool)
        k = self.clients_per_round if k is None else k
        if k >= len(pool):
            return sorted(int(c) for c in pool)
        rng = np.random.default_rng(_seed_of(self.seed, 7919, rnd, salt))
        return sorted(int(c) for c in rng.choice(pool, size=k, replace=False))

    def client_seed(self, rnd, cid, step=0):
        return _seed_of(self.seed, rnd, cid, step) % (2 ** 31)

    def _run_client(self, rnd, cid, weights, conf, seed, log):
        """local_train for one client; a client that raises is logged and returns None, but a
        DataError (a damaged file here, the same in every round) stops the run with one line."""
        c = dict(conf)
        c["client_id"] = cid
        c["client_state"] = self.client_states.get(cid)
        try:
            return client_mod.local_train(self, weights, self.partitions[cid], c, self.local_cfg, seed)
        except (KeyboardInterrupt, SystemExit):
            raise
        except DataError as err:  # a damaged file on this machine: the user must fix it
            raise DataError(f"round {rnd}, client {cid}: {err}") from None
        except Exception as err:  # noqa: BLE001  (a failing client is left out of the round)
            msg = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self.logger.info(f"round {rnd}: client {cid} failed ({msg}); left out of the round")
            log.append((cid, msg))
            return None

    def _need(self, rnd, answered, asked, failures, what="round"):
        need = min(self.min_clients, asked)
        if answered < need:
            detail = "; ".join(f"client {c}: {m}" for c, m in failures[:3])
            raise FederatedError(
                f"{what} {rnd}: only {answered} of {asked} clients answered, federated.min_clients "
                f"is {self.min_clients}" + (f" ({detail})" if detail else "")
                + f"; {self._latest_note()}")

    def _latest_note(self):
        """What ``latest/`` holds on disk now (it may not have been written yet)."""
        found = ckpt.resolve_checkpoint_dir(os.path.join(self.work_dir, "latest"))
        if found is None:
            return "no latest/ written yet (a rerun starts afresh)"
        try:
            with open(os.path.join(found, "state.json"), encoding="utf-8") as f:
                return f"latest/ holds round {int(json.load(f)['round'])}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"latest/ is at {found}"

    def _accept(self, res):
        state = res.extras.pop("client_state", None)
        if state is not None:
            self.client_states[res.client_id] = state

    def _aggregate(self, rnd, results, **kw):
        if isinstance(self.strategy, FedDA):
            kw["client_lr"] = self.local_lr
        return self.strategy.aggregate(rnd, self.global_weights, results, self.server_state, **kw)

    # ------------------------------------------------------------------ schedules
    def _before_clients(self, rnd, jobs):
        """Called with a synchronous round's jobs [(cid, weights, conf, seed)] before any runs;
        a deployment that trains clients elsewhere sends them all here, at once."""

    def _sync_round(self, rnd):
        s = self.strategy
        full = isinstance(s, FedDA) and s.is_full_batch(rnd)
        selected = list(range(self.num_clients)) if full else self.select_clients(rnd)
        conf = s.client_config(rnd, self.server_state)
        down = nbytes(self.global_weights) + nbytes(conf)
        up = self.upload_bytes(rnd)
        times = {c: self.client_time(c, down, self._work(c, rnd), up) for c in selected}
        late = [c for c in selected if self.deadline is not None and times[c] > self.deadline]
        for c in late:
            self.logger.info(f"round {rnd}: client {c} would take {times[c]:.3f}s > "
                             f"round_deadline_s {self.deadline}; left out of the round")
        jobs = [(c, self.global_weights, conf, self.client_seed(rnd, c)) for c in selected if c not in late]
        self._before_clients(rnd, jobs)
        failures, results = [], []
        for c, weights, conf_c, seed in jobs:
            res = self._run_client(rnd, c, weights, conf_c, seed, failures)
            if res is not None:
                results.append(res)
        self._need(rnd, len(results), len(selected), failures)
        for r in results:
            self._accept(r)
        up_total = sum(nbytes(r.weights) if not full else 0 for r in results) + \
            sum(nbytes(r.extras) for r in results)
        new, self.server_state = self._aggregate(rnd, results)
        self.global_weights = new
        on_time = [times[c] for c in selected if c not in late]
        round_time = max(on_time) if on_time else 0.0
        if late:
            round_time = max(round_time, self.deadline)
        return {"clients": len(selected), "answered": len(results), "failed": len(failures),
                "late": len(late), "round_time_s": round_time,
                "bytes_down": down * len(selected), "bytes_up": up_total,
                "client_samples": _samples(results),
                "train_loss": _mean_loss(results), "full_batch": bool(full)}

    # FedAT ---------------------------------------------------------------
    def _tier_setup(self):
        s = self.strategy
        down = nbytes(self.global_weights) + nbytes(s.client_config(1, self.server_state))
        up = self.upload_bytes(1)
        t = [self.client_time(c, down, self._work(c, 1), up) for c in range(self.num_clients)]
        order = np.argsort(np.asarray(t), kind="stable")
        tiers = [sorted(int(c) for c in chunk)
                 for chunk in np.array_split(order, min(s.num_tiers, self.num_clients))]
        self.sched = {"tiers": tiers, "starts": [0] * len(tiers), "running": {}}
        self._events = VirtualClock()
        for i in range(len(tiers)):
            self._tier_start(i, 0.0)

    def _tier_start(self, i, now):
        s, tier = self.strategy, self.sched["tiers"][i]
        frac = s.tier_fraction if s.tier_fraction is not None else \
            self.clients_per_round / self.num_clients
        k = max(1, int(math.ceil(frac * len(tier))))
        self.sched["starts"][i] += 1
        selected = self.select_clients(self.sched["starts"][i], pool=tier, k=k, salt=1000 + i)
        conf = s.client_config(0, self.server_state)
        down = nbytes(self.global_weights) + nbytes(conf)
        up = self.upload_bytes(0)
        times = {c: self.client_time(c, down, self._work(c, 0), up) for c in selected}
        late = [c for c in selected if self.deadline is not None and times[c] > self.deadline]
        on_time = [times[c] for c in selected if c not in late]
        dur = max(on_time) if on_time else 0.0
        if late:
            dur = max(dur, self.deadline)
        self.sched["running"][i] = {"start": now, "finish": now + dur, "clients": selected,
                                    "late": late, "weights": self.global_weights,
                                    "start_no": self.sched["starts"][i], "down": down}
        self._events.schedule_at(now + dur, i)
        self.sched["events"] = self._events.state_dict()

    def _tier_round(self, rnd):
        if not self.sched:
            self._tier_setup()
        if getattr(self, "_events", None) is None:  # resumed: the pending tier finishes
            self._events = VirtualClock()
            self._events.load_state_dict(self.sched["events"])
        _, i = self._events.pop()  # the next tier to finish (ties: the one started first)
        job = self.sched["running"][i]
        conf = self.strategy.client_config(rnd, self.server_state)
        failures, results = [], []
        for c in job["clients"]:
            if c in job["late"]:
                self.logger.info(f"round {rnd}: client {c} (tier {i}) missed round_deadline_s; "
                                 "left out")
                continue
            seed = self.client_seed(job["start_no"], c, 1000 + i)
            res = self._run_client(rnd, c, job["weights"], conf, seed, failures)
            if res is not None:
                results.append(res)
        self._need(rnd, len(results), len(job["clients"]), failures, what=f"round (tier {i})")
        for r in results:
            self._accept(r)
        new, self.server_state = self._aggregate(rnd, results, tier=i)
        self.global_weights = new
        round_time = job["finish"] - self.clock  # the loop advances the clock by this
        self._tier_start(i, job["finish"])
        return {"clients": len(job["clients"]), "answered": len(results), "failed": len(failures),
                "late": len(job["late"]), "round_time_s": round_time, "tier": i,
                "bytes_down": job["down"] * len(job["clients"]),
                "bytes_up": sum(nbytes(r.weights) + nbytes(r.extras) for r in results),
                "client_samples": _samples(results), "train_loss": _mean_loss(results)}

    # FedHiSyn ------------------------------------------------------------
    def _ring_setup(self):
        model_bytes = nbytes(self.global_weights)
        times = []
        for c in range(self.num_clients):
            p = self._profile(c)
            times.append(float(p.compute_s(self._work(c, 1)) + p.transfer_s(model_bytes)))
        per_sample = [1.0 / self._profile(c).samples_per_s for c in range(self.num_clients)]
        measure = times if self.strategy.measure == "pass_time" else per_sample
        cats = self.strategy.categories(measure)
        self.sched = {"pass_time": times, "measure": [float(m) for m in measure],
                      "category": [int(x) for x in cats]}
        for j in sorted(set(self.sched["category"])):
            members = [c for c in range(self.num_clients) if self.sched["category"][c] == j]
            self.logger.info(f"FedHiSyn category {j}: {len(members)} devices, measured "
                             f"{min(times[c] for c in members):.3f}..{max(times[c] for c in members):.3f}s a pass")

    def _ring_round(self, rnd):
        if not self.sched:
            self._ring_setup()
        s = self.strategy
        selected = self.select_clients(rnd)
        model_bytes = nbytes(self.global_weights)
        down = up = model_bytes
        cats = collections.defaultdict(list)
        for c in selected:
            cats[self.sched["category"][c]].append(c)
        cats = s.merge_singletons(cats, self.sched.get("measure", self.sched["pass_time"]))
        plan = {}
        for j, members in sorted(cats.items()):
            if s.ring_order == "fixed":
                ring = sorted(members, key=lambda c: (self.sched["pass_time"][c], c))
            else:
                rng = np.random.default_rng(_seed_of(self.seed, 31337, rnd, j))
                ring = [int(c) for c in rng.permutation(sorted(members))]
            comp = max(self._profile(c).compute_s(self._work(c, rnd)) for c in ring)
            pas = 0.0 if len(ring) == 1 else max(self._profile(c).transfer_s(model_bytes) for c in ring)
            over = max(self._profile(c).transfer_s(down) + self._profile(c).transfer_s(up) for c in ring)
            plan[j] = {"ring": ring, "comp": comp, "pass": pas, "over": over}
        interval = s.interval_s if s.interval_s is not None else \
            max(p["over"] + p["comp"] for p in plan.values())
        late_cats = []
        for j, p in plan.items():
            steps = int(math.floor((interval - p["over"] + p["pass"]) / (p["comp"] + p["pass"]) + 1e-9)) \
                if p["comp"] + p["pass"] > 0 else 1
            p["steps"] = max(1, steps if s.max_steps is None else min(steps, s.max_steps))
            p["time"] = p["over"] + p["steps"] * p["comp"] + (p["steps"] - 1) * p["pass"]
            if self.deadline is not None and p["time"] > self.deadline:
                late_cats.append(j)
        failures, results, trace, passed_bytes, client_samples = [], [], {}, 0, 0
        for j, p in sorted(plan.items()):
            if j in late_cats:
                self.logger.info(f"round {rnd}: FedHiSyn category {j} would take {p['time']:.3f}s > "
                                 f"round_deadline_s {self.deadline}; left out")
                continue
            ring = list(p["ring"])
            holding = {c: self.global_weights for c in ring}
            lineage = {c: [] for c in ring}
            trained = {c: 0 for c in ring}
            last = {}
            for step in range(p["steps"]):
                outs = {}
                for c in list(ring):
                    res = self._run_client(rnd, c, holding[c], s.client_config(rnd, self.server_state),
                                           self.client_seed(rnd, c, step), failures)
                    if res is None:
                        ring.remove(c)
                        continue
                    outs[c] = res
                    lineage[c] = lineage[c] + [c]
                    trained[c] += res.metrics.get("samples", 0)
                    client_samples += res.metrics.get("samples", 0)
                    res.metrics["trained_samples"] = trained[c]
                    res.metrics["visited"] = list(lineage[c])
                    last[c] = res
                if step < p["steps"] - 1 and len(ring) > 1:
                    nxt_hold, nxt_lin, nxt_tr = {}, {}, {}
                    for pos, c in enumerate(ring):
                        succ = ring[(pos + 1) % len(ring)]
                        nxt_hold[succ] = outs[c].weights
                        nxt_lin[succ], nxt_tr[succ] = lineage[c], trained[c]
                        passed_bytes += model_bytes
                    holding, lineage, trained = nxt_hold, nxt_lin, nxt_tr
                else:
                    holding = {c: outs[c].weights for c in ring}
            for c in ring:
                results.append(last[c])
                trace[c] = last[c].metrics["visited"]
        asked = sum(len(p["ring"]) for p in plan.values())
        self._need(rnd, len(results), asked, failures)
        for r in results:
            self._accept(r)
        new, self.server_state = self._aggregate(rnd, results)
        self.global_weights = new
        self.last_ring_trace = trace
        round_time = max([interval] + [p["time"] for j, p in plan.items() if j not in late_cats])
        if late_cats:
            round_time = max(round_time, self.deadline)
        return {"clients": asked, "answered": len(results), "failed": len(failures),
                "late": sum(len(plan[j]["ring"]) for j in late_cats), "round_time_s": round_time,
                "bytes_down": down * asked, "bytes_up": up * len(results),
                "bytes_ring": passed_bytes,
                "ring_steps": {str(j): p["steps"] for j, p in sorted(plan.items())},
                "client_samples": client_samples, "train_loss": _mean_loss(results)}

    # ------------------------------------------------------------------ loop
    def predict(self, batch):
        out = self.model(*self.inputs_of(batch))
        if self._eval_loss is not None and self.loss_fn is not None:
            label = batch[self.label_key]
            n = int(out.shape[0])
            self._eval_loss[0] += float(self.loss_fn(out, label)) * n
            self._eval_loss[1] += n
        return out

    def evaluate_global(self):
        """The global model on ``val_dataset``: the engine's metrics plus the mean loss."""
        set_weights(self.model, self.global_weights)
        self._eval_loss = [0.0, 0]
        try:
            res = self.evaluate()
        finally:
            total, n = self._eval_loss
            self._eval_loss = None
        if n:
            res["loss"] = total / n
        return res

    def _train(self):
        t_start = time.time()
        run = {"sync": self._sync_round, "tiers": self._tier_round, "rings": self._ring_round}
        step = run[self.strategy.schedule]
        while self.round < self.total_rounds and not self.stop_requested:
            rnd = self.round + 1
            t0 = time.time()
            info = step(rnd)
            self.clock += info["round_time_s"]
            self.round = self.iter = rnd
            rec = {"mode": "round", "iter": rnd, "round": rnd, "sim_time_s": self.clock}
            rec.update(info)
            rec["bytes_total"] = info["bytes_up"] + info["bytes_down"] + info.get("bytes_ring", 0)
            if self.val_loader is not None and (rnd % self.eval_every == 0 or rnd == self.total_rounds):
                rec.update({k: float(v) for k, v in self.evaluate_global().items()})
            rec["wall_s"] = round(time.time() - t0, 3)
            self.write_metrics(rec)
            shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in rec.items() if k not in ("mode", "iter", "ring_steps"))
            self.logger.info(shown)
            self.save_checkpoint("latest")
        if self._interrupt is not None:
            return self
        set_weights(self.model, self.global_weights)
        self.logger.info(f"federated training done: {self.round} rounds, simulated "
                         f"{self.clock:.2f}s, {time.time() - t_start:.1f}s of wall time")
        return self


def _mean_loss(results):
    losses = [r.metrics.get("loss") for r in results]
    losses = [x for x in losses if x is not None and not math.isnan(x)]
    return float(np.mean(losses)) if losses else None


def _samples(results):
    """Samples the clients' local passes processed (the round's client compute)."""
    return int(sum(r.metrics.get("samples", 0) for r in results))
