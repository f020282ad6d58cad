"""The video presets that name PaddleVideo's released weights (pptsm_r50 and the sports
presets built on it, tsm_r50, tsn_r50 / tsn_r50_test) run PaddleVideo's own pipelines,
side by side on frame-indexed clips.

The reference below is written from the definitions of PaddleVideo's Sampler,
Scale, MultiScaleCrop, CenterCrop, TenCrop, RandomCrop, Image2Array and Normalization
(paddlevideo/loader/pipelines/{sample,augmentations}.py) and the values its configs give
them (configs/recognition/{pptsm/pptsm_k400_videos_uniform, tsm/tsm_k400_videos,
tsn/tsn_k400_videos}.yaml): it works on PIL images as PaddleVideo does (``Image.crop``,
``Image.resize``, ``cv2.resize`` where the config says cv2).  The clips are frame folders
whose every frame carries its index, read by ``FrameDecoder`` in place of the presets'
``VideoDecoder`` (the decoders are not what is compared)."""
import os
import random

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

import ppzoo  # noqa: F401 - registers the components
from ppzoo.core import load_config
from ppzoo.core.builder import DATASETS, HEADS, MODELS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MEAN = np.array([0.485, 0.456, 0.406], "float32").reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], "float32").reshape(3, 1, 1)


# ------------------------------------------------------------------ PaddleVideo, as defined
def pv_test_offsets(n, num_seg, select_left):
    if select_left:
        if n > num_seg:
            avg = n / num_seg
            return [int(avg / 2.0 + avg * x) % n for x in range(num_seg)]
        return [0] * num_seg
    average_dur = int(n / num_seg)
    out = []
    for i in range(num_seg):
        if average_dur >= 1:
            idx = (average_dur - 1) // 2 + i * average_dur
        else:
            idx = i
        out.append(idx % n)
    return out


def pv_train_offsets(n, num_seg, select_left, draws):
    """``draws``: the values PaddleVideo's random calls return, one per segment."""
    average_dur = int(n / num_seg)
    if select_left:
        if average_dur > 0:
            return [(i * average_dur + draws[i]) % n for i in range(num_seg)]
        return None
    return [(draws[i] + i * average_dur) % n for i in range(num_seg)] if average_dur >= 1 else None


def pv_dense_offsets(n, num_seg, train, start=None):
    """PaddleVideo's dense_sample (frame folders: file ``offset + 1``, 1-based); ``start``:
    the value its ``np.random.randint(0, sample_pos - 1)`` returns in training."""
    sample_pos = max(1, 1 + n - 64)
    t_stride = 64 // num_seg
    if train:
        start_idx = 0 if sample_pos == 1 else start
        return [(idx * t_stride + start_idx) % n + 1 - 1 for idx in range(num_seg)]
    out = []
    for start_idx in np.linspace(0, sample_pos - 1, num=10, dtype=int).tolist():
        out += [(idx * t_stride + start_idx) % n + 1 - 1 for idx in range(num_seg)]
    return out


def pv_full_res_sample(imgs, t):
    w, h = imgs[0].size
    ws, hs = (w - t) // 4, (h - t) // 4
    out = []
    for x, y in [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 2 * hs)]:
        out += [img.crop((x, y, x + t, y + t)) for img in imgs]
    return out


def pv_scale(imgs, short, fixed_ratio=True, do_round=False, backend="pillow"):
    out = []
    for img in imgs:
        w, h = img.size
        if (w <= h and w == short) or (h <= w and h == short):
            out.append(img)
            continue
        if w <= h:
            ow = short
            if fixed_ratio:
                oh = int(short * 4.0 / 3.0)
            else:
                sf = short / w
                oh = int(h * float(sf) + 0.5) if do_round else int(h * short / w)
                ow = int(w * float(sf) + 0.5) if do_round else short
        else:
            oh = short
            if fixed_ratio:
                ow = int(short * 4.0 / 3.0)
            else:
                sf = short / h
                oh = int(h * float(sf) + 0.5) if do_round else short
                ow = int(w * float(sf) + 0.5) if do_round else int(w * short / h)
        if backend == "pillow":
            out.append(img.resize((ow, oh), Image.BILINEAR))
        else:
            out.append(Image.fromarray(cv2.resize(np.asarray(img), (ow, oh), interpolation=cv2.INTER_LINEAR)))
    return out


def pv_center_crop(imgs, t, do_round=True):
    out = []
    for img in imgs:
        w, h = img.size
        x1 = int(round((w - t) / 2.0)) if do_round else (w - t) // 2
        y1 = int(round((h - t) / 2.0)) if do_round else (h - t) // 2
        out.append(img.crop((x1, y1, x1 + t, y1 + t)))
    return out


def pv_ten_crop(imgs, t):
    w, h = imgs[0].size
    ws, hs = (w - t) // 4, (h - t) // 4
    out = []
    for x, y in [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]:
        crop = [img.crop((x, y, x + t, y + t)) for img in imgs]
        out += crop + [c.transpose(Image.FLIP_LEFT_RIGHT) for c in crop]
    return out


def pv_multiscale_candidates(size, target, allow_duplication, more_fix_crop, scales=(1, .875, .75, .66)):
    """Every (crop w, crop h, x, y) PaddleVideo's MultiScaleCrop can choose, in its order."""
    image_w, image_h = size
    crop_sizes = [int(min(image_w, image_h) * x) for x in scales]
    crop_h = [target if abs(x - target) < 3 else x for x in crop_sizes]
    crop_w = [target if abs(x - target) < 3 else x for x in crop_sizes]
    pairs = [(w, h) for i, h in enumerate(crop_h) for j, w in enumerate(crop_w) if abs(i - j) <= 1]
    out = []
    for cw, ch in pairs:
        w_step, h_step = (image_w - cw) / 4, (image_h - ch) / 4
        ret = [(0, 0)]
        if allow_duplication or w_step != 0:
            ret.append((4 * w_step, 0))
        if allow_duplication or h_step != 0:
            ret.append((0, 4 * h_step))
        if allow_duplication or (h_step != 0 and w_step != 0):
            ret.append((4 * w_step, 4 * h_step))
        if allow_duplication or (h_step != 0 or w_step != 0):
            ret.append((2 * w_step, 2 * h_step))
        if more_fix_crop:
            ret += [(0, 2 * h_step), (4 * w_step, 2 * h_step), (2 * w_step, 4 * h_step), (2 * w_step, 0),
                    (w_step, h_step), (3 * w_step, h_step), (w_step, 3 * h_step), (3 * w_step, 3 * h_step)]
        out.append([(cw, ch, x, y) for x, y in ret])
    return out


def pv_multiscale_apply(imgs, choice, target, backend="pillow"):
    cw, ch, x, y = choice
    crops = [img.crop((x, y, x + cw, y + ch)) for img in imgs]
    if backend == "pillow":
        return [c.resize((target, target), Image.BILINEAR) for c in crops]
    return [Image.fromarray(cv2.resize(np.asarray(c), dsize=(target, target), interpolation=cv2.INTER_LINEAR))
            for c in crops]


def pv_to_array(imgs):
    arr = np.stack([np.asarray(i) for i in imgs]).astype("float32").transpose(0, 3, 1, 2)
    return (arr / 255.0 - MEAN) / STD


# ------------------------------------------------------------------ clips
def frames(n, h, w, seed=0):
    """``n`` RGB frames, each carrying its index (a smooth pattern that moves with it)."""
    yy, xx = np.mgrid[0:h, 0:w].astype("float32")
    out = []
    for i in range(n):
        r = 127 + 120 * np.sin(xx / (7 + seed) + i * 0.7)
        g = 127 + 120 * np.cos(yy / 5 + xx / 11 + i * 0.3)
        b = (xx * 3 + yy * 5 + i * 17) % 256
        out.append(np.stack([r, g, b], -1).clip(0, 255).astype("uint8"))
    return out


def write_clip(folder, clip):
    os.makedirs(folder)
    for i, f in enumerate(clip):
        Image.fromarray(f).save(os.path.join(folder, f"img_{i + 1:05d}.png"))


CLIPS = {"wide": (64, 270, 480), "four3": (37, 240, 320), "tall": (20, 400, 300), "short": (5, 256, 341)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    base = tmp_path_factory.mktemp("clips")
    out = {}
    for k, (n, h, w) in CLIPS.items():
        clip = frames(n, h, w, seed=len(out))
        write_clip(str(base / k), clip)
        out[k] = (str(base / k), clip)
    return out


def preset_dataset(preset, split, clips, tmp_path, opts=()):
    cfg = load_config(os.path.join(ROOT, "configs", "video", preset + ".yml"), list(opts))
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{folder} {i % 3}\n" for i, (folder, _) in enumerate(clips.values())))
    dcfg = dict(cfg[split], file_path=str(lst), data_prefix=None)
    tf = [dict(t) for t in dcfg["transforms"]]
    assert tf[0]["type"] in ("VideoDecoder", "FrameDecoder")
    dcfg["transforms"] = [{"type": "FrameDecoder"}] + tf[1:]
    return cfg, DATASETS.build(dcfg)


def pil(clip, idx):
    return [Image.fromarray(clip[i]) for i in idx]


# ------------------------------------------------------------------ evaluation pipelines
def test_pptsm_val_pipeline_is_paddlevideos(clips, tmp_path):
    _, ds = preset_dataset("pptsm_r50", "val_dataset", clips, tmp_path)
    for i, (_, clip) in enumerate(clips.values()):
        imgs = pv_center_crop(pv_scale(pil(clip, pv_test_offsets(len(clip), 8, False)), 256), 224)
        np.testing.assert_allclose(ds[i]["video"], pv_to_array(imgs), rtol=0, atol=1e-5)


def test_tsm_val_pipeline_is_paddlevideos(clips, tmp_path):
    _, ds = preset_dataset("tsm_r50", "val_dataset", clips, tmp_path)
    assert pv_test_offsets(64, 8, True) == [4, 12, 20, 28, 36, 44, 52, 60]
    for i, (_, clip) in enumerate(clips.values()):
        idx = pv_test_offsets(len(clip), 8, True)
        imgs = pv_center_crop(pv_scale(pil(clip, idx), 256, fixed_ratio=False), 224)
        np.testing.assert_allclose(ds[i]["video"], pv_to_array(imgs), rtol=0, atol=1e-5)


def test_tsn_val_and_test_pipelines_are_paddlevideos(clips, tmp_path):
    _, ds = preset_dataset("tsn_r50", "val_dataset", clips, tmp_path)
    _, test = preset_dataset("tsn_r50_test", "val_dataset", clips, tmp_path)
    for i, (_, clip) in enumerate(clips.values()):
        scaled = pv_scale(pil(clip, pv_test_offsets(len(clip), 3, True)), 256, False, True, "cv2")
        np.testing.assert_allclose(ds[i]["video"], pv_to_array(pv_center_crop(scaled, 224, do_round=False)),
                                   rtol=0, atol=1e-5)
        if i not in (0, 2):  # 250 views a clip: the wide and the tall clip suffice
            continue
        scaled = pv_scale(pil(clip, pv_test_offsets(len(clip), 25, True)), 256, False, True, "cv2")
        got = test[i]["video"]
        assert got.shape == (250, 3, 224, 224)
        np.testing.assert_allclose(got, pv_to_array(pv_ten_crop(scaled, 224)), rtol=0, atol=1e-5)


def test_the_ppzoo_pipelines_differ_where_the_issue_says(clips, tmp_path):
    """The ppzoo variants keep their own pipeline under their own names: on a 16:9 clip they
    see other pixels than PaddleVideo's (aspect ratio, frames, crop rounding)."""
    for preset in ("pptsm_r50", "tsm_r50"):
        _, ours = preset_dataset(preset + "_ppzoo", "val_dataset", clips, tmp_path)
        _, theirs = preset_dataset(preset, "val_dataset", clips, tmp_path)
        assert np.abs(ours[0]["video"] - theirs[0]["video"]).max() > 0.5
    _, ours = preset_dataset("tsn_r50_ppzoo", "val_dataset", clips, tmp_path)
    assert ours[0]["video"].shape[0] == 8


# ------------------------------------------------------------------ training pipelines
class Draws:
    """An RNG stand-in that returns the given values, in order, from ``integers``/``random``."""

    def __init__(self, values):
        self.values = list(values)

    def integers(self, low, high=None, size=None):
        if size is not None:
            return np.array([self.values.pop(0) for _ in range(size)])
        return self.values.pop(0)

    def random(self):
        return self.values.pop(0)


class Bounded:
    """An RNG stand-in that checks the exclusive upper bound asked for."""

    def __init__(self, high):
        self.high = high

    def integers(self, low, high=None, size=None):
        if high >= self.high + 1:
            raise AssertionError(f"asked for [{low}, {high})")
        raise IndexError("bound as PaddleVideo's")


def _train_transform(preset, kind):
    cfg = load_config(os.path.join(ROOT, "configs", "video", preset + ".yml"))
    from ppzoo.core.builder import TRANSFORMS
    (spec,) = [t for t in cfg["train_dataset"]["transforms"] if t["type"] == kind]
    return TRANSFORMS.build(dict(spec)), spec


@pytest.mark.parametrize("preset,scale,target,dup,more,backend", [
    ("pptsm_r50", {"fixed_ratio": True}, 256, False, True, "pillow"),
    ("tsm_r50", None, 224, True, True, "pillow"),
    ("tsn_r50", {"fixed_ratio": False, "do_round": True, "backend": "cv2"}, 224, True, False, "cv2"),
])
def test_train_multiscale_crop_takes_every_paddlevideo_choice(preset, scale, target, dup, more, backend):
    """Every crop size and position PaddleVideo's MultiScaleCrop can draw, in its order:
    ppzoo given the same draw gives the same pixels (13 positions with more_fix_crop, on
    the fractional grid, rounded as PIL's crop rounds)."""
    clip = frames(2, 270, 480, seed=3)
    imgs = pil(clip, [0, 1])
    if scale is not None:
        imgs = pv_scale(imgs, 256, **scale)
    crop, _ = _train_transform(preset, "MultiScaleCrop")
    arrays = [np.asarray(i) for i in imgs]
    cands = pv_multiscale_candidates(imgs[0].size, target, dup, more)
    assert max(len(c) for c in cands) == (13 if more else 5)
    for p, positions in enumerate(cands):
        for q, choice in enumerate(positions):
            got = crop({"imgs": list(arrays)}, Draws([p, q]))["imgs"]
            want = pv_multiscale_apply(imgs, choice, target, backend)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, np.asarray(b), err_msg=f"{preset} {choice}")


@pytest.mark.parametrize("preset,num_seg,select_left", [("pptsm_r50", 8, False), ("tsm_r50", 8, True),
                                                         ("tsn_r50", 3, True)])
def test_train_sampler_is_paddlevideos(preset, num_seg, select_left):
    sampler, _ = _train_transform(preset, "Sampler")
    rng = random.Random(0)
    for n in (64, 37, 8, 100):
        avg = int(n / num_seg)
        draws = [rng.randrange(avg) for _ in range(num_seg)]
        got = sampler({"frames_len": n, "_read_frames": lambda idx: idx}, Draws(draws))["frame_idx"]
        assert list(got) == pv_train_offsets(n, num_seg, select_left, draws), (preset, n)


def test_label_smoothing_only_where_paddlevideo_has_it():
    ls = {p: load_config(os.path.join(ROOT, "configs", "video", p + ".yml"))["loss"].get("label_smoothing", 0)
          for p in ("pptsm_r50", "pptsm_football", "tsm_r50", "tsn_r50", "tsm_r50_ppzoo", "tsn_r50_ppzoo")}
    assert ls == {"pptsm_r50": 0.1, "pptsm_football": 0.1, "tsm_r50": 0.0, "tsn_r50": 0.0,
                  "tsm_r50_ppzoo": 0.1, "tsn_r50_ppzoo": 0.1}


def test_tsn_head_averages_every_test_view():
    """PaddleVideo's Recognizer2D hands the head the number of views it got (250 at TSN's
    test; 30 here, for time); the TSN head averages the features of all of them before its fc."""
    paddle.seed(0)
    model = MODELS.build({"type": "Recognizer2D",
                          "backbone": {"type": "ResNetTSM", "depth": 18, "num_seg": 3, "shift": False},
                          "head": {"type": "TSNHead", "num_classes": 5, "in_channels": 512, "num_seg": 3}})
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, 30, 3, 32, 32)).astype("float32"))
    feats = model.backbone(x.reshape([-1, 3, 32, 32])).numpy().mean(axis=(2, 3)).reshape(2, 30, -1)
    want = feats.mean(axis=1) @ model.head.fc.weight.numpy() + model.head.fc.bias.numpy()
    np.testing.assert_allclose(model(x).numpy(), want, rtol=1e-4, atol=1e-4)
    head = HEADS.build({"type": "TSNHead", "num_classes": 5, "in_channels": 512, "num_seg": 3})
    assert head(paddle.ones([6, 512, 1, 1])).shape == [2, 5]  # (N * T) input: its own num_seg


def test_pptsm_dense_pipelines_are_paddlevideos(clips, tmp_path):
    """PP-TSM dense (frame folders): validation as the uniform preset, PaddleVideo's test
    of 10 spans x 3 crops (240 views), and the training span's frames for a given draw."""
    _, val = preset_dataset("pptsm_r50_dense", "val_dataset", clips, tmp_path)
    _, test = preset_dataset("pptsm_r50_dense_test", "val_dataset", clips, tmp_path)
    for i, (_, clip) in enumerate(clips.values()):
        imgs = pv_center_crop(pv_scale(pil(clip, pv_test_offsets(len(clip), 8, False)), 256), 224)
        np.testing.assert_allclose(val[i]["video"], pv_to_array(imgs), rtol=0, atol=1e-5)
        if i not in (0, 3):  # 240 views a clip: the long and the 5-frame clip suffice
            continue
        got = test[i]["video"]
        assert got.shape == (240, 3, 224, 224)
        want = pv_full_res_sample(pv_scale(pil(clip, pv_dense_offsets(len(clip), 8, False)), 256), 224)
        np.testing.assert_allclose(got, pv_to_array(want), rtol=0, atol=1e-5)
    sampler, _ = _train_transform("pptsm_r50_dense", "Sampler")
    for n, start in [(300, 0), (300, 235), (64, None), (20, None)]:
        draws = [] if start is None else [start]
        got = sampler({"frames_len": n, "_read_frames": lambda idx: idx}, Draws(draws))["frame_idx"]
        assert list(got) == pv_dense_offsets(n, 8, True, start), n
    with pytest.raises(IndexError):  # the draw's upper bound is exclusive, as NumPy's randint
        sampler({"frames_len": 300, "_read_frames": lambda idx: idx}, Bounded(300 - 64))
