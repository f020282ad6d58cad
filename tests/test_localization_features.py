"""Feature extraction matches FootballAction's extractor: its 4:3 resize and centre crop,
its reader's row count, and its ``.pkl`` layout (read back by the restricted unpickler).

The references are written out here from FootballAction's reader (``tsminf_reader.py``:
``group_scale``, ``group_center_crop`` and the batch reader), not taken from ppzoo."""
import math
import os
import pickle
import pickletools

import numpy as np
import pytest
from PIL import Image

from ppzoo.core.errors import ConfigError, DataError
from ppzoo.localization import features as F
from ppzoo.localization.annotations import read_features
from ppzoo.localization.synth import write_event_video

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def reference_frame(img, short_size, target_size):
    """FootballAction's group_scale + group_center_crop + normalisation of one frame."""
    pil = Image.fromarray(img)
    w, h = pil.size
    if not ((w <= h and w == short_size) or (h <= w and h == short_size)):
        if w < h:
            pil = pil.resize((short_size, int(short_size * 4.0 / 3.0)), Image.BILINEAR)
        else:
            pil = pil.resize((int(short_size * 4.0 / 3.0), short_size), Image.BILINEAR)
    w, h = pil.size
    x1, y1 = int(round((w - target_size) / 2.)), int(round((h - target_size) / 2.))
    arr = np.array(pil.crop((x1, y1, x1 + target_size, y1 + target_size))).astype("float32")
    arr = arr.transpose((2, 0, 1)) / 255
    return (arr - np.array(MEAN, np.float32).reshape(3, 1, 1)) / np.array(STD, np.float32).reshape(3, 1, 1)


def reference_rows(num_frames, seg_num, batch_size):
    """Rows FootballAction's reader + np.vstack give: groups of seg_num frames (the last
    padded), batches of batch_size groups, a final partial batch yielded without its
    last group (and not at all when it holds one)."""
    groups = [min(seg_num, num_frames - i) for i in range(0, num_frames, seg_num)]
    rows, batch = 0, []
    for _ in groups:
        batch.append(seg_num)
        if len(batch) == batch_size:
            rows += sum(batch)
            batch = []
    if len(batch) > 1:
        rows += sum(batch[:-1])
    return rows


@pytest.mark.parametrize("w,h", [(1280, 720), (720, 1280), (640, 480), (456, 256), (300, 300)])
def test_footballaction_resize_and_crop_match_its_reader(w, h):
    rng = np.random.default_rng(w + h)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = F.preprocess_frame(img, 256, 224, MEAN, STD, resize="footballaction")
    np.testing.assert_allclose(ours, reference_frame(img, 256, 224), atol=1e-5)


def test_footballaction_keeps_224_of_341_of_a_720p_width():
    assert F.resized_size(1280, 720, 256, 224, "footballaction") == (341, 256)
    assert F.resized_size(1280, 720, 256, 224, "short_side") == (455, 256)
    # a frame whose short side already is short_size is not stretched
    assert F.resized_size(456, 256, 256, 224, "footballaction") == (456, 256)
    # the two modes differ on a wide frame: the stretched crop sees more of the width
    img = np.zeros((720, 1280, 3), np.uint8)
    img[:, :300] = 255                       # a white band at the left edge
    fa = F.preprocess_frame(img, 256, 224, [0, 0, 0], [1, 1, 1], "footballaction")
    keep = F.preprocess_frame(img, 256, 224, [0, 0, 0], [1, 1, 1], "short_side")
    # 300/1280 of the width: inside the 341-wide frame's crop (starts at 58/341 = 17%),
    # outside the 455-wide one's (starts at 115/455 = 25%)
    assert fa[:, :, 0].mean() > 0.9 and keep[:, :, 0].mean() < 0.1
    with pytest.raises(ConfigError, match="resize"):
        F.resized_size(1280, 720, 256, 224, "squeeze")


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 50, 255, 256, 257, 263, 264, 520, 1000])
def test_footballaction_length_rule_matches_its_reader(n):
    assert F.feature_rows(n, 8, "footballaction") == reference_rows(n, 8, 32)
    assert F.feature_rows(n, 8, "all") == n


def test_fifty_frames_give_48_rows():
    assert F.feature_rows(50, 8, "footballaction") == 48 == reference_rows(50, 8, 32)


class _MeanPredictor:
    """A frame_features predictor stand-in: each frame's feature is its mean per channel
    (so a row can be traced to its frame)."""

    def __init__(self, num_seg=4, size=32, resize="footballaction"):
        self.deploy = {"task": "frame_features", "reader": {
            "num_seg": num_seg, "short_size": size, "target_size": size, "mean": [0, 0, 0],
            "std": [1, 1, 1], "resize": resize}}
        self.calls = []

    def run(self, inputs):
        x = inputs[0]
        self.calls.append(x.shape)
        return [x.mean(axis=(3, 4))]


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("feat") / "clip.mp4")
    write_event_video(path, 13.0, [(4.0, 8.0, 1)], fps=4, size=48, seed=3)
    return path


def test_extract_video_rows_follow_the_length_rule(short_video):
    pred = _MeanPredictor(num_seg=4)
    every = F.extract_video(pred, short_video, fps=2, batch_groups=2)
    n = len(every)
    assert n == 26                                   # 13 s at 2 fps
    fa = F.extract_video(_MeanPredictor(num_seg=4), short_video, fps=2, batch_groups=2,
                         length="footballaction")
    assert len(fa) == reference_rows(n, 4, 32) == 24
    np.testing.assert_allclose(fa, every[:24], atol=1e-6)
    # the event's colour (class 1: red) shows at its place in the rows, 2 per second
    red = every[:, 0] - every[:, 1]
    assert red[9:15].min() > red[:7].max() + 0.5


def test_footballaction_pkl_reads_back_restricted_and_plain(tmp_path):
    feats = np.random.default_rng(0).normal(size=(48, 2048)).astype(np.float32)
    pcm = np.ones((48, 640), np.float32)
    audio = np.ones((10, 1024), np.float32)
    path = str(tmp_path / "m.pkl")
    F.save_footballaction_pkl(path, feats, {"pcm_feature": pcm, "audio_feature": audio})
    with open(path, "rb") as f:
        raw = f.read()
    globals_ = {a for op, a, _ in pickletools.genops(raw) if op.name in ("GLOBAL",)}
    strings = [a for op, a, _ in pickletools.genops(raw) if isinstance(a, str)]
    assert not globals_ and "_frombuffer" not in strings      # plain arrays, protocol 4
    data = pickle.loads(raw)                                  # what FootballAction's loader does
    assert set(data) == {"image_feature", "pcm_feature", "audio_feature"}
    np.testing.assert_array_equal(read_features(path), feats)   # the restricted reader
    np.testing.assert_array_equal(read_features(path, key="pcm_feature"), pcm)
    # FootballAction's BMN input: image 2048 + pcm 640 per step
    assert np.concatenate([data["image_feature"], data["pcm_feature"]], 1).shape == (48, 2688)
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_extract_videos_writes_pkl_with_copied_audio(short_video, tmp_path, monkeypatch):
    audio_dir = tmp_path / "fa"
    audio_dir.mkdir()
    with open(audio_dir / "clip.pkl", "wb") as f:   # FootballAction's own file
        pickle.dump({"image_feature": np.zeros((3, 2), np.float32),
                     "audio_feature": np.full((13, 1024), 2.0, np.float32),
                     "pcm_feature": np.full((65, 640), 3.0, np.float32)}, f, protocol=4)
    pred = _MeanPredictor(num_seg=4)
    import ppzoo.engine.predictor as P
    monkeypatch.setattr(P, "Predictor", lambda *a, **k: pred)
    out = tmp_path / "out"
    done = F.extract_videos("unused", [short_video], str(out), 2, echo=None, bar=False,
                            length="footballaction", fmt="pkl", audio_dir=str(audio_dir))
    assert done == {short_video: str(out / "clip.pkl")}
    with open(out / "clip.pkl", "rb") as f:
        data = pickle.load(f)
    assert data["image_feature"].shape == (24, 3)
    assert data["audio_feature"].shape == (13, 1024) and data["pcm_feature"][0, 0] == 3.0
    with pytest.raises(DataError, match="other.pkl"):
        F._audio_streams(str(audio_dir), "other")
    with pytest.raises(ConfigError, match="pkl"):
        F.extract_videos("unused", [short_video], str(out), 2, echo=None, bar=False,
                         fmt="npy", audio_dir=str(audio_dir))


def test_exports_made_before_the_option_keep_the_aspect_ratio(short_video):
    pred = _MeanPredictor(num_seg=4)
    del pred.deploy["reader"]["resize"]
    a = F.extract_video(pred, short_video, fps=1)
    b = F.extract_video(_MeanPredictor(num_seg=4, resize="short_side"), short_video, fps=1)
    np.testing.assert_array_equal(a, b)
    assert math.isfinite(float(a.sum()))


def test_tool_stores_resize_in_the_export_and_refuses_a_mismatch(tmp_path, short_video, capsys):
    import sys

    import paddle
    import yaml

    from ppzoo.core.builder import build_model
    from ppzoo.localization.synth import TINY_RECOGNIZER
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    sys.path.insert(0, os.path.join(root, "tools"))
    import extract_features
    paddle.seed(0)
    weights = str(tmp_path / "w.pdparams")
    paddle.save(build_model(TINY_RECOGNIZER["model"]).state_dict(), weights)
    cfg = tmp_path / "tiny.yml"
    cfg.write_text(yaml.safe_dump(dict(TINY_RECOGNIZER, name="tiny")))
    model_dir = str(tmp_path / "fm")
    extract_features.main(["-c", str(cfg), "--weights", weights, "--model-dir", model_dir])
    with open(os.path.join(model_dir, "deploy.yml")) as f:
        assert yaml.safe_load(f)["reader"]["resize"] == "footballaction"   # the default
    with pytest.raises(SystemExit) as err:
        extract_features.main(["--model-dir", model_dir, "--resize", "short_side", "--input",
                               short_video, "--output-dir", str(tmp_path / "o")])
    assert err.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "resize 'footballaction'" in line and model_dir in line
    done = extract_features.main(["--model-dir", model_dir, "--input", short_video,
                                  "--output-dir", str(tmp_path / "o"), "--fps", "2",
                                  "--format", "pkl", "--length", "footballaction"])
    assert read_features(done[short_video]).shape == (24, 64)


def test_extract_videos_uses_every_core_by_default(short_video, tmp_path, monkeypatch):
    seen = []
    pred = _MeanPredictor(num_seg=4)
    import ppzoo.engine.predictor as P
    monkeypatch.setattr(P, "Predictor", lambda *a, **k: seen.append(k) or pred)
    F.extract_videos("unused", [short_video], str(tmp_path / "a"), 1, echo=None, bar=False)
    F.extract_videos("unused", [short_video], str(tmp_path / "b"), 1, echo=None, bar=False,
                     cpu_threads=1)
    assert seen[0]["cpu_threads"] == len(os.sched_getaffinity(0)) and seen[1]["cpu_threads"] == 1
