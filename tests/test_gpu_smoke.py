"""Device handling of the engine (train.device, --device, no per-step sync) and the GPU
smoke script's CPU tiny run."""
import json
import os
import subprocess
import sys

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
