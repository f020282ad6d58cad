"""The skeleton presets that go with PaddleVideo's released weights run PaddleVideo's own
pipeline, frame for frame.  The reference below is written from the definition of
PaddleVideo's ``AutoPadding`` and ``SkeletonNorm`` (paddlevideo/loader/pipelines/
skeleton_pipeline.py) and of its ``Iden``: a frame counts as valid up to the last one whose
values sum (signed) above zero, else the whole array; a longer sequence is resampled at
``linspace(0, T, window)`` cast to int64; then x, y centred on joint 8."""
import os

import numpy as np
import pytest

import ppzoo  # noqa: F401 - registers the components
from ppzoo.core import ConfigError, load_config
from ppzoo.core.builder import DATASETS
from ppzoo.video.skeleton import AutoPadding, JointToBone

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def pv_auto_padding(data, window):
    """PaddleVideo's AutoPadding (no random pad), as its definition reads."""
    c, t, v, m = data.shape
    for i in range(t - 1, -1, -1):
        if np.sum(data[:, i, :, :]) > 0:
            t = i + 1
            break
    if t == window:
        return data[:, :window]
    if t < window:
        out = np.zeros((c, window, v, m))
        out[:, :t] = data[:, :t]
        return out
    return data[:, np.linspace(0, t, window).astype("int64")]  # IndexError at t = array length


def pv_skeleton_norm(data):
    data = data - data[:, :, 8:9, :]
    return data[:2].astype("float32")


def fsd10_like(valid, length=2500, seed=0):
    """An FSD-10-shaped sequence (3 x length x 25 x 1) with ``valid`` frames of positive
    coordinates (OpenPose pixels), zeros after."""
    rng = np.random.default_rng(seed)
    data = np.zeros((3, length, 25, 1), "float32")
    data[:, :valid] = rng.uniform(0, 1920, size=(3, valid, 25, 1)).astype("float32")
    data[2, :valid] = rng.uniform(0, 1, size=(valid, 25, 1))
    return data


@pytest.mark.parametrize("valid", [120, 350, 400, 1000, 2400, 2499])
def test_paddlevideo_sampling_equals_paddlevideos_autopadding(valid):
    data = fsd10_like(valid)
    t = AutoPadding(350, sampling="paddlevideo", valid_frames="signed")
    got = t({"data": data.copy()}, np.random.default_rng(0))["data"]
    np.testing.assert_array_equal(got, pv_auto_padding(data, 350).astype("float32"))
    if valid > 350:  # ppzoo's own sampling takes other frames (the first and the last valid)
        own = AutoPadding(350)({"data": data.copy()}, None)["data"]
        differ = int((np.abs(own - got).sum(axis=(0, 2, 3)) > 0).sum())
        assert differ > 0.2 * 350, differ


def test_paddlevideo_sampling_guards_the_index_error_at_the_array_length():
    data = fsd10_like(2500)
    with pytest.raises(IndexError):
        pv_auto_padding(data, 350)
    got = AutoPadding(350, sampling="paddlevideo", valid_frames="signed")({"data": data.copy()}, None)["data"]
    idx = np.linspace(0, 2500, 350).astype("int64")
    assert idx[-1] == 2500 and idx[-2] < 2499
    want = data[:, np.append(idx[:-1], 2499)]
    np.testing.assert_array_equal(got, want)


def test_signed_valid_frames_follow_paddlevideo():
    """Frames whose values sum to zero or below end the sequence for PaddleVideo (negative
    coordinates after centring, a frame of zeros with one negative value); an array with no
    positive frame counts whole."""
    data = fsd10_like(600)
    data[:, 500:600] = -1.0  # valid by absolute value, not by the signed sum
    signed = AutoPadding(350, sampling="paddlevideo", valid_frames="signed")
    np.testing.assert_array_equal(signed({"data": data.copy()}, None)["data"],
                                  pv_auto_padding(data, 350).astype("float32"))
    own = AutoPadding(350, sampling="paddlevideo")({"data": data.copy()}, None)["data"]  # abs: 600 frames
    np.testing.assert_array_equal(own, data[:, np.linspace(0, 600, 350).astype("int64")])
    neg = -np.ones((3, 300, 25, 1), "float32")  # counts 300 frames: padded to 350
    got = signed({"data": neg.copy()}, None)["data"]
    np.testing.assert_array_equal(got, pv_auto_padding(neg, 350).astype("float32"))


def test_autopadding_options_are_checked():
    with pytest.raises(ConfigError, match="AutoPadding.sampling: 'paddle'"):
        AutoPadding(350, sampling="paddle")
    with pytest.raises(ConfigError, match="AutoPadding.valid_frames"):
        AutoPadding(350, valid_frames="sum")


PRESETS = {  # preset -> PaddleVideo's window (train and test alike, no random pad/crop)
    "stgcn_fsd10": 350, "agcn_fsd10": 350, "agcn2s_fsd10": 300, "agcn2s_fsd10_bone": 300,
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_fsd10_presets_run_paddlevideos_pipeline(preset, tmp_path):
    window = PRESETS[preset]
    arrays = [fsd10_like(v, seed=i) for i, v in enumerate([90, 300, 350, 777, 2500])]
    arrays[3][:, 700:777] = -5.0
    np.save(tmp_path / "d.npy", np.stack(arrays))
    np.save(tmp_path / "l.npy", np.arange(len(arrays)))
    cfg = load_config(os.path.join(ROOT, "configs", "skeleton", preset + ".yml"))
    for split in ("train_dataset", "val_dataset"):
        dcfg = dict(cfg[split], file_path=str(tmp_path / "d.npy"), label_path=str(tmp_path / "l.npy"))
        ds = DATASETS.build(dcfg)
        for i, data in enumerate(arrays):
            padded = pv_auto_padding(data, window) if i < 4 else \
                data[:, np.minimum(np.linspace(0, 2500, window).astype("int64"), 2499)]
            want = pv_skeleton_norm(padded)
            if preset.endswith("_bone"):  # the bone stream: JointToBone (tested on its own
                # in test_skeleton.py) on that pipeline's output
                want = JointToBone("fsd10")({"data": want}, None)["data"]
            np.testing.assert_allclose(ds[i]["data"], want, rtol=0, atol=1e-3, err_msg=f"{split} {i}")
    assert cfg["export"]["default_input_spec"][0]["shape"][2] == window


def test_ntu_preset_passes_300_frame_arrays_unchanged(tmp_path):
    """PaddleVideo's NTU ST-GCN pipeline is ``Iden``: the 300-frame arrays as they are."""
    rng = np.random.default_rng(4)
    data = np.zeros((3, 3, 300, 25, 2), "float32")
    for i, t in enumerate([300, 180, 40]):
        data[i, :, :t] = rng.normal(size=(3, t, 25, 2))
    np.save(tmp_path / "d.npy", data)
    np.save(tmp_path / "l.npy", np.arange(3))
    cfg = load_config(os.path.join(ROOT, "configs", "skeleton", "stgcn_ntu.yml"))
    for split in ("train_dataset", "val_dataset"):
        ds = DATASETS.build(dict(cfg[split], file_path=str(tmp_path / "d.npy"),
                                 label_path=str(tmp_path / "l.npy")))
        for i in range(3):
            np.testing.assert_array_equal(ds[i]["data"], data[i])
