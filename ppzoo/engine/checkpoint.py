"""Checkpoints written atomically: a kill mid-write never leaves a broken folder.

A checkpoint is a folder (``model.pdparams``, ``model.pdopt``, ``state.json``).  It is
written under a temporary name and renamed into place; the previous folder is kept as
``<name>.old`` until the rename succeeded, and loading falls back to it.  Loading reads
the files with ``ppzoo.core.safeload`` (no code from a file runs).
"""
import json
import os
import re
import shutil

import paddle

from ..core import safeload
from ..core.errors import WeightsError


def atomic_save_paddle(obj, path):
    tmp = f"{path}.tmp-{os.getpid()}"
    paddle.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(ckpt_dir, model_state, opt_state=None, state=None, extra=None):
    """``extra`` ({file name: object}) adds further ``paddle.save`` files to the folder."""
    parent = os.path.dirname(os.path.abspath(ckpt_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{ckpt_dir}.tmp-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    paddle.save(model_state, os.path.join(tmp, "model.pdparams"))
    if opt_state is not None:
        paddle.save(opt_state, os.path.join(tmp, "model.pdopt"))
    with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
        json.dump(state or {}, f, indent=1)
    for fname, obj in (extra or {}).items():
        paddle.save(obj, os.path.join(tmp, fname))
    old = f"{ckpt_dir}.old"
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(ckpt_dir):
        os.replace(ckpt_dir, old)
    os.replace(tmp, ckpt_dir)
    if os.path.exists(old):
        shutil.rmtree(old)


def resolve_checkpoint_dir(ckpt_dir):
    """The folder to load: ``ckpt_dir``, or ``ckpt_dir.old`` if a save was cut off."""
    for cand in (ckpt_dir, f"{ckpt_dir}.old"):
        if os.path.isfile(os.path.join(cand, "state.json")) and \
                os.path.isfile(os.path.join(cand, "model.pdparams")):
            return cand
    return None


def load_checkpoint(ckpt_dir, return_path=False):
    """``(model_state, opt_state or None, state)``, plus the folder read with ``return_path``."""
    found = resolve_checkpoint_dir(ckpt_dir)
    if found is None:
        raise WeightsError(f"no checkpoint to resume from in {ckpt_dir}")
    try:
        model_state = safeload.load(os.path.join(found, "model.pdparams"))
        opt_path = os.path.join(found, "model.pdopt")
        opt_state = safeload.load(opt_path) if os.path.isfile(opt_path) else None
        with open(os.path.join(found, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
    except WeightsError:   # names the file and what was refused
        raise
    except Exception as err:  # noqa: BLE001  (truncated or foreign files)
        raise WeightsError(f"checkpoint {found} cannot be read: {type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}") from None
    return (model_state, opt_state, state, found) if return_path else (model_state, opt_state, state)


def _pid_of_temp(name):
    m = re.search(r"\.tmp-(\d+)$", name)
    return int(m.group(1)) if m else None


def remove_stale_temps(folder):
    """Remove ``<name>.tmp-<pid>`` files and folders whose writing process no longer exists."""
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in os.listdir(folder):
        pid = _pid_of_temp(name)
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # a live process is still writing it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        p = os.path.join(folder, name)
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.remove(p)
            except OSError:
                continue
        removed.append(name)
    return removed
