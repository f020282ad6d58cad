import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.core import HOOKS, ConfigError, DataError, load_config
from ppzoo.engine import Hook
from ppzoo.engine.checkpoint import load_checkpoint, save_checkpoint
from ppzoo.engine.sampler import ResumableBatchSampler

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class _Crash(Exception):
    pass


@HOOKS.register()
class CrashAtIter(Hook):
    """Simulates a killed run: raises after iteration ``at`` finished (and its hooks ran)."""
    priority = 99

    def __init__(self, at):
        self.at = at

    def after_iter(self, trainer):
        if trainer.iter == self.at:
            raise _Crash()


def _params(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_quickstart_reaches_95_percent(tmp_path):
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"))
    t0 = time.time()
    trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "qs")).train()
    elapsed = time.time() - t0
    results = trainer.evaluate()
    assert results["top1"] >= 0.95, results
    assert elapsed < 120
    run = tmp_path / "qs"
    for f in ("config.yml", "train.log", "metrics.jsonl", "latest/model.pdparams",
              "latest/model.pdopt", "latest/state.json", "best/model.pdparams"):
        assert (run / f).is_file(), f
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "val"} <= {r["mode"] for r in recs}
    assert load_config(str(run / "config.yml"))["model"]["type"] == "SmallCNN"


def test_resume_reproduces_uninterrupted_run(digits_cfg, tmp_path):
    cfg = dict(digits_cfg)
    cfg["model"] = dict(cfg["model"], dropout=0.3)  # RNG is consumed in every step
    cfg["train"] = dict(cfg["train"], epochs=3, checkpoint_interval=7)
    full = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "full")).train()
    total = full.total_iters

    crash_at = 28  # mid-epoch (23 iterations an epoch), 7 after the checkpoint at 21
    crashed = dict(cfg, hooks=[{"type": "CrashAtIter", "at": crash_at}])
    with pytest.raises(_Crash):
        ppzoo.Trainer(crashed, work_dir=str(tmp_path / "cut")).train()
    state = json.loads((tmp_path / "cut" / "latest" / "state.json").read_text())
    assert state["iter"] == 28
    resumed = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "cut"), resume=True)
    assert resumed.iter == 28
    resumed.train()
    assert resumed.iter == total
    a, b = _params(full.model), _params(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    assert abs(full.current_lr() - resumed.current_lr()) < 1e-12


def test_sampler_is_deterministic_resumable_and_sharded():
    s = ResumableBatchSampler(10, 3, shuffle=True, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start_batch=2)
    assert list(s) == full[2:]
    s.set_epoch(3)
    assert list(s) != full
    shards = []
    for r in range(2):
        sr = ResumableBatchSampler(10, 2, seed=1, rank=r, world_size=2)
        sr.set_epoch(0)
        shards.append(sum(list(sr), []))
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(shards[0] + shards[1]) == list(range(10))


def test_checkpoint_survives_a_kill_mid_write(tmp_path):
    ckdir = str(tmp_path / "latest")
    save_checkpoint(ckdir, {"w": paddle.ones([2])}, None, {"iter": 1})
    # a writer killed while renaming leaves the previous checkpoint as latest.old
    os.replace(ckdir, ckdir + ".old")
    os.makedirs(ckdir + ".tmp-123")
    _, _, state = load_checkpoint(ckdir)
    assert state["iter"] == 1
    save_checkpoint(ckdir, {"w": paddle.zeros([2])}, None, {"iter": 2})
    assert not os.path.exists(ckdir + ".old")
    assert load_checkpoint(ckdir)[2]["iter"] == 2


def test_sigkill_during_training_leaves_loadable_checkpoint(tmp_path):
    """Kill a real training process many times per second of checkpointing; the latest
    checkpoint that exists must always load."""
    run = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c",
           os.path.join(ROOT, "configs", "quickstart", "digits.yml"), "--save-dir", str(run),
           "--opts", "train.checkpoint_interval=1", "train.epochs=50", "model.width=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "latest" / "state.json").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, _, state = load_checkpoint(str(run / "latest"))
    assert state["iter"] >= 1


def test_early_stopping_stops(digits_cfg, tmp_path):
    cfg = dict(digits_cfg)
    cfg["optimizer"] = dict(cfg["optimizer"], learning_rate=0.0)  # nothing can improve
    cfg["lr_scheduler"] = None
    cfg["train"] = dict(cfg["train"], epochs=20, early_stop={"patience": 2})
    t = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "es")).train()
    assert t.iter == 3 * t.iters_per_epoch  # first eval sets best, two more without gain


def test_bad_data_is_one_clear_error(tmp_path):
    from PIL import Image
    root = tmp_path / "imgs"
    os.makedirs(root)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "ok.png")
    (root / "broken.png").write_bytes(b"not an image")
    lst = tmp_path / "list.txt"
    lst.write_text("ok.png 0\nbroken.png 1\n")
    ds = ppzoo.core.DATASETS.build({"type": "ImageList", "list_file": str(lst), "root": str(root),
                                    "num_classes": 2})
    assert ds[0]["image"].shape == (4, 4, 3)
    with pytest.raises(DataError, match="broken.png"):
        ds[1]
    lst.write_text("ok.png 0\nok.png 5\n")
    with pytest.raises(DataError, match=r"list.txt:2: label 5 is out of range for 2 classes"):
        ppzoo.core.DATASETS.build({"type": "ImageList", "list_file": str(lst), "root": str(root),
                                   "num_classes": 2})
    lst.write_text("missing.png 0\n")
    with pytest.raises(DataError, match=r"list.txt:1: image file not found"):
        ppzoo.core.DATASETS.build({"type": "ImageList", "list_file": str(lst), "root": str(root)})


def test_train_tool_prints_one_line_for_config_errors(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(f"_base_: {os.path.join(ROOT, 'configs', 'quickstart', 'digits.yml')}\n"
                   "model: {type: SmallCNNN}\n")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", str(cfg),
                          "--save-dir", str(tmp_path / "r")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "error: model.type: unknown type 'SmallCNNN'" in out.stderr
    assert "Traceback" not in out.stderr
    with pytest.raises(ConfigError):
        ppzoo.Trainer(load_config(str(cfg)), work_dir=str(tmp_path / "r2"))
