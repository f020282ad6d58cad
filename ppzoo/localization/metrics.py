"""Metrics of temporal localization: proposal AR@AN / AUC and event precision, recall
and F1 at IoA thresholds."""
import numpy as np

from ..core.builder import METRICS
from ..metrics.classification import Metric
from .postprocess import build_postprocess, segment_ioa, segment_iou


def average_recall(proposals, ground_truth, max_an=100, tiou=None):
    """AR@AN for AN = 1..``max_an``: for each video the ``AN`` best proposals; a
    ground-truth segment is recalled at a tIoU threshold when one of them reaches it;
    recall is averaged over the thresholds (ActivityNet's 0.5:0.05:0.95 by default).

    ``proposals``: per video ``(K, 3)`` start, end, score; ``ground_truth``: per video
    ``(G, 2)``.  Returns ``(ar (max_an,), auc)`` with ``auc`` the mean of ``ar`` (the area
    under the AR-AN curve over 1..max_an, normalised to [0, 1]).  (ActivityNet's script
    scales each video's proposal count by the average; with ``max_an`` or more proposals
    in every video the two agree.)"""
    tiou = np.linspace(0.5, 0.95, 10) if tiou is None else np.asarray(tiou, np.float64)
    hits = np.zeros((max_an, len(tiou)))
    total = 0
    for props, gts in zip(proposals, ground_truth):
        gts = np.asarray(gts, np.float64).reshape(-1, 2)
        if not len(gts):
            continue
        total += len(gts)
        props = np.asarray(props, np.float64).reshape(-1, 3)
        props = props[np.argsort(-props[:, 2], kind="stable")][:max_an]
        if not len(props):
            continue
        # first rank at which each gt reaches each threshold
        iou = np.stack([segment_iou(props[:, :2], g) for g in gts])        # (G, K)
        for j, thr in enumerate(tiou):
            ok = iou >= thr
            first = np.where(ok.any(1), ok.argmax(1), max_an)               # (G,)
            for f in first:
                if f < max_an:
                    hits[f:, j] += 1
    ar = (hits / max(total, 1)).mean(axis=1)
    return ar, float(ar.mean())


@METRICS.register()
class ProposalAR(Metric):
    """AR@AN and AUC of BMN's proposals per window (each window is one "video").

    ``update(outputs, segments)``: the model outputs ``(bm, start, end)`` and the
    dataset's ``segments`` ``(N, S, 3)`` (window fractions, padded with -1).
    ``postprocess``: a ``PROPOSAL_POSTPROCESS`` config (default score fusion + soft-NMS
    keeping 100).  Reports ``AR@1``, ``AR@5``, ``AR@10``, ``AR@100`` (those <= ``max_an``)
    and ``AUC``."""

    def __init__(self, max_an=100, postprocess=None, report=(1, 5, 10, 100)):
        self.max_an = int(max_an)
        self.post = build_postprocess(postprocess or {"type": "BMNPostProcess"})
        self.report = [int(a) for a in report if int(a) <= self.max_an]
        self.reset()

    def reset(self):
        self.props, self.gts = [], []

    def update(self, output, label):
        bm, start, end = (np.asarray(o) for o in output)
        segs = np.asarray(label)
        T = bm.shape[-1]
        for i in range(len(bm)):
            self.props.append(self.post(bm[i], start[i], end[i], scale=T))
            g = segs[i]
            self.gts.append(g[g[:, 2] >= 0][:, :2])

    def accumulate(self):
        ar, auc = average_recall(self.props, self.gts, self.max_an)
        out = {f"AR@{a}": float(ar[a - 1]) for a in self.report}
        out["AUC"] = auc
        return out


@METRICS.register()
class ProposalClassification(Metric):
    """AttentionLSTM's proposal accuracy (top-1) and the mean absolute error of its IoU
    prediction; ``update((logits, iou), target)`` with ``target`` ``(N, 2)``: class, IoU."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.correct, self.count, self.abs_err = 0, 0, 0.0

    def update(self, output, label):
        logits, iou = (np.asarray(o) for o in output)
        target = np.asarray(label).reshape(-1, 2)
        self.correct += int((logits.argmax(1) == target[:, 0].astype(int)).sum())
        self.abs_err += float(np.abs(iou.reshape(-1) - target[:, 1]).sum())
        self.count += len(target)

    def accumulate(self):
        n = max(self.count, 1)
        return {"top1": self.correct / n, "iou_mae": self.abs_err / n}


def match_events(pred, gt, threshold):
    """FootballAction's matching: a predicted event hits when its class equals a
    ground-truth event's and the overlap over the ground truth's length (IoA) with that
    event is at least ``threshold``; each prediction is matched to the same-class event
    of highest IoA.  ``pred``/``gt``: lists of ``(start, end, label)`` of one video.
    Returns (hit flag per prediction, index of the matched event or -1)."""
    hit = np.zeros(len(pred), bool)
    idx = -np.ones(len(pred), int)
    for i, (s, e, lab) in enumerate(pred):
        best, bj = 0.0, -1
        for j, (gs, ge, gl) in enumerate(gt):
            if gl != lab:
                continue
            v = float(segment_ioa([(s, e)], (gs, ge))[0])
            if v > best:
                best, bj = v, j
        if bj >= 0 and best >= threshold:
            hit[i], idx[i] = True, bj
    return hit, idx


@METRICS.register()
class EventF1(Metric):
    """Event precision, recall and F1 at IoA thresholds (FootballAction's evaluation).

    ``update(predictions, ground_truth)`` for one video or a list of videos: each a list
    of ``(start, end, label)`` (or dicts with ``start``, ``end``, ``label``).  Precision =
    hit predictions / predictions, recall = ground-truth events hit at least once /
    events, summed over the classes other than ``background`` (id 0).  Reports
    ``precision@t``, ``recall@t``, ``F1@t`` for each threshold ``t`` and, with
    ``per_class``, the same per class name."""

    def __init__(self, ioa_thresholds=(0.5,), class_names=None, background=0, per_class=False):
        self.thresholds = [float(t) for t in ioa_thresholds]
        self.class_names = list(class_names) if class_names else None
        self.background, self.per_class = background, bool(per_class)
        self.reset()

    def reset(self):
        self.videos = []

    @staticmethod
    def _events(ev):
        out = []
        for x in ev:
            if isinstance(x, dict):
                x = (x["start"], x["end"], x["class_id"] if "class_id" in x else x["label"])
            out.append((float(x[0]), float(x[1]), int(x[2])))
        return out

    def update(self, output, label):
        if output and isinstance(output[0], (list, tuple)) and output[0] and \
                isinstance(output[0][0], (list, tuple, dict)):
            pairs = zip(output, label)       # several videos
        else:
            pairs = [(output, label)]
        for p, g in pairs:
            p = [e for e in self._events(p) if e[2] != self.background]
            g = [e for e in self._events(g) if e[2] != self.background]
            self.videos.append((p, g))

    def _counts(self, thr, cls=None):
        hit_p = n_p = n_g = hit_g = 0
        for p, g in self.videos:
            if cls is not None:
                p = [e for e in p if e[2] == cls]
                g = [e for e in g if e[2] == cls]
            hit, idx = match_events(p, g, thr)
            hit_p += int(hit.sum())
            n_p += len(p)
            n_g += len(g)
            hit_g += len(set(idx[hit].tolist()))
        return hit_p, n_p, hit_g, n_g

    @staticmethod
    def _prf(hit_p, n_p, hit_g, n_g):
        prec = hit_p / n_p if n_p else 0.0
        rec = hit_g / n_g if n_g else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        return prec, rec, f1

    def accumulate(self):
        out = {}
        for t in self.thresholds:
            prec, rec, f1 = self._prf(*self._counts(t))
            out.update({f"precision@{t:g}": prec, f"recall@{t:g}": rec, f"F1@{t:g}": f1})
            if self.per_class:
                labels = sorted({e[2] for p, g in self.videos for e in p + g})
                for c in labels:
                    name = self.class_names[c] if self.class_names and c < len(self.class_names) else str(c)
                    p_, r_, f_ = self._prf(*self._counts(t, c))
                    out.update({f"{name}/precision@{t:g}": p_, f"{name}/recall@{t:g}": r_,
                                f"{name}/F1@{t:g}": f_})
        return out
