"""Run folders that one run owns: refusal of a used folder, a lock, resume compatibility.

A run folder (``output/<name>/``) belongs to one run.  Training into it again is refused
unless the caller says what it wants: ``resume`` continues the run in it (after checking
that the config did not change what the checkpoint means), ``overwrite`` moves the old
run aside to ``<folder>.old-<time>`` and starts afresh.  While a run trains, the folder
holds ``.lock`` with the process id and host; a second run into it fails at once, and a
lock left by a process that no longer exists is taken over.
"""
import copy
import json
import os
import shutil
import socket
import time
import uuid

from ..core.errors import PPZooError

LOCK_NAME = ".lock"

#: config keys whose change makes ``latest/`` mean something else: refused on resume
INCOMPATIBLE_KEYS = ("model", "train_dataset", "loss", "seed", "trainer", "optimizer.type",
                     "train.batch_size", "train.shuffle", "train.drop_last",
                     "train.input_keys", "train.label_key")
#: the rest (``train.epochs``/``iters``, intervals, ``eval.*``, ``val_dataset``, metrics,
#: hooks, the learning rate, ...) may change; the changes are logged.


class RunFolderError(PPZooError):
    """A run folder is in use, holds another run, or does not fit ``--resume``."""


class Interrupted(PPZooError):
    """Training stopped on SIGINT/SIGTERM after saving ``latest/``; tools exit 130."""
    exit_code = 130


# ------------------------------------------------------------------ the lock
def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(work_dir):
    try:
        with open(os.path.join(work_dir, LOCK_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def lock_is_live(info):
    """True if the lock ``info`` belongs to a live process other than this one."""
    if not info or not isinstance(info.get("pid"), int):
        return False
    if info.get("host") != socket.gethostname():
        return True  # another machine's process: cannot be checked, so assume it runs
    return info["pid"] != os.getpid() and _pid_alive(info["pid"])


def check_not_in_use(work_dir, info=None):
    """Raise RunFolderError if a live process (another than this one) holds the folder's lock."""
    info = info if info is not None else read_lock(work_dir)
    if lock_is_live(info):
        raise RunFolderError(
            f"{work_dir} is in use by another run (pid {info['pid']} on {info['host']}, "
            f"started {info.get('started', '?')}); wait for it to finish or choose another "
            f"--save-dir (if that process is gone, delete {os.path.join(work_dir, LOCK_NAME)})")


class RunLock:
    """``<work_dir>/.lock`` held by this process; released by ``release()``."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.path = os.path.join(work_dir, LOCK_NAME)
        self.held = False
        self.stale = None  # the lock info of a dead process this lock replaced

    def acquire(self):
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "token": uuid.uuid4().hex}
        self.token = me["token"]
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = read_lock(self.work_dir)
                check_not_in_use(self.work_dir, info)
                if info and info.get("pid") != os.getpid():
                    self.stale = info
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise RunFolderError(f"{self.work_dir}: could not take the lock {self.path}")

    def release(self):
        if not self.held:
            return
        self.held = False
        info = read_lock(self.work_dir)
        if info and info.get("token") == self.token:  # not a lock a later trainer took over
            try:
                os.remove(self.path)
            except OSError:
                pass


# ------------------------------------------------------------------ the folder
def run_entries(work_dir):
    """What a run folder holds besides its lock."""
    if not os.path.isdir(work_dir):
        return []
    return sorted(n for n in os.listdir(work_dir) if n != LOCK_NAME)


def move_aside(work_dir):
    """Rename a used run folder to ``<folder>.old-<time>``; returns the new name."""
    base = f"{os.path.abspath(work_dir).rstrip(os.sep)}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    dest, i = base, 1
    while os.path.exists(dest):
        dest, i = f"{base}-{i}", i + 1
    os.replace(work_dir, dest)
    return dest


def check_new_run_folder(work_dir, overwrite=False):
    """Refuse a non-empty folder (or move it aside with ``overwrite``) before a fresh run.

    Returns where the old run went, or None."""
    if os.path.exists(work_dir) and not os.path.isdir(work_dir):
        raise RunFolderError(f"run folder {work_dir} exists and is not a folder")
    entries = run_entries(work_dir)
    if not entries:
        return None
    check_not_in_use(work_dir)
    if not overwrite:
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        raise RunFolderError(
            f"run folder {work_dir} is not empty ({shown}); pass --resume to continue that "
            f"run, --overwrite to move it aside to {os.path.basename(work_dir.rstrip(os.sep))}"
            f".old-<time> and start afresh, or choose another --save-dir")
    return move_aside(work_dir)


# ------------------------------------------------------------------ resume compatibility
def _get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _flatten(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "_file_":
                continue
            out.update(_flatten(v, f"{prefix}{k}."))
        if not d and prefix:
            out[prefix[:-1]] = {}
    else:
        out[prefix[:-1]] = d
    return out


def _normalize(cfg):
    """A config as it is saved and read back (YAML round trip: tuples become lists)."""
    import yaml
    data = {k: v for k, v in copy.deepcopy(cfg).items() if k != "_file_"}
    return yaml.safe_load(yaml.safe_dump(data))


def config_changes(old_cfg, new_cfg):
    """``(incompatible, allowed)``: lists of ``key: old -> new`` lines."""
    old, new = _flatten(_normalize(old_cfg)), _flatten(_normalize(new_cfg))
    bad, ok = [], []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if a == b:
            continue
        line = f"{key}: {a!r} -> {b!r}"
        if any(key == k or key.startswith(k + ".") for k in INCOMPATIBLE_KEYS):
            bad.append(line)
        else:
            ok.append(line)
    return bad, ok


def check_resume(work_dir, cfg):
    """Before anything is written: the folder has a checkpoint and the config fits it.

    Returns the allowed changes (lines) against the saved ``config.yml``."""
    from ..core.config import load_config
    from .checkpoint import resolve_checkpoint_dir
    latest = os.path.join(work_dir, "latest")
    if resolve_checkpoint_dir(latest) is None:
        raise RunFolderError(f"--resume: no checkpoint to resume from in {latest}")
    saved = os.path.join(work_dir, "config.yml")
    if not os.path.isfile(saved):
        raise RunFolderError(f"--resume: {saved} is missing, so the run's config cannot be "
                             f"compared")
    bad, ok = config_changes(load_config(saved), cfg)
    if bad:
        raise RunFolderError(
            f"--resume: the config changes what {latest} was trained with: "
            f"{'; '.join(bad)} (allowed changes: train.epochs/iters, intervals, eval.*, "
            f"val_dataset, metrics, hooks, optimizer arguments; start a new run for the rest)")
    return ok


def truncate_metrics(path, upto_iter):
    """Keep the records of iterations ``<= upto_iter`` (a resumed run replays the rest)."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                it = json.loads(line).get("iter")
            except ValueError:
                dropped += 1  # a line cut off by a kill
                continue
            if isinstance(it, int) and it > upto_iter:
                dropped += 1
            else:
                kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, path)
    return dropped


def remove_failed_start(work_dir, created, fresh=False):
    """After a start that failed: leave the folder as it was (the error was reported).

    Only what the failed start wrote is removed: its log, and for a fresh (not resumed) run
    the config it saved; the folder too if this start made it."""
    written = {"train.log", "config.yml"} if fresh else {"train.log"}
    if not os.path.isdir(work_dir) or [n for n in run_entries(work_dir) if n not in written]:
        return
    if created:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        for name in written:
            try:
                os.remove(os.path.join(work_dir, name))
            except OSError:
                pass
