"""Datasets of the localization pipeline: BMN windows and AttentionLSTM proposals.

Both read per-video feature files (``<feature_dir>/<video>.npy``, ``(L, C)`` at
``fps`` features per second, as ``tools/extract_features.py`` writes them) and an
annotation file (ActivityNet-style or FootballAction-style, see ``annotations.py``).
"""
import numpy as np

from ..core.builder import DATASETS
from ..core.errors import ConfigError, DataError
from ..core.paths import resolve_data_path
from ..datasets.base import BaseDataset
from .annotations import find_feature_file, read_annotations, read_features
from .bmn import bmn_targets
from .classes import class_names as _class_names
from .postprocess import segment_iou, window_starts


def _resample(feats, length):
    """Linear interpolation of ``(L, C)`` to ``(length, C)`` (ActivityNet's fixed scale)."""
    L = len(feats)
    if L == length:
        return feats
    pos = (np.arange(length) + 0.5) * L / length - 0.5
    pos = np.clip(pos, 0, L - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, L - 1)
    w = (pos - lo)[:, None]
    return (feats[lo] * (1 - w) + feats[hi] * w).astype(np.float32)


class _FeatureVideos(BaseDataset):
    def __init__(self, annotations, feature_dir, annotation_format="auto", subset=None,
                 class_names=None, fps=None, transforms=None, seed=0):
        super().__init__(transforms, seed)
        annotations, feature_dir = resolve_data_path(annotations), resolve_data_path(feature_dir)
        self.class_names = _class_names(class_names) if class_names is not None else None
        videos = read_annotations(annotations, annotation_format, self.class_names)
        if subset is not None:
            videos = {k: v for k, v in videos.items() if v.get("subset") in (None, subset)}
        if not videos:
            raise DataError(f"{annotations}: no videos" + (f" of subset {subset!r}" if subset else ""))
        self.annotations, self.feature_dir = annotations, feature_dir
        self.videos = videos
        self.names = sorted(videos)
        self.fps = float(fps) if fps else None
        self._cache = {}

    def features(self, name):
        if name not in self._cache:
            self._cache[name] = read_features(find_feature_file(self.feature_dir, name))
        return self._cache[name]


@DATASETS.register()
class BMNWindowDataset(_FeatureVideos):
    """Windows of ``tscale`` feature steps with BMN targets.

    Without ``window`` (seconds), every annotated video is one window: its features are
    resampled to ``tscale`` and its events normalised by its duration (ActivityNet /
    PaddleVideo's BMN label file, where FootballAction's windows are already cut).
    With ``window`` and ``fps``, long videos are cut into windows of ``window * fps ==
    tscale`` steps every ``window_step`` seconds; a window is kept when it cuts no event
    and holds at least one (``background_windows: true`` keeps empty ones too).

    Samples: ``feature`` ``(C, tscale)``, ``gt_iou_map`` ``(dscale, tscale)``, ``gt_start``,
    ``gt_end`` ``(tscale,)`` and ``segments`` ``(max_segments, 3)``: start, end (window
    fractions) and class id, padded with -1.
    """

    def __init__(self, annotations, feature_dir, tscale=100, dscale=100, window=None,
                 window_step=None, fps=None, annotation_format="auto", subset=None,
                 class_names=None, max_segments=16, background_windows=False, seed=0):
        super().__init__(annotations, feature_dir, annotation_format, subset, class_names,
                         fps, None, seed)
        self.tscale, self.dscale = int(tscale), int(dscale)
        self.max_segments = int(max_segments)
        self.items = []  # (video, start_step or None, [(s, e, label) in window fractions])
        if window is None:
            for name in self.names:
                v = self.videos[name]
                if not v["duration"]:
                    raise DataError(f"{annotations}: video {name} has no duration")
                segs = [(s / v["duration"], e / v["duration"], lab) for s, e, lab in v["events"]]
                self.items.append((name, None, segs))
        else:
            if not self.fps:
                raise ConfigError("BMNWindowDataset: window needs fps (feature steps per second)")
            if round(float(window) * self.fps) != self.tscale:
                raise ConfigError(f"BMNWindowDataset: window {window} s x fps {self.fps} must "
                                  f"equal tscale {self.tscale}")
            step = max(1, int(round(float(window_step or window) * self.fps)))
            for name in self.names:
                L = len(self.features(name))
                ev = [(s * self.fps, e * self.fps, lab) for s, e, lab in self.videos[name]["events"]]
                for w0 in window_starts(L, self.tscale, step):
                    w1 = w0 + self.tscale
                    inside = [(s, e, lab) for s, e, lab in ev if s >= w0 and e <= w1]
                    cut = [1 for s, e, _ in ev if s < w1 and e > w0 and not (s >= w0 and e <= w1)]
                    if cut or (not inside and not background_windows):
                        continue
                    self.items.append((name, w0, [((s - w0) / self.tscale, (e - w0) / self.tscale,
                                                   lab) for s, e, lab in inside]))
        if not self.items:
            raise DataError(f"{annotations}: no window holds a whole event; check window, "
                            f"fps and the feature files")
        for name, _, segs in self.items:
            if len(segs) > self.max_segments:
                raise DataError(f"{name}: {len(segs)} events in one window, more than "
                                f"max_segments {self.max_segments}")

    def __len__(self):
        return len(self.items)

    def load(self, idx):
        name, w0, segs = self.items[idx]
        feats = self.features(name)
        if w0 is None:
            win = _resample(feats, self.tscale)
        else:
            win = np.zeros((self.tscale, feats.shape[1]), np.float32)
            chunk = feats[w0:w0 + self.tscale]
            win[:len(chunk)] = chunk
        iou, start, end = bmn_targets([(s, e) for s, e, _ in segs], self.tscale, self.dscale)
        seg_arr = -np.ones((self.max_segments, 3), np.float32)
        if segs:
            seg_arr[:len(segs)] = np.asarray(segs, np.float32)
        return {"feature": np.ascontiguousarray(win.T), "gt_iou_map": iou, "gt_start": start,
                "gt_end": end, "segments": seg_arr}


def proposal_target(seg, events):
    """Label and IoU target of a proposal ``seg`` (seconds) against ``events``: the
    class of the event it overlaps most (IoU) and that IoU."""
    if not events:
        return 0, 0.0
    ev = np.asarray([(s, e) for s, e, _ in events], np.float64)
    iou = segment_iou(ev, seg)
    j = int(np.argmax(iou))
    return int(events[j][2]), float(iou[j])


@DATASETS.register()
class ProposalDataset(_FeatureVideos):
    """Proposals of long videos for the AttentionLSTM classifier.

    Proposals are drawn around every event (``per_event`` copies with start and end
    moved by up to ``jitter`` x the event length) and at random background places
    (``background_per_video``), seeded.  A proposal's ``label`` is the class of the
    event it overlaps most when that IoU is at least ``pos_iou``, else 0 (background);
    ``iou`` is that IoU (the regression target).  Feature slices are cut to
    ``max_len`` steps and returned unpadded; :meth:`collate_fn` pads a batch to its
    longest proposal and ``mask`` marks the real steps (PaddleVideo pads every proposal
    to ``max_len``, 300 steps, several times the work for the same outputs).

    ``audio_dir`` adds a second stream (``audio``, ``audio_mask``): ``<video>.npy`` (or a
    PaddleVideo ``.pkl``'s ``audio_feature``) at ``audio_fps`` steps per second (1 in
    FootballAction), cut to ``audio_max_len`` (default ``max_len`` at the audio rate);
    feed it with ``train.input_keys: [feature, mask, audio, audio_mask]`` and the model's
    ``audio_dim``.
    """

    def __init__(self, annotations, feature_dir, fps, annotation_format="auto", subset=None,
                 class_names=None, max_len=300, per_event=8, jitter=0.4,
                 background_per_video=8, pos_iou=0.5, audio_dir=None, audio_fps=1.0,
                 audio_max_len=None, seed=0):
        super().__init__(annotations, feature_dir, annotation_format, subset, class_names,
                         fps, None, seed)
        if not self.fps:
            raise ConfigError("ProposalDataset needs fps (feature steps per second)")
        self.max_len, self.pos_iou = int(max_len), float(pos_iou)
        self.audio_dir, self.audio_fps = audio_dir, float(audio_fps)
        self.audio_max_len = int(audio_max_len or max(1, round(self.max_len * self.audio_fps /
                                                                self.fps)))
        self._audio = {}
        rng = np.random.default_rng(int(seed))
        self.items = []
        for name in self.names:
            events = self.videos[name]["events"]
            dur = len(self.features(name)) / self.fps
            props = []
            for s, e, _ in events:
                length = max(e - s, 1.0 / self.fps)
                for k in range(int(per_event)):
                    if k == 0:
                        props.append((s, e))
                        continue
                    ds, de = rng.uniform(-jitter, jitter, 2) * length
                    a, b = max(0.0, s + ds), min(dur, e + de)
                    if b - a >= 1.0 / self.fps:
                        props.append((a, b))
            for _ in range(int(background_per_video)):
                length = rng.uniform(2.0, 12.0)
                a = rng.uniform(0, max(dur - length, 1e-3))
                props.append((a, min(dur, a + length)))
            for seg in props:
                lab, iou = proposal_target(seg, events)
                self.items.append((name, seg, lab if iou >= self.pos_iou else 0, iou))

    def __len__(self):
        return len(self.items)

    def load(self, idx):
        name, (s, e), lab, iou = self.items[idx]
        feat = proposal_slice(self.features(name), s, e, self.fps, self.max_len)
        out = {"feature": feat, "mask": np.ones(len(feat), np.float32), "label": np.int64(lab),
               "iou": np.float32(iou), "target": np.asarray([lab, iou], np.float32)}
        if self.audio_dir:
            if name not in self._audio:
                self._audio[name] = read_features(find_feature_file(self.audio_dir, name),
                                                  key="audio_feature")
            out["audio"] = proposal_slice(self._audio[name], s, e, self.audio_fps,
                                          self.audio_max_len)
            out["audio_mask"] = np.ones(len(out["audio"]), np.float32)
        return out

    @staticmethod
    def collate_fn(samples):
        """Pad ``feature``/``audio`` (and their masks) to the batch's longest proposal,
        not to ``max_len``: the model masks the padding, so only the work changes."""
        out = {}
        for key, mkey in (("feature", "mask"), ("audio", "audio_mask")):
            if key in samples[0]:
                out[key], out[mkey] = pad_sequences([np.asarray(x[key]) for x in samples])
        for key in samples[0]:
            if key not in out:
                out[key] = np.stack([np.asarray(x[key]) for x in samples])
        return out


def proposal_slice(feats, start_s, end_s, fps, max_len):
    """The feature steps of ``[start_s, end_s)`` seconds (at least one step), at most
    ``max_len`` of them, unpadded: ``(n, C)`` float32."""
    a = int(np.floor(start_s * fps))
    b = max(a + 1, int(np.ceil(end_s * fps)))
    return np.asarray(feats[max(0, min(a, len(feats) - 1)):min(b, len(feats))][:max_len],
                      np.float32)


def pad_sequences(seqs, length=None):
    """``(n_i, C)`` arrays -> ``(B, L, C)`` zero-padded and ``(B, L)`` masks of the real
    steps; ``L`` is the longest ``n_i`` unless ``length`` is given."""
    length = int(length or max(len(x) for x in seqs))
    out = np.zeros((len(seqs), length, seqs[0].shape[1]), np.float32)
    mask = np.zeros((len(seqs), length), np.float32)
    for i, x in enumerate(seqs):
        out[i, :len(x)] = x[:length]
        mask[i, :min(len(x), length)] = 1.0
    return out, mask


def proposal_features(feats, start_s, end_s, fps, max_len):
    """:func:`proposal_slice` padded to ``max_len`` steps, and the mask of its real steps."""
    out, mask = pad_sequences([proposal_slice(feats, start_s, end_s, fps, max_len)], max_len)
    return out[0], mask[0]
