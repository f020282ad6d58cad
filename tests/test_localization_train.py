"""Localization models trained on generated feature sequences with planted events:
BMN finds them (AR@AN), AttentionLSTM classifies proposals, exports match dygraph."""
import copy
import os

import numpy as np
import paddle
import pytest

from ppzoo.core import load_config
from ppzoo.engine import build_trainer
from ppzoo.engine.export import export_model
from ppzoo.engine.predictor import Predictor
from ppzoo.localization.synth import make_feature_videos

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
T, DIM, FPS = 32, 16, 1


def tiny_bmn_cfg(train, val, epochs=4):
    cfg = load_config(os.path.join(ROOT, "configs", "localization", "bmn_football.yml"))
    cfg["model"].update(feat_dim=DIM, tscale=T, dscale=T, num_sample=8, num_sample_perbin=3,
                        hidden_dim_1d=32, hidden_dim_2d=16, hidden_dim_3d=32)
    cfg["loss"].update(tscale=T, dscale=T)
    for key, (lab, feat), step in (("train_dataset", train, 4), ("val_dataset", val, 8)):
        cfg[key].update(annotations=lab, feature_dir=feat, fps=FPS, tscale=T, dscale=T,
                        window=T, window_step=step)
    cfg["lr_scheduler"]["milestones"] = [1000]  # the preset's schedule, decaying after the run
    cfg["train"].update(epochs=epochs, batch_size=8, log_interval=10)
    cfg["eval"]["batch_size"] = 16
    cfg["export"]["postprocess"].update(window_step=T // 2, min_len=2)
    return cfg


def tiny_lstm_cfg(train, val, epochs=6):
    cfg = load_config(os.path.join(ROOT, "configs", "localization", "lstm_football_image.yml"))
    cfg["model"].update(feature_dim=DIM, lstm_size=16, fc_dims=[32, 32], dropout=0.1)
    cfg["export"]["input_spec"][0]["shape"][-1] = DIM
    for key, (lab, feat) in (("train_dataset", train), ("val_dataset", val)):
        cfg[key].update(annotations=lab, feature_dir=feat, fps=FPS, max_len=16)
    cfg["optimizer"] = {"type": "Adam", "learning_rate": 0.01}
    cfg["train"].update(epochs=epochs, batch_size=32, log_interval=10)
    cfg["eval"]["batch_size"] = 64
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loc")
    kw = dict(duration=200, fps=FPS, dim=DIM, events_per_video=10, length=(3, 8))
    train = make_feature_videos(str(root / "train"), num_videos=3, seed=0, **kw)
    val = make_feature_videos(str(root / "val"), num_videos=1, seed=1, **kw)
    return root, train, val


def trained(cfg, work_dir):
    """(cfg, trainer, metrics before training, metrics after)."""
    trainer = build_trainer(cfg, work_dir=work_dir)
    before = trainer.evaluate()
    trainer.train()
    return cfg, trainer, before, trainer.evaluate()


@pytest.fixture(scope="module")
def bmn_run(data):
    root, train, val = data
    return trained(tiny_bmn_cfg(train, val), str(root / "bmn"))


def test_bmn_finds_planted_events(bmn_run):
    _, trainer, before, after = bmn_run
    # seeded: 40 iterations on 3 x 200 s of features; an untrained BMN ranks at random
    # (AUC as ActivityNet's trapezoid: about 0.48 untrained, 0.55 after these iterations)
    assert after["AUC"] > 0.52 and after["AUC"] > before["AUC"] + 0.05, (before, after)
    assert after["AR@10"] > 0.35 and after["AR@10"] > before["AR@10"] + 0.15, (before, after)
    assert os.path.isfile(os.path.join(trainer.work_dir, "best", "model.pdparams"))


def test_bmn_export_matches_dygraph(bmn_run, tmp_path):
    cfg, trainer, _, _ = bmn_run
    save = str(tmp_path / "bmn_export")
    deploy = export_model(trainer.model, cfg, save, dataset=trainer.val_dataset,
                          input_keys=["feature"])
    assert deploy["task"] == "bmn_proposals" and deploy["reader"]["fps"] == FPS
    x = np.random.default_rng(0).normal(size=(3, DIM, T)).astype("float32")
    trainer.model.eval()
    with paddle.no_grad():
        ref = [t.numpy() for t in trainer.model(paddle.to_tensor(x))]
    got = Predictor(save, device="cpu", use_mkldnn=False).run([x])
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, atol=1e-5)


@pytest.fixture(scope="module")
def lstm_run(data):
    root, train, val = data
    return trained(tiny_lstm_cfg(train, val), str(root / "lstm"))


def test_attention_lstm_learns_proposal_classes(lstm_run):
    _, trainer, before, after = lstm_run
    assert after["top1"] > 0.7 and after["top1"] > before["top1"] + 0.2, (before, after)
    assert after["iou_mae"] < before["iou_mae"], (before, after)


def test_attention_lstm_export_matches_dygraph(lstm_run, tmp_path):
    cfg, trainer, _, _ = lstm_run
    save = str(tmp_path / "lstm_export")
    export_model(trainer.model, cfg, save, dataset=trainer.val_dataset,
                 input_keys=["feature", "mask"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 16, DIM)).astype("float32")
    mask = np.zeros((4, 16), "float32")
    for i, n in enumerate([16, 5, 1, 9]):
        mask[i, :n] = 1
    trainer.model.eval()
    with paddle.no_grad():
        probs, iou = trainer.model.export_forward(paddle.to_tensor(x), paddle.to_tensor(mask))
    got = Predictor(save, device="cpu", use_mkldnn=False).run([x, mask])
    np.testing.assert_allclose(got[0], probs.numpy(), atol=1e-5)
    np.testing.assert_allclose(got[1].reshape(-1), iou.numpy().reshape(-1), atol=1e-5)
    # padding does not change the result: the 5-step proposal alone gives the same
    with paddle.no_grad():
        alone, alone_iou = trainer.model.export_forward(paddle.to_tensor(x[1:2, :5]),
                                                        paddle.ones([1, 5]))
    np.testing.assert_allclose(got[0][1], alone.numpy()[0], atol=1e-5)
    np.testing.assert_allclose(got[1].reshape(-1)[1], float(alone_iou), atol=1e-5)
