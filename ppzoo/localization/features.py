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

Parity with FootballAction's extractor (the pipeline its released BMN and LSTM were
trained on) is the default: ``resize="footballaction"`` stretches every frame to 4:3
(short side ``short_size``, long side ``int(short_size * 4 / 3)``: 341 x 256, whatever
the aspect ratio) before the centre crop; ``resize="short_side"`` keeps the aspect ratio.
``length="footballaction"`` reproduces its reader's row count (the last group of a final
partial batch is dropped: 48 rows for 50 frames); ``length="all"`` keeps one row per
sampled frame.  :func:`save_footballaction_pkl` writes its ``.pkl`` layout.

The backbone is exported once as a ``frame_features`` model (:func:`export_extractor`,
traced with ops that oneDNN runs: ``ResNetTSM.use_onednn_ops``); :func:`extract_video` runs it
through Paddle Inference, one group of ``num_seg`` frames a call by default (the cost on
the CPU: docs/localization.md, Latency).
"""
import math
import os

import numpy as np
import paddle
import paddle.nn as nn

from ..core.errors import ConfigError, DataError
from ..engine.predictor import INFER_TASKS, InferTask


class FrameFeatures(nn.Layer):
    """``video`` ``(N, num_seg, 3, H, W)`` -> per-frame features ``(N, num_seg, C)``.

    ``onednn_graph`` (a backbone with ``use_onednn_ops``, i.e. ``ResNetTSM``): the
    backbone computes with the ops Paddle Inference runs in oneDNN (the same values);
    ``skip_passes`` names the oneDNN passes an export of that graph must skip.  The mode
    is set on the backbone, which the recognizer shares."""

    def __init__(self, recognizer, onednn_graph=False):
        super().__init__()
        self.backbone = recognizer.backbone
        switch = getattr(self.backbone, "use_onednn_ops", None)
        self.onednn_graph = bool(onednn_graph) and switch is not None
        self.skip_passes = switch(self.onednn_graph) if switch is not None else []

    def forward(self, video):
        n, s = video.shape[0], video.shape[1]
        x = self.backbone(video.reshape([-1] + list(video.shape[2:])))
        x = x.mean(axis=[2, 3])
        return x.reshape([-1, s, x.shape[-1]])


#: How a frame is resized before the centre crop (see the module docstring).
RESIZE_MODES = ("footballaction", "short_side")
#: How many feature rows a video gets (see :func:`feature_rows`).
LENGTH_RULES = ("all", "footballaction")
#: Groups of ``num_seg`` frames per batch in FootballAction's reader (``batch_size: 32``);
#: it decides which rows its length rule drops.
FOOTBALLACTION_BATCH = 32


def _check_choice(value, choices, what):
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


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


def export_extractor(cfg, save_dir, weights=None, logger=None, resize="footballaction",
                     onednn_graph=True):
    """Export the backbone of ``cfg``'s recognizer (with ``weights``, or the config's
    ``pretrained``) as a ``frame_features`` model; returns the deploy dict.  ``resize``
    (one of :data:`RESIZE_MODES`) is stored in the deploy reader, so every later
    extraction and ``tools/localize.py`` preprocess frames the same way.
    ``onednn_graph`` (default on): :class:`FrameFeatures`' oneDNN-friendly trace of a
    ResNetTSM backbone (the same features, about 0.7x the CPU time on the CPU)."""
    _check_choice(resize, RESIZE_MODES, "resize")
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
        "reader": dict(pre, num_seg=num_seg, resize=resize)}, "model": model_cfg,
        "_file_": cfg.get("_file_")}
    layer = FrameFeatures(model, onednn_graph=onednn_graph)
    extra = {"onednn_skip_passes": layer.skip_passes} if layer.skip_passes else None
    return export_model(layer, ecfg, save_dir, logger=logger, extra=extra)


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


def resized_size(w, h, short_size, target_size, resize="footballaction"):
    """``(width, height)`` a ``w x h`` frame is resized to before the centre crop.

    ``footballaction``: FootballAction's reader keeps a frame whose short side already is
    ``short_size`` and otherwise stretches it to ``int(short_size * 4 / 3) x short_size``
    (portrait: transposed), so a 1280x720 frame becomes 341x256 and the 224 crop keeps
    224/341 of its width.  ``short_side``: the aspect ratio is kept (455x256, 224/455)."""
    if resize == "footballaction":
        if (w <= h and w == short_size) or (h <= w and h == short_size):
            return w, h
        long = int(short_size * 4.0 / 3.0)
        return (short_size, long) if w < h else (long, short_size)
    _check_choice(resize, RESIZE_MODES, "resize")
    scale = short_size / min(h, w)
    return max(target_size, int(round(w * scale))), max(target_size, int(round(h * scale)))


def preprocess_frame(img, short_size, target_size, mean, std, resize="footballaction"):
    """Resize (:func:`resized_size`), centre-crop, scale to [0, 1], normalise:
    ``(3, S, S)``."""
    from PIL import Image
    h, w = img.shape[:2]
    nw, nh = resized_size(w, h, short_size, target_size, resize)
    im = Image.fromarray(img)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    if resize == "footballaction":   # its centre crop rounds the offset (halves to even)
        x0, y0 = int(round((nw - target_size) / 2.0)), int(round((nh - target_size) / 2.0))
    else:
        x0, y0 = (nw - target_size) // 2, (nh - target_size) // 2
    arr = np.asarray(im.crop((x0, y0, x0 + target_size, y0 + target_size)), np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return arr.transpose(2, 0, 1)


def feature_rows(num_frames, num_seg, length="all", reader_batch=FOOTBALLACTION_BATCH):
    """Feature rows a video of ``num_frames`` sampled frames gets.

    ``all``: one per frame.  ``footballaction``: its reader cuts the frames into groups of
    ``num_seg`` (the last padded with copies of the last frame), batches ``reader_batch``
    groups, and of a final partial batch yields all groups but the last (none when that
    batch holds one group); every yielded group gives ``num_seg`` rows, padded ones too."""
    _check_choice(length, LENGTH_RULES, "length")
    if length == "all":
        return int(num_frames)
    groups = math.ceil(num_frames / num_seg)
    kept = groups - (1 if groups % int(reader_batch) else 0)
    return kept * num_seg


def extract_video(predictor, path, fps, batch_groups=1, progress=None, timings=None,
                  length="all", cpu_timings=None):
    """Features ``(L, C)`` float32 of one video with an exported ``frame_features``
    predictor; ``L`` follows ``length`` (:func:`feature_rows`).  ``progress(n)`` is
    called with the number of frames done; ``timings`` (a dict) gets the wall seconds
    spent in ``decode`` (decoding and preprocessing) and ``features`` (the network)
    added, ``cpu_timings`` the process CPU seconds of the same (all threads: on a
    shared machine the wall time depends on the load, the CPU time much less).
    ``batch_groups`` groups of ``num_seg`` frames go through the network per call: one
    (the default) costs the fewest CPU seconds, 0.7x four's for PP-TSM R50 on this
    project's benchmark machine (larger activations fall out of the cache); the features
    do not depend on it."""
    import time
    _check_choice(length, LENGTH_RULES, "length")
    timings = {} if timings is None else timings
    cpu = {} if cpu_timings is None else cpu_timings
    for k in ("decode", "features"):
        timings.setdefault(k, 0.0)
        cpu.setdefault(k, 0.0)
    r = predictor.deploy["reader"]
    num_seg = int(r["num_seg"])
    resize = r.get("resize", "short_side")   # exports made before the option kept the aspect
    chunk = num_seg * max(1, int(batch_groups))
    feats, buf = [], []
    count = [0]

    def flush():
        n = len(buf)
        groups = math.ceil(n / num_seg)
        pad = groups * num_seg - n
        arr = np.stack(buf + [buf[-1]] * pad).reshape(groups, num_seg, *buf[0].shape)
        t, c = time.perf_counter(), time.process_time()
        out = predictor.run([arr])[0].reshape(groups * num_seg, -1)
        timings["features"] += time.perf_counter() - t
        cpu["features"] += time.process_time() - c
        feats.append(out.astype(np.float32))   # padded rows kept until the length rule
        count[0] += n
        if progress:
            progress(n)
        buf.clear()

    t, c = time.perf_counter(), time.process_time()
    for img in sample_frames(path, fps):
        buf.append(preprocess_frame(img, r["short_size"], r["target_size"], r["mean"], r["std"],
                                    resize))
        if len(buf) == chunk:
            timings["decode"] += time.perf_counter() - t
            cpu["decode"] += time.process_time() - c
            flush()
            t, c = time.perf_counter(), time.process_time()
    timings["decode"] += time.perf_counter() - t
    cpu["decode"] += time.process_time() - c
    if buf:
        flush()
    rows = feature_rows(count[0], num_seg, length)
    if rows == 0:
        raise DataError(f"{path}: {count[0]} sampled frames give no feature rows under "
                        f"FootballAction's length rule (it drops a lone last group)")
    return np.concatenate(feats)[:rows]


def save_footballaction_pkl(path, image_feature, extra=None):
    """FootballAction's feature file: a plain pickle (protocol 4, arrays and strings only,
    so the restricted reader of ``ppzoo.core.safeload`` reads it) of ``{"image_feature":
    (L, 2048) float32}`` plus ``extra`` arrays (``audio_feature`` (seconds, 1024),
    ``pcm_feature`` (5 per second, 640)) when given; written atomically."""
    import pickle
    data = {"image_feature": np.ascontiguousarray(image_feature, np.float32)}
    for k, v in (extra or {}).items():
        data[str(k)] = np.ascontiguousarray(v, np.float32)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=4)   # 5 would name numpy's _frombuffer
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _audio_streams(audio_dir, name):
    """``audio_feature``/``pcm_feature`` (those present) of ``<audio_dir>/<name>.pkl``,
    FootballAction's own feature file: ppzoo computes no audio features, so a
    FootballAction-format file for its released BMN (image + pcm) or LSTM (image +
    audio) takes them from there.  Read with the restricted unpickler."""
    from ..core.safeload import unpickle
    path = os.path.join(audio_dir, name + ".pkl")
    if not os.path.isfile(path):
        raise DataError(f"no {name}.pkl in {audio_dir} (the audio features to copy)")
    data = unpickle(path, DataError, "feature file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of feature arrays, got {type(data).__name__}")
    out = {k: np.asarray(data[k], np.float32) for k in ("audio_feature", "pcm_feature")
           if k in data}
    if not out:
        raise DataError(f"{path}: no 'audio_feature' or 'pcm_feature' ({sorted(data)})")
    return out


def default_cpu_threads():
    """Math threads of the frame-feature (and pipeline) predictors when not given: every
    core this process may run on.  Paddle's own default is one thread, which leaves free
    cores idle; on a busy machine one thread costs the fewest CPU seconds
    (docs/benchmarks/localization_latency.md), and ``cpu_threads`` sets it."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not on Linux
        return os.cpu_count() or 1


def save_atomic(path, array):
    """``np.save`` to ``<path>.tmp-<pid>`` then rename: a killed run leaves no partial file."""
    tmp = f"{path}.tmp-{os.getpid()}.npy"
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def extract_videos(model_dir, videos, out_dir, fps, batch_groups=1, device=None,
                   cpu_threads=None, echo=print, bar=True, length="all", fmt="npy",
                   audio_dir=None, precision="fp32"):
    """One ``<out_dir>/<video name>.npy`` (``fmt="npy"``) or FootballAction ``.pkl``
    (``fmt="pkl"``, :func:`save_footballaction_pkl`; ``audio_dir`` holding
    FootballAction's own ``.pkl`` files adds their audio streams) per video; videos whose
    file exists are skipped (resumable).  A progress bar counts sampled frames with an
    ETA.  ``cpu_threads``: :func:`default_cpu_threads` when not given; ``precision``:
    ``fp32`` or ``bf16`` (oneDNN bfloat16: faster, features within about 0.6% of fp32's; see
    docs/benchmarks/localization_latency.md).  Returns ``{video: feature path}``."""
    from tqdm import tqdm

    from ..engine.predictor import Predictor
    predictor = Predictor(model_dir, device=device, precision=precision,
                          cpu_threads=cpu_threads if cpu_threads else default_cpu_threads())
    if predictor.deploy.get("task") != "frame_features":
        raise ConfigError(f"{model_dir} is a {predictor.deploy.get('task')!r} export; feature "
                          f"extraction needs a frame_features export (tools/extract_features.py "
                          f"-c <recognizer config> exports one)")
    _check_choice(length, LENGTH_RULES, "length")
    _check_choice(fmt, ("npy", "pkl"), "format")
    if audio_dir and fmt != "pkl":
        raise ConfigError("audio_dir needs the pkl format (the audio streams live in the .pkl)")
    os.makedirs(out_dir, exist_ok=True)
    todo, done = [], {}
    for v in videos:
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(v))[0] + "." + fmt)
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
            feats = extract_video(predictor, v, fps, batch_groups, progress=pb.update,
                                  length=length)
            if fmt == "pkl":
                name = os.path.splitext(os.path.basename(v))[0]
                save_footballaction_pkl(out, feats, _audio_streams(audio_dir, name)
                                        if audio_dir else None)
            else:
                save_atomic(out, feats)
            done[v] = out
            if echo:
                echo(f"{v}: {feats.shape[0]} x {feats.shape[1]} features -> {out}")
    return done
