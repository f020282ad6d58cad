"""Generated long "videos" with planted events, for tests and benchmarks (no real match
video is available offline).

Feature sequences: background steps are Gaussian noise around a slowly drifting mean;
an event of class ``c`` adds class ``c``'s prototype (a fixed random direction, scaled by
``strength``) to every step of its span.  Events do not overlap and keep ``min_gap``
seconds apart.  The labels are written in FootballAction's format (seconds).
"""
import json
import os

import numpy as np


def plant_events(rng, duration, num_classes, num_events, length=(3.0, 10.0), min_gap=4.0):
    """``num_events`` non-overlapping ``(start, end, class)`` in seconds, classes 1..C-1."""
    events = []
    tries = 0
    while len(events) < num_events and tries < 1000:
        tries += 1
        ln = rng.uniform(*length)
        s = rng.uniform(min_gap, duration - ln - min_gap)
        e = s + ln
        if all(e + min_gap <= a or s >= b + min_gap for a, b, _ in events):
            events.append((round(s, 2), round(e, 2), int(rng.integers(1, num_classes))))
    return sorted(events)


def feature_sequence(rng, duration, fps, dim, events, prototypes, strength=2.0, noise=1.0):
    L = int(round(duration * fps))
    drift = np.cumsum(rng.normal(0, 0.05, (L, dim)), axis=0)
    x = rng.normal(0, noise, (L, dim)) + drift * 0.2
    for s, e, c in events:
        a, b = int(round(s * fps)), int(round(e * fps))
        x[a:b] += strength * prototypes[c]
    return x.astype(np.float32)


def make_feature_videos(out_dir, num_videos=4, duration=240.0, fps=5, dim=32, num_classes=8,
                        events_per_video=12, length=(3.0, 10.0), strength=2.0, seed=0,
                        prefix="match"):
    """Write ``<out_dir>/features/<name>.npy`` and ``<out_dir>/labels.json``; returns the
    label path and the feature folder."""
    rng = np.random.default_rng(seed)
    proto_rng = np.random.default_rng(12345)   # the same classes in every call
    prototypes = proto_rng.normal(0, 1, (num_classes, dim))
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True) / np.sqrt(dim) * 2
    feat_dir = os.path.join(out_dir, "features")
    os.makedirs(feat_dir, exist_ok=True)
    gts = []
    for v in range(num_videos):
        name = f"{prefix}_{seed}_{v:03d}"
        events = plant_events(rng, duration, num_classes, events_per_video, length)
        np.save(os.path.join(feat_dir, name + ".npy"),
                feature_sequence(rng, duration, fps, dim, events, prototypes, strength))
        gts.append(_label_entry(name, duration, events))
    return _write_labels(out_dir, fps, gts), feat_dir


def _label_entry(name, duration, events):
    return {"url": f"mp4/{name}.mp4", "total_frames": duration,
            "actions": [{"label_ids": [c], "label_names": [str(c)], "start_id": s, "end_id": e}
                        for s, e, c in events]}


def _write_labels(out_dir, fps, gts):
    label_path = os.path.join(out_dir, "labels.json")
    with open(label_path, "w", encoding="utf-8") as f:
        json.dump({"fps": fps, "gts": gts}, f)
    return label_path


CLASS_COLOURS = np.array([[128, 128, 128], [220, 40, 40], [40, 200, 40], [40, 40, 220],
                          [230, 220, 40], [200, 40, 200], [40, 210, 210], [250, 140, 20],
                          [120, 60, 20], [20, 20, 20]], np.uint8)


def write_event_video(path, duration, events, fps=4, size=64, seed=0):
    """An MP4 with planted events: a noisy grey pitch with a moving bright square as
    background; during an event of class ``c`` the frame turns to class ``c``'s colour
    (with noise).  Returns the number of frames written."""
    import av
    rng = np.random.default_rng(seed)
    n = int(round(duration * fps))
    tmp = f"{path}.tmp-{os.getpid()}.mp4"
    with av.open(tmp, "w") as c:
        st = c.add_stream("mpeg4", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        st.bit_rate = 400000
        for i in range(n):
            t = i / fps
            img = np.clip(rng.normal(110, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            x = int((np.sin(t / 3.0) * 0.4 + 0.5) * (size - 12))
            img[20:32, x:x + 12] = 240
            for s, e, cls in events:
                if s <= t < e:
                    col = CLASS_COLOURS[cls % len(CLASS_COLOURS)].astype(np.float64)
                    img = np.clip(col + rng.normal(0, 15, (size, size, 3)), 0, 255).astype(np.uint8)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    os.replace(tmp, path)
    return n


def make_event_videos(out_dir, num_videos=2, duration=120.0, num_classes=4, events_per_video=8,
                      length=(4.0, 9.0), fps=4, size=64, seed=0, prefix="game"):
    """Generated match videos and their FootballAction-format labels; returns
    ``(label path, [video paths])``."""
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    gts, paths = [], []
    for v in range(num_videos):
        name = f"{prefix}_{seed}_{v:02d}"
        events = plant_events(rng, duration, num_classes, events_per_video, length)
        path = os.path.join(out_dir, name + ".mp4")
        write_event_video(path, duration, events, fps, size, seed=seed * 1000 + v)
        paths.append(path)
        gts.append(_label_entry(name, duration, events))
    return _write_labels(out_dir, fps, gts), paths


#: A small random-weight TSM recognizer (64-d features from 32 px frames) for generated
#: videos: what tests and the benchmark extract features with.
TINY_RECOGNIZER = {
    "model": {"type": "Recognizer2D",
              "backbone": {"type": "ResNetTSM", "depth": 18, "num_seg": 4, "base_width": 8,
                           "stage_blocks": [1, 1, 1, 1]},
              "head": {"type": "TSNHead", "num_classes": 4, "in_channels": 64, "num_seg": 4}},
    "val_dataset": {"transforms": [
        {"type": "Scale", "short_size": 32}, {"type": "VideoCenterCrop", "target_size": 32},
        {"type": "VideoNormalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}]},
}


def synthetic_sets():
    """Generators of match videos by name, each ``(out_dir, num_videos, duration,
    num_classes, events_per_video, length, seed, ...) -> (label path, [videos])``:
    ``colour`` (:func:`make_event_videos`: each class paints the frame in its colour, a
    smoke test that a rule with no learning solves) and ``motion``
    (``synth_motion.make_motion_videos``: classes told apart only by motion and order)."""
    from .synth_motion import make_motion_videos
    return {"colour": make_event_videos, "motion": make_motion_videos}
