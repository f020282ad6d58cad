"""Hooks: what the training loop does besides stepping (log, evaluate, save, stop).

A hook overrides any of ``before_run``, ``before_epoch``, ``after_iter``,
``after_epoch``, ``after_run`` and may keep resumable state through
``state_dict``/``load_state_dict``.  Methods add behaviour by adding hooks
(``hooks:`` in a config) instead of copying the loop.
"""
import json
import os
import time

from ..core.builder import HOOKS
from ..core.errors import ConfigError


class Hook:
    priority = 50  # lower runs first

    def before_run(self, trainer):
        pass

    def before_epoch(self, trainer):
        pass

    def after_iter(self, trainer):
        pass

    def after_epoch(self, trainer):
        pass

    def after_run(self, trainer):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _every(trainer, interval):
    return interval and trainer.iter % interval == 0


@HOOKS.register()
class LoggerHook(Hook):
    """Writes the training loss, LR, speed and ETA to ``train.log`` and ``metrics.jsonl``."""
    priority = 10

    def __init__(self, interval=10):
        self.interval = int(interval)
        self._t0 = None
        self._it0 = 0
        self._acc = {}
        self._n = 0

    def before_run(self, trainer):
        self._t0, self._it0 = time.time(), trainer.iter

    def after_iter(self, trainer):
        values = trainer.step_values() if hasattr(trainer, "step_values") else trainer.log_vars
        if values:  # empty after an iteration whose samples were all skipped as bad
            # summed where the values live (float64 tensors on the device): no sync per step
            for k, v in values.items():
                self._acc[k] = self._acc.get(k, 0.0) + v
            self._n += 1
        if not (_every(trainer, self.interval) or trainer.iter == trainer.total_iters):
            return
        self._acc = {k: float(v) for k, v in self._acc.items()}
        elapsed = time.time() - self._t0
        done = trainer.iter - self._it0
        sec_per_iter = elapsed / max(done, 1)
        eta = sec_per_iter * (trainer.total_iters - trainer.iter)
        rec = {"mode": "train", "epoch": trainer.epoch + 1, "iter": trainer.iter,
               "lr": trainer.current_lr()}
        rec.update({k: v / self._n for k, v in self._acc.items()})
        bad = getattr(trainer, "bad_samples", None)
        if bad is not None and bad.skip:
            rec["skipped_samples"] = bad.skipped  # over the run so far
        rec["sec_per_iter"] = sec_per_iter
        self._acc, self._n = {}, 0
        vals = " ".join(f"{k}={v:.5g}" for k, v in rec.items()
                        if k not in ("mode", "epoch", "iter") and isinstance(v, float))
        trainer.logger.info(f"epoch {rec['epoch']} iter {trainer.iter}/{trainer.total_iters} "
                            f"{vals} eta {_fmt_eta(eta)}")
        trainer.write_metrics(rec)

    def state_dict(self):  # the losses since the last record, so a resumed log matches
        return {"acc": {k: float(v) for k, v in self._acc.items()}, "n": self._n}

    def load_state_dict(self, state):
        self._acc, self._n = dict(state.get("acc", {})), int(state.get("n", 0))


def _fmt_eta(sec):
    sec = int(sec)
    return f"{sec // 3600:d}:{sec % 3600 // 60:02d}:{sec % 60:02d}"


@HOOKS.register()
class EvalHook(Hook):
    """Evaluates every ``interval`` iterations and keeps ``best/`` on the chosen metric."""
    priority = 30

    def __init__(self, interval, metric=None, mode="max"):
        if mode not in ("max", "min"):
            raise ConfigError(f"eval.mode={mode!r}: expected 'max' or 'min'")
        self.interval = int(interval)
        self.metric = metric
        self.mode = mode
        self.best = None
        self.best_iter = None
        self.last = None

    def _maybe_eval(self, trainer):
        if trainer.val_loader is None:
            return
        results = trainer.evaluate()
        key = self.metric or next(iter(results))
        if key not in results:
            raise ConfigError(f"eval.best_metric={key!r} is not among the metrics' results "
                              f"{sorted(results)}")
        value = float(results[key])
        self.last = value
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        rec = {"mode": "val", "epoch": trainer.epoch + 1, "iter": trainer.iter}
        rec.update({k: float(v) for k, v in results.items() if _is_number(v)})
        bad = getattr(trainer, "bad_samples", None)
        if bad is not None and bad.skip:
            rec["skipped_samples"] = bad.eval_skipped  # in this evaluation
        trainer.write_metrics(rec)
        msg = " ".join(f"{k}={float(v):.4f}" for k, v in results.items() if _is_number(v))
        trainer.logger.info(f"[val] iter {trainer.iter}: {msg}")
        if better:
            self.best, self.best_iter = value, trainer.iter
            trainer.save_checkpoint("best")
            trainer.logger.info(f"[val] new best {key}={value:.4f} saved to best/")

    def after_iter(self, trainer):
        if _every(trainer, self.interval) or trainer.iter == trainer.total_iters:
            self._maybe_eval(trainer)

    def state_dict(self):
        return {"best": self.best, "best_iter": self.best_iter}

    def load_state_dict(self, state):
        self.best, self.best_iter = state.get("best"), state.get("best_iter")


def _is_number(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


@HOOKS.register()
class CheckpointHook(Hook):
    """Saves ``latest/`` every ``interval`` iterations and at the end."""
    priority = 40

    def __init__(self, interval):
        self.interval = int(interval)

    def after_iter(self, trainer):
        if _every(trainer, self.interval) or trainer.iter == trainer.total_iters:
            trainer.save_checkpoint("latest")


@HOOKS.register()
class EarlyStoppingHook(Hook):
    """Stops training when the evaluated metric has not improved for ``patience`` evaluations."""
    priority = 35

    def __init__(self, patience=5, min_delta=0.0):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.bad = 0
        self.best = None
        self._seen_iter = None

    def after_iter(self, trainer):
        ev = trainer.get_hook(EvalHook)
        if ev is None or ev.last is None or ev.best_iter is None:
            return
        if self._seen_iter == trainer.iter or not (
                _every(trainer, ev.interval) or trainer.iter == trainer.total_iters):
            return
        self._seen_iter = trainer.iter
        sign = 1 if ev.mode == "max" else -1
        if self.best is None or sign * (ev.last - self.best) > self.min_delta:
            self.best, self.bad = ev.last, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                trainer.logger.info(f"early stopping: no improvement in {self.patience} evaluations")
                trainer.stop_requested = True

    def state_dict(self):
        return {"bad": self.bad, "best": self.best}

    def load_state_dict(self, state):
        self.bad, self.best = state.get("bad", 0), state.get("best")


@HOOKS.register()
class VisualDLHook(Hook):
    """Mirrors ``metrics.jsonl`` records into VisualDL scalars (needs ``pip install visualdl``)."""
    priority = 60

    def __init__(self, log_dir=None):
        self.log_dir = log_dir
        self.writer = None

    def before_run(self, trainer):
        try:
            from visualdl import LogWriter
        except ImportError as err:
            raise ImportError("train.visualdl is on but VisualDL is not installed: "
                              "pip install visualdl") from err
        self.writer = LogWriter(logdir=self.log_dir or os.path.join(trainer.work_dir, "vdl"))
        trainer.metric_listeners.append(self.write)

    def write(self, rec):
        for k, v in rec.items():
            if k not in ("mode", "epoch", "iter") and isinstance(v, (int, float)):
                self.writer.add_scalar(f"{rec['mode']}/{k}", float(v), rec["iter"])

    def after_run(self, trainer):
        if self.writer is not None:
            self.writer.close()


def dump_jsonl(path, rec):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
