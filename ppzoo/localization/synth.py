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
        gts.append({"url": f"mp4/{name}.mp4", "total_frames": duration,
                    "actions": [{"label_ids": [c], "label_names": [str(c)], "start_id": s,
                                 "end_id": e} for s, e, c in events]})
    label_path = os.path.join(out_dir, "labels.json")
    with open(label_path, "w", encoding="utf-8") as f:
        json.dump({"fps": fps, "gts": gts}, f)
    return label_path, feat_dir
