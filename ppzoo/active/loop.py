"""The active-learning round loop, written once for every active-learning method.

``ActiveLoop`` is a trainer (``trainer: {type: <subclass>}``) whose ``train()`` runs rounds:

1. the oracle labels the units chosen for this round (round 0: ``active.initial`` units
   drawn at random from the pool with the run's seed);
2. a fresh child run folder ``<run>/rounds/round_NNN/`` is trained by the engine's own
   trainer (``active.round_trainer``, default ``Trainer``) on the labelled units only
   (the config's ``train_dataset`` wrapped in ``ActiveSubset``), with a
   ``CommitteeHook`` keeping ``active.committee`` snapshots of the weights, evenly
   spaced over training (the last one is the final model);
3. the final model is evaluated on ``val_dataset``;
4. unless the run is over (``active.rounds`` rounds, ``active.budget`` labelled units,
   or an empty pool), the registered strategy (``active.strategy``) scores the unlabelled
   units from the committee's outputs and the top ``active.per_round`` are chosen;
5. the round's state (labelled units in labelling order, chosen units, history) is
   written atomically to ``<run>/active_state.json`` and ``<run>/metrics.jsonl`` is
   rewritten from it (one ``"mode": "round"`` record per round).

``--resume`` continues after the last completed round; a round cut off mid-training is
trained again from scratch in a fresh folder, so a resumed run ends exactly as an
uninterrupted one (training is seeded, selection deterministic).  At the end the area
under each metric's budget curve is written to ``summary.json`` (and a ``"mode":
"summary"`` record), and the final model to ``<run>/final/``.

Subclasses say how to run the model on pool units (``unit_outputs``) and what a unit
costs to label (``unit_cost``); everything else is here.
"""
import copy
import json
import os
import shutil

import numpy as np
import paddle

from ..core.builder import DATASETS, TRAINERS
from ..core.config import check_keys
from ..core.errors import ConfigError, PPZooError
from ..engine import checkpoint as ckpt
from ..engine.hooks import Hook
from ..engine.trainer import Trainer, build_trainer, setup_logger
from .strategies import STRATEGIES

ACTIVE_KEYS = {"initial", "per_round", "rounds", "budget", "strategy", "committee",
               "round_trainer"}
STATE_FILE = "active_state.json"


class ActiveLoopError(PPZooError):
    """The active-learning state is inconsistent (a unit labelled twice, a bad state file)."""


def atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@DATASETS.register()
class ActiveSubset(paddle.io.Dataset):
    """The units ``indices`` of ``dataset`` (built from its config), in that order.

    Forwards ``collate_fn``, ``seed`` and ``set_epoch`` so the engine treats it as the
    wrapped dataset."""

    def __init__(self, dataset, indices):
        self.dataset = DATASETS.build(dataset, key_path="train_dataset.dataset") \
            if isinstance(dataset, dict) else dataset
        self.indices = [int(i) for i in indices]
        n = len(self.dataset)
        bad = [i for i in self.indices if not 0 <= i < n]
        if bad:
            raise ConfigError(f"ActiveSubset.indices: {bad[0]} out of range for a dataset of {n}")
        if not self.indices:
            raise ConfigError("ActiveSubset.indices is empty: nothing is labelled")
        self.collate_fn = getattr(self.dataset, "collate_fn", None)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, idx):
        return self.dataset[self.indices[idx]]

    @property
    def seed(self):
        return getattr(self.dataset, "seed", 0)

    @seed.setter
    def seed(self, value):
        if hasattr(self.dataset, "seed"):
            self.dataset.seed = value

    def set_epoch(self, epoch):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


class Oracle:
    """Reveals held-back labels unit by unit and refuses to label a unit twice."""

    def __init__(self, pool_size, labelled=()):
        self.pool_size = int(pool_size)
        self.labelled = []
        self._seen = set()
        self.label(labelled)

    def label(self, units):
        for u in units:
            u = int(u)
            if not 0 <= u < self.pool_size:
                raise ActiveLoopError(f"unit {u} is not in the pool of {self.pool_size}")
            if u in self._seen:
                raise ActiveLoopError(f"unit {u} is already labelled; a unit is labelled once")
            self._seen.add(u)
            self.labelled.append(u)

    def unlabelled(self):
        return [u for u in range(self.pool_size) if u not in self._seen]


class CommitteeHook(Hook):
    """Keeps ``members`` copies of the model weights, at evenly spaced iterations of the
    run (the last at its final iteration), in memory as NumPy arrays."""
    priority = 45

    def __init__(self, members=5):
        self.members = max(1, int(members))
        self.snapshots = []
        self.at = set()

    def before_run(self, trainer):
        total = trainer.total_iters
        self.at = {max(1, int(round(total * (j + 1) / self.members))) for j in range(self.members)}

    def after_iter(self, trainer):
        if trainer.iter in self.at or trainer.iter == trainer.total_iters:
            if self.snapshots and self.snapshots[-1][0] == trainer.iter:
                return
            state = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
            self.snapshots.append((trainer.iter, state))


def area_under_budget_curve(xs, ys):
    """Trapezoid area under ``ys`` over the labelled counts ``xs``, divided by the span of
    ``xs`` (a mean metric over the budget range); the single value for a single point."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if len(xs) == 1:
        return float(ys[0])
    span = xs[-1] - xs[0]
    if span <= 0:
        return float(ys.mean())
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / span)


@TRAINERS.register()
class ActiveLoop(Trainer):
    """Base of active-learning trainers; see the module docstring.

    Built with ``build_train=False`` (``tools/eval.py``, ``tools/export.py``) it is the
    plain trainer of its model, metrics and val data, so the tools work on its configs.
    """
    extra_config_keys = {"active"}
    #: keys of the ``active:`` section; subclasses add their own
    active_keys = ACTIVE_KEYS

    def __init__(self, cfg, work_dir=None, resume=False, build_train=True):
        super().__init__(cfg, work_dir=work_dir, resume=False, build_train=False)
        self.active_cfg = dict(cfg.get("active") or {})
        check_keys(self.active_cfg, self.active_keys, "active.", self.source)
        a = self.active_cfg
        for key in ("initial", "per_round"):
            if key not in a:
                raise ConfigError(f"{self.source}: active.{key} is required")
        if "rounds" not in a and "budget" not in a:
            raise ConfigError(f"{self.source}: set active.rounds or active.budget")
        self.initial, self.per_round = int(a["initial"]), int(a["per_round"])
        self.max_rounds = int(a["rounds"]) if a.get("rounds") is not None else None
        self.budget = int(a["budget"]) if a.get("budget") is not None else None
        if self.initial < 1 or self.per_round < 1:
            raise ConfigError(f"{self.source}: active.initial and active.per_round must be >= 1")
        self.committee_size = int(a.get("committee", 5))
        self.strategy = STRATEGIES.build(dict(a.get("strategy") or {"type": "RandomStrategy"}),
                                         key_path="active.strategy")
        self.round_trainer = dict(a.get("round_trainer") or {"type": "Trainer"})
        self.resume_requested = resume
        self.build_train = build_train
        if build_train:
            if not cfg.get("train_dataset"):
                raise ConfigError(f"{self.source}: the config has no 'train_dataset' section (the pool)")
            self.pool = DATASETS.build(cfg["train_dataset"], key_path="train_dataset")
            self.pool_size = len(self.pool)
            if self.initial > self.pool_size:
                raise ConfigError(f"{self.source}: active.initial={self.initial} exceeds the pool "
                                  f"of {self.pool_size} units")
            os.makedirs(self.work_dir, exist_ok=True)
            self.logger = setup_logger(self.work_dir, name="ppzoo.active", rank=self.rank)

    # ------------------------------------------------------------------ for subclasses
    def unit_outputs(self, model, units):
        """Model outputs for each pool unit in ``units`` (a list of arrays)."""
        raise NotImplementedError

    def unit_cost(self, unit):
        """What labelling ``unit`` costs (recorded; budgets count units)."""
        return 1

    # ------------------------------------------------------------------ state
    @property
    def state_path(self):
        return os.path.join(self.work_dir, STATE_FILE)

    def _new_state(self):
        rng = np.random.default_rng([self.seed, 7919])
        first = rng.permutation(self.pool_size)[:self.initial]
        return {"round": -1, "labelled": [], "pending": [int(u) for u in first], "history": [],
                "pool_size": self.pool_size}

    def _load_state(self):
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError) as err:
            raise ActiveLoopError(f"cannot read {self.state_path}: {err}") from None
        if state.get("pool_size") != self.pool_size:
            raise ActiveLoopError(f"{self.state_path} was written for a pool of "
                                  f"{state.get('pool_size')} units, this config's pool has "
                                  f"{self.pool_size}")
        return state

    def _save_state(self, state):
        atomic_write_text(self.state_path, json.dumps(state, indent=1))
        lines = [json.dumps(rec) for rec in state["history"]]
        if state.get("summary"):
            lines.append(json.dumps(dict({"mode": "summary"}, **state["summary"])))
        atomic_write_text(os.path.join(self.work_dir, "metrics.jsonl"),
                          "".join(line + "\n" for line in lines))

    def round_dir(self, r):
        return os.path.join(self.work_dir, "rounds", f"round_{r:03d}")

    def child_config(self, labelled):
        cfg = copy.deepcopy({k: v for k, v in self.cfg.items() if k not in ("active", "trainer")})
        cfg["trainer"] = copy.deepcopy(self.round_trainer)
        cfg["train_dataset"] = {"type": "ActiveSubset", "dataset": cfg["train_dataset"],
                                "indices": sorted(int(u) for u in labelled)}
        return cfg

    # ------------------------------------------------------------------ the loop
    def train(self):
        if not self.build_train:
            raise ConfigError("this trainer was built without training data")
        if os.path.exists(self.state_path):
            if not self.resume_requested:
                raise ConfigError(f"{self.work_dir} holds an active-learning run "
                                  f"({STATE_FILE}); pass --resume to continue it or choose "
                                  f"another --save-dir")
            state = self._load_state()
            self.logger.info(f"resuming after round {state['round']} "
                             f"({len(state['labelled'])} units labelled)")
        else:
            if self.resume_requested and os.path.isdir(os.path.join(self.work_dir, "rounds")):
                shutil.rmtree(os.path.join(self.work_dir, "rounds"))
            state = self._new_state()
        oracle = Oracle(self.pool_size, state["labelled"])
        child = None
        while state.get("pending"):
            r = state["round"] + 1
            oracle.label(state["pending"])
            child = self.run_round(r, oracle.labelled)
            results = child.evaluate() if child.val_loader is not None else {}
            for h in list(child.logger.handlers):  # the round's train.log is complete
                child.logger.removeHandler(h)
                h.close()
            cost = sum(self.unit_cost(u) for u in oracle.labelled)
            rec = {"mode": "round", "round": r, "labelled": len(oracle.labelled), "cost": cost,
                   "iters": child.iter}
            rec.update({k: float(v) for k, v in results.items() if _is_number(v)})
            rec["selected"] = [int(u) for u in state["pending"]]
            candidates = oracle.unlabelled()
            n_next = self.per_round
            if self.budget is not None:
                n_next = min(n_next, self.budget - len(oracle.labelled))
            over = ((self.max_rounds is not None and r + 1 >= self.max_rounds)
                    or n_next <= 0 or not candidates)
            pending = [] if over else self.select(child, candidates, n_next, r)
            state = {"round": r, "labelled": list(oracle.labelled), "pending": pending,
                     "history": state["history"] + [rec], "pool_size": self.pool_size}
            msg = " ".join(f"{k}={v:.4f}" for k, v in results.items() if _is_number(v))
            self.logger.info(f"[active] round {r}: {len(oracle.labelled)} labelled, {msg}")
            if over:
                state["summary"] = self.summarize(state["history"])
                self._finish(child, state)
            self._save_state(state)
        if child is None:
            self.logger.info("the active-learning run is already complete")
        self.iter = state["history"][-1]["iters"] if state["history"] else 0
        self.history = state["history"]
        return self

    def run_round(self, r, labelled):
        """Train a fresh child run on ``labelled`` through the engine; returns the trainer."""
        out = self.round_dir(r)
        if os.path.exists(out):  # a round cut off before its state was saved
            shutil.rmtree(out)
        child = build_trainer(self.child_config(labelled), work_dir=out)
        self.committee = CommitteeHook(self.committee_size)
        child.register_hook(self.committee)
        child.train()
        return child

    def select(self, child, candidates, n, r):
        rng = np.random.default_rng([self.seed, 104729, r])
        outputs = [None] * len(candidates)
        if self.strategy.needs_outputs:
            outputs = self.committee_outputs(child, candidates)
        return self.strategy.select(outputs, candidates, n, rng)

    @paddle.no_grad()
    def committee_outputs(self, child, units):
        """Per unit, the stacked outputs of every committee member ([members, ...])."""
        model = child.model
        final = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        was_training = model.training
        model.eval()
        per_member = []
        try:
            for _, snap in self.committee.snapshots:
                model.set_state_dict(snap)
                per_member.append(self.unit_outputs(model, units))
        finally:
            model.set_state_dict(final)
            if was_training:
                model.train()
        return [np.stack([m[i] for m in per_member]) for i in range(len(units))]

    def summarize(self, history):
        keys = [k for k in history[0] if k not in ("mode", "round", "labelled", "cost", "iters",
                                                   "selected") and _is_number(history[0][k])]
        xs = [h["labelled"] for h in history]
        return {"rounds": len(history), "labelled": xs[-1], "cost": history[-1]["cost"],
                "aubc": {k: area_under_budget_curve(xs, [h[k] for h in history]) for k in keys},
                "final": {k: history[-1][k] for k in keys}}

    def _finish(self, child, state):
        ckpt.save_checkpoint(os.path.join(self.work_dir, "final"), child.model.state_dict(),
                             None, {"round": state["round"], "labelled": state["labelled"]})
        atomic_write_text(os.path.join(self.work_dir, "summary.json"),
                          json.dumps(state["summary"], indent=1))
        aubc = " ".join(f"{k}={v:.4f}" for k, v in state["summary"]["aubc"].items())
        self.logger.info(f"[active] done: area under the budget curve {aubc}")


def _is_number(v):
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
