"""Metrics of temporal localization: proposal AR@AN / AUC and event precision, recall
and F1 at IoA thresholds."""
import numpy as np

from ..core.builder import METRICS
from ..metrics.classification import Metric
from .postprocess import build_postprocess, segment_ioa, segment_iou


def ar_an_curve(proposals, ground_truth, max_an=100, tiou=None):
    """ActivityNet's average recall vs. average number of proposals per video
    (ANETproposal's ``average_recall_vs_avg_nr_proposals``), for any number of
    proposals per video.

    ``proposals``: per video ``(K, 3)`` start, end, score; ``ground_truth``: per video
    ``(G, 2)``.  Videos without ground truth are not scored, but their proposals count
    in the total, as in the reference's proposal file.  Each scored video keeps its
    ``int(K * ratio)`` best proposals (``ratio = max_an * videos / total``, at most
    ``K``); the curve has 100 points, at ``p = 1..100 %`` of ``max_an * videos /
    kept``: a video contributes its first ``int(K_kept * p)`` proposals.  Returns
    ``(an (100,), ar (100,), recall (thresholds, 100))``: ``an`` the average number of
    proposals per video at each point (``1..100`` for ``max_an = 100``), ``ar`` the
    recall averaged over the tIoU thresholds (0.5:0.05:0.95 by default)."""
    tiou = np.linspace(0.5, 0.95, 10) if tiou is None else np.asarray(tiou, np.float64)
    props_all = [np.asarray(p, np.float64).reshape(-1, 3) for p in proposals]
    gts_all = [np.asarray(g, np.float64).reshape(-1, 2) for g in ground_truth]
    scored = [i for i, g in enumerate(gts_all) if len(g)]
    num_videos = len(scored)
    n_file = sum(len(p) for p in props_all)
    if not num_videos:
        return np.zeros(100), np.zeros(100), np.zeros((len(tiou), 100))
    max_avg = float(max_an) if max_an else n_file / num_videos
    ratio = max_avg * num_videos / max(n_file, 1)
    scores, kept = [], 0
    for i in scored:
        gts, props = gts_all[i], props_all[i]
        if not len(props):
            scores.append(np.zeros((len(gts), 1)))
            continue
        props = props[np.argsort(props[:, 2], kind="quicksort")[::-1]]
        n = min(int(len(props) * ratio), len(props))
        kept += n
        props = props[:n]
        scores.append(np.stack([segment_iou(props[:, :2], g) for g in gts]) if n
                      else np.zeros((len(gts), 0)))
    pcn = np.arange(1, 101) / 100.0 * (max_avg * num_videos / max(kept, 1))
    positives = sum(len(s) for s in scores)
    recall = np.zeros((len(tiou), len(pcn)))
    for r, thr in enumerate(tiou):
        matches = np.zeros(len(pcn))
        for sc in scores:
            hit = sc >= thr
            counts = np.minimum((sc.shape[1] * pcn).astype(int), sc.shape[1])
            matches += [np.count_nonzero(hit[:, :c].sum(axis=1)) for c in counts]
        recall[r] = matches / positives
    return pcn * (kept / num_videos), recall.mean(axis=0), recall


def average_recall(proposals, ground_truth, max_an=100, tiou=None):
    """``(ar (100,), auc)`` of :func:`ar_an_curve`: ``ar[k]`` is the average recall at
    ``(k + 1) * max_an / 100`` proposals per video (AR@AN = ``ar[AN - 1]`` for
    ``max_an = 100``); ``auc`` is ActivityNet's area under the AR-AN curve (trapezoid
    rule) over the last AN, in [0, 1]."""
    an, ar, _ = ar_an_curve(proposals, ground_truth, max_an, tiou)
    if not an[-1]:
        return ar, 0.0
    area = (np.diff(an) * (ar[1:] + ar[:-1]) / 2.0).sum()
    return ar, float(area / an[-1])


@METRICS.register()
class ProposalAR(Metric):
    """AR@AN and AUC of BMN's proposals per window (each window is one "video").

    ``update(outputs, segments)``: the model outputs ``(bm, start, end)`` and the
    dataset's ``segments`` ``(N, S, 3)`` (window fractions, padded with -1).
    ``postprocess``: a ``PROPOSAL_POSTPROCESS`` config (default score fusion + soft-NMS
    keeping 100).  Reports ``AR@1``, ``AR@5``, ``AR@10``, ``AR@100`` (those on the AN grid
    of ``max_an``) and ``AUC``, as ActivityNet's ANETproposal and PaddleVideo's
    bmn_metric compute them (:func:`average_recall`)."""

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
        out = {}
        for a in self.report:                 # AR@a where the curve's grid holds a
            k = a * 100 / self.max_an
            if k == int(k) and 1 <= k <= 100:
                out[f"AR@{a}"] = float(ar[int(k) - 1])
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
