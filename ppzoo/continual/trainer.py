"""``ContinualTrainer``: a sequence of tasks, each trained by the engine's own loop.

Run layout (``output/<name>/``)::

    config.yml  train.log  metrics.jsonl    the continual run ("mode": "continual" records)
    task_<t>/                                one engine run per task (config.yml, train.log,
                                             metrics.jsonl, latest/) -- a fresh folder each
    continual/                               after each task, written atomically: model.pdparams,
                                             strategy.pdparams, state.json (A, R, tasks done)
    results.json                             the matrices and summary numbers at the end

``--resume`` loads ``continual/`` (the last finished task) and continues with the next task;
if that task's folder has ``latest/``, the engine resumes it mid-task.  Both are exact.
"""
import copy
import json
import math
import os

import numpy as np
import paddle

from ..core import safeload
from ..core.builder import TRAINERS
from ..core.config import check_keys, save_config
from ..core.errors import ConfigError, PPZooError
from ..engine import checkpoint as ckpt
from ..engine.loader import BadSamples, SafeLoader
from ..engine.trainer import Trainer, seed_everything
from .data import Scenario, build_base
from .probe import PROBE_KEYS, LinearProbe, summarize
from .strategies import STRATEGIES

CONTINUAL_KEYS = {"scenario", "split", "epochs", "strategy", "probe", "probe_max_train", "probe_init",
                  "forgetting_from_seen", "forgetting", "stop_after", "batch_size"}


class TrainingDiverged(PPZooError):
    """A task's loss became NaN or infinite."""


class TaskTrainer(Trainer):
    """The engine's ``Trainer`` on one task: shares the continual run's model and loss; its
    step loss is the strategy's; its run folder is ``task_<t>/``."""
    extra_config_keys = {"continual"}

    def __init__(self, parent, task, resume=False):
        self.parent, self.task = parent, task
        cfg = copy.deepcopy({k: v for k, v in parent.cfg.items() if k not in ("val_dataset", "test_dataset", "pretrained")})
        cfg["name"] = f"{parent.run_name}/task_{task}"
        cfg["seed"] = parent.seed + 1000 * task
        train = {k: v for k, v in dict(cfg.get("train") or {}).items() if k != "iters"}
        train["epochs"] = parent.epochs_of(task)
        cfg["train"] = train
        cfg["train_dataset"] = parent.task_cfg(parent.strategy.train_tasks(task), "train")
        folder = os.path.join(parent.work_dir, f"task_{task}")
        # a resumed run whose task folder has no latest/ yet (stopped before its first save)
        # starts that task afresh, the partial folder moved aside
        fresh_over_partial = not resume and os.path.isdir(folder) and bool(os.listdir(folder))
        super().__init__(cfg, work_dir=folder, resume=resume,
                         **({"overwrite": True} if fresh_over_partial else {}))

    def _build(self, cfg, build_train, resume):
        seed_everything(self.seed)
        self.model, self.loss_fn = self.parent.model, self.parent.loss_fn
        self.metrics, self.val_dataset, self.val_loader = [], None, None
        if build_train:
            self._build_training(resume)

    def forward_loss(self, batch):
        return self.parent.strategy.loss(self.parent, self, batch)

    def train_step(self, batch):
        super().train_step(batch)
        if not math.isfinite(self.log_vars.get("loss", 0.0)):
            raise TrainingDiverged(f"task {self.task} diverged at iteration {self.iter + 1}: loss "
                                   f"{self.log_vars}; lower optimizer.learning_rate or the strategy's weight")


@TRAINERS.register()
class ContinualTrainer(Trainer):
    """Trains ``continual.split``'s tasks in order with ``continual.strategy``; after each task
    fills row t of the accuracy matrix A[t, j] and of the probe matrix R[t, j] (linear probes
    on the frozen representation, for every task, seen or not), and R_all[t] (one probe over
    all classes).  ``train_dataset``/``val_dataset`` are the whole datasets the tasks are cut
    from (their transforms are the training and evaluation transforms)."""
    extra_config_keys = {"continual"}

    def _build(self, cfg, build_train, resume):
        self.cont = dict(cfg.get("continual") or {})
        check_keys(self.cont, CONTINUAL_KEYS, "continual.", self.source)
        self.scenario_kind = self.cont.get("scenario", "task_il")
        if self.scenario_kind not in ("task_il", "class_il"):
            raise ConfigError(f"{self.source}: continual.scenario must be task_il or class_il, "
                              f"got {self.scenario_kind!r}")
        self.task_il = self.scenario_kind == "task_il"
        probe = dict(self.cont.get("probe") or {})
        check_keys(probe, PROBE_KEYS, "continual.probe.", self.source)
        self.probe_batch = int(probe.pop("batch_size", 256))
        self.probe_cfg = probe
        LinearProbe(**probe)  # checks the values now
        if self.cont.get("forgetting", "best") not in ("best", "learned"):
            raise ConfigError(f"{self.source}: continual.forgetting must be best or learned, "
                              f"got {self.cont.get('forgetting')!r}")
        for key in ("train_dataset", "val_dataset"):
            if not cfg.get(key):
                raise ConfigError(f"{self.source}: a continual run needs '{key}' (the dataset the tasks are cut from)")
        base = build_base(cfg["train_dataset"])
        self.scenario = Scenario(self.cont.get("split"), getattr(base, "num_classes", None),
                                 getattr(base, "factor_values", None), where=f"{self.source}: continual.split")
        super()._build(cfg, False, resume)
        n_out = getattr(self.model, "num_classes", None)
        if n_out is not None and n_out < self.scenario.num_classes:
            raise ConfigError(f"{self.source}: model.num_classes is {n_out} but the scenario uses "
                              f"{self.scenario.num_classes} classes")
        self.strategy = STRATEGIES.build(dict(self.cont.get("strategy") or {"type": "Naive"}),
                                         key_path="continual.strategy")
        self.strategy.setup(self)
        self.current_task = self.scenario.num_tasks - 1
        self._datasets = {}
        if build_train:
            self._build_training(resume)

    # ------------------------------------------------------------------ data
    def epochs_of(self, task):
        ep = self.cont.get("epochs", 1)
        if isinstance(ep, (list, tuple)):
            if len(ep) != self.scenario.num_tasks:
                raise ConfigError(f"{self.source}: continual.epochs lists {len(ep)} values for "
                                  f"{self.scenario.num_tasks} tasks")
            return int(ep[task])
        return int(ep)

    def task_cfg(self, tasks, part, augment=True):
        src = self.cfg["train_dataset" if part == "train" else "val_dataset"]
        tf_src = self.cfg["train_dataset"] if (part == "train" and augment) else self.cfg["val_dataset"]
        return {"type": "ContinualTaskSet", "dataset": {k: v for k, v in src.items() if k != "transforms"},
                "split": dict(self.cont.get("split") or {}), "tasks": list(tasks), "part": part,
                "transforms": copy.deepcopy(tf_src.get("transforms"))}

    def task_dataset(self, tasks, part, augment=True):
        key = (tuple(tasks), part, augment)
        if key not in self._datasets:
            from ..core.builder import DATASETS
            ds = DATASETS.build(self.task_cfg(tasks, part, augment), key_path="continual task data")
            ds.seed = self.seed
            self._datasets[key] = ds
        return self._datasets[key]

    # ------------------------------------------------------------------ logits
    def class_mask(self, task_ids, upto, task_il=None):
        """[B, C] additive mask: 0 for the classes a sample may take, -1e9 elsewhere.  Task-IL:
        the sample's task's classes; class-IL: every class of tasks 0..upto."""
        C = self.model.num_classes
        allowed = np.zeros((len(task_ids), C), np.float32)
        for i, t in enumerate(task_ids):
            tasks = [int(t)] if (self.task_il if task_il is None else task_il) else range(upto + 1)
            for k in tasks:
                allowed[i, self.scenario.tasks[k]["classes"]] = 1.0
        return paddle.to_tensor((allowed - 1.0) * 1e9)

    def raw_logits(self, image, task_ids, upto, task_il=None, model=None):
        """Unmasked logits of ``model`` (default the run's) after tasks 0..upto (adapter
        models take each sample's task path in task-IL and every seen task's path for its own
        classes in class-IL).  Distillation reads these: a -1e9 mask swallows the logits it
        covers in float32 (-1e9 + x == -1e9)."""
        task_il = self.task_il if task_il is None else task_il
        task_ids = np.asarray(task_ids.numpy() if isinstance(task_ids, paddle.Tensor) else task_ids).reshape(-1)
        m = self.model if model is None else model
        if not m.has_adapters:
            return m(image)
        h = m.encoder(image)
        out = paddle.zeros([image.shape[0], m.num_classes])
        if task_il:
            for k in np.unique(task_ids):
                sel = paddle.to_tensor((task_ids == k).astype(np.float32)).unsqueeze(1)
                out = out + sel * m.heads[int(k)](m.task_features(h, int(k)))
        else:
            for k in range(upto + 1):
                col = np.zeros((1, m.num_classes), np.float32)
                col[0, self.scenario.tasks[k]["classes"]] = 1.0
                out = out + paddle.to_tensor(col) * m.heads[k](m.task_features(h, k))
        return out

    def logits(self, image, task_ids, upto, task_il=None):
        """Masked logits of the model after tasks 0..upto: ``raw_logits`` + ``class_mask``."""
        task_il = self.task_il if task_il is None else task_il
        task_ids = np.asarray(task_ids.numpy() if isinstance(task_ids, paddle.Tensor) else task_ids).reshape(-1)
        return self.raw_logits(image, task_ids, upto, task_il) + self.class_mask(task_ids, upto, task_il)

    def predict(self, batch):
        """tools/eval.py on the whole val_dataset: class-incremental logits over every task."""
        image = batch["image"]
        return self.logits(image, np.zeros(image.shape[0], np.int64), self.scenario.num_tasks - 1, task_il=False)

    def train_logits(self, batch):
        return self.logits(batch["image"], batch["task"], self.current_task)

    # ------------------------------------------------------------------ measuring
    def _loader(self, ds):
        """The probes' loader: the engine's, so a damaged file stops the run with one line
        naming it (it never hangs the reading thread) and Ctrl-C works while it reads."""
        sampler = paddle.io.BatchSampler(ds, batch_size=self.probe_batch, shuffle=False)
        return SafeLoader(ds, sampler, f"probe dataset ({type(ds).__name__})", BadSamples(),
                          training=False, collate_fn=getattr(ds, "collate_fn", None))

    @paddle.no_grad()
    def accuracy_row(self, upto):
        self.model.eval()
        row = []
        for j in range(self.scenario.num_tasks):
            correct = total = 0
            for b in self._loader(self.task_dataset([j], "test")):
                pred = self.logits(b["image"], b["task"], upto).argmax(1).numpy()
                correct += int((pred == b["label"].numpy()).sum())
                total += len(pred)
            row.append(correct / max(total, 1))
        self.model.train()
        return row

    @paddle.no_grad()
    def features(self, ds, upto):
        self.model.eval()
        feats, labels = [], []
        for b in self._loader(ds):
            feats.append(self.model.probe_features(b["image"], upto).numpy())
            labels.append(b["label"].numpy())
        self.model.train()
        return np.concatenate(feats), np.concatenate(labels)

    def probe_row(self, upto):
        """R[upto, j] for every task j, and the all-classes probe (None for a factor split)."""
        cap = self.cont.get("probe_max_train")
        row, tr_all, te_all = [], [], []
        for j in range(self.scenario.num_tasks):
            xtr, ytr = self.features(self.task_dataset([j], "train", augment=False), upto)
            if cap is not None and len(ytr) > int(cap):
                keep = np.sort(np.random.default_rng([self.seed, j, 31]).permutation(len(ytr))[: int(cap)])
                xtr, ytr = xtr[keep], ytr[keep]
            xte, yte = self.features(self.task_dataset([j], "test"), upto)
            row.append(LinearProbe(**self.probe_cfg).fit(xtr, ytr).score(xte, yte))
            tr_all.append((xtr, ytr))
            te_all.append((xte, yte))
        r_all = None
        if self.scenario.by == "classes":
            r_all = LinearProbe(**self.probe_cfg).fit(
                np.concatenate([x for x, _ in tr_all]), np.concatenate([y for _, y in tr_all])).score(
                np.concatenate([x for x, _ in te_all]), np.concatenate([y for _, y in te_all]))
        return row, r_all

    # ------------------------------------------------------------------ the run
    def _check_resume_folder(self):
        """The folder holds ``continual/`` state and ``task_<t>/`` runs, not ``latest/``:
        ``_build_training`` checks what a resume finds there."""
        return []

    def _build_training(self, resume):
        self.run_name = self.cfg.get("name") or os.path.splitext(os.path.basename(self.source))[0]
        self.state_dir = os.path.join(self.work_dir, "continual")
        self.results = {"A": [], "R": [], "R_all": [], "r_init": None, "r_init_all": None}
        self.start_task = 0
        self.resume_task = False
        has_state = ckpt.resolve_checkpoint_dir(self.state_dir) is not None
        if resume:
            if has_state:
                self._load_state()
            self.resume_task = ckpt.resolve_checkpoint_dir(
                os.path.join(self.work_dir, f"task_{self.start_task}", "latest")) is not None
        if self.is_main:
            save_config(self.cfg, os.path.join(self.work_dir, "config.yml"))

    def _load_state(self):
        found = ckpt.resolve_checkpoint_dir(self.state_dir)
        model_state, _, state = ckpt.load_checkpoint(self.state_dir)
        self.model.set_state_dict(model_state)
        self.strategy.load_state_dict(safeload.load(os.path.join(found, "strategy.pdparams"))["state"])
        self.results = state["results"]
        self.start_task = int(state["tasks_done"])
        self.logger.info(f"resumed the continual run after task {self.start_task - 1}")

    def _save_state(self, tasks_done):
        if not self.is_main:
            return
        ckpt.save_checkpoint(self.state_dir, self.model.state_dict(), None,
                             {"tasks_done": tasks_done, "results": self.results},
                             extra={"strategy.pdparams": {"type": type(self.strategy).__name__,
                                                           "state": self.strategy.state_dict()}})

    def save_checkpoint(self, name, with_optimizer=None):  # the run's checkpoints are continual/ and task_<t>/
        pass

    def train(self):
        try:
            with paddle.utils.unique_name.guard(self._names):
                return self._train_tasks()
        finally:
            release = getattr(self, "_release_lock", None)  # the run folder's lock, where the engine takes one
            if release is not None:
                release()

    def _train_tasks(self):
        T = self.scenario.num_tasks
        if self.results["r_init"] is None and self.cont.get("probe_init", True):
            self.results["r_init"], self.results["r_init_all"] = self.probe_row(-1)
            self.logger.info(f"probe of the untrained encoder: {np.round(self.results['r_init'], 4).tolist()}")
        stop = self.cont.get("stop_after")
        last = T - 1 if stop is None else min(T - 1, int(stop))
        for t in range(self.start_task, last + 1):
            self.current_task = t
            self.strategy.before_task(self, t)
            self.logger.info(f"task {t}: classes {self.scenario.tasks[t]['classes']}"
                             + (f" (factor {self.scenario.tasks[t]['factor']})" if self.scenario.tasks[t]["factor"] else "")
                             + f", strategy {type(self.strategy).__name__}")
            TaskTrainer(self, t, resume=self.resume_task and t == self.start_task).train()
            self.strategy.after_task(self, t)
            acc = self.accuracy_row(t)
            probe, probe_all = self.probe_row(t)
            self.results["A"].append(acc)
            self.results["R"].append(probe)
            self.results["R_all"].append(probe_all)
            self.write_metrics({"mode": "continual", "task": t, "acc": acc, "probe": probe, "probe_all": probe_all})
            self.logger.info(f"after task {t}: acc {np.round(acc, 4).tolist()} probe {np.round(probe, 4).tolist()}"
                             + (f" probe_all {probe_all:.4f}" if probe_all is not None else ""))
            self._save_state(t + 1)
        if len(self.results["A"]) == T:
            self.write_results()
        return self

    def write_results(self):
        res = dict(self.results)
        r_init = res["r_init"] if res["r_init"] is not None else [float("nan")] * self.scenario.num_tasks
        res["summary"] = summarize(res["A"], res["R"], r_init, self.cont.get("forgetting_from_seen", True),
                                   self.cont.get("forgetting", "best"))
        res["summary"]["final_probe_all"] = res["R_all"][-1]
        res["scenario"] = self.scenario_kind
        res["tasks"] = self.scenario.tasks
        res["strategy"] = type(self.strategy).__name__
        self.summary = res
        if self.is_main:
            path = os.path.join(self.work_dir, "results.json")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(res, f, indent=1)
            os.replace(path + ".tmp", path)
            self.logger.info(f"summary: {json.dumps(res['summary'])}")
