"""One long video -> a timeline of events, chaining the three exported models:
frame features (a recognizer's backbone) -> BMN proposals -> AttentionLSTM events.

:class:`Localizer` holds the three predictors; :meth:`Localizer.run` returns
``{"video", "duration", "fps", "events": [{start, end, class_id, label, score, iou}],
"num_proposals", "seconds": {decode, features, bmn, classification}}``.
:func:`save_timeline` writes the JSON and a picture, each atomically.
"""
import json
import os
import time

import numpy as np

from ..core.errors import ConfigError
from ..engine.predictor import Predictor
from .annotations import read_features
from .infer import classify_proposals, select_events, video_proposals


class Localizer:
    """``feature_dir`` (a ``frame_features`` export; optional when inputs are feature
    files), ``bmn_dir`` (``bmn_proposals``), ``lstm_dir`` (``event_classification``).
    ``bmn_post``/``event_post`` override the exports' postprocess options.
    ``cpu_threads``: math threads of all three predictors on the CPU, by default every
    core (:func:`~ppzoo.localization.features.default_cpu_threads`, as the feature
    extractor; Paddle's own default is one).  ``precision`` (``fp32``/``bf16``) applies to
    the frame features only, the dominant stage; ``batch_groups``: groups of ``num_seg``
    frames per feature call."""

    def __init__(self, bmn_dir, lstm_dir, feature_dir=None, device=None, cpu_threads=None,
                 bmn_post=None, event_post=None, precision="fp32", batch_groups=1):
        from .features import default_cpu_threads
        cpu_threads = int(cpu_threads) if cpu_threads else default_cpu_threads()
        self.cpu_threads, self.batch_groups = cpu_threads, int(batch_groups)
        self.features = (Predictor(feature_dir, device=device, cpu_threads=cpu_threads,
                                   precision=precision) if feature_dir else None)
        self.bmn = Predictor(bmn_dir, device=device, cpu_threads=cpu_threads)
        self.lstm = Predictor(lstm_dir, device=device, cpu_threads=cpu_threads)
        for p, task, d in ((self.features, "frame_features", feature_dir),
                           (self.bmn, "bmn_proposals", bmn_dir),
                           (self.lstm, "event_classification", lstm_dir)):
            if p is not None and p.deploy.get("task") != task:
                raise ConfigError(f"{d} is a {p.deploy.get('task')!r} export; expected {task}")
        self.fps = float(self.bmn.deploy["reader"].get("fps", 1.0))
        self.tscale = int(self.bmn.deploy["inputs"][0]["shape"][-1])
        self.bmn_post = dict(self.bmn.deploy.get("postprocess") or {}, **(bmn_post or {}))
        self.event_post = dict(self.lstm.deploy.get("postprocess") or {}, **(event_post or {}))
        self.label_names = self.lstm.deploy.get("label_names")
        self._num_classes = len(self.label_names) if self.label_names else None

    @property
    def num_classes(self):
        """The classifier's number of classes: its label names, else the width of its
        output on one dummy proposal (an export without label names)."""
        if self._num_classes is None:
            dummy = []
            for i in range(0, len(self.lstm.deploy["inputs"]), 2):   # (feature, mask) pairs
                shape = self.lstm.deploy["inputs"][i]["shape"]
                length, dim = max(1, int(shape[1])), int(shape[-1])
                mask = np.zeros((1, length), np.float32)
                mask[0, 0] = 1.0
                dummy += [np.zeros((1, length, dim), np.float32), mask]
            probs, _ = self.lstm.run(dummy)
            self._num_classes = int(np.asarray(probs).shape[-1])
        return self._num_classes

    def run(self, path, progress=None):
        """``path``: a video (needs ``feature_dir``) or a feature file (``.npy``/``.pkl``)."""
        seconds = {"decode": 0.0, "features": 0.0, "bmn": 0.0, "classification": 0.0}
        audio = None
        if len(self.lstm.deploy["inputs"]) > 2:   # a two-stream classifier: image + audio
            if not path.endswith(".pkl"):
                raise ConfigError(f"{path}: {self.lstm.model_dir} classifies image and audio "
                                  f"features; give a .pkl feature file holding both "
                                  f"(image_feature, audio_feature)")
            audio = read_features(path, key="audio_feature")
        if path.endswith((".npy", ".pkl")):
            feats = read_features(path)
        else:
            if self.features is None:
                raise ConfigError(f"{path}: a video needs the feature model (--feature-model)")
            feats = self._extract(path, seconds, progress)
        t = time.perf_counter()
        props = video_proposals(lambda x: self.bmn.run([x]), feats, self.tscale, self.fps,
                                self.bmn_post)
        seconds["bmn"] = time.perf_counter() - t
        t = time.perf_counter()
        max_len = int(self.event_post.get("max_len", 300))
        probs, ious = classify_proposals(lambda *x: self.lstm.run(list(x)), feats, props,
                                         self.fps, max_len, audio=audio,
                                         audio_fps=float(self.lstm.deploy["reader"].get(
                                             "audio_fps", 1.0)))
        events = select_events(props, probs, ious, self.event_post, self.label_names)
        seconds["classification"] = time.perf_counter() - t
        return {"video": os.path.abspath(path), "duration": round(len(feats) / self.fps, 3),
                "fps": self.fps, "events": events, "num_proposals": int(len(props)),
                "seconds": {k: round(v, 4) for k, v in seconds.items()}}

    def _extract(self, path, seconds, progress):
        from .features import extract_video
        return extract_video(self.features, path, self.fps, self.batch_groups, progress=progress,
                             timings=seconds)


def plot_timeline(timeline, path, ground_truth=None, label_names=None):
    """A picture of the events over time (one row per class; ground truth, when given,
    as outlines beneath), written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = timeline["events"]
    names = list(label_names or [])
    classes = sorted({e["class_id"] for e in events} |
                     {int(g[2]) for g in (ground_truth or [])})
    rows = {c: i for i, c in enumerate(classes)}
    fig, ax = plt.subplots(figsize=(12, 1 + 0.5 * max(1, len(classes))))
    cmap = plt.get_cmap("tab10")
    for s, e, c in ground_truth or []:
        ax.add_patch(matplotlib.patches.Rectangle((s, rows[int(c)] - 0.4), e - s, 0.3, fill=False,
                                                  edgecolor=cmap(int(c) % 10), linewidth=1.2))
    for ev in events:
        c = ev["class_id"]
        ax.add_patch(matplotlib.patches.Rectangle((ev["start"], rows[c] - 0.05), ev["end"] - ev["start"],
                                                  0.4, color=cmap(c % 10), alpha=0.5 + 0.5 * ev["score"]))
    ax.set_xlim(0, timeline["duration"])
    ax.set_ylim(-0.6, max(1, len(classes)) - 0.4)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels([names[c] if c < len(names) else str(c) for c in classes])
    ax.set_xlabel("time (s)")
    title = os.path.basename(timeline["video"]) + f": {len(events)} events"
    ax.set_title(title + (" (filled: predicted, outlined: annotated)" if ground_truth else ""))
    fig.tight_layout()
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def save_timeline(timeline, out_dir, ground_truth=None, label_names=None):
    """``<out_dir>/<video>.json`` and ``<video>.png``; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(timeline["video"]))[0]
    js, png = os.path.join(out_dir, name + ".json"), os.path.join(out_dir, name + ".png")
    tmp = f"{js}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(timeline, f, indent=1)
    os.replace(tmp, js)
    plot_timeline(timeline, png, ground_truth, label_names)
    return js, png
