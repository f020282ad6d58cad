"""PaddleVideo's recipe pieces: Mixup (trainer), PreciseBN (hook), Nesterov and the fc's
learning-rate multipliers (optimizer options used by the PP-TSM config)."""
import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppzoo
from ppzoo.core import ConfigError
from ppzoo.video.recipes import precise_bn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_precise_bn_is_the_plain_average_of_batch_statistics():
    paddle.seed(0)
    model = nn.Sequential(nn.Conv2D(3, 4, 1), nn.BatchNorm2D(4))
    rng = np.random.default_rng(0)
    batches = [{"x": paddle.to_tensor(rng.normal(i, 1 + i, size=(5, 3, 4, 4)).astype("float32"))}
               for i in range(4)]
    model.eval()
    used = precise_bn(model, batches, lambda b: [b["x"]])
    assert used == 4 and not model.training
    conv = model[0]
    means, vars_ = [], []
    for b in batches:  # the definition: per-batch statistics of the BN input, then their mean
        y = conv(b["x"]).numpy()
        means.append(y.mean(axis=(0, 2, 3)))
        vars_.append(y.var(axis=(0, 2, 3)))
    bn = model[1]
    np.testing.assert_allclose(bn._mean.numpy(), np.mean(means, 0), rtol=1e-4, atol=1e-5)
    n = 5 * 4 * 4  # Paddle's running variance takes the batch variance as it computes it
    unbiased = np.mean(vars_, 0) * n / (n - 1)
    biased = np.mean(vars_, 0)
    got = bn._variance.numpy()
    assert np.allclose(got, biased, rtol=1e-4) or np.allclose(got, unbiased, rtol=1e-4), (got, biased)
    assert bn._momentum == 0.9  # restored


def _skeleton_cfg(tmp_path, trainer=None, hooks=None):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "d.npy", rng.normal(size=(12, 2, 8, 25, 1)).astype("float32"))
    np.save(tmp_path / "l.npy", np.arange(12) % 3)
    ds = {"type": "SkeletonDataset", "file_path": str(tmp_path / "d.npy"), "label_path": str(tmp_path / "l.npy")}
    cfg = {"name": "mix", "seed": 0,
           "model": {"type": "RecognizerGCN",
                     "backbone": {"type": "STGCN", "in_channels": 2, "channels": [8], "strides": [1]},
                     "head": {"type": "STGCNHead", "num_classes": 3, "in_channels": 8}},
           "loss": {"type": "CrossEntropyLoss"}, "train_dataset": ds, "val_dataset": ds,
           "metrics": [{"type": "TopKAccuracy", "topk": [1]}],
           "optimizer": {"type": "Momentum", "momentum": 0.9, "use_nesterov": True, "learning_rate": 0.01},
           "train": {"epochs": 2, "batch_size": 4, "input_keys": ["data"], "log_interval": 50},
           "eval": {"batch_size": 6, "best_metric": "top1"}}
    if trainer:
        cfg["trainer"] = trainer
    if hooks:
        cfg["hooks"] = hooks
    return cfg


def test_mixup_mixes_inputs_and_labels_as_paddlevideo(tmp_path):
    cfg = _skeleton_cfg(tmp_path, trainer={"type": "MixupTrainer", "mixup_alpha": 0.2})
    trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "run"))
    batch = next(iter(trainer.train_loader))
    np.random.seed(3)
    trainer.model.eval()  # no dropout / BN updates: the two forwards must agree
    trainer.train_model.eval()
    loss, _ = trainer.forward_loss(batch)
    lam, perm = trainer.last_mix
    x, y = batch["data"].numpy(), batch["label"].numpy()
    mixed = paddle.to_tensor(lam * x + (1 - lam) * x[perm])
    logits = trainer.model(mixed)
    ce = paddle.nn.functional.cross_entropy
    expect = lam * ce(logits, paddle.to_tensor(y)) + (1 - lam) * ce(logits, paddle.to_tensor(y[perm]))
    np.testing.assert_allclose(float(loss), float(expect), rtol=1e-5)
    assert 0 < lam < 1 and sorted(perm) == list(range(len(y)))
    with pytest.raises(ConfigError, match="mixup_alpha"):
        ppzoo.build_trainer(_skeleton_cfg(tmp_path, trainer={"type": "MixupTrainer", "mixup_alpha": 0}),
                            work_dir=str(tmp_path / "run2"))


def test_mixup_and_precise_bn_train(tmp_path, caplog):
    import logging
    cfg = _skeleton_cfg(tmp_path, trainer={"type": "MixupTrainer"},
                        hooks=[{"type": "PreciseBNHook", "interval": 1, "num_iters": 2}])
    with caplog.at_level(logging.INFO):
        trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "run")).train()
    assert np.isfinite(trainer.evaluate()["top1"])
    log = open(tmp_path / "run" / "train.log").read() if (tmp_path / "run" / "train.log").exists() else caplog.text
    assert "PreciseBN: BatchNorm statistics from 2 training batches" in log + caplog.text


def test_pptsm_config_uses_paddlevideos_optimizer_recipe():
    cfg = ppzoo.core.load_config(os.path.join(ROOT, "configs", "video", "pptsm_r50.yml"))
    opt = cfg["optimizer"]
    assert opt["type"] == "Momentum" and opt["use_nesterov"] is True and opt["learning_rate"] == 0.01
    groups = {g["pattern"]: g for g in opt["param_groups"]}
    assert groups[r"^head\.fc\.weight$"]["lr_mult"] == 5.0
    assert groups[r"^head\.fc\.bias$"]["lr_mult"] == 10.0
    # the groups select what PaddleVideo's ParamAttrs select, on the PP-TSM model's names
    import re
    from ppzoo.core.builder import MODELS
    model = MODELS.build({"type": "Recognizer2D",
                          "backbone": dict(cfg["model"]["backbone"], depth=18, pretrained=None),
                          "head": dict(cfg["model"]["head"], in_channels=512)})
    names = [n for n, _ in model.named_parameters()]
    bn = [n for n in names if re.search(r"\.bn\.(weight|bias)$", n)]
    assert len(bn) == sum(1 for n in names if ".bn." in n and not n.endswith(("_mean", "_variance")))
    assert [n for n in names if re.search(r"^head\.fc\.weight$", n)] == ["head.fc.weight"]
