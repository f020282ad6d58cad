"""Frame features of long videos with a zoo recognizer (PP-TSM by default).

A video is decoded lazily (PyAV, frame by frame: a 90-minute match never sits in
memory), sampled at ``fps`` frames per second, resized (short side ``short_size``),
centre-cropped to ``target_size`` and normalised; groups of ``num_seg`` consecutive
sampled frames go through the recognizer's backbone (the temporal shift mixes
neighbouring frames, as in PaddleVideo's FootballAction extractor), and each frame's
feature is the spatial average of the last stage: ``(L, C)`` per video, one step per
sampled frame.  (``ppzoo.video.transforms.open_video`` reads a list of sampled frame
indices of a clip at once; :func:`sample_frames` streams a whole match at a fixed rate
in one decoding pass, by timestamps.  One reader for both is a possible follow-up.)

The backbone is exported once as a ``frame_features`` model (:func:`export_extractor`);
:func:`extract_video` runs it through Paddle Inference.
"""
import math
import os

import numpy as np
import paddle
import paddle.nn as nn

from ..core.errors import ConfigError, DataError
from ..engine.predictor import INFER_TASKS, InferTask


class FrameFeatures(nn.Layer):
    """``video`` ``(N, num_seg, 3, H, W)`` -> per-frame features ``(N, num_seg, C)``."""

    def __init__(self, recognizer):
        super().__init__()
        self.backbone = recognizer.backbone

    def forward(self, video):
        n, s = video.shape[0], video.shape[1]
        x = self.backbone(video.reshape([-1] + list(video.shape[2:])))
        x = x.mean(axis=[2, 3])
        return x.reshape([-1, s, x.shape[-1]])


def _val_preprocess(cfg):
    """Short side, crop size, mean and std from the config's val transforms."""
    out = {"short_size": 256, "target_size": 224, "mean": [0.485, 0.456, 0.406],
           "std": [0.229, 0.224, 0.225]}
    for t in (cfg.get("val_dataset") or {}).get("transforms") or []:
        kind = t.get("type")
        if kind == "Scale":
            out["short_size"] = int(t.get("short_size", out["short_size"]))
        elif kind in ("VideoCenterCrop", "CenterCrop"):
            out["target_size"] = int(t.get("target_size", out["target_size"]))
        elif kind in ("VideoNormalize", "Normalization"):
            out["mean"], out["std"] = list(t["mean"]), list(t["std"])
    return out


def export_extractor(cfg, save_dir, weights=None, logger=None):
    """Export the backbone of ``cfg``'s recognizer (with ``weights``, or the config's
    ``pretrained``) as a ``frame_features`` model; returns the deploy dict."""
    from ..core.builder import build_model
    from ..engine.export import export_model, load_weights, read_weights
    from ..engine.trainer import without_pretrained
    model_cfg = cfg.get("model") or {}
    if "backbone" not in model_cfg:
        raise ConfigError(f"{cfg.get('_file_', '<config>')}: model has no backbone; feature "
                          f"extraction needs a 2D recognizer (Recognizer2D)")
    state = read_weights(weights) if weights else None  # a bad file fails before the build
    # ``weights`` replaces every parameter: the backbone's ImageNet init is never fetched
    model = build_model(without_pretrained({"model": model_cfg})["model"] if weights else model_cfg)
    if weights:
        load_weights(model, weights, state=state)
    elif cfg.get("pretrained"):
        from ..hub import load_pretrained
        load_pretrained(model, cfg["pretrained"])
    num_seg = int(model_cfg["backbone"].get("num_seg", 8))
    pre = _val_preprocess(cfg)
    size = pre["target_size"]
    ecfg = {"export": {"task": "frame_features", "input_spec": [
        {"name": "video", "shape": [None, num_seg, 3, size, size], "dtype": "float32"}],
        "reader": dict(pre, num_seg=num_seg)}, "model": model_cfg,
        "_file_": cfg.get("_file_")}
    return export_model(FrameFeatures(model), ecfg, save_dir, logger=logger)


@INFER_TASKS.register(name="frame_features")
class FrameFeatureTask(InferTask):
    """Exported backbones for feature extraction; run with tools/extract_features.py."""

    extensions = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg")

    def read(self, path):
        raise DataError(f"{path}: a frame_features model is run by tools/extract_features.py "
                        f"(it streams long videos), not tools/infer.py")


# --------------------------------------------------------------------------- decoding
def video_info(path):
    """``(duration_s or None, native fps or None)`` of a video file."""
    import av
    try:
        with av.open(path) as c:
            st = c.streams.video[0]
            dur = float(st.duration * st.time_base) if st.duration else (
                c.duration / 1e6 if c.duration else None)
            rate = float(st.average_rate) if st.average_rate else None
            return dur, rate
    except (av.error.FFmpegError, IndexError) as err:
        raise DataError(f"cannot open video {path}: {err}") from None


def sample_frames(path, fps):
    """Yield RGB uint8 frames at ``fps`` per second (the first decoded frame at or after
    each time ``k / fps``), decoding lazily."""
    import av
    if not os.path.isfile(path):
        raise DataError(f"video file not found: {path}")
    k = 0
    try:
        with av.open(path) as c:
            for frame in c.decode(video=0):
                t = frame.time if frame.time is not None else 0.0
                if t + 1e-6 >= k / fps:
                    img = frame.to_ndarray(format="rgb24")
                    while t + 1e-6 >= k / fps:   # frames rarer than fps repeat
                        yield img
                        k += 1
    except (av.error.FFmpegError, ValueError) as err:
        raise DataError(f"cannot decode video {path} (after {k} sampled frames): {err}") from None
    if k == 0:
        raise DataError(f"cannot decode video {path}: no frames")


def preprocess_frame(img, short_size, target_size, mean, std):
    """Resize the short side, centre-crop, scale to [0, 1], normalise: ``(3, S, S)``."""
    from PIL import Image
    h, w = img.shape[:2]
    scale = short_size / min(h, w)
    nw, nh = max(target_size, int(round(w * scale))), max(target_size, int(round(h * scale)))
    im = Image.fromarray(img).resize((nw, nh), Image.BILINEAR)
    x0, y0 = (nw - target_size) // 2, (nh - target_size) // 2
    arr = np.asarray(im.crop((x0, y0, x0 + target_size, y0 + target_size)), np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return arr.transpose(2, 0, 1)


def extract_video(predictor, path, fps, batch_groups=4, progress=None, timings=None):
    """Features ``(L, C)`` float32 of one video with an exported ``frame_features``
    predictor.  ``progress(n)`` is called with the number of frames done; ``timings``
    (a dict) gets the seconds spent in ``decode`` (decoding and preprocessing) and
    ``features`` (the network) added."""
    import time
    timings = {} if timings is None else timings
    for k in ("decode", "features"):
        timings.setdefault(k, 0.0)
    r = predictor.deploy["reader"]
    num_seg = int(r["num_seg"])
    chunk = num_seg * max(1, int(batch_groups))
    feats, buf = [], []

    def flush():
        n = len(buf)
        groups = math.ceil(n / num_seg)
        pad = groups * num_seg - n
        arr = np.stack(buf + [buf[-1]] * pad).reshape(groups, num_seg, *buf[0].shape)
        t = time.perf_counter()
        out = predictor.run([arr])[0].reshape(groups * num_seg, -1)[:n]
        timings["features"] += time.perf_counter() - t
        feats.append(out.astype(np.float32))
        if progress:
            progress(n)
        buf.clear()

    t = time.perf_counter()
    for img in sample_frames(path, fps):
        buf.append(preprocess_frame(img, r["short_size"], r["target_size"], r["mean"], r["std"]))
        if len(buf) == chunk:
            timings["decode"] += time.perf_counter() - t
            flush()
            t = time.perf_counter()
    timings["decode"] += time.perf_counter() - t
    if buf:
        flush()
    return np.concatenate(feats)


def save_atomic(path, array):
    """``np.save`` to ``<path>.tmp-<pid>`` then rename: a killed run leaves no partial file."""
    tmp = f"{path}.tmp-{os.getpid()}.npy"
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def extract_videos(model_dir, videos, out_dir, fps, batch_groups=4, device=None,
                   cpu_threads=None, echo=print, bar=True):
    """One ``<out_dir>/<video name>.npy`` per video; videos whose file exists are
    skipped (resumable).  A progress bar counts sampled frames with an ETA.  Returns
    ``{video: feature path}``."""
    from tqdm import tqdm

    from ..engine.predictor import Predictor
    predictor = Predictor(model_dir, device=device, cpu_threads=cpu_threads)
    if predictor.deploy.get("task") != "frame_features":
        raise ConfigError(f"{model_dir} is a {predictor.deploy.get('task')!r} export; feature "
                          f"extraction needs a frame_features export (tools/extract_features.py "
                          f"-c <recognizer config> exports one)")
    os.makedirs(out_dir, exist_ok=True)
    todo, done = [], {}
    for v in videos:
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(v))[0] + ".npy")
        if os.path.isfile(out):
            done[v] = out
            if echo:
                echo(f"{v}: done before, skipped ({out})")
        else:
            todo.append((v, out))
    total = sum(int(math.ceil((video_info(v)[0] or 0) * fps)) for v, _ in todo)
    with tqdm(total=total or None, unit="frame", desc="features", disable=not bar,
              dynamic_ncols=True) as pb:
        for v, out in todo:
            feats = extract_video(predictor, v, fps, batch_groups, progress=pb.update)
            save_atomic(out, feats)
            done[v] = out
            if echo:
                echo(f"{v}: {feats.shape[0]} x {feats.shape[1]} features -> {out}")
    return done
