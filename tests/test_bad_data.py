"""Damaged data files on a real run: a sample that cannot be read stops training at once with
one line naming the file (or is skipped, logged and counted with ``train.bad_samples``),
and SIGINT/SIGTERM work while the main thread waits for a batch."""
import faulthandler
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from PIL import Image

import ppzoo
from ppzoo.core import DATASETS
from ppzoo.core.builder import HOOKS
from ppzoo.core.errors import ConfigError, DataError
from ppzoo.engine.hooks import Hook
from ppzoo.engine.loader import BadSampleError, LoaderError
from ppzoo.engine.rundir import Interrupted

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TRAIN = os.path.join(ROOT, "tools", "train.py")


@pytest.fixture(autouse=True)
def no_hang():
    """A loader that hangs ends the test process with the stacks instead of hanging it."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _image_folder(root, n=8, bad=(), size=12, ext="jpg"):
    """Two classes of ``n`` images each; ``bad`` maps (class, i) to 'truncated' or 'empty'."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        os.makedirs(root / c, exist_ok=True)
        for i in range(n):
            path = root / c / f"{i}.{ext}"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            kind = dict(bad).get((c, i))
            if kind == "truncated":
                path.write_bytes(path.read_bytes()[:300])
            elif kind == "empty":
                path.write_bytes(b"")
    return root


def _cfg(data, **train):
    cfg = {"name": "bad", "seed": 0,
           "model": {"type": "SmallCNN", "num_classes": 2, "in_channels": 3, "width": 4,
                     "depth": 1},
           "loss": {"type": "CrossEntropyLoss"},
           "train_dataset": {"type": "ImageFolder", "root": str(data),
                             "transforms": [{"type": "Normalize"}, {"type": "ToCHW"}]},
           "optimizer": {"type": "Momentum", "learning_rate": 0.01, "momentum": 0.9},
           "train": {"epochs": 2, "batch_size": 4, "log_interval": 1, "shuffle": False}}
    cfg["train"].update(train)
    return cfg


def _write(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


# ---------------------------------------------------------------- the hang, on the real tool
@pytest.mark.parametrize("kind,workers", [("truncated", 0), ("empty", 2)])
def test_a_damaged_jpeg_stops_training_with_one_line_and_exit_2(tmp_path, kind, workers):
    """A JPEG cut to 300 bytes (or of zero bytes) among 16 images: the run stops with one
    line naming the file and the dataset, exit 2, latest/ at the steps done before."""
    data = _image_folder(tmp_path / "data", bad={("b", 5): kind})  # sample 13, 4th batch
    cfg = _write(tmp_path / "cfg.yml", _cfg(data, num_workers=workers))
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, TRAIN, "-c", cfg, "--save-dir", str(run)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out.stderr[-3000:]
    assert str(data / "b" / "5.jpg") in lines[0]
    assert "train_dataset (ImageFolder) sample 13" in lines[0]
    assert "latest/ holds iter 3" in lines[0] and "bad_samples" in lines[0]
    assert json.loads((run / "latest" / "state.json").read_text())["iter"] == 3
    assert not (run / ".lock").exists()


# ---------------------------------------------------------------- interrupts while waiting
WAITING = """
import os, runpy, sys, time
sys.path[:0] = [{root!r}, os.path.dirname({train!r})]
import numpy as np
from ppzoo.core.builder import DATASETS
from ppzoo.datasets.base import BaseDataset

@DATASETS.register()
class WaitingDataset(BaseDataset):
    '''Every sample waits for a file that never appears (a stuck network mount).'''
    def __init__(self, wait_for):
        super().__init__()
        self.wait_for = wait_for
    def __len__(self):
        return 8
    def load(self, idx):
        while not os.path.exists(self.wait_for):
            time.sleep(0.05)
        return {{"image": np.zeros((3, 4, 4), np.float32), "label": np.int64(0)}}

sys.argv = [{train!r}] + sys.argv[1:]
runpy.run_path({train!r}, run_name="__main__")
"""


@pytest.mark.parametrize("sig,workers", [("SIGINT", 0), ("SIGTERM", 2)])
def test_a_signal_while_waiting_on_a_stuck_loader_exits_130(tmp_path, sig, workers):
    script = tmp_path / "train_waiting.py"
    script.write_text(WAITING.format(root=ROOT, train=TRAIN))
    cfg = _cfg("unused", num_workers=workers)
    cfg["train_dataset"] = {"type": "WaitingDataset", "wait_for": str(tmp_path / "never")}
    cfg = _write(tmp_path / "cfg.yml", cfg)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), "-c", cfg, "--save-dir", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and "iterations;" not in _text(run / "train.log"):
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it waited: {proc.communicate()[1][-3000:]}")
            time.sleep(0.2)
        assert "iterations;" in _text(run / "train.log"), "the run never started"
        time.sleep(1.0)  # the main thread is now waiting for the first batch
        sent = time.time()
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
        took = time.time() - sent
    finally:
        try:  # a run that failed the test must not leave its loader workers behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert f"error: interrupted by {sig} at iter 0/4" in err, err[-3000:]
    assert "Traceback" not in err
    assert took < 60, took  # seconds in practice; the bound is generous for slow machines
    assert not (run / ".lock").exists()


def _text(path):
    try:
        return path.read_text()
    except OSError:
        return ""


# ---------------------------------------------------------------- skipping bad samples
@HOOKS.register()
class SignalAtIterForBadData(Hook):
    """Sends this process SIGINT after iteration ``at``, as Ctrl-C would."""
    priority = 99

    def __init__(self, at):
        self.at = at

    def after_iter(self, trainer):
        if trainer.iter == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _records(path):
    return [{k: v for k, v in json.loads(ln).items() if k != "sec_per_iter"}
            for ln in path.read_text().splitlines()]


def test_skipping_bad_samples_logs_each_file_once_counts_them_and_resumes_exactly(tmp_path):
    # samples 12 and 13 are bad: with batch 2 the 7th batch of each epoch is all bad (a step
    # without an update), sample 1 leaves a batch of one
    data = _image_folder(tmp_path / "data", bad={("b", 4): "truncated", ("b", 5): "empty",
                                                 ("a", 1): "empty"})
    cfg = _cfg(data, batch_size=2, epochs=3, checkpoint_interval=100,
               bad_samples={"skip": True, "max_fraction": 0.2})
    full = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "full")).train()
    assert full.iter == 24
    log = (tmp_path / "full" / "train.log").read_text()
    for name in ("a/1.jpg", "b/4.jpg", "b/5.jpg"):
        assert sum(name in ln for ln in log.splitlines()) == 1, log  # once in three epochs
    recs = _records(tmp_path / "full" / "metrics.jsonl")
    assert [r["skipped_samples"] for r in recs][:8] == [1, 1, 1, 1, 1, 1, 3, 3]
    assert recs[-1]["skipped_samples"] == 9 and full.bad_samples.seen == 48
    assert "loss" not in recs[6] and "loss" in recs[7]  # the all-bad iteration: no update
    # a record over several iterations averages the losses of the steps that were taken
    every4 = ppzoo.Trainer(dict(cfg, train=dict(cfg["train"], log_interval=4)),
                           work_dir=str(tmp_path / "every4")).train()
    rec8 = _records(tmp_path / "every4" / "metrics.jsonl")[1]
    assert rec8["iter"] == 8 and every4.iter == 24
    np.testing.assert_allclose(rec8["loss"], np.mean([recs[i]["loss"] for i in (4, 5, 7)]),
                               rtol=1e-5)

    # stopped at iter 13 and resumed: the same weights and the same records
    part = tmp_path / "part"
    t = ppzoo.Trainer(dict(cfg, hooks=[{"type": "SignalAtIterForBadData", "at": 13}]),
                      work_dir=str(part))
    with pytest.raises(Interrupted):
        t.train()
    r = ppzoo.Trainer(cfg, work_dir=str(part), resume=True).train()
    for k, v in full.model.state_dict().items():
        np.testing.assert_allclose(r.model.state_dict()[k].numpy(), v.numpy(), atol=1e-6)
    assert _records(part / "metrics.jsonl") == recs
    assert sum("b/5.jpg" in ln for ln in (part / "train.log").read_text().splitlines()) == 1


def test_more_bad_samples_than_max_fraction_stop_with_one_line(tmp_path):
    data = _image_folder(tmp_path / "data", bad={("a", 1): "empty", ("a", 2): "truncated"})
    cfg = _cfg(data, bad_samples={"skip": True, "max_fraction": 0.1})  # 1.6 of 16 allowed
    with pytest.raises(BadSampleError) as err:
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run")).train()
    msg = str(err.value)
    assert "\n" not in msg and "2 of its 16 samples are bad" in msg and "max_fraction=0.1" in msg
    assert str(data / "a" / "2.jpg") in msg
    cfg = _cfg(data, bad_samples={"skip": True, "max_fraction": 0.125})  # 2 of 16 allowed
    assert ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run2")).train().bad_samples.skipped == 4


@pytest.mark.parametrize("value", [True, {"skip": "yes"}, {"max_fraction": 2},
                                   {"skip": True, "fraction": 0.1}])
def test_bad_samples_key_is_checked(tmp_path, value):
    with pytest.raises(ConfigError, match="train.bad_samples="):
        ppzoo.Trainer(_cfg(tmp_path, bad_samples=value), work_dir=str(tmp_path / "run"))


def test_a_bad_validation_sample_stops_with_latest_saved_or_is_skipped(tmp_path):
    train = _image_folder(tmp_path / "train")
    val = _image_folder(tmp_path / "val", n=3, bad={("b", 2): "truncated"})
    cfg = _cfg(train, epochs=1, checkpoint_interval=100)
    cfg["val_dataset"] = dict(cfg["train_dataset"], root=str(val))
    cfg["metrics"] = [{"type": "TopKAccuracy", "topk": [1]}]
    with pytest.raises(BadSampleError, match=r"val_dataset \(ImageFolder\) sample 5: .*b/2.jpg"
                                             r".*latest/ holds iter 4"):
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run")).train()
    assert json.loads((tmp_path / "run" / "latest" / "state.json").read_text())["iter"] == 4
    cfg["train"]["bad_samples"] = {"skip": True, "max_fraction": 0.5}
    t = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run2")).train()
    val_rec = [r for r in _records(tmp_path / "run2" / "metrics.jsonl") if r["mode"] == "val"]
    assert val_rec[-1]["skipped_samples"] == 1 and t.bad_samples.eval_seen == 6


class _Buggy(ppzoo.datasets.base.BaseDataset):
    def __len__(self):
        return 4

    def load(self, idx):
        return {"image": np.zeros((3, 4, 4), np.float32), "label": np.int64(1 // (idx - 2))}


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_that_is_not_about_data_reaches_the_main_thread_with_its_traceback(workers):
    from ppzoo.engine.loader import BadSamples, SafeLoader
    import paddle
    ds = _Buggy()
    loader = SafeLoader(ds, paddle.io.BatchSampler(ds, batch_size=2), "val_dataset (_Buggy)",
                        BadSamples(), training=False, num_workers=workers)
    with pytest.raises(LoaderError, match=r"(?s)sample 2 failed in the data loader.*"
                                          r"ZeroDivisionError"):
        list(loader)


# ---------------------------------------------------------------- each reader names the file
def _png(path, arr):
    Image.fromarray(arr).save(path)


def _cut(path, n):
    path.write_bytes(path.read_bytes()[:n])


def test_segmentation_lists_and_camvid_name_a_damaged_image_mask_or_confidence(tmp_path):
    rng = np.random.default_rng(0)
    _png(tmp_path / "img.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    _png(tmp_path / "mask.png", rng.integers(0, 11, (32, 32), dtype=np.uint8))
    for name in ("img", "mask"):
        (tmp_path / f"{name}_cut.png").write_bytes((tmp_path / f"{name}.png").read_bytes()[:200])
        (tmp_path / f"{name}_empty.png").write_bytes(b"")
    cases = [("img_cut.png mask.png", "img_cut.png"), ("img_empty.png mask.png", "img_empty.png"),
             ("img.png mask_cut.png", "mask_cut.png"), ("img.png mask_empty.png", "mask_empty.png"),
             ("img.png mask.png mask_cut.png", "mask_cut.png")]  # the confidence PNG
    for line, bad in cases:
        (tmp_path / "list.txt").write_text(line + "\n")
        ds = DATASETS.build({"type": "SegFileList", "root": str(tmp_path),
                             "file_list": "list.txt", "num_classes": 11})
        with pytest.raises(DataError, match=f"cannot read .*{bad}"):
            ds[0]
    for split in ("train", "trainannot"):
        os.makedirs(tmp_path / "camvid" / split)
    _png(tmp_path / "camvid" / "train" / "0001.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "camvid" / "trainannot" / "0001.png").write_bytes(b"\x89PNG\r\n")
    ds = DATASETS.build({"type": "CamVid", "root": str(tmp_path / "camvid")})
    with pytest.raises(DataError, match=r"cannot read mask .*trainannot/0001.png"):
        ds[0]


@pytest.mark.parametrize("mmap", [True, False])
def test_a_damaged_skeleton_array_is_a_data_error_naming_it(tmp_path, mmap):
    np.save(tmp_path / "data.npy", np.ones((4, 2, 10, 25, 1), np.float32))
    np.save(tmp_path / "label.npy", np.arange(4))
    _cut(tmp_path / "data.npy", 300)
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "noise.npy").write_bytes(np.random.default_rng(0).bytes(500))
    for name in ("data.npy", "empty.npy", "noise.npy"):
        with pytest.raises(DataError, match=f"skeleton array .*{name}"):
            DATASETS.build({"type": "SkeletonDataset", "file_path": str(tmp_path / name),
                            "label_path": str(tmp_path / "label.npy"), "mmap": mmap})


def test_a_damaged_tsv_is_a_data_error_naming_file_and_line(tmp_path):
    spec = {"type": "GlueTSV", "text_a": "sentence", "label": "label", "tokenizer": "unused"}
    (tmp_path / "bin.tsv").write_bytes(b"sentence\tlabel\nfine\t1\n\xff\xfe\x00\x13\t0\n")
    with pytest.raises(DataError, match=r"bin.tsv:3: not UTF-8 text"):
        DATASETS.build(dict(spec, path=str(tmp_path / "bin.tsv")))
    (tmp_path / "cut.tsv").write_bytes(b"sentence\tlabel\nfine\t1\nfin")
    with pytest.raises(DataError, match=r"cut.tsv:3: 1 columns"):
        DATASETS.build(dict(spec, path=str(tmp_path / "cut.tsv")))
    (tmp_path / "bin.json").write_bytes(b'{"data": [\n\xff]}')
    with pytest.raises(DataError, match=r"bin.json:2: not UTF-8 text"):
        DATASETS.build({"type": "SquadQA", "path": str(tmp_path / "bin.json"), "tokenizer": "x"})


def test_a_damaged_ltr_file_is_a_data_error_naming_file_and_line(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"1 qid:1 1:0.5\n\x00\xba\xff garbage\n")
    with pytest.raises(DataError, match=r"bin.txt:2: not UTF-8 text"):
        DATASETS.build({"type": "LTRDataset", "path": str(tmp_path / "bin.txt")})
    (tmp_path / "cut.txt").write_bytes(b"1 qid:1 1:0.5 2:0.3\n0 qid:1 1:0.2 2:")
    with pytest.raises(DataError, match=r"cut.txt:2: field '2:'"):
        DATASETS.build({"type": "LTRDataset", "path": str(tmp_path / "cut.txt")})
    (tmp_path / "nog.txt").write_bytes(b"1 1:0.5\n0 1:0.2\n")
    (tmp_path / "nog.txt.query").write_bytes(b"\xff\n")
    with pytest.raises(DataError, match=r"nog.txt.query:1: not UTF-8 text"):
        DATASETS.build({"type": "LTRDataset", "path": str(tmp_path / "nog.txt")})


def test_a_damaged_video_is_a_data_error_naming_it(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "ok.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(20):
            frame = np.full((32, 32, 3), 10 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 3])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    for name in ("cut.mp4", "empty.mp4", "noise.mp4"):
        (tmp_path / "list.txt").write_text(f"{name} 0\n")
        ds = DATASETS.build({"type": "VideoDataset", "file_path": str(tmp_path / "list.txt"),
                             "data_prefix": str(tmp_path), "num_classes": 2,
                             "transforms": [{"type": "VideoDecoder"},
                                            {"type": "Sampler", "num_seg": 8}]})
        with pytest.raises(DataError, match=f"video .*{name}"):
            ds[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_skipped_samples_leave_the_rest_of_their_batch_with_any_number_of_workers(tmp_path,
                                                                               workers):
    from ppzoo.engine.loader import BadSamples, SafeLoader
    from ppzoo.engine.sampler import ResumableBatchSampler
    data = _image_folder(tmp_path / "data", bad={("a", 1): "empty", ("b", 4): "truncated",
                                                 ("b", 5): "empty"})
    ds = DATASETS.build({"type": "ImageFolder", "root": str(data),
                         "transforms": [{"type": "Normalize"}, {"type": "ToCHW"}]})
    sampler = ResumableBatchSampler(len(ds), 2, shuffle=True, drop_last=False, seed=3)
    policy = BadSamples({"skip": True, "max_fraction": 0.5})
    loader = SafeLoader(ds, sampler, "train_dataset (ImageFolder)", policy, training=True,
                        num_workers=workers)
    sampler.set_epoch(1, 0)
    order = [list(b) for b in sampler]
    got = list(loader.steps())
    assert len(got) == len(order) == 8
    for indices, batch in zip(order, got):
        good = [i for i in indices if i not in (1, 12, 13)]
        if not good:
            assert batch is None
            continue
        want = np.stack([ds[i]["image"] for i in good])
        np.testing.assert_array_equal(batch["image"].numpy(), want)
        np.testing.assert_array_equal(batch["label"].numpy(), [ds[i]["label"] for i in good])
    assert policy.skipped == 3 and policy.seen == 16
