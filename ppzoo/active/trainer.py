"""Active learning of classifiers on the shared round loop (``ppzoo.active.loop.ActiveLoop``).

``ActiveLearningTrainer`` adds what classification needs to the loop's rounds:

* the OOD scenario (``active.ood``): the pool mixes in-distribution classes with OOD
  classes at a stated ratio; the oracle marks a queried OOD sample OOD (it costs budget and
  is never trained on), and evaluation uses the in-distribution test classes;
* query strategies that read the model (``ClassificationStrategy``: features, MC dropout,
  perturbed weights) through a batched :class:`~ppzoo.active.learners.PaddleLearner`, or
  the loop's generic strategies (``RandomStrategy``);
* candidate subsampling (``active.candidates``) for expensive strategies, warm start
  (``active.warm_start``), and the classical setting: with ``model: {type:
  SklearnClassifier}`` each round refits a scikit-learn estimator instead of running the
  engine;
* per round, ``ood_queried`` (OOD samples labelled so far) and ``query_time`` (seconds the
  strategy took to choose the next batch) in ``metrics.jsonl``.
"""
import copy
import os
import pickle
import time

import numpy as np

from ..core.builder import DATASETS, TRAINERS
from ..core.errors import ConfigError
from .classification import ClassificationStrategy, PoolState
from .data import OOD_LABEL, OODPool, dataset_labels
from .learners import DatasetInputs, PaddleLearner, SklearnClassifier, SklearnLearner
from ..engine.trainer import setup_logger
from .loop import ACTIVE_KEYS, ActiveLoop

OOD_KEYS = {"id_classes", "ood_classes", "ratio", "max_id", "split_seed"}
EXTRA_RECORD_KEYS = ("ood_selected", "ood_queried", "query_time", "candidates")


def _with_ood(cfg, ood, source):
    """The config with ``train_dataset`` (the pool) and ``val_dataset`` wrapped in ``OODPool``."""
    if not ood:
        return cfg
    ood = dict(ood)
    unknown = set(ood) - OOD_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key active.ood.{sorted(unknown)[0]} "
                          f"(known: {', '.join(sorted(OOD_KEYS))})")
    if "id_classes" not in ood:
        raise ConfigError(f"{source}: active.ood needs id_classes")
    cfg = copy.deepcopy(cfg)
    common = {"id_classes": list(ood["id_classes"]), "split_seed": int(ood.get("split_seed", 0))}
    for key in ("train_dataset", "val_dataset"):
        if cfg.get(key):
            extra = ({"ood_classes": list(ood.get("ood_classes") or []),
                      "ood_ratio": float(ood.get("ratio", 0.0)), "max_id": ood.get("max_id")}
                     if key == "train_dataset" else {})
            cfg[key] = dict({"type": "OODPool", "dataset": cfg[key]}, **common, **extra)
    n_model = (cfg.get("model") or {}).get("num_classes")
    if n_model is not None and int(n_model) != len(common["id_classes"]):
        raise ConfigError(f"{source}: model.num_classes is {n_model} but active.ood.id_classes "
                          f"lists {len(common['id_classes'])} in-distribution classes")
    return cfg


class _ClassicalRound:
    """What the loop needs of a round's child run when the round refitted a scikit-learn
    model: the model, its evaluation on the validation set and the round's own log."""

    def __init__(self, trainer, work_dir):
        self.trainer, self.model, self.val_loader, self.iter = trainer, trainer.model, trainer.val_loader, 0
        self.logger = setup_logger(work_dir, name="ppzoo.active.round", rank=trainer.rank)

    def evaluate(self):
        return self.trainer.evaluate()


@TRAINERS.register()
class ActiveLearningTrainer(ActiveLoop):
    """Pool-based active learning of a classifier; see the module docstring and
    docs/active.md for the ``active:`` keys."""
    active_keys = ACTIVE_KEYS | {"ood", "candidates", "warm_start", "query_batch_size"}

    def __init__(self, cfg, work_dir=None, resume=False, build_train=True):
        a = dict(cfg.get("active") or {})
        cfg = _with_ood(cfg, a.get("ood"), cfg.get("_file_", "<config>"))
        super().__init__(cfg, work_dir=work_dir, resume=resume, build_train=build_train)
        a = self.active_cfg
        self.max_candidates = int(a["candidates"]) if a.get("candidates") else None
        self.warm_start = bool(a.get("warm_start", False))
        self.query_batch_size = int(a.get("query_batch_size", 256))
        self.classical = isinstance(self.model, SklearnClassifier)
        self._query_times, self._candidates = {}, {}
        if not build_train:
            return
        self.pool_labels = dataset_labels(self.pool) if not isinstance(self.pool, OODPool) \
            else self.pool.labels
        self.is_ood = self.pool.is_ood if isinstance(self.pool, OODPool) \
            else np.zeros(self.pool_size, bool)
        self.scoring_pool = DATASETS.build(self._scoring_cfg(), key_path="train_dataset")
        self.inputs = DatasetInputs(self.scoring_pool, key=self.input_keys[0])

    def _scoring_cfg(self):
        """The pool with the evaluation transforms (no augmentation) for the strategies."""
        cfg = copy.deepcopy(self.cfg["train_dataset"])
        val = self.cfg.get("val_dataset") or {}
        inner = cfg["dataset"] if cfg.get("type") == "OODPool" else cfg
        val_inner = val.get("dataset", val) if val.get("type") == "OODPool" else val
        if isinstance(inner, dict) and "transforms" in val_inner:
            inner["transforms"] = copy.deepcopy(val_inner["transforms"])
        return cfg

    # ------------------------------------------------------------------ rounds
    def child_config(self, labelled):
        """Train on the labelled in-distribution samples only; warm start from the last round."""
        ind = [int(u) for u in labelled if not self.is_ood[int(u)]]
        if not ind:
            raise ConfigError(f"{self.source}: every labelled sample is OOD so far; raise "
                              "active.initial")
        cfg = super().child_config(ind)
        r = getattr(self, "_round", 0)
        if self.warm_start and r > 0:
            prev = os.path.join(self.round_dir(r - 1), "latest", "model.pdparams")
            cfg["pretrained"] = prev
        return cfg

    def run_round(self, r, labelled):
        self._round = r
        if not self.classical:
            child = super().run_round(r, labelled)
            self._learner = PaddleLearner(child.model, self.inputs, self.query_batch_size)
            return child
        ind = np.asarray([int(u) for u in labelled if not self.is_ood[int(u)]], dtype=np.int64)
        if len(ind) == 0:
            raise ConfigError(f"{self.source}: every labelled sample is OOD so far; raise "
                              "active.initial")
        self.model.fit(self.inputs(ind), self.pool_labels[ind], seed=self.seed * 1000 + r)
        out = self.round_dir(r)
        os.makedirs(out, exist_ok=True)
        tmp = os.path.join(out, f"estimator.pkl.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump(self.model.estimator, f)
        os.replace(tmp, os.path.join(out, "estimator.pkl"))
        self._learner = SklearnLearner(self.model.estimator, self.inputs, self.model.num_classes)
        child = _ClassicalRound(self, out)
        child.logger.info(f"fitted {self.model.estimator_name} on {len(ind)} labelled "
                          "in-distribution samples")
        return child

    def select(self, child, candidates, n, r):
        rng = np.random.default_rng([self.seed, 104729, r])
        cand = np.asarray(candidates, dtype=np.int64)
        if self.max_candidates and len(cand) > self.max_candidates:
            cand = np.sort(rng.choice(cand, self.max_candidates, replace=False))
        t0 = time.perf_counter()
        if isinstance(self.strategy, ClassificationStrategy):
            labels = np.full(self.pool_size, -2, np.int64)
            labelled = np.setdiff1d(np.arange(self.pool_size), np.asarray(candidates, np.int64))
            labels[labelled] = np.where(self.is_ood[labelled], OOD_LABEL, self.pool_labels[labelled])
            state = PoolState(cand, labelled, labels, self.is_ood, rng)
            picks = self.strategy(self._learner, state, n)
        else:
            outputs = [None] * len(cand)
            if self.strategy.needs_outputs:  # one committee member: the round's model
                outputs = list(self._learner.predict_proba(cand)[:, None, :])
            picks = self.strategy.select(outputs, cand, n, rng)
        self._query_times[r] = time.perf_counter() - t0
        self._candidates[r] = len(cand)
        return [int(p) for p in picks]

    # ------------------------------------------------------------------ records
    def _annotate(self, history):
        total = 0
        for rec in history:
            sel = np.asarray(rec.get("selected", []), dtype=np.int64)
            rec.setdefault("ood_selected", int(self.is_ood[sel].sum()) if len(sel) else 0)
            total += rec["ood_selected"]
            rec.setdefault("ood_queried", total)
            if rec["round"] in self._query_times:
                rec["query_time"] = round(self._query_times[rec["round"]], 4)
                rec["candidates"] = self._candidates[rec["round"]]
            rec.setdefault("query_time", 0.0)
            rec.setdefault("candidates", 0)

    def summarize(self, history):
        self._annotate(history)
        plain = [{k: v for k, v in rec.items() if k not in EXTRA_RECORD_KEYS} for rec in history]
        out = super().summarize(plain)
        out["ood_queried"] = history[-1]["ood_queried"]
        out["query_time"] = float(sum(rec["query_time"] for rec in history))
        return out

    def _save_state(self, state):
        self._annotate(state["history"])
        super()._save_state(state)

    def _finish(self, child, state):
        if not self.classical:
            return super()._finish(child, state)
        import warnings
        with warnings.catch_warnings():  # the wrapper layer has no parameters to save
            warnings.filterwarnings("ignore", message="The input state dict is empty")
            super()._finish(child, state)
        if self.classical:
            tmp = os.path.join(self.work_dir, f"estimator.pkl.tmp-{os.getpid()}")
            with open(tmp, "wb") as f:
                pickle.dump(self.model.estimator, f)
            os.replace(tmp, os.path.join(self.work_dir, "final", "estimator.pkl"))
