"""The one training loop of ppzoo.

``Trainer`` builds everything a config names (model, data, loss, metrics, optimizer,
schedule, hooks), runs an iteration-based loop and delegates the rest to hooks.
Methods subclass it and override ``forward_loss`` (what one step computes) or add
hooks; they do not copy the loop.

Exact resume: the data order depends only on (seed, epoch), every sample's
augmentation only on (seed, epoch, index), and the RNG is re-seeded from
(seed, iteration) before each step, so a run stopped and resumed from ``latest/``
ends with the same weights as an uninterrupted one.
"""
import contextlib
import logging
import os
import random
import signal
import sys
import threading
import time

import numpy as np
import paddle
from tqdm import tqdm
from paddle.base.unique_name import UniqueNameGenerator

from ..core.builder import (DATASETS, HOOKS, LOSSES, METRICS, TRAINERS, build_lr_scheduler,
                            build_model, build_optimizer)
from ..core.config import check_keys, save_config
from ..core.errors import ConfigError, WeightsError
from ..core.registry import check_arguments
from . import checkpoint as ckpt
from . import rundir
from .validate import check_best_metric, validate_config
from .device import on_gpu, select_device
from .loader import BadSampleError, BadSamples, LoaderInterrupted, SafeLoader
from .hooks import CheckpointHook, EarlyStoppingHook, EvalHook, LoggerHook, VisualDLHook, dump_jsonl
from .sampler import ResumableBatchSampler

TOP_LEVEL_KEYS = {"_file_", "name", "seed", "output_dir", "model", "pretrained", "loss",
                  "train_dataset", "val_dataset", "test_dataset", "metrics", "optimizer",
                  "lr_scheduler", "train", "eval", "export", "hooks", "trainer"}
TRAIN_KEYS = {"epochs", "iters", "batch_size", "num_workers", "log_interval", "eval_interval",
              "checkpoint_interval", "grad_clip", "amp", "amp_level", "early_stop", "visualdl",
              "input_keys", "label_key", "drop_last", "shuffle", "bad_samples", "device"}
EVAL_KEYS = {"batch_size", "best_metric", "mode", "num_workers"}


def _dataset_name(key, dataset):
    return f"{key} ({type(dataset).__name__})"


def get_rank():
    return paddle.distributed.get_rank() if paddle.distributed.get_world_size() > 1 else 0


def get_world_size():
    return paddle.distributed.get_world_size()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    paddle.seed(seed)


def setup_logger(work_dir=None, name="ppzoo", rank=0):
    logger = logging.getLogger(f"{name}.{id(work_dir)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if rank == 0:
        sh = logging.StreamHandler(sys.stdout)
        sh.setFormatter(fmt)
        logger.addHandler(sh)
        if work_dir:
            fh = logging.FileHandler(os.path.join(work_dir, "train.log"), encoding="utf-8")
            fh.setFormatter(fmt)
            logger.addHandler(fh)
    else:
        logger.addHandler(logging.NullHandler())
    return logger


def close_logger(logger):
    for h in list(getattr(logger, "handlers", [])):
        logger.removeHandler(h)
        h.close()


@TRAINERS.register()
class Trainer:
    #: extra top-level config keys a subclass accepts
    extra_config_keys = set()

    def __init__(self, cfg, work_dir=None, resume=False, build_train=True, overwrite=False):
        """``resume`` continues the run in ``work_dir`` from ``latest/``; ``overwrite`` moves
        a used ``work_dir`` aside (``<dir>.old-<time>``) and starts afresh.  Without either,
        a non-empty ``work_dir`` is refused (RunFolderError) before anything is written."""
        self.cfg = cfg
        self.source = cfg.get("_file_", "<config>")
        self.check_config(cfg)
        self.train_cfg = dict(cfg.get("train") or {})
        self.eval_cfg = dict(cfg.get("eval") or {})
        self.seed = int(cfg.get("seed", 0))
        self.rank, self.world_size = get_rank(), get_world_size()
        name = cfg.get("name") or os.path.splitext(os.path.basename(self.source))[0]
        self.work_dir = work_dir or os.path.join(cfg.get("output_dir", "output"), name)
        self.is_main = self.rank == 0
        self.resume_requested = bool(resume)
        self._lock = None
        self._interrupt = None
        owns_dir = self.is_main and build_train
        created = False
        if owns_dir:
            self._config_changes = self._prepare_run_dir(resume, overwrite)
            created = not os.path.isdir(self.work_dir)
            os.makedirs(self.work_dir, exist_ok=True)
            self._lock = rundir.RunLock(self.work_dir).acquire()
        try:
            self.logger = setup_logger(self.work_dir if owns_dir else None, rank=self.rank)
            if self._lock is not None and self._lock.stale:
                self.logger.info(f"took over the lock of a process that is gone "
                                 f"(pid {self._lock.stale.get('pid')})")
            self.input_keys = list(self.train_cfg.get("input_keys", ["image"]))
            self.label_key = self.train_cfg.get("label_key", "label")
            self.metric_listeners = []
            self.stop_requested = False
            self.iter = 0
            self.epoch = 0
            self._step_vars = {}
            # the device first: every tensor built below lands on it
            self.device = select_device(self.train_cfg.get("device"))
            # here, not in _build: trainers that build differently (one per task) read data too
            self.bad_samples = BadSamples(self.train_cfg.get("bad_samples"), self.logger)

            # Parameter and optimizer-state names come from a generator of this trainer's
            # own, so a checkpoint loads into a trainer built later in the same process.
            self._names = UniqueNameGenerator()
            with paddle.utils.unique_name.guard(self._names):
                self._build(cfg, build_train, resume)
        except BaseException:
            self._release_lock()
            if owns_dir:
                close_logger(getattr(self, "logger", None))
                rundir.remove_failed_start(self.work_dir, created, fresh=not resume)
            raise

    @classmethod
    def check_config(cls, cfg):
        """The checks made before anything is built (also ``--check``'s): every key known,
        every engine value of the right type and range (ConfigError)."""
        source = cfg.get("_file_", "<config>")
        check_keys(cfg, TOP_LEVEL_KEYS | cls.extra_config_keys, "", source, hidden=("_file_",))
        validate_config(cfg, source)
        train_cfg = dict(cfg.get("train") or {})
        check_keys(train_cfg, TRAIN_KEYS, "train.", source)
        check_keys(dict(cfg.get("eval") or {}), EVAL_KEYS, "eval.", source)
        if isinstance(train_cfg.get("early_stop"), dict):
            check_arguments(EarlyStoppingHook, train_cfg["early_stop"], "train.early_stop",
                            "early_stop", require=False)

    def _resume_replaces_init(self):
        """Whether a resume loads every parameter from ``latest/`` and nothing reads the
        initial weights: true for trainers that keep the base ``_build``, ``_build_training``
        and ``resume``.  Those that change them (a regularizer anchored at the pretrained
        weights, task or round sequences) keep loading their ``pretrained`` init."""
        cls = type(self)
        return all(getattr(cls, m) is getattr(Trainer, m)
                   for m in ("_build", "_build_training", "resume"))

    def _prepare_run_dir(self, resume, overwrite):
        """Checks before anything is written: a fresh run gets an unused folder, a resumed
        one a config that fits its checkpoint.  Returns the allowed config changes."""
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite exclude each other")
        if resume:
            rundir.check_not_in_use(self.work_dir)
            return self._check_resume_folder()
        moved = rundir.check_new_run_folder(self.work_dir, overwrite=overwrite)
        if moved:
            self._moved_to = moved
        return []

    def _check_resume_folder(self):
        """The config changes a resume into ``work_dir`` allows (refuses the rest).  Trainers
        whose folder holds other state than ``latest/`` (task or round sequences) override it."""
        return rundir.check_resume(self.work_dir, self.cfg)

    def __del__(self):
        try:
            self._release_lock()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    def _release_lock(self):
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def _build(self, cfg, build_train, resume):
        seed_everything(self.seed)
        if "model" not in cfg:
            raise ConfigError(f"{self.source}: the config has no 'model' section")
        skip_init = resume and self._resume_replaces_init()
        if skip_init:  # latest/ replaces every parameter: never fetch an init it overwrites
            cfg = without_pretrained(cfg)
        self.model = build_model(cfg["model"])
        if cfg.get("pretrained"):
            from ..hub import load_pretrained
            load_pretrained(self.model, cfg["pretrained"], logger=self.logger)
        self.loss_fn = LOSSES.build(cfg["loss"], key_path="loss") if cfg.get("loss") else None
        self.metrics = [METRICS.build(m, key_path=f"metrics[{i}]")
                        for i, m in enumerate(cfg.get("metrics") or [])]
        check_best_metric(self.eval_cfg, self.metrics, self.source)
        self.val_dataset = (DATASETS.build(cfg["val_dataset"], key_path="val_dataset")
                            if cfg.get("val_dataset") else None)
        self.val_loader = self._make_eval_loader(self.val_dataset) if self.val_dataset else None
        if build_train:
            self._build_training(resume)

    # ------------------------------------------------------------------ building
    def _build_training(self, resume):
        cfg, tc = self.cfg, self.train_cfg
        if not cfg.get("train_dataset"):
            raise ConfigError(f"{self.source}: the config has no 'train_dataset' section")
        self.train_dataset = DATASETS.build(cfg["train_dataset"], key_path="train_dataset")
        if hasattr(self.train_dataset, "seed"):
            self.train_dataset.seed = self.seed
        self.batch_size = int(tc.get("batch_size", 32))
        self.sampler = ResumableBatchSampler(
            len(self.train_dataset), self.batch_size, shuffle=tc.get("shuffle", True),
            drop_last=tc.get("drop_last", False), seed=self.seed, rank=self.rank,
            world_size=self.world_size)
        self.iters_per_epoch = len(self.sampler)
        if "iters" in tc:
            self.total_iters = int(tc["iters"])
        elif "epochs" in tc:
            self.total_iters = int(tc["epochs"]) * self.iters_per_epoch
        else:
            raise ConfigError(f"{self.source}: set train.epochs or train.iters")
        self.train_loader = SafeLoader(
            self.train_dataset, self.sampler, _dataset_name("train_dataset", self.train_dataset),
            self.bad_samples, training=True,
            collate_fn=getattr(self.train_dataset, "collate_fn", None),
            num_workers=int(tc.get("num_workers", 0)), stop=self._waiting_interrupted)
        if "optimizer" not in cfg:
            raise ConfigError(f"{self.source}: the config has no 'optimizer' section")
        base_lr = float(cfg["optimizer"].get("learning_rate", 0.01))
        self.lr = build_lr_scheduler(cfg.get("lr_scheduler"), base_lr, self.total_iters)
        self.optimizer = build_optimizer(cfg["optimizer"], self.model.named_parameters(), self.lr,
                                         grad_clip=tc.get("grad_clip"))
        self.amp = bool(tc.get("amp", False)) and on_gpu()
        self.scaler = paddle.amp.GradScaler() if self.amp else None
        self.train_model = self.model
        if self.world_size > 1:
            self.train_model = paddle.DataParallel(self.model)
        self.hooks = []
        self._build_hooks()
        if resume:
            self.resume()
        if self.is_main:
            if getattr(self, "_moved_to", None):
                self.logger.info(f"--overwrite: the previous run was moved to {self._moved_to}")
            for line in getattr(self, "_config_changes", []):
                self.logger.info(f"resume with a changed config: {line}")
            save_config(self.cfg, os.path.join(self.work_dir, "config.yml"))

    def _build_hooks(self):
        tc, ec = self.train_cfg, self.eval_cfg
        default_eval = self.iters_per_epoch if "epochs" in tc else max(1, self.total_iters // 10)
        self.register_hook(LoggerHook(tc.get("log_interval", 10)))
        if self.val_loader is not None:
            self.register_hook(EvalHook(tc.get("eval_interval", default_eval),
                                        metric=ec.get("best_metric"), mode=ec.get("mode", "max")))
        self.register_hook(CheckpointHook(tc.get("checkpoint_interval", default_eval)))
        unit = "epoch" if "epochs" in tc else "tenth of train.iters"
        said = [f"{what} every {tc.get(key, default_eval)} iterations"
                + ("" if key in tc else f" (default: each {unit}; set train.{key})")
                for key, what in (("eval_interval", "evaluating"),
                                  ("checkpoint_interval", "saving latest/"))
                if key != "eval_interval" or self.val_loader is not None]
        self.logger.info(f"{self.total_iters} iterations; " + ", ".join(said))
        if tc.get("early_stop"):
            self.register_hook(EarlyStoppingHook(**dict(tc["early_stop"])))
        if tc.get("visualdl"):
            self.register_hook(VisualDLHook())
        for i, h in enumerate(self.cfg.get("hooks") or []):
            self.register_hook(HOOKS.build(h, key_path=f"hooks[{i}]"))

    def register_hook(self, hook):
        self.hooks.append(hook)
        self.hooks.sort(key=lambda h: h.priority)

    def get_hook(self, cls):
        return next((h for h in self.hooks if isinstance(h, cls)), None)

    def _make_eval_loader(self, dataset):
        sampler = paddle.io.BatchSampler(dataset, batch_size=int(self.eval_cfg.get("batch_size", 64)),
                                         shuffle=False)
        name = "val_dataset" if dataset is getattr(self, "val_dataset", None) else "eval dataset"
        return SafeLoader(dataset, sampler, _dataset_name(name, dataset), self.bad_samples,
                          training=False, collate_fn=getattr(dataset, "collate_fn", None),
                          num_workers=int(self.eval_cfg.get("num_workers", 0)),
                          stop=self._waiting_interrupted)

    def _waiting_interrupted(self):
        """True once SIGINT/SIGTERM came: a loader waiting for data stops waiting."""
        return self._interrupt is not None

    # ------------------------------------------------------------------ state
    def current_lr(self):
        return float(self.optimizer.get_lr())

    def write_metrics(self, rec):
        if self.is_main:
            dump_jsonl(os.path.join(self.work_dir, "metrics.jsonl"), rec)
        for fn in self.metric_listeners:
            fn(rec)

    def state(self):
        return {"iter": self.iter, "epoch": self.epoch, "seed": self.seed,
                "total_iters": self.total_iters,
                "hooks": {type(h).__name__: h.state_dict() for h in self.hooks},
                "bad_samples": self.bad_samples.state_dict()}

    def save_checkpoint(self, name, with_optimizer=None):
        """Write ``<work_dir>/<name>/``; the optimizer state goes only into ``latest/``
        (what resume reads) unless ``with_optimizer`` says otherwise."""
        if not self.is_main:
            return
        if with_optimizer is None:
            with_optimizer = name == "latest"
        ckpt.save_checkpoint(os.path.join(self.work_dir, name), self.model.state_dict(),
                             self.optimizer.state_dict() if with_optimizer else None,
                             self.state())

    def load_latest(self):
        """Load ``latest/`` (or ``latest.old/``) into the model after checking that every key
        and shape fits; returns ``(opt_state or None, state, folder read)``."""
        path = os.path.join(self.work_dir, "latest")
        model_state, opt_state, state, found = ckpt.load_checkpoint(path, return_path=True)
        from .export import state_fit_problems
        problems = state_fit_problems(self.model, model_state)
        if problems:
            raise WeightsError(f"--resume: {found} does not fit the model "
                               f"({type(self.model).__name__}): {'; '.join(problems)}")
        self.model.set_state_dict(model_state)
        return opt_state, state, found

    def tidy_resumed_folder(self, upto, unit="iter"):
        """Remove temporaries of killed runs and the metrics records after ``upto``."""
        if not self.is_main:
            return
        removed = ckpt.remove_stale_temps(self.work_dir)
        if removed:
            self.logger.info(f"removed temporary files of killed runs: {', '.join(removed)}")
        dropped = rundir.truncate_metrics(os.path.join(self.work_dir, "metrics.jsonl"), upto)
        if dropped:
            self.logger.info(f"metrics.jsonl: dropped {dropped} record(s) after {unit} "
                             f"{upto}, which this run repeats")

    def resume(self):
        opt_state, state, found = self.load_latest()
        if opt_state is not None:  # holds the LR schedule's state too (key LR_Scheduler)
            self.optimizer.set_state_dict(opt_state)
        for h in self.hooks:
            h.load_state_dict(state.get("hooks", {}).get(type(h).__name__, {}))
        self.bad_samples.load_state_dict(state.get("bad_samples", {}))
        self.iter = int(state["iter"])
        self.epoch = self.iter // self.iters_per_epoch
        self.tidy_resumed_folder(self.iter)
        self.logger.info(f"resumed from {found} at iter {self.iter}")

    # ------------------------------------------------------------------ steps
    @property
    def log_vars(self):
        """The last step's logged values as floats.  The step keeps them as tensors on the
        device; reading this property waits for them, so only log intervals (and the
        checks that need a number) pay the device sync, not every step."""
        return {k: float(v) for k, v in self._step_vars.items()}

    @log_vars.setter
    def log_vars(self, values):
        self._step_vars = dict(values or {})

    def step_values(self):
        """The last step's logged values without a sync: detached float64 tensors (or floats)."""
        return self._step_vars

    def inputs_of(self, batch):
        try:
            return [batch[k] for k in self.input_keys]
        except KeyError as err:
            raise ConfigError(f"train.input_keys names {err.args[0]!r} but the dataset yields "
                              f"{sorted(batch)}") from None

    def forward_loss(self, batch):
        """One step's loss and the values to log; methods override this."""
        logits = self.train_model(*self.inputs_of(batch))
        loss = self.loss_fn(logits, batch[self.label_key])
        return loss, {"loss": loss}

    def train_step(self, batch):
        self.train_model.train()
        with paddle.amp.auto_cast(enable=self.amp, level=self.train_cfg.get("amp_level", "O1")):
            loss, log_vars = self.forward_loss(batch)
        if self.scaler is not None:
            scaled = self.scaler.scale(loss)
            scaled.backward()
            self.scaler.minimize(self.optimizer, scaled)
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        if isinstance(self.lr, paddle.optimizer.lr.LRScheduler):
            self.lr.step()
        self._step_vars = {k: (v.detach().astype("float64") if isinstance(v, paddle.Tensor)
                               else float(v)) for k, v in log_vars.items()}

    def skip_step(self):
        """An iteration whose samples were all skipped as bad: no update, but the LR schedule
        advances, so the schedule and the data order stay tied to the iteration."""
        if isinstance(self.lr, paddle.optimizer.lr.LRScheduler):
            self.lr.step()
        self._step_vars = {}

    def train(self):
        """Run to ``total_iters``.  SIGINT/SIGTERM finish the current step, write ``latest/``
        and raise ``Interrupted``; a second signal stops at once."""
        try:
            with paddle.utils.unique_name.guard(self._names), self._interrupts():
                try:
                    self._train()
                except LoaderInterrupted:
                    pass  # the signal came while waiting for a batch: no step was under way
                except BadSampleError as err:
                    self._stop_on_bad_data(err)
                if self._interrupt is not None:
                    self._stop_on_interrupt()
            return self
        finally:
            self._release_lock()

    @contextlib.contextmanager
    def _interrupts(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}

        def handler(signum, frame):
            if self._interrupt is not None:  # the second one: stop now
                signal.signal(signum, previous.get(signum, signal.SIG_DFL))
                raise KeyboardInterrupt
            self._interrupt = signal.Signals(signum).name
            self.stop_requested = True
            self.logger.info(f"{self._interrupt}: finishing the step, then saving latest/ "
                             f"(send it again to stop at once)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)

    def _stop_on_interrupt(self):
        saved = ""
        if self.is_main and self.iter > 0:
            self.save_checkpoint("latest")
            saved = f"; latest/ holds iter {self.iter}, continue with --resume"
        msg = f"interrupted by {self._interrupt} at iter {self.iter}/{self.total_iters}{saved}"
        self.logger.info(msg)
        raise rundir.Interrupted(f"{msg} ({self.work_dir})")

    def _stop_on_bad_data(self, err):
        """A sample could not be read: save ``latest/`` (when training had started) and
        raise one line naming the file, its dataset and what to do."""
        saved = ""
        if self.is_main and self.iter > 0:
            self.save_checkpoint("latest")
            saved = f"; latest/ holds iter {self.iter}, continue with --resume"
        hint = "" if self.bad_samples.skip else \
            " (fix or remove the file, or set train.bad_samples: {skip: true} to skip bad samples)"
        msg = f"{err}{saved}{hint}"
        self.logger.error(msg)
        raise BadSampleError(msg) from None

    def _train(self):
        for h in self.hooks:
            h.before_run(self)
        t_start = time.time()
        while self.iter < self.total_iters and not self.stop_requested:
            self.epoch = self.iter // self.iters_per_epoch
            start_batch = self.iter % self.iters_per_epoch
            self.sampler.set_epoch(self.epoch, start_batch)
            if hasattr(self.train_dataset, "set_epoch"):
                self.train_dataset.set_epoch(self.epoch)
            for h in self.hooks:
                h.before_epoch(self)
            steps = self.train_loader.steps() if isinstance(self.train_loader, SafeLoader) \
                else self.train_loader
            for batch in steps:
                seed_everything(self.seed * 1000003 + self.iter)
                if batch is None:
                    if self.world_size > 1:  # the other processes would wait for its gradients
                        raise BadSampleError(
                            f"train_dataset: every sample of the batch at iter {self.iter + 1} "
                            f"of process {self.rank} is bad; with data parallel a batch cannot "
                            f"be skipped as a whole (fix the files or use a larger batch_size)")
                    self.skip_step()
                else:
                    self.train_step(batch)
                self.iter += 1
                for h in self.hooks:
                    h.after_iter(self)
                if self.iter >= self.total_iters or self.stop_requested:
                    break
            for h in self.hooks:
                h.after_epoch(self)
        if self._interrupt is not None:
            return self
        for h in self.hooks:
            h.after_run(self)
        self.logger.info(f"training done: {self.iter} iterations in {time.time() - t_start:.1f}s")
        return self

    # ------------------------------------------------------------------ evaluation
    def predict(self, batch):
        """The model output metrics receive; methods with other outputs override this."""
        return self.model(*self.inputs_of(batch))

    @paddle.no_grad()
    def evaluate(self, loader=None):
        loader = loader or self.val_loader
        self.model.eval()
        for m in self.metrics:
            m.reset()
        bar = tqdm(loader, desc="eval", leave=False, disable=not self.is_main or len(loader) < 10,
                   dynamic_ncols=True)
        for batch in bar:
            out = self.predict(batch)
            out = out.numpy() if isinstance(out, paddle.Tensor) else out
            label = batch[self.label_key]
            label = label.numpy() if isinstance(label, paddle.Tensor) else label
            for m in self.metrics:
                m.update(out, label)
        results = {}
        for m in self.metrics:
            results.update(m.accumulate())
        self.model.train()
        return results


def without_pretrained(cfg):
    """``cfg`` without ``pretrained:``, also inside the model (a backbone's ImageNet weights):
    for a model whose every parameter is loaded afterwards (``--weights``, ``--resume``)."""
    def drop(node):
        if isinstance(node, dict):
            return {k: drop(v) for k, v in node.items()
                    if k not in ("pretrained", "pretrained_strict", "backbone_pretrained")}
        if isinstance(node, list):
            return [drop(v) for v in node]
        return node
    return {k: (drop(v) if k == "model" else v) for k, v in cfg.items() if k != "pretrained"}


def build_trainer(cfg, **kwargs):
    """Build the trainer the config's ``trainer.type`` names (default ``Trainer``)."""
    tcfg = dict(cfg.get("trainer") or {"type": "Trainer"})
    cls = TRAINERS.get(tcfg.pop("type", "Trainer"))
    return cls(cfg, **kwargs, **tcfg)
