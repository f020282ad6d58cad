"""Export and inference of both families: the Paddle Inference predictor matches dygraph
within 1e-4, and tools/infer.py turns a video file / a skeleton .npy into top-k labels."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.engine.export import export_from_config
from ppzoo.engine.predictor import Predictor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _write_clip(path, shift):
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 8, (40, 32))
    for i in range(10):
        img = np.full((32, 40, 3), 40, np.uint8)
        img[10:18, (shift + 3 * i) % 32:(shift + 3 * i) % 32 + 8] = 220
        vw.write(img)
    vw.release()


def _train_and_export(cfg, tmp_path):
    run = str(tmp_path / "run")
    trainer = ppzoo.build_trainer(cfg, work_dir=run).train()
    out = str(tmp_path / "exported")
    export_from_config(cfg, os.path.join(run, "latest"), out)
    return trainer, out


def _infer_cli(model_dir, path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir",
                          model_dir, "--input", path, "--topk", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "onednn" not in (res.stdout + res.stderr).lower(), res.stdout  # no oneDNN chatter
    return res.stdout


@paddle.no_grad()
def _check_predictor(model, model_dir, batch):
    model.eval()
    pred = Predictor(model_dir)
    for n in (1, len(batch)):
        got = pred.run([batch[:n]])[0]
        np.testing.assert_allclose(got, model(paddle.to_tensor(batch[:n])).numpy(), atol=1e-4, rtol=0)


def test_video_export_predictor_and_infer(tmp_path):
    lines = []
    for i in range(4):
        _write_clip(str(tmp_path / f"c{i}.avi"), 5 * i)
        lines.append(f"c{i}.avi {i % 2}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    tf = [{"type": "VideoDecoder"}, {"type": "Sampler", "num_seg": 4, "valid_mode": True},
          {"type": "Scale", "short_size": 32}, {"type": "VideoCenterCrop", "target_size": 32},
          {"type": "Image2Array"}, {"type": "VideoNormalize"}]
    ds = {"type": "VideoDataset", "file_path": str(tmp_path / "list.txt"),
          "data_prefix": str(tmp_path), "transforms": tf, "class_names": ["goal", "corner"]}
    cfg = {"name": "v", "seed": 0,
           "model": {"type": "Recognizer2D",
                     "backbone": {"type": "ResNetTSM", "depth": 50, "num_seg": 4, "vd": True,
                                  "act": "leaky_relu", "base_width": 8, "stage_blocks": [1, 1]},
                     "head": {"type": "ppTSMHead", "num_classes": 2, "in_channels": 64, "num_seg": 4}},
           "loss": {"type": "CrossEntropyLoss", "label_smoothing": 0.1},
           "train_dataset": ds, "val_dataset": ds,
           "metrics": [{"type": "TopKAccuracy", "topk": [1]}],
           "optimizer": {"type": "Adam", "learning_rate": 0.001},
           "train": {"iters": 2, "batch_size": 2, "input_keys": ["video"], "eval_interval": 2},
           "eval": {"batch_size": 4, "best_metric": "top1"}, "export": {"task": "video"}}
    trainer, out = _train_and_export(cfg, tmp_path)
    batch = np.stack([trainer.val_dataset[i]["video"] for i in range(4)])
    assert batch.shape == (4, 4, 3, 32, 32)
    _check_predictor(trainer.model, out, batch)
    stdout = _infer_cli(out, str(tmp_path / "c1.avi"))
    assert "c1.avi" in stdout and "goal" in stdout and "corner" in stdout
    # the CLI's top-1 is the dygraph top-1 of the same clip
    top = trainer.model(paddle.to_tensor(batch[1:2])).numpy().argmax()
    line = [ln for ln in stdout.splitlines() if "c1.avi" in ln][0]
    assert line.split(": ", 1)[1].startswith(["goal", "corner"][top])


def test_skeleton_export_predictor_and_infer(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 3, 24, 25, 1)).astype("float32")
    data[1, :, 20:] = 0  # a shorter sequence
    np.save(tmp_path / "x_data.npy", data)
    np.save(tmp_path / "x_label.npy", np.array([0, 1, 2, 0]))
    tf = [{"type": "AutoPadding", "window_size": 16}, {"type": "SkeletonNorm"}]
    ds = {"type": "SkeletonDataset", "file_path": str(tmp_path / "x_data.npy"),
          "label_path": str(tmp_path / "x_label.npy"), "transforms": tf, "class_names": "fsd10"}
    cfg = {"name": "s", "seed": 0,
           "model": {"type": "RecognizerGCN",
                     "backbone": {"type": "STGCN", "channels": [8, 16], "strides": [1, 2]},
                     "head": {"type": "STGCNHead", "num_classes": 30, "in_channels": 16}},
           "loss": {"type": "CrossEntropyLoss"}, "train_dataset": ds, "val_dataset": ds,
           "metrics": [{"type": "TopKAccuracy", "topk": [1, 5]}],
           "optimizer": {"type": "Adam", "learning_rate": 0.001},
           "train": {"iters": 2, "batch_size": 2, "input_keys": ["data"], "eval_interval": 2},
           "eval": {"batch_size": 4, "best_metric": "top1"}, "export": {"task": "skeleton"}}
    trainer, out = _train_and_export(cfg, tmp_path)
    batch = np.stack([trainer.val_dataset[i]["data"] for i in range(4)])
    _check_predictor(trainer.model, out, batch)
    np.save(tmp_path / "one.npy", data[2])
    stdout = _infer_cli(out, str(tmp_path / "one.npy"))
    top = trainer.model(paddle.to_tensor(batch[2:3])).numpy().argmax()
    line = [ln for ln in stdout.splitlines() if "one.npy" in ln][0]
    assert line.split(": ", 1)[1].startswith(f"element_{top:02d}")
    np.save(tmp_path / "bad.npy", np.zeros((3, 4)))
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir",
                          out, "--input", str(tmp_path / "bad.npy")], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "C x T x V x M" in res.stderr
