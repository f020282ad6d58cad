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
    # no time bound: how fast the quick start trains is a benchmark's question
    # (docs/benchmarks/engine.md), and a busy machine is slower, not broken
    trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "qs")).train()
    results = trainer.evaluate()
    assert results["top1"] >= 0.95, results
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
    deadline = time.time() + 600  # a bound for a hang, not a speed
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


# ---------------------------------------------------------------- run folders, config checks, interrupts
from ppzoo.engine.rundir import Interrupted, RunFolderError  # noqa: E402


def _tiny(cfg, **train):
    cfg = dict(cfg)
    cfg["model"] = dict(cfg["model"], width=4)
    cfg["train"] = dict(cfg["train"], **train)
    return cfg


def _records(path, drop=("sec_per_iter",)):
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in open(path, encoding="utf-8").read().splitlines()]


def test_a_used_run_folder_is_refused_and_overwrite_moves_it_aside(digits_cfg, tmp_path):
    cfg = _tiny(digits_cfg, epochs=1)
    run = tmp_path / "run"
    ppzoo.Trainer(cfg, work_dir=str(run)).train()
    before = {f: (run / f).read_bytes() for f in ("best/model.pdparams", "latest/model.pdparams",
                                                   "metrics.jsonl", "config.yml")}
    with pytest.raises(RunFolderError, match=r"not empty .*--resume.*--overwrite"):
        ppzoo.Trainer(dict(cfg, seed=2), work_dir=str(run))
    assert {f: (run / f).read_bytes() for f in before} == before      # nothing was touched
    t = ppzoo.Trainer(dict(cfg, seed=2), work_dir=str(run), overwrite=True)
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "best" / "model.pdparams").read_bytes() == before[
        "best/model.pdparams"]
    t.train()
    assert load_config(str(run / "config.yml"))["seed"] == 2
    assert len(_records(run / "metrics.jsonl")) == len(_records(old[0] / "metrics.jsonl"))


def test_a_second_run_into_a_locked_folder_fails_and_a_stale_lock_is_taken_over(digits_cfg, tmp_path):
    cfg = _tiny(digits_cfg, iters=2)
    run = tmp_path / "run"
    os.makedirs(run)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": live.pid, "host": os.uname().nodename}))
        with pytest.raises(RunFolderError, match=f"in use by another run \\(pid {live.pid}"):
            ppzoo.Trainer(cfg, work_dir=str(run))
        with pytest.raises(RunFolderError, match="in use"):
            ppzoo.Trainer(cfg, work_dir=str(run), overwrite=True)
    finally:
        live.kill()
        live.wait()
    # the process is gone: its lock is stale and taken over
    t = ppzoo.Trainer(cfg, work_dir=str(run))
    assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    t.train()
    assert not (run / ".lock").exists()                              # released at the end
    # a trainer of this process that took the lock over keeps it when the first one lets go
    from ppzoo.engine.rundir import RunLock
    first, second = RunLock(str(run)).acquire(), RunLock(str(run)).acquire()
    first.release()
    assert (run / ".lock").exists()
    second.release()
    assert not (run / ".lock").exists()


def test_resume_checks_the_config_before_writing_anything(digits_cfg, tmp_path):
    cfg = _tiny(digits_cfg, epochs=1, checkpoint_interval=10)
    run = tmp_path / "run"
    with pytest.raises(_Crash):
        ppzoo.Trainer(dict(cfg, hooks=[{"type": "CrashAtIter", "at": 12}]), work_dir=str(run)).train()
    saved = (run / "config.yml").read_bytes()
    wider = dict(cfg, model=dict(cfg["model"], width=8))
    with pytest.raises(RunFolderError, match=r"model\.width: 4 -> 8"):
        ppzoo.Trainer(wider, work_dir=str(run), resume=True)
    with pytest.raises(RunFolderError, match=r"train\.batch_size"):
        ppzoo.Trainer(_tiny(cfg, batch_size=32), work_dir=str(run), resume=True)
    assert (run / "config.yml").read_bytes() == saved
    # a model changed behind the config's back is caught when the checkpoint is read
    (run / "config.yml").write_text((run / "config.yml").read_text().replace("width: 4", "width: 8"))
    with pytest.raises(ppzoo.core.WeightsError, match="does not fit the model"):
        ppzoo.Trainer(wider, work_dir=str(run), resume=True)
    (run / "config.yml").write_bytes(saved)
    # more epochs is an allowed change: logged, then saved
    t = ppzoo.Trainer(_tiny(cfg, epochs=2), work_dir=str(run), resume=True)
    assert t.iter == 10 and t.total_iters == 2 * t.iters_per_epoch
    assert "train.epochs: 1 -> 2" in (run / "train.log").read_text()
    assert load_config(str(run / "config.yml"))["train"]["epochs"] == 2
    with pytest.raises(RunFolderError, match="no checkpoint to resume from"):
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "empty"), resume=True)
    assert not (tmp_path / "empty").exists()


def test_resumed_metrics_log_equals_an_uninterrupted_runs(digits_cfg, tmp_path):
    cfg = _tiny(digits_cfg, epochs=2, checkpoint_interval=7, log_interval=5)
    ppzoo.Trainer(cfg, work_dir=str(tmp_path / "full")).train()
    with pytest.raises(_Crash):
        ppzoo.Trainer(dict(cfg, hooks=[{"type": "CrashAtIter", "at": 26}]),
                      work_dir=str(tmp_path / "cut")).train()
    assert _records(tmp_path / "cut" / "metrics.jsonl")[-1]["iter"] == 25   # past latest (21)
    ppzoo.Trainer(cfg, work_dir=str(tmp_path / "cut"), resume=True).train()
    assert _records(tmp_path / "cut" / "metrics.jsonl") == _records(tmp_path / "full" / "metrics.jsonl")


@pytest.mark.parametrize("opt,match", [
    ("eval.mode=maximum", r"eval\.mode='maximum': expected one of 'max', 'min'"),
    ("eval.best_metric=top_1", r"eval\.best_metric='top_1' is not among .*did you mean 'top1'"),
    ("train.epochs=ten", r"train\.epochs='ten': expected an integer > 0"),
    ("train.batch_size=-4", r"train\.batch_size=-4: expected an integer > 0"),
    ("optimizer.learning_rate=fast", r"optimizer\.learning_rate='fast': expected a number"),
    ("model.width=sixteen", r"model\.width='sixteen': SmallCNN expects a number"),
    ("train.early_stop.patience=0", r"train\.early_stop\.patience=0"),
])
def test_wrong_values_are_one_config_error_before_training(opt, match, tmp_path):
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"),
                      [opt] if not opt.startswith("train.early_stop") else
                      ["train.early_stop={patience: 0}"])
    with pytest.raises(ConfigError, match=match):
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()                           # a failed start leaves nothing


def test_all_wrong_values_are_listed_and_known_keys_hide_internals(digits_cfg, tmp_path):
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"),
                      ["train.epochs=ten", "train.batch_size=0", "eval.mode=up"])
    with pytest.raises(ConfigError) as err:
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run"))
    assert len(str(err.value).splitlines()) == 4 and "eval.mode='up'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        ppzoo.Trainer(dict(digits_cfg, sed=1), work_dir=str(tmp_path / "run"))
    assert "did you mean 'seed'" in str(err.value) and "_file_" not in str(err.value)


@HOOKS.register()
class SignalAtIter(Hook):
    """Sends this process a signal after iteration ``at``, as Ctrl-C would."""
    priority = 99

    def __init__(self, at, sig="SIGINT"):
        self.at, self.sig = at, sig

    def after_iter(self, trainer):
        if trainer.iter == self.at:
            os.kill(os.getpid(), getattr(signal, self.sig))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupt_saves_latest_and_resume_completes_the_run(digits_cfg, tmp_path, sig):
    cfg = _tiny(digits_cfg, epochs=2, checkpoint_interval=100)
    run = tmp_path / "run"
    t = ppzoo.Trainer(dict(cfg, hooks=[{"type": "SignalAtIter", "at": 9, "sig": sig}]),
                      work_dir=str(run))
    with pytest.raises(Interrupted, match=f"interrupted by {sig} at iter 9/46"):
        t.train()
    assert Interrupted.exit_code == 130
    assert json.loads((run / "latest" / "state.json").read_text())["iter"] == 9
    assert not (run / ".lock").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    r = ppzoo.Trainer(cfg, work_dir=str(run), resume=True).train()
    assert r.iter == 46


def test_ctrl_c_in_the_train_tool_exits_130_with_one_line(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c",
           os.path.join(ROOT, "configs", "quickstart", "digits.yml"), "--save-dir", str(run),
           "--opts", "train.checkpoint_interval=100000", "train.epochs=500", "train.log_interval=1",
           "model.width=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600  # a bound for a hang, not a speed
    while time.time() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: interrupted by SIGINT at iter "), err
    it = json.loads((run / "latest" / "state.json").read_text())["iter"]
    assert f"at iter {it}/" in lines[0] and it >= 1
    assert not (run / ".lock").exists()


def test_resume_cleans_temp_folders_and_says_which_checkpoint_it_loaded(digits_cfg, tmp_path):
    cfg = _tiny(digits_cfg, epochs=1, checkpoint_interval=5)
    run = tmp_path / "run"
    with pytest.raises(_Crash):
        ppzoo.Trainer(dict(cfg, hooks=[{"type": "CrashAtIter", "at": 12}]), work_dir=str(run)).train()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.makedirs(run / f"latest.tmp-{dead.pid}")                       # a kill mid-save
    os.replace(run / "latest", run / "latest.old")                    # a kill mid-rename
    t = ppzoo.Trainer(cfg, work_dir=str(run), resume=True)
    assert t.iter == 10
    assert not (run / f"latest.tmp-{dead.pid}").exists()
    assert "resumed from " + str(run / "latest.old") in (run / "train.log").read_text()


def test_best_is_saved_without_optimizer_state(digits_cfg, tmp_path):
    t = ppzoo.Trainer(_tiny(digits_cfg, epochs=1), work_dir=str(tmp_path / "run")).train()
    assert (tmp_path / "run" / "latest" / "model.pdopt").is_file()
    assert not (tmp_path / "run" / "best" / "model.pdopt").exists()
    assert t.iter == 23


# ---------------------------------------------------------------- data paths
def test_sample_rng_depends_only_on_seed_epoch_and_index():
    from ppzoo.datasets.base import sample_rng
    draws = {(s, e, i): sample_rng(s, e, i).random(4) for s in (0, 7) for e in (0, 1) for i in range(50)}
    for key in [(7, 1, 3), (0, 0, 0), (0, 1, 49)]:                   # any order, any interleaving
        np.testing.assert_array_equal(sample_rng(*key).random(4), draws[key])
    firsts = np.array([v[0] for v in draws.values()])
    assert len(set(firsts.tolist())) == len(firsts)                  # every sample its own stream
    assert abs(firsts.mean() - 0.5) < 0.06 and abs(np.corrcoef(firsts[:-1], firsts[1:])[0, 1]) < 0.15
    old = sample_rng(3, 2, 1, kind="seedsequence").random(3)
    np.testing.assert_array_equal(old, np.random.default_rng([3, 2, 1]).random(3))


def _png(path, arr, mode=None):
    from PIL import Image
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)


def test_png_through_opencv_gives_the_pixels_pil_gives(tmp_path, monkeypatch):
    from PIL import Image
    from ppzoo.transforms import base as tb
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    _png(tmp_path / "rgb.png", rgb)
    _png(tmp_path / "gray.png", rgb[..., 0])
    _png(tmp_path / "rgba.png", np.concatenate([rgb, rgb[..., :1]], axis=2))
    Image.fromarray(rgb[..., 0] % 5).convert("P").save(tmp_path / "pal.png")
    for name in ("rgb", "gray", "rgba", "pal"):
        for mode in ("RGB", "L"):
            path = str(tmp_path / f"{name}.png")
            monkeypatch.setattr(tb, "IMAGE_BACKEND", "auto")
            fast = tb.read_image(path, mode)
            monkeypatch.setattr(tb, "IMAGE_BACKEND", "pil")
            slow = tb.read_image(path, mode)
            assert fast.dtype == np.uint8 and fast.shape == slow.shape, (name, mode)
            np.testing.assert_array_equal(fast, slow, err_msg=f"{name} {mode}")


@pytest.mark.parametrize("backend", ["auto", "pil"])
def test_16_bit_images_are_refused(tmp_path, monkeypatch, backend):
    from PIL import Image
    from ppzoo.transforms import base as tb
    monkeypatch.setattr(tb, "IMAGE_BACKEND", backend)
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(path)
    with pytest.raises(DataError, match=r"deep.png.*8-bit images"):
        tb.read_image(str(path), "RGB")


def test_dataset_cache_keeps_decoded_resized_samples_and_changes_nothing(tmp_path):
    rng = np.random.default_rng(1)
    os.makedirs(tmp_path / "a")
    for i in range(6):
        _png(tmp_path / "a" / f"{i}.png", rng.integers(0, 256, (20, 16, 3), dtype=np.uint8))
    tf = [{"type": "Resize", "size": [10, 8]}, {"type": "RandomCrop", "size": 6},
          {"type": "RandomHorizontalFlip"}, {"type": "Normalize"}, {"type": "ToCHW"}]
    plain = ppzoo.core.DATASETS.build({"type": "ImageFolder", "root": str(tmp_path), "transforms": tf})
    cached = ppzoo.core.DATASETS.build({"type": "ImageFolder", "root": str(tmp_path), "transforms": tf,
                                        "cache": True})
    loads = []
    orig = cached.load
    cached.load = lambda i: loads.append(i) or orig(i)
    assert cached.transforms.deterministic_prefix() == 1
    for epoch in range(3):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(plain)):
            np.testing.assert_array_equal(plain[i]["image"], cached[i]["image"])
    assert sorted(loads) == list(range(6))                          # decoded and resized once
    assert cached._cache[0]["image"].shape == (10, 8, 3)


def test_importing_the_zoo_pulls_no_heavy_optional_package():
    code = ("import sys, ppzoo; print(sorted(m for m in ('sklearn', 'paddlenlp', 'paddleseg', 'ray', "
            "'skimage', 'flwr') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]
