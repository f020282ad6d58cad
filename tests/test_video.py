"""Video recognition: temporal shift, sampling, decoding real files, TSM vs TSN on motion
direction, PaddleVideo weight names."""
import os

import cv2
import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.core import ConfigError, DataError, WeightsError
from ppzoo.core.builder import MODELS
from ppzoo.video.backbones import temporal_shift
from ppzoo.video.datasets import VideoDataset
from ppzoo.video.transforms import dense_indices, segment_indices
from ppzoo.video.weights import load_paddlevideo_weights, map_paddlevideo_names


def numpy_shift(x, num_seg, ratio):
    """TSM written independently in NumPy, in Paddle's channel order (the first fold comes
    from the previous segment, the second from the next; the paper's code mirrors it)."""
    nt, c, h, w = x.shape
    v = x.reshape(nt // num_seg, num_seg, c, h, w)
    out = np.zeros_like(v)
    fold = int(c * ratio)
    out[:, 1:, :fold] = v[:, :-1, :fold]                    # from the previous segment
    out[:, :-1, fold:2 * fold] = v[:, 1:, fold:2 * fold]    # from the next segment
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]
    return out.reshape(nt, c, h, w)


@pytest.mark.parametrize("num_seg,ratio,c", [(8, 0.125, 16), (4, 0.25, 8), (3, 0.2, 10)])
def test_temporal_shift_matches_numpy(num_seg, ratio, c):
    x = np.random.default_rng(0).normal(size=(2 * num_seg, c, 3, 4)).astype("float32")
    got = temporal_shift(paddle.to_tensor(x), num_seg, ratio).numpy()
    np.testing.assert_allclose(got, numpy_shift(x, num_seg, ratio), rtol=0, atol=0)


def test_segment_and_dense_sampling():
    rng = np.random.default_rng(0)
    # eval: the (lower) centre frame of each of 4 segments of 40 frames
    assert segment_indices(40, 4, 1, False, rng) == [4, 14, 24, 34]
    for _ in range(20):  # train: one frame inside each segment
        idx = segment_indices(40, 4, 1, True, rng)
        assert all(10 * i <= f < 10 * (i + 1) for i, f in enumerate(idx))
    assert len(set(tuple(segment_indices(40, 4, 1, True, rng)) for _ in range(20))) > 1
    idx = segment_indices(40, 4, 2, False, rng)  # seg_len consecutive frames
    assert idx == [4, 5, 14, 15, 24, 25, 34, 35]
    assert segment_indices(3, 8, 1, False, rng)[-1] <= 2  # shorter than num_seg: valid frames
    assert dense_indices(100, 8, 4, False, rng) == list(range(34, 66, 4))
    d = dense_indices(10, 8, 2, False, rng)
    assert all(0 <= i < 10 for i in d)


def _square_video(direction, x0, y0, size=32, frames=8, step=3, sq=6):
    """A bright square moving left->right (direction 0) or right->left (1)."""
    xs = [x0 + i * step for i in range(frames)]
    if direction == 1:
        xs = xs[::-1]
    out = []
    for x in xs:
        img = np.full((size, size, 3), 30, np.uint8)
        img[y0:y0 + sq, x:x + sq] = (230, 200, 60)
        out.append(img)
    return out


def _write_video(path, frames, fps=8):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()


def _direction_dataset(root, n, seed):
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    lines = []
    for i in range(n):
        label = i % 2
        if label == 0:  # each start position appears with both directions
            x0, y0 = int(rng.integers(0, 6)), int(rng.integers(0, 26))
        frames = _square_video(label, x0, y0)
        name = f"v{i:03d}.avi"
        _write_video(os.path.join(root, name), frames)
        lines.append(f"{name} {label}")
    with open(os.path.join(root, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return os.path.join(root, "list.txt")


def _pipeline(valid):
    return [{"type": "VideoDecoder"}, {"type": "Sampler", "num_seg": 8, "valid_mode": valid},
            {"type": "Image2Array"}, {"type": "VideoNormalize", "mean": [0.5] * 3, "std": [0.5] * 3}]


def _cfg(list_train, list_val, root_train, root_val, shift, work):
    return {
        "name": "direction", "seed": 3, "output_dir": work,
        "model": {"type": "Recognizer2D",
                  "backbone": {"type": "ResNetTSM", "depth": 18, "num_seg": 8, "shift": shift,
                               "shift_ratio": 0.25, "base_width": 8, "stage_blocks": [1, 1]},
                  "head": {"type": "TSMHead", "num_classes": 2, "in_channels": 16, "num_seg": 8,
                           "drop_ratio": 0.0}},
        "loss": {"type": "CrossEntropyLoss", "label_smoothing": 0.1},
        "train_dataset": {"type": "VideoDataset", "file_path": list_train, "data_prefix": root_train,
                          "transforms": _pipeline(False), "class_names": ["right", "left"]},
        "val_dataset": {"type": "VideoDataset", "file_path": list_val, "data_prefix": root_val,
                        "transforms": _pipeline(True), "class_names": ["right", "left"]},
        "metrics": [{"type": "TopKAccuracy", "topk": [1]}],
        "optimizer": {"type": "Adam", "learning_rate": 0.01},
        "train": {"epochs": 12, "batch_size": 16, "input_keys": ["video"], "log_interval": 50},
        "eval": {"batch_size": 32, "best_metric": "top1"},
    }


def test_tsm_learns_direction_tsn_cannot(tmp_path):
    tr = _direction_dataset(str(tmp_path / "train"), 64, 0)
    va = _direction_dataset(str(tmp_path / "val"), 32, 1)
    acc = {}
    for shift in (True, False):
        cfg = _cfg(tr, va, str(tmp_path / "train"), str(tmp_path / "val"), shift,
                   str(tmp_path / f"run_{shift}"))
        trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / f"run_{shift}")).train()
        acc[shift] = trainer.evaluate()["top1"]
        if not shift:
            # without temporal modelling a clip and its reverse give the same scores
            model = trainer.model
            model.eval()
            fwd = np.stack(_square_video(0, 2, 5)).astype("float32").transpose(0, 3, 1, 2)[None]
            rev = fwd[:, ::-1].copy()
            a, b = (model(paddle.to_tensor((v / 255 - 0.5) / 0.5)).numpy() for v in (fwd, rev))
            np.testing.assert_allclose(a, b, atol=1e-5)
    assert acc[True] >= 0.9, acc
    # val pairs every clip with its reverse: an order-blind model gets exactly one of each
    assert acc[False] == pytest.approx(0.5), acc


def test_decode_real_video_file_both_backends(tmp_path):
    frames = [np.full((24, 40, 3), 10 * i, np.uint8) for i in range(20)]
    path = str(tmp_path / "clip.avi")
    _write_video(path, frames)
    (tmp_path / "list.txt").write_text("clip.avi 1\n")
    for backend in ("pyav", "cv2"):
        ds = VideoDataset(str(tmp_path / "list.txt"), data_prefix=str(tmp_path), transforms=[
            {"type": "VideoDecoder", "backend": backend},
            {"type": "Sampler", "num_seg": 4, "valid_mode": True},
            {"type": "Scale", "short_size": 16}, {"type": "VideoCenterCrop", "target_size": 16},
            {"type": "Image2Array"}])
        s = ds[0]
        assert s["video"].shape == (4, 3, 16, 16) and s["label"] == 1
        assert list(s["frame_idx"]) == [2, 7, 12, 17]
        # decoded brightness follows the encoded frames (lossy codec: within a few levels)
        np.testing.assert_allclose(s["video"].mean(axis=(1, 2, 3)), [20, 70, 120, 170], atol=4)


def test_frame_folder_and_train_augmentation(tmp_path):
    folder = tmp_path / "frames" / "clip1"
    folder.mkdir(parents=True)
    from PIL import Image
    for i in range(12):
        Image.fromarray(np.full((60, 80, 3), i * 20, np.uint8)).save(folder / f"img_{i:05d}.jpg")
    (tmp_path / "list.txt").write_text("clip1 0\n")
    tf = [{"type": "FrameDecoder"}, {"type": "Sampler", "num_seg": 3},
          {"type": "Scale", "short_size": 40}, {"type": "MultiScaleCrop", "target_size": 32},
          {"type": "VideoRandomCrop", "target_size": 28}, {"type": "RandomFlip"},
          {"type": "Image2Array"}, {"type": "VideoNormalize"}]
    ds = VideoDataset(str(tmp_path / "list.txt"), data_prefix=str(tmp_path / "frames"), transforms=tf)
    a, b = ds[0], ds[0]
    assert a["video"].shape == (3, 3, 28, 28)
    np.testing.assert_array_equal(a["video"], b["video"])  # same (seed, epoch, idx)
    assert all(4 * i <= f < 4 * (i + 1) for i, f in enumerate(a["frame_idx"]))


def test_bad_inputs_raise_one_clear_error(tmp_path):
    (tmp_path / "list.txt").write_text("a.mp4 0\nb.mp4\n")
    with pytest.raises(DataError, match="list.txt:2"):
        VideoDataset(str(tmp_path / "list.txt"))
    (tmp_path / "l2.txt").write_text("missing.mp4 0\n")
    ds = VideoDataset(str(tmp_path / "l2.txt"), transforms=[{"type": "VideoDecoder"}])
    with pytest.raises(DataError, match="missing.mp4"):
        ds[0]
    (tmp_path / "l3.txt").write_text("x.mp4 9\n")
    with pytest.raises(DataError, match="label 9"):
        VideoDataset(str(tmp_path / "l3.txt"), class_names="football")
    with pytest.raises(ConfigError, match="depth"):
        MODELS.build({"type": "Recognizer2D", "backbone": {"type": "ResNetTSM", "depth": 20},
                      "head": {"type": "TSNHead", "num_classes": 2, "in_channels": 8}})


def _pptsm(num_classes=5):
    return MODELS.build({"type": "Recognizer2D",
                         "backbone": {"type": "ResNetTSM", "depth": 50, "num_seg": 2, "vd": True,
                                      "act": "leaky_relu", "base_width": 8, "stage_blocks": [1, 2]},
                         "head": {"type": "ppTSMHead", "num_classes": num_classes,
                                  "in_channels": 64, "num_seg": 2}})


def _to_paddlevideo_names(state):
    """Renames a ppzoo PP-TSM state dict the way PaddleVideo's ResNetTweaksTSM names it."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[1] == "stem":
            name = f"backbone.conv1_{int(parts[2]) + 1}." + ".".join(parts[3:])
        elif parts[1] == "stages":
            name = f"backbone.bb_{parts[2]}_{parts[3]}." + ".".join(parts[4:])
        else:
            name = k
        name = name.replace(".conv.", "._conv.").replace(".bn.", "._batch_norm.")
        out[name] = v.numpy()
    return out


def test_paddlevideo_pptsm_weights_load(tmp_path):
    paddle.seed(1)
    src = _pptsm()
    pv = _to_paddlevideo_names(src.state_dict())
    assert "backbone.conv1_2._batch_norm._variance" in pv and "backbone.bb_1_1.conv2._conv.weight" in pv
    assert any(k.startswith("backbone.bb_1_0.short._conv") for k in pv)
    path = str(tmp_path / "pptsm.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in pv.items()}, path)
    paddle.seed(2)
    dst = _pptsm()
    load_paddlevideo_weights(dst, path)
    src.eval(), dst.eval()
    x = paddle.randn([1, 2, 3, 32, 32])
    np.testing.assert_allclose(src(x).numpy(), dst(x).numpy(), atol=1e-6)
    # a new head (other class count) loads with strict=False and is reported
    skipped = load_paddlevideo_weights(_pptsm(num_classes=3), path, strict=False)
    assert sorted(skipped) == ["head.fc.bias", "head.fc.weight"]
    with pytest.raises(WeightsError, match="head.fc.weight"):
        load_paddlevideo_weights(_pptsm(num_classes=3), path)
    # the same file through the config key of the recognizer (a new 3-class head)
    cfg = {"type": "Recognizer2D", "pretrained": path,
           "backbone": {"type": "ResNetTSM", "depth": 50, "num_seg": 2, "vd": True,
                        "act": "leaky_relu", "base_width": 8, "stage_blocks": [1, 2]},
           "head": {"type": "ppTSMHead", "num_classes": 3, "in_channels": 64, "num_seg": 2}}
    m3 = MODELS.build(cfg)
    np.testing.assert_array_equal(m3.backbone.stem[0].conv.weight.numpy(),
                                  src.backbone.stem[0].conv.weight.numpy())
    with pytest.raises(WeightsError, match="not found"):
        load_paddlevideo_weights(dst, str(tmp_path / "none.pdparams"))


def test_paddlevideo_basic_block_names_map():
    state = {"backbone.conv._conv.weight": np.zeros(1), "backbone.res3b.conv0._batch_norm._mean": np.zeros(1),
             "backbone.res4b12.conv1._conv.weight": np.zeros(1), "head.fc.weight": np.zeros(1)}
    assert sorted(map_paddlevideo_names(state)) == [
        "backbone.stages.1.1.conv0.bn._mean", "backbone.stages.2.12.conv1.conv.weight",
        "backbone.stem.0.conv.weight", "head.fc.weight"]
