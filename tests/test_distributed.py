"""Data-parallel training on the CPU across 2 processes (paddle.distributed.launch, gloo)."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.core import load_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CFG = os.path.join(ROOT, "configs", "quickstart", "digits.yml")
# no BatchNorm and no dropout: then 2 ranks x 32 samples must equal 1 process x 64 samples
OPTS = ["model.norm=none", "model.width=4", "train.epochs=1", "train.log_interval=5",
        "optimizer.learning_rate=0.02"]


def test_two_process_data_parallel_equals_one_process_with_the_global_batch(tmp_path):
    run = tmp_path / "dp"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "logs"), os.path.join(ROOT, "tools", "train.py"),
           "-c", CFG, "--save-dir", str(run), "--opts", "train.batch_size=32", *OPTS]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    logs = {p: (tmp_path / "logs" / p).read_text() for p in ("workerlog.0", "workerlog.1")
            if (tmp_path / "logs" / p).exists()}
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:] + str(logs)
    assert len(logs) == 2
    # only rank 0 writes the run directory; rank 1 logs nothing to it
    assert "training done: 23 iterations" in logs["workerlog.0"]
    assert "training done" not in logs["workerlog.1"]
    dp_state = paddle.load(str(run / "latest" / "model.pdparams"))

    cfg = load_config(CFG, ["train.batch_size=64", *OPTS])
    single = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "single")).train()
    assert single.iter == 23
    ref = single.model.state_dict()
    for k, v in ref.items():
        np.testing.assert_allclose(dp_state[k].numpy(), v.numpy(), atol=2e-5, rtol=1e-4, err_msg=k)
    # and training did move the weights
    fresh = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "fresh"), build_train=False).model.state_dict()
    assert max(float(np.abs(fresh[k].numpy() - v.numpy()).max()) for k, v in ref.items()) > 1e-3
