"""DistillTrainer: the shared Trainer loop with soft labels from a teacher.

The config's ``distill:`` section picks where the soft labels come from
(``mode: online | edl | offline``, see :mod:`ppzoo.distill.reader`); the student is the
config's ``model`` and is what checkpoints, eval and export see.  The teacher is a
folder exported with ``tools/export.py`` (``distill.teacher_dir``).
"""
import os

import numpy as np
import paddle

from ..core.builder import TRAINERS
from ..core.config import check_keys
from ..core.errors import ConfigError
from ..engine.loader import BadSamples, SafeLoader
from ..engine.trainer import Trainer, _dataset_name
from .losses import DistillationLoss
from .reader import EDLReader, OfflineSource, OnlineSource, check_mode, write_soft_labels

DISTILL_KEYS = {"mode", "teacher_dir", "topk", "num_workers", "worker_cpus", "worker_gpus",
                "cpu_threads", "device", "use_mkldnn", "request_size", "max_in_flight",
                "prefetch", "ray_address", "ray_num_cpus", "min_workers", "control_file",
                "soft_label_dir", "record_ids", "service", "simulated_ms_per_sample",
                "request_timeout_s", "first_timeout_s", "min_timeout_s", "timeout_factor",
                "replace_after_s", "max_retries", "start_timeout_s", "start_retries",
                "connect_timeout_s", "wait_log_s", "student_ttl_s", "backend", "autoscaling"}


class IndexedDataset(paddle.io.Dataset):
    """Adds the sample's dataset index as ``index``: the id soft labels are matched by."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        sample = dict(self.dataset[idx])
        sample["index"] = np.int64(idx)
        return sample


class _SourceLoader:
    """The train loader as the Trainer loop sees it: the student's batches, soft labels added."""

    def __init__(self, source, loader):
        self.source, self.loader = source, loader

    def __iter__(self):
        return self.source.read(iter(self.loader))

    def __len__(self):
        return len(self.loader)


@TRAINERS.register()
class DistillTrainer(Trainer):
    extra_config_keys = {"distill"}

    def _build_training(self, resume):
        self.dcfg = dict(self.cfg.get("distill") or {})
        check_keys(self.dcfg, DISTILL_KEYS, "distill.", self.source)
        self.mode = self.dcfg.get("mode", "edl")
        check_mode(self.mode, self.source)
        if self.mode == "edl" or (self.mode == "offline" and self.dcfg.get("num_workers")):
            from .pool import require_ray
            require_ray(self.source)          # before the model and data are built
        if self.dcfg.get("service") and self.mode != "edl":
            raise ConfigError(f"{self.source}: distill.service needs mode edl")
        backend = self.dcfg.get("backend", "actors")
        if backend not in ("actors", "serve"):
            raise ConfigError(f"{self.source}: distill.backend must be actors or serve, "
                              f"got {backend!r}")
        if backend == "serve" and not self.dcfg.get("service"):
            raise ConfigError(f"{self.source}: distill.backend serve needs distill.service "
                              f"(start it with tools/teacher_serve.py -c CFG start)")
        if self.dcfg.get("service"):
            pass                              # the service holds the teacher
        elif self.mode != "offline" or not self.dcfg.get("soft_label_dir"):
            if not self.dcfg.get("teacher_dir"):
                raise ConfigError(f"{self.source}: distill.teacher_dir (an exported teacher) "
                                  f"is required for mode {self.mode}")
        super()._build_training(resume)
        self.trained_ids = [] if self.dcfg.get("record_ids") else None
        self.indexed = IndexedDataset(self.train_dataset)
        collate = getattr(self.train_dataset, "collate_fn", None)
        # the engine's loader: a damaged file is one line (or skipped, train.bad_samples), and
        # never a reading thread that dies while the main thread waits for ever
        base = SafeLoader(self.indexed, self.sampler, _dataset_name("train_dataset", self.train_dataset),
                          self.bad_samples, training=True, collate_fn=collate,
                          num_workers=int(self.train_cfg.get("num_workers", 0)),
                          stop=self._waiting_interrupted)
        self.soft_source = self._make_source(collate)
        if isinstance(self.soft_source, EDLReader):
            self.soft_source.load_state_dict(getattr(self, "_resumed_distill", None))
        self.train_loader = _SourceLoader(self.soft_source, base)

    def state(self):
        """The checkpoint's state plus what the reader knows about a service's workers
        (which are in trouble since when), so a resumed student does not start over."""
        st = super().state()
        if isinstance(getattr(self, "soft_source", None), EDLReader):
            st["distill"] = self.soft_source.state_dict()
        return st

    def load_latest(self):
        """Keep the reader's part of the checkpoint for the reader built after it."""
        opt_state, state, found = super().load_latest()
        self._resumed_distill = state.get("distill")
        return opt_state, state, found

    def _teacher_dir(self):
        from .pool import check_teacher_dir
        path = self.dcfg["teacher_dir"]
        if not self.dcfg.get("ray_address") or os.path.isdir(path):
            try:
                check_teacher_dir(path)
            except ConfigError as err:
                raise ConfigError(f"{self.source}: {err}") from None
        return path

    def _runner(self):
        from .pool import TeacherRunner
        d = self.dcfg
        return TeacherRunner(self._teacher_dir(), cpu_threads=d.get("cpu_threads", 1),
                             device=d.get("device", "cpu"), topk=d.get("topk"),
                             use_mkldnn=d.get("use_mkldnn", True),
                             simulated_ms_per_sample=d.get("simulated_ms_per_sample", 0.0))

    def _pool_reader(self):
        from .pool import TeacherPool
        d = self.dcfg
        if d.get("backend") == "serve":
            from .serve import ServePool
            pool = ServePool(d["service"], ray_address=d.get("ray_address"),
                             connect_timeout_s=d.get("connect_timeout_s", 10.0),
                             logger=self.logger)
        elif d.get("service"):
            pool = TeacherPool.connect(d["service"], ray_address=d.get("ray_address"),
                                       connect_timeout_s=d.get("connect_timeout_s", 10.0),
                                       logger=self.logger)
        else:
            pool = TeacherPool(
                self._teacher_dir(), num_workers=d.get("num_workers", 1),
                worker_cpus=d.get("worker_cpus", 1), cpu_threads=d.get("cpu_threads", 1),
                device=d.get("device", "cpu"), topk=d.get("topk"),
                use_mkldnn=d.get("use_mkldnn", True), ray_address=d.get("ray_address"),
                ray_num_cpus=d.get("ray_num_cpus"), worker_gpus=d.get("worker_gpus", 0),
                min_workers=d.get("min_workers", 1),
                simulated_ms_per_sample=d.get("simulated_ms_per_sample", 0.0),
                start_timeout_s=d.get("start_timeout_s"),
                start_retries=d.get("start_retries", 2),
                connect_timeout_s=d.get("connect_timeout_s", 10.0), logger=self.logger)
        control = d.get("control_file", os.path.join(self.work_dir, "teachers"))
        opt = {k: d[k] for k in ("request_timeout_s", "first_timeout_s", "min_timeout_s",
                                 "timeout_factor", "replace_after_s", "max_retries",
                                 "wait_log_s") if d.get(k) is not None}
        return EDLReader(pool, self.input_keys, request_size=d.get("request_size", 32),
                         max_in_flight=d.get("max_in_flight", 4), prefetch=d.get("prefetch", 2),
                         control_file=control, logger=self.logger,
                         rank=int(getattr(self, "rank", 0) or 0), **opt)

    def _make_source(self, collate):
        if self.mode == "online":
            return OnlineSource(self._runner(), self.input_keys)
        if self.mode == "edl":
            return self._pool_reader()
        path = self.dcfg.get("soft_label_dir") or os.path.join(self.work_dir, "soft_labels")
        if not os.path.isdir(path):
            self.logger.info(f"computing soft labels once into {path}")
            source = (self._pool_reader() if self.dcfg.get("num_workers")
                      else OnlineSource(self._runner(), self.input_keys))
            sampler = paddle.io.BatchSampler(self.indexed, batch_size=self.batch_size, shuffle=False)
            # every sample needs its soft label: a damaged file stops here, whatever bad_samples says
            loader = SafeLoader(self.indexed, sampler, _dataset_name("train_dataset", self.train_dataset),
                                BadSamples(), training=False, collate_fn=collate)
            try:
                write_soft_labels(source, loader, path, len(self.indexed),
                                  meta={"teacher_dir": os.path.abspath(self._teacher_dir())})
            finally:
                source.close()
        return OfflineSource(path, len(self.indexed))

    def forward_loss(self, batch):
        if self.trained_ids is not None:
            self.trained_ids.extend(int(i) for i in batch["index"].numpy())
        logits = self.train_model(*self.inputs_of(batch))
        label = batch[self.label_key]
        if isinstance(self.loss_fn, DistillationLoss):
            parts = self.loss_fn.parts(logits, batch["teacher"], label)
            return parts["loss"], parts
        if self.loss_fn is None:
            raise ConfigError(f"{self.source}: the config has no 'loss' section "
                              f"(e.g. type: DistillationLoss)")
        loss = self.loss_fn(logits, batch["teacher"])
        return loss, {"loss": loss}

    def _train(self):
        cpu0 = {}
        if isinstance(self.soft_source, EDLReader):
            cpu0 = self.soft_source.pool.cpu_seconds()
        try:
            return super()._train()
        finally:
            src = self.soft_source
            self.teacher_stats = {"mode": self.mode, "wait_s": round(src.wait_s, 3)}
            if isinstance(src, EDLReader):
                self.teacher_stats.update(resent=src.resent, per_worker=dict(src.per_worker),
                                          timeouts=src.timeouts, late_dropped=src.late_dropped,
                                          unavailable=src.unavailable,
                                          retired=list(src.pool.retired))
                try:
                    self.teacher_stats["teacher_cpu_s"] = {
                        w: c - cpu0.get(w, 0.0) for w, c in src.pool.cpu_seconds().items()}
                except Exception:  # noqa: BLE001 - a worker died: stats only
                    pass
            self.logger.info(f"distill: {self.teacher_stats}")
            src.close()
