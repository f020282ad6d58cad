"""Sports data formats: PaddleVideo's class lists, label pickles, three-column frame lists,
unlabelled test sets (eval and infer write PaddleVideo's FSD-10 submission), lazy decoding
with flat memory, and one clear error for each bad input."""
import csv
import logging
import os
import pickle
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import ppzoo  # noqa: F401
from ppzoo.core import DataError
from ppzoo.video import classes
from ppzoo.video.datasets import SkeletonDataset, VideoDataset
from ppzoo.video.transforms import Sampler, VideoDecoder, decode_video, open_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ids -> names of PaddleVideo's label files (applications/*/predict/configs*/index_label_*.json)
PV_FOOTBALL = {0: "背景", 1: "进球", 2: "角球", 3: "任意球", 4: "黄牌", 5: "红牌", 6: "换人", 7: "界外球"}
PV_BASKETBALL = {0: "背景", 1: "回放", 2: "进球-三分球", 3: "进球-两分球", 4: "进球-扣篮", 5: "罚球", 6: "跳球"}
# the English names are translations of those words, id for id
EN = {"背景": "background", "进球": "goal", "角球": "corner", "任意球": "free_kick", "黄牌": "yellow_card",
      "红牌": "red_card", "换人": "substitution", "界外球": "throw_in", "回放": "replay",
      "进球-三分球": "goal_three_point", "进球-两分球": "goal_two_point", "进球-扣篮": "goal_dunk",
      "罚球": "free_throw", "跳球": "jump_ball"}


@pytest.mark.parametrize("preset,pv,cfg", [("football", PV_FOOTBALL, "pptsm_football.yml"),
                                           ("basketball", PV_BASKETBALL, "pptsm_basketball.yml")])
def test_class_presets_equal_paddlevideo_label_files(preset, pv, cfg):
    assert classes.PRESETS[preset + "_zh"] == [pv[i] for i in range(len(pv))]
    assert classes.PRESETS[preset] == [EN[pv[i]] for i in range(len(pv))]
    conf = ppzoo.core.load_config(os.path.join(ROOT, "configs", "video", cfg))
    assert conf["model"]["head"]["num_classes"] == len(pv)


def test_table_tennis_preset_has_paddlevideos_8_classes():
    assert len(classes.TABLE_TENNIS) == 8
    conf = ppzoo.core.load_config(os.path.join(ROOT, "configs", "video", "pptsm_table_tennis.yml"))
    assert conf["model"]["head"]["num_classes"] == 8


# ------------------------------------------------------------------ skeleton files


def _skeletons(path, n=5, t=12, seed=0):
    data = np.random.default_rng(seed).normal(size=(n, 3, t, 25, 1)).astype("float32")
    np.save(path, data)
    return data


def test_names_labels_pickle(tmp_path):
    _skeletons(tmp_path / "d.npy")
    with open(tmp_path / "l.pkl", "wb") as f:
        pickle.dump(([f"s{i}" for i in range(5)], [3, 1, 4, 1, 5]), f)
    ds = SkeletonDataset(str(tmp_path / "d.npy"), str(tmp_path / "l.pkl"))
    assert [int(ds[i]["label"]) for i in range(5)] == [3, 1, 4, 1, 5]
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump((["a", "b"], ["x", "y"]), f)
    with pytest.raises(DataError, match="bad.pkl.*integers"):
        SkeletonDataset(str(tmp_path / "d.npy"), str(tmp_path / "bad.pkl"))
    (tmp_path / "trunc.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(DataError, match="trunc.pkl"):
        SkeletonDataset(str(tmp_path / "d.npy"), str(tmp_path / "trunc.pkl"))


def test_bad_skeleton_arrays(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(DataError, match="empty.npy"):
        SkeletonDataset(str(tmp_path / "empty.npy"))
    np.save(tmp_path / "zero.npy", np.zeros((0, 3, 10, 25, 1), "float32"))
    with pytest.raises(DataError, match="zero.npy.*empty"):
        SkeletonDataset(str(tmp_path / "zero.npy"))
    np.save(tmp_path / "tvcm.npy", np.zeros((4, 300, 25, 3, 1), "float32"))  # N, T, V, C, M
    with pytest.raises(DataError, match="T x V x C x M"):
        SkeletonDataset(str(tmp_path / "tvcm.npy"))


# ------------------------------------------------------------------ unlabelled test data


def _train_export(tmp_path):
    from ppzoo.engine.export import export_model  # noqa: F401 - used by tools/export.py
    data = _skeletons(tmp_path / "train_data.npy", n=8)
    np.save(tmp_path / "train_label.npy", np.arange(8) % 3)
    test = _skeletons(tmp_path / "test_A_data.npy", n=5, seed=1)
    tf = [{"type": "AutoPadding", "window_size": 12}, {"type": "SkeletonNorm"}]
    cfg = {
        "name": "fsd", "seed": 0,
        "model": {"type": "RecognizerGCN",
                  "backbone": {"type": "STGCN", "in_channels": 2, "channels": [8], "strides": [1]},
                  "head": {"type": "STGCNHead", "num_classes": 3, "in_channels": 8}},
        "loss": {"type": "CrossEntropyLoss"},
        "train_dataset": {"type": "SkeletonDataset", "file_path": str(tmp_path / "train_data.npy"),
                          "label_path": str(tmp_path / "train_label.npy"), "transforms": tf},
        "val_dataset": {"type": "SkeletonDataset", "file_path": str(tmp_path / "test_A_data.npy"),
                        "transforms": tf},
        "metrics": [{"type": "TopKAccuracy", "topk": [1]}],
        "optimizer": {"type": "Adam", "learning_rate": 0.01},
        "train": {"epochs": 1, "batch_size": 4, "input_keys": ["data"], "log_interval": 50},
        "eval": {"batch_size": 2, "best_metric": "top1"},
        "export": {"task": "skeleton"},
    }
    return cfg, data, test


def test_eval_and_infer_on_unlabelled_fsd10(tmp_path):
    import paddle
    import yaml
    cfg, _, test = _train_export(tmp_path)
    from ppzoo.core.builder import MODELS
    paddle.seed(0)
    model = MODELS.build(dict(cfg["model"]))
    paddle.save(model.state_dict(), str(tmp_path / "w.pdparams"))
    with open(tmp_path / "cfg.yml", "w") as f:
        yaml.safe_dump(cfg, f)
    env = dict(os.environ, PYTHONPATH=ROOT)
    sub = tmp_path / "submission.csv"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval.py"), "-c", str(tmp_path / "cfg.yml"),
                          "--weights", str(tmp_path / "w.pdparams"), "--output", str(sub)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = list(csv.reader(open(sub)))
    assert rows[0] == ["sample_index", "predict_category"] and len(rows) == 6
    # the same classes as the model computes on the same preprocessing
    ds = SkeletonDataset(str(tmp_path / "test_A_data.npy"), transforms=cfg["val_dataset"]["transforms"])
    model.eval()
    x = paddle.to_tensor(np.stack([ds[i]["data"] for i in range(5)]))
    expect = model(x).numpy().argmax(1)
    assert [int(r[1]) for r in rows[1:]] == expect.tolist()
    assert [int(r[0]) for r in rows[1:]] == list(range(5))
    # export, then infer on the N x C x T x V x M test array
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export.py"), "-c", str(tmp_path / "cfg.yml"),
                          "--weights", str(tmp_path / "w.pdparams"), "--save-dir", str(tmp_path / "inf")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir", str(tmp_path / "inf"),
                          "--input", str(tmp_path / "test_A_data.npy"), "--output", str(tmp_path / "pred")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "onednn" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    rows2 = list(csv.reader(open(tmp_path / "pred" / "submission.csv")))
    assert rows2 == rows


# ------------------------------------------------------------------ video lists and decoding


def _write_mp4(path, frames, gop=5, fps=10):
    """Frames with their index written as brightness, encoded with small GOPs (keyframes
    every ``gop`` frames) so seeking has somewhere to go."""
    import av
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.bit_rate = 4_000_000
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _indexed_frames(n, h=48, w=64):
    return [np.full((h, w, 3), (7 * i) % 250, np.uint8) for i in range(n)]


def test_lazy_decoding_reads_the_sampled_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_mp4(path, _indexed_frames(60))
    full = decode_video(str(path))
    assert len(full) == 60
    idx = [3, 17, 17, 29, 44, 58, 0]
    for seek in (True, False):
        got = open_video(str(path), "pyav", seek=seek).read(idx)
        for i, img in zip(idx, got):
            np.testing.assert_array_equal(img, full[i])
    cv = open_video(str(path), "cv2")
    assert cv.frames_len == 60
    for i, img in zip(idx, cv.read(idx)):  # another decoder: same frame content
        assert abs(float(img.mean()) - float(full[i].mean())) < 3


def _peak_decode_bytes(path):
    dec, smp = VideoDecoder(), Sampler(num_seg=4, valid_mode=True)
    tracemalloc.start()
    smp(dec({"filename": str(path)}, None), np.random.default_rng(0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_decoding_memory_is_flat_in_clip_length(tmp_path):
    short, long = tmp_path / "short.mp4", tmp_path / "long.mp4"
    _write_mp4(short, _indexed_frames(20, 240, 320), gop=10)
    _write_mp4(long, _indexed_frames(160, 240, 320), gop=10)
    frame = 240 * 320 * 3
    p_short, p_long = _peak_decode_bytes(short), _peak_decode_bytes(long)
    assert p_long < 12 * frame, (p_short, p_long)  # 4 frames sampled, not 160 held
    assert p_long < p_short + 4 * frame, (p_short, p_long)


def test_three_column_frame_lists_and_unlabelled_lists(tmp_path):
    from PIL import Image
    for clip in ("a", "b"):
        os.makedirs(tmp_path / clip)
        for i in range(6):
            Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / clip / f"img_{i:05d}.jpg")
    (tmp_path / "frames.list").write_text("a 6 1\nb 5 0\n")
    tf = [{"type": "FrameDecoder"}, {"type": "Sampler", "num_seg": 2, "valid_mode": True}]
    ds = VideoDataset(str(tmp_path / "frames.list"), data_prefix=str(tmp_path), transforms=tf)
    assert ds.has_labels and int(ds[0]["label"]) == 1 and ds[1]["frame_idx"].max() < 5
    (tmp_path / "too_many.list").write_text("a 9 1\n")
    with pytest.raises(DataError, match="9 frames.*6 images"):
        VideoDataset(str(tmp_path / "too_many.list"), data_prefix=str(tmp_path), transforms=tf)[0]
    (tmp_path / "test.list").write_text("a\nb\n")
    ds = VideoDataset(str(tmp_path / "test.list"), data_prefix=str(tmp_path), transforms=tf)
    assert not ds.has_labels and "label" not in ds[0]
    path = ds.write_predictions(str(tmp_path / "pred.csv"), np.array([[0.1, 0.9], [0.8, 0.2]]))
    assert list(csv.reader(open(path)))[1:] == [["0", "1", str(tmp_path / "a")], ["1", "0", str(tmp_path / "b")]]


def test_bad_video_files_raise_one_clear_error(tmp_path, caplog):
    import av
    import cv2
    audio = tmp_path / "audio_only.mp4"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=16000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        fr.sample_rate = 16000
        for _ in range(4):
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(DataError, match="no video stream"):
        VideoDecoder()({"filename": str(audio)}, None)
    # a truncated MJPEG AVI: sampled from the frames present, with a warning
    avi = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(40):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    data = avi.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="ppzoo"):
        sample = VideoDecoder()({"filename": str(tmp_path / "cut.avi")}, None)
    assert sample["frames_len"] < 40
    assert "announces 40 frames" in caplog.text and "cut.avi" in caplog.text
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="junk.mp4"):
        VideoDecoder()({"filename": str(tmp_path / "junk.mp4")}, None)
