"""Device handling of the engine (train.device, --device, no per-step sync) and the GPU
smoke script's CPU tiny run."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.core import ConfigError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _small(cfg, **train):
    cfg = dict(cfg)
    cfg["model"] = dict(cfg["model"], width=4)
    cfg["train"] = dict(cfg["train"], **train)
    return cfg


def test_train_device_sets_the_place_and_refuses_what_is_not_there(digits_cfg, tmp_path):
    previous = paddle.get_device()
    try:
        paddle.set_device("cpu")
        t = ppzoo.Trainer(_small(digits_cfg, device="cpu"), work_dir=str(tmp_path / "a"))
        assert t.device == "cpu" and paddle.get_device() == "cpu"
        with pytest.raises(ConfigError, match=r"train\.device.*'tpu'.*cpu, gpu or gpu:N"):
            ppzoo.Trainer(_small(digits_cfg, device="tpu"), work_dir=str(tmp_path / "b"))
        assert not (tmp_path / "b").exists()
        if not paddle.is_compiled_with_cuda():
            with pytest.raises(ConfigError, match=r"train\.device='gpu'.*no CUDA"):
                ppzoo.Trainer(_small(digits_cfg, device="gpu"), work_dir=str(tmp_path / "c"))
    finally:
        paddle.set_device(previous)


def test_the_step_does_not_wait_for_the_device_between_log_lines(digits_cfg, tmp_path, monkeypatch):
    """A float() of a tensor waits for the device: the step keeps its logged values as
    tensors and the logger sums them there, so only log intervals convert.  The logged mean
    still equals the mean of the step losses (computed here from each step's tensor)."""
    cfg = _small(digits_cfg, epochs=1, log_interval=1000)
    trainer = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run"))
    seen = []
    base_step = trainer.train_step

    def step(batch):
        base_step(batch)
        v = trainer.step_values()["loss"]
        seen.append(float(v.numpy()) if isinstance(v, paddle.Tensor) else v)
    trainer.train_step = step
    conversions = []
    real_float = paddle.Tensor.__float__
    monkeypatch.setattr(paddle.Tensor, "__float__",
                        lambda self: conversions.append(1) or real_float(self))
    base_item = paddle.Tensor.item
    monkeypatch.setattr(paddle.Tensor, "item", lambda self, *a: conversions.append(1) or base_item(self, *a))
    trainer.train()
    monkeypatch.undo()
    iters = trainer.total_iters
    assert iters >= 5 and len(seen) == iters
    # conversions: the one log line at the end (one per logged value), not one per step
    assert len(conversions) < iters, (len(conversions), iters)
    recs = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl", encoding="utf-8")]
    train = [r for r in recs if r["mode"] == "train"]
    assert len(train) == 1
    assert train[0]["loss"] == pytest.approx(sum(seen) / len(seen), rel=1e-12)


def test_tools_device_flag_becomes_train_device():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import train as train_tool
        from _common import device_opts
    finally:
        sys.path.pop(0)
    args = train_tool.parse_args(["-c", "x.yml", "--device", "cpu"])
    assert device_opts(args) == ["train.device=cpu"]
    assert device_opts(train_tool.parse_args(["-c", "x.yml"])) == []


def test_gpu_smoke_cpu_tiny_runs_every_family(tmp_path):
    """The GPU smoke script's CPU run: every family trains, evaluates, exports, and its
    predictor gives the dygraph output; the rows name each family's config."""
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_smoke.py"), "--device", "cpu",
         "--tiny", "--steps", "2", "--json", str(out), "--work-dir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=1800, cwd=str(tmp_path))
    assert out.is_file(), proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["family"] for r in rows] == ["segmentation", "video", "skeleton", "localization",
                                          "distill", "lnsr", "federated", "active", "ranking",
                                          "continual"]
    failed = {r["family"]: r["error"] for r in rows if r["status"] != "pass"}
    assert not failed, (failed, proc.stderr[-3000:])
    for r in rows:
        assert os.path.isfile(os.path.join(ROOT, r["config"])), r
        assert r["steps"] >= 2 and r["max_diff"] is not None and r["max_diff"] <= 1e-4, r
    assert proc.returncode == 0


def test_the_loader_reads_no_tensor_back_per_batch(monkeypatch):
    """Each batch's sample count reaches the loop as a plain int: reading a tensor back
    (``.numpy()``) would wait for the device before every step."""
    from ppzoo.engine.loader import BadSamples, SafeLoader

    class Numbers(paddle.io.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return {"x": np.full([3], i, np.float32)}
    reads = []
    real = paddle.Tensor.numpy
    monkeypatch.setattr(paddle.Tensor, "numpy", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    sampler = paddle.io.BatchSampler(range(10), batch_size=4)
    loader = SafeLoader(Numbers(), sampler, "numbers", BadSamples(None), training=True)
    batches = list(loader.steps())
    monkeypatch.undo()
    assert [b["x"].shape[0] for b in batches] == [4, 4, 2]
    assert reads == []


def test_export_verification_runs_the_predictor_where_dygraph_ran(monkeypatch, tmp_path):
    """The exported model is checked against dygraph on the same device: on a GPU the
    predictor gets that GPU (without IR fusions), on the CPU the CPU without oneDNN."""
    from ppzoo.engine import device as device_mod
    from ppzoo.engine import export as export_mod

    seen = []

    class Recorder:
        def __init__(self, model_dir, device=None, use_mkldnn=True, ir_optim=True, **kw):
            seen.append((device, use_mkldnn, ir_optim))

        def run(self, inputs):
            return [np.zeros([1, 2], np.float32)]

    class Zero(paddle.nn.Layer):
        def forward(self, x):
            return paddle.zeros([x.shape[0], 2])

    monkeypatch.setattr(export_mod, "Predictor", Recorder)
    x = [np.ones([1, 3], np.float32)]
    export_mod.verify_export(Zero(), str(tmp_path), x, 1e-4)
    monkeypatch.setattr(device_mod, "on_gpu", lambda: True)
    monkeypatch.setattr(paddle, "get_device", lambda: "gpu:1")
    export_mod.verify_export(Zero(), str(tmp_path), x, 1e-4)
    assert seen == [("cpu", False, True), ("gpu:1", False, False)]
