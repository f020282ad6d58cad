"""The frame-feature extractor's speed options keep its numbers: the oneDNN-friendly trace
of a ResNetTSM backbone (slices for the temporal shift, ``leaky_relu`` for ``max(x, 0.01x)``)
computes the backbone's own features, its export runs on oneDNN without the fusion pass
that crashes Paddle 3.3, and bf16 is an explicit precision whose error is bounded."""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppzoo.core.builder import build_model
from ppzoo.core.errors import ConfigError
from ppzoo.engine import predictor as P
from ppzoo.localization import features as LF
from ppzoo.video import backbones as VB

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# a PP-TSM in miniature: ResNet-vd bottlenecks, leaky ReLU, temporal shift
TINY_PPTSM = {
    "model": {"type": "Recognizer2D",
              "backbone": {"type": "ResNetTSM", "depth": 50, "num_seg": 4, "base_width": 8,
                           "stage_blocks": [1, 2, 1, 1], "vd": True, "act": "leaky_relu"},
              "head": {"type": "TSNHead", "num_classes": 3, "in_channels": 256, "num_seg": 4}},
    "val_dataset": {"transforms": [
        {"type": "Scale", "short_size": 40}, {"type": "VideoCenterCrop", "target_size": 32},
        {"type": "VideoNormalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}]},
}


def numpy_shift(x, num_seg, ratio):
    """TSM in Paddle's channel order, written from its definition: of C channels the first
    int(C r) take the previous segment's values, up to int(2 C r) the next one's."""
    nt, c, h, w = x.shape
    v = x.reshape(nt // num_seg, num_seg, c, h, w)
    out = v.copy()
    c1, c2 = int(c * ratio), int(c * 2 * ratio)
    out[:, :, :c1] = 0
    out[:, 1:, :c1] = v[:, :-1, :c1]
    out[:, :, c1:c2] = 0
    out[:, :-1, c1:c2] = v[:, 1:, c1:c2]
    return out.reshape(nt, c, h, w)


@pytest.mark.parametrize("c,num_seg,ratio", [(16, 4, 0.25), (13, 3, 1 / 3), (64, 8, 0.125),
                                             (10, 2, 0.2), (10, 2, 0.15)])
def test_shift_by_slices_is_the_temporal_shift(c, num_seg, ratio):
    x = np.random.default_rng(c).standard_normal((2 * num_seg, c, 3, 2)).astype(np.float32)
    got = VB.shift_by_slices(paddle.to_tensor(x), num_seg, ratio).numpy()
    np.testing.assert_array_equal(got, numpy_shift(x, num_seg, ratio))
    np.testing.assert_array_equal(
        got, F.temporal_shift(paddle.to_tensor(x), seg_num=num_seg, shift_ratio=ratio).numpy())


def _tiny(seed=0, backbone=None):
    paddle.seed(seed)
    cfg = dict(TINY_PPTSM["model"], backbone=dict(TINY_PPTSM["model"]["backbone"],
                                                  **(backbone or {})))
    model = build_model(cfg)
    for m in model.sublayers():      # non-trivial BN statistics: the fusion folds them
        if isinstance(m, paddle.nn.BatchNorm2D):
            m._mean.set_value(paddle.rand(m._mean.shape) * 0.2)
            m._variance.set_value(paddle.rand(m._variance.shape) + 0.5)
    model.eval()
    return model


@pytest.mark.parametrize("backbone", [
    None,                                                     # PP-TSM: vd, leaky ReLU
    {"depth": 18, "vd": False, "act": "relu"},                # TSM, basic blocks
    {"vd": False, "act": "relu", "shift": False}])            # TSN: no shift
def test_onednn_graph_computes_the_backbones_own_features(backbone):
    model = _tiny(backbone=backbone)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 4, 3, 32, 32))
                         .astype(np.float32))
    with paddle.no_grad():
        own = model.backbone(x.reshape([-1, 3, 32, 32])).mean(axis=[2, 3]).numpy()
        plain = LF.FrameFeatures(model, onednn_graph=False)(x).numpy()
        fast_layer = LF.FrameFeatures(model, onednn_graph=True)
        fast = fast_layer(x).numpy()
    assert fast_layer.onednn_graph
    leaky = (backbone or {}).get("act", "leaky_relu") == "leaky_relu"
    assert fast_layer.skip_passes == ([VB.LEAKY_CONV_PASS] if leaky else [])
    np.testing.assert_array_equal(plain.reshape(8, -1), own)
    np.testing.assert_allclose(fast, plain, rtol=1e-6, atol=1e-6 * np.abs(plain).max())


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    work = tmp_path_factory.mktemp("lat")
    model = _tiny()
    weights = str(work / "w.pdparams")
    paddle.save(model.state_dict(), weights)
    out = {}
    for name, onednn in (("fast", True), ("plain", False)):
        out[name] = str(work / name)
        LF.export_extractor(dict(TINY_PPTSM), out[name], weights=weights, onednn_graph=onednn)
    x = np.random.default_rng(2).standard_normal((2, 4, 3, 32, 32)).astype(np.float32)
    with paddle.no_grad():
        out["ref"] = LF.FrameFeatures(model)(paddle.to_tensor(x)).numpy()
    out["x"] = x
    return out


def _ops(model_dir):
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        text = f.read()
    return {op for op in ("temporal_shift", "maximum", "leaky_relu") if f'"1.{op}"' in text}


def test_the_onednn_export_has_no_ops_that_leave_onednn(exports):
    assert _ops(exports["plain"]) == {"temporal_shift", "maximum"}
    assert _ops(exports["fast"]) == {"leaky_relu"}
    import yaml
    with open(os.path.join(exports["fast"], "deploy.yml")) as f:
        assert yaml.safe_load(f)["onednn_skip_passes"] == [VB.LEAKY_CONV_PASS]
    with open(os.path.join(exports["plain"], "deploy.yml")) as f:
        assert "onednn_skip_passes" not in yaml.safe_load(f)


def _run_in_child(model_dir, x, tmp_path, precision="fp32", threads=1):
    """The predictor in a child process: a crash in Paddle's passes (a segfault) fails
    this test instead of ending the test run."""
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
            "from ppzoo.engine.predictor import Predictor;"
            "p = Predictor(sys.argv[2], device='cpu', cpu_threads=int(sys.argv[5]), "
            "precision=sys.argv[4]);"
            "np.save(sys.argv[3] + '/y.npy', p.run([np.load(sys.argv[3] + '/x.npy')])[0])")
    res = subprocess.run([sys.executable, "-c", code, ROOT, model_dir, str(tmp_path), precision,
                          str(threads)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return np.load(tmp_path / "y.npy")


def test_the_onednn_export_runs_on_onednn_and_matches_dygraph(exports, tmp_path):
    ref = exports["ref"]
    got = _run_in_child(exports["fast"], exports["x"], tmp_path)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    plain = _run_in_child(exports["plain"], exports["x"], tmp_path)
    np.testing.assert_allclose(got, plain, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_the_pass_list_skips_what_the_export_names():
    names = P.onednn_passes([VB.LEAKY_CONV_PASS])
    assert VB.LEAKY_CONV_PASS not in names and "conv2d_bn_onednn_fuse_pass" in names
    assert names == [n for n in P.ONEDNN_PASSES if n != VB.LEAKY_CONV_PASS]
    bf = P.onednn_passes([], bf16=True)
    i = bf.index("onednn_placement_pass")
    assert tuple(bf[i + 1:i + 1 + len(P.BF16_PASSES)]) == P.BF16_PASSES


def test_precision_is_checked(exports):
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16"):
        P.Predictor(exports["fast"], device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match="without oneDNN"):
        P.Predictor(exports["fast"], device="cpu", use_mkldnn=False, precision="bf16")


@pytest.mark.skipif(not paddle.base.core.supports_bfloat16(), reason="no AVX-512 BF16 here")
def test_bf16_runs_in_bfloat16_within_its_precision(exports, tmp_path):
    ref = _run_in_child(exports["fast"], exports["x"], tmp_path)
    bf = _run_in_child(exports["fast"], exports["x"], tmp_path, precision="bf16")
    diff = np.abs(bf - ref)
    scale = np.abs(ref).max()
    assert diff.max() > 1e-4 * scale          # it really ran in bfloat16 ...
    assert diff.max() < 5e-2 * scale          # ... with bfloat16's 8-bit mantissa error
    cos = (bf * ref).sum(-1) / np.linalg.norm(bf, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.999
    # the predictor records what it was asked for
    assert P.Predictor(exports["fast"], device="cpu", precision="bf16").precision == "bf16"


class _FakePredictor:
    def __init__(self, model_dir, **kwargs):
        self.model_dir, self.kwargs = model_dir, kwargs
        task = {"f": "frame_features", "b": "bmn_proposals", "l": "event_classification"}
        self.deploy = {"task": task[model_dir], "reader": {"fps": 5.0},
                       "inputs": [{"name": "x", "shape": [1, 2048, 200]}]}


def test_pipeline_threads_are_explicit_and_default_to_every_core(monkeypatch):
    from ppzoo.localization import pipeline
    monkeypatch.setattr(pipeline, "Predictor", _FakePredictor)
    loc = pipeline.Localizer("b", "l", "f")
    cores = len(os.sched_getaffinity(0))
    assert LF.default_cpu_threads() == cores
    for p in (loc.features, loc.bmn, loc.lstm):
        assert p.kwargs["cpu_threads"] == cores
    assert loc.features.kwargs["precision"] == "fp32"
    loc = pipeline.Localizer("b", "l", "f", cpu_threads=1, precision="bf16")
    assert [p.kwargs["cpu_threads"] for p in (loc.features, loc.bmn, loc.lstm)] == [1, 1, 1]
    # bf16 for the frame features only: BMN and the classifier stay float32
    assert loc.features.kwargs["precision"] == "bf16"
    assert "precision" not in loc.bmn.kwargs and "precision" not in loc.lstm.kwargs


def test_localize_tool_passes_threads_and_precision(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import localize
    from ppzoo.localization import pipeline
    seen = {}

    class Stop(Exception):
        pass

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise Stop
    monkeypatch.setattr(pipeline, "Localizer", fake)
    argv = ["--bmn", "b", "--lstm", "l", "--input", "x.npy", "--output-dir", "o"]
    with pytest.raises(Stop):
        localize.main.__wrapped__(argv + ["--cpu-threads", "1", "--precision", "bf16",
                                          "--batch-groups", "8"])
    assert (seen["cpu_threads"], seen["precision"], seen["batch_groups"]) == (1, "bf16", 8)
    with pytest.raises(Stop):
        localize.main.__wrapped__(argv)
    assert (seen["cpu_threads"], seen["precision"]) == (None, "fp32")   # the Localizer's default


def test_sampled_frames_equal_the_same_frames_of_a_full_decode(tmp_path):
    """The extractor converts only the sampled frames to RGB (an H.264 stream still has to
    decode every frame: the others are references); those frames are bit-identical to the
    ones a full decode converting every frame picks by timestamp."""
    import av

    from ppzoo.localization.synth import write_event_video
    path = str(tmp_path / "clip.mp4")
    write_event_video(path, 6.0, [(2.0, 4.0, 1)], fps=10, size=48, seed=5)
    every = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            every.append((f.time, f.to_ndarray(format="rgb24")))
    fps = 3.0
    want, k = [], 0
    for t, img in every:
        while t + 1e-6 >= k / fps:
            want.append(img)
            k += 1
    got = list(LF.sample_frames(path, fps))
    assert len(got) == len(want) == 18
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_one_group_a_call_is_the_default_and_gives_the_same_features(exports, tmp_path):
    """Batching fewer groups per call costs fewer CPU seconds (smaller activations stay in
    the cache); the features must not depend on it."""
    import inspect

    from ppzoo.localization.pipeline import Localizer
    from ppzoo.localization.synth import write_event_video
    for fn in (LF.extract_video, LF.extract_videos, Localizer.__init__):
        assert inspect.signature(fn).parameters["batch_groups"].default == 1
    path = str(tmp_path / "clip.mp4")
    write_event_video(path, 7.0, [(2.0, 4.0, 1)], fps=4, size=48, seed=7)
    pred = P.Predictor(exports["fast"], device="cpu", cpu_threads=1)
    one = LF.extract_video(pred, path, fps=4)
    four = LF.extract_video(pred, path, fps=4, batch_groups=4)
    assert one.shape == (28, 256)
    np.testing.assert_array_equal(one, four)


def test_a_pass_this_paddle_lacks_is_left_out(exports, monkeypatch):
    """The pass list is Paddle 3.3's; a name another Paddle does not register is dropped
    (and the predictor still skips what the export names)."""
    monkeypatch.setattr(P, "ONEDNN_PASSES", P.ONEDNN_PASSES + ("no_such_fuse_pass",))
    pred = P.Predictor(exports["fast"], device="cpu", cpu_threads=1)
    got = pred.run([exports["x"]])[0]
    ref = exports["ref"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
