"""Inference of the localization pipeline on exported models.

Two tasks for ``tools/infer.py`` (and the functions ``tools/localize.py`` chains):

``bmn_proposals``
    a long video's feature file (``.npy``/``.pkl``, ``(L, C)`` at ``reader.fps``) ->
    windows of ``tscale`` steps every ``postprocess.window_step`` steps -> the exported
    BMN -> the windows' maps averaged per step (FootballAction) -> score fusion and
    suppression over the whole video -> proposals ``[start_s, end_s, score]``.
``event_classification``
    a proposals JSON (``{"features": path, "proposals": [[s, e, score], ...]}``, what
    the first task writes with ``--output``) -> the exported AttentionLSTM -> class and
    IoU per proposal -> background dropped, NMS, score/IoU floors -> events.
"""
import json
import os

import numpy as np

from ..core.errors import DataError
from ..engine.predictor import INFER_TASKS, InferTask
from .annotations import read_features
from .datasets import pad_sequences, proposal_slice
from .postprocess import NMS, build_postprocess, cut_windows, stitch_windows

# FootballAction's BMN inference: segments [t, t + d] with d in 5..199, score >= 0.03, NMS 0.7
BMN_POST = {"window_step": None, "min_score": 0.03, "min_len": 5, "max_len": 199, "end_offset": 0,
            "suppress": {"type": "NMS", "thresh": 0.7}, "use_reg": True, "use_cls": True}
EVENT_POST = {"score_thresh": 0.1, "iou_thresh": 0.1, "nms_thresh": 0.01, "nms_delta": 2.0,
              "background": 0, "max_len": 300}


def bmn_postprocess(post):
    """The whole-video proposal post-processing from ``deploy.yml``'s options."""
    return build_postprocess({
        "type": "BMNPostProcess", "min_score": post.get("min_score", 0.0),
        "fusion": {"type": "ScoreFusion", "use_reg": post.get("use_reg", True),
                   "use_cls": post.get("use_cls", True),
                   "min_len": post.get("min_len", BMN_POST["min_len"]),
                   "max_len": post.get("max_len", BMN_POST["max_len"]),
                   "end_offset": post.get("end_offset", BMN_POST["end_offset"])},
        "suppress": dict(post.get("suppress") or {"type": "NMS", "thresh": 0.7})})


def video_proposals(run, feats, tscale, fps, post, batch_size=8):
    """Proposals ``(K, 3)`` (seconds, seconds, score) of one video's features ``(L, C)``;
    ``run(windows (B, C, T)) -> (bm, start, end)`` is the exported BMN (or the model)."""
    step = int(post.get("window_step") or tscale)
    windows, starts = cut_windows(feats, tscale, step)
    outs = [run(windows[i:i + batch_size]) for i in range(0, len(windows), batch_size)]
    bm, ps, pe = (np.concatenate([o[k] for o in outs]) for k in range(3))
    bm, ps, pe = stitch_windows(bm, ps, pe, starts, len(feats))
    props = bmn_postprocess(post)(bm, ps, pe)
    if len(props):
        props[:, :2] = np.clip(props[:, :2], 0, len(feats)) / float(fps)
    return props


def classify_proposals(run, feats, proposals, fps, max_len, batch_size=32, audio=None,
                       audio_fps=1.0, audio_max_len=None):
    """``(probs (K, classes), iou (K,))`` of proposals ``(K, >=2)`` in seconds;
    ``run(feature, mask[, audio, audio_mask]) -> (probs, iou)`` is the exported
    AttentionLSTM.  Proposals go in length order, ``batch_size`` at a time, each batch
    padded to its longest (length buckets: the work follows the proposals' lengths, not
    ``max_len``); the results come back in the proposals' order.  ``audio`` ``(La, Ca)``
    at ``audio_fps`` feeds a two-stream model."""
    if not len(proposals):
        return np.zeros((0, 0)), np.zeros((0,))
    segs = np.asarray(proposals, np.float64)[:, :2]
    seqs = [proposal_slice(feats, s, e, fps, max_len) for s, e in segs]
    if audio is not None:
        a_len = int(audio_max_len or max(1, round(max_len * audio_fps / fps)))
        aseqs = [proposal_slice(audio, s, e, audio_fps, a_len) for s, e in segs]
    order = np.argsort([len(x) for x in seqs], kind="stable")
    probs, ious = [None] * len(seqs), np.zeros(len(seqs))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        inputs = list(pad_sequences([seqs[j] for j in idx]))
        if audio is not None:
            inputs += list(pad_sequences([aseqs[j] for j in idx]))
        p, u = run(*inputs)
        for k, j in enumerate(idx):
            probs[j] = np.asarray(p)[k]
        ious[idx] = np.asarray(u).reshape(-1)
    return np.stack(probs), ious


def select_events(proposals, probs, ious, post, label_names=None):
    """FootballAction's action post-processing: each proposal takes its top class;
    background proposals are dropped; class-agnostic NMS on the predicted IoU
    (``nms_thresh``, boundaries widened by ``nms_delta`` seconds); events whose class
    score exceeds ``score_thresh`` and IoU exceeds ``iou_thresh`` are kept, by start."""
    post = dict(EVENT_POST, **(post or {}))
    if not len(proposals):
        return []
    props = np.asarray(proposals, np.float64)
    cls = probs.argmax(1)
    score = probs[np.arange(len(cls)), cls]
    keep = cls != int(post["background"])
    cand = np.flatnonzero(keep)
    if not len(cand):
        return []
    rows = np.stack([props[cand, 0], props[cand, 1], ious[cand]], 1)
    idx = cand[NMS(post["nms_thresh"], post["nms_delta"]).keep_indices(rows)]
    events = []
    for i in sorted(idx, key=lambda j: props[j, 0]):
        if score[i] > post["score_thresh"] and ious[i] > post["iou_thresh"]:
            c = int(cls[i])
            events.append({"start": round(float(props[i, 0]), 3), "end": round(float(props[i, 1]), 3),
                           "class_id": c,
                           "label": (str(label_names[c]) if label_names and c < len(label_names)
                                     else str(c)),
                           "score": round(float(score[i]), 6), "iou": round(float(ious[i]), 6)})
    return events


@INFER_TASKS.register(name="bmn_proposals")
class BMNProposalTask(InferTask):
    """A long video's feature file -> BMN proposals in seconds."""

    extensions = (".npy", ".pkl")

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        fps = getattr(dataset, "fps", None) or 1.0
        return {"reader": {"fps": float(fps)}, "postprocess": dict(BMN_POST)}

    def read(self, path):
        feats = read_features(path)
        tscale = int(self.deploy["inputs"][0]["shape"][-1])
        windows, starts = cut_windows(feats, tscale, int(self.post.get("window_step") or tscale))
        return {"windows": windows, "starts": starts, "length": len(feats), "path": path}

    def preprocess(self, sample):
        return sample

    def collate(self, samples):
        return [np.concatenate([s["windows"] for s in samples])]

    def postprocess(self, outputs, samples):
        bm, ps, pe = outputs
        fps = float(self.reader.get("fps", 1.0))
        results, k = [], 0
        post = bmn_postprocess(self.post)
        for s in samples:
            n = len(s["windows"])
            m = stitch_windows(bm[k:k + n], ps[k:k + n], pe[k:k + n], s["starts"], s["length"])
            k += n
            props = post(*m)
            if len(props):
                props[:, :2] = np.clip(props[:, :2], 0, s["length"]) / fps
            results.append({"features": os.path.abspath(s["path"]), "fps": fps,
                            "proposals": [[round(float(a), 3), round(float(b), 3), round(float(c), 6)]
                                          for a, b, c in props]})
        return results

    def format(self, result):
        top = result["proposals"][:3]
        return f"{result['file']}: {len(result['proposals'])} proposals, best {top}"


@INFER_TASKS.register(name="event_classification")
class EventClassificationTask(InferTask):
    """A proposals JSON (from ``bmn_proposals``) -> classified events."""

    extensions = (".json",)

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        fps = getattr(dataset, "fps", None) or 1.0
        post = dict(EVENT_POST, max_len=int(getattr(dataset, "max_len", 300)))
        reader = {"fps": float(fps)}
        if getattr(dataset, "audio_dir", None):
            reader["audio_fps"] = float(dataset.audio_fps)
        return {"reader": reader, "postprocess": post}

    def read(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            feats = read_features(data["features"])
            props = np.asarray(data["proposals"], np.float64).reshape(-1, 3)
        except DataError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}: expected {{'features': path, 'proposals': [[s, e, score], "
                            f"...]}}: {err}") from None
        sample = {"feats": feats, "proposals": props,
                  "fps": float(data.get("fps") or self.reader.get("fps", 1.0))}
        if len(self.input_names) > 2:       # two streams: audio from the same (or its own) file
            sample["audio"] = read_features(data.get("audio") or data["features"],
                                            key="audio_feature")
        return sample

    def preprocess(self, sample):
        max_len = int(self.post.get("max_len", 300))
        props = sample["proposals"]
        segs = props[:, :2] if len(props) else np.zeros((1, 2))   # one dummy keeps shapes
        sample["feature"] = [proposal_slice(sample["feats"], a, b, sample["fps"], max_len)
                             for a, b in segs]
        if "audio" in sample:
            afps = float(self.reader.get("audio_fps", 1.0))
            a_len = max(1, round(max_len * afps / sample["fps"]))
            sample["audio_feature"] = [proposal_slice(sample["audio"], a, b, afps, a_len)
                                       for a, b in segs]
        return sample

    def collate(self, samples):
        """Proposals padded to the longest in the batch, not to ``max_len``."""
        out = list(pad_sequences([x for s in samples for x in s["feature"]]))
        if "audio_feature" in samples[0]:
            out += list(pad_sequences([x for s in samples for x in s["audio_feature"]]))
        return out

    def postprocess(self, outputs, samples):
        probs, ious = np.asarray(outputs[0]), np.asarray(outputs[1]).reshape(-1)
        results, k = [], 0
        for s in samples:
            n = len(s["feature"])
            p, u = probs[k:k + n], ious[k:k + n]
            k += n
            events = select_events(s["proposals"], p, u, self.post, self.label_names) \
                if len(s["proposals"]) else []
            results.append({"events": events})
        return results

    def format(self, result):
        ev = ", ".join(f"{e['label']} {e['start']:.1f}-{e['end']:.1f}s ({e['score']:.2f})"
                       for e in result["events"][:5])
        return f"{result['file']}: {len(result['events'])} events" + (f": {ev}" if ev else "")
