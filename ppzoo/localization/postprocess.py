"""Segment overlap, BMN proposal generation (score fusion) and suppression (soft-NMS, NMS).

Segments are ``[start, end]`` in any unit (window fractions, feature steps, seconds);
proposal arrays are ``(K, 3)``: start, end, score.  Score fusion and suppression are
registered in ``PROPOSAL_POSTPROCESS`` so a config (or ``deploy.yml``) selects them::

    postprocess:
      type: BMNPostProcess
      fusion: {type: ScoreFusion, use_reg: true, use_cls: true}
      suppress: {type: SoftNMS, alpha: 0.4, low: 0.5, high: 0.9, top_k: 100}
"""
import numpy as np

from ..core.registry import Registry

PROPOSAL_POSTPROCESS = Registry("proposal_postprocess")


# --------------------------------------------------------------------------- overlaps
def segment_iou(segs, ref):
    """IoU of each ``segs`` row ``(K, 2)`` with one segment ``ref`` (length-0 unions give 0)."""
    segs = np.asarray(segs, np.float64).reshape(-1, 2)
    inter = np.maximum(np.minimum(segs[:, 1], ref[1]) - np.maximum(segs[:, 0], ref[0]), 0.0)
    union = (segs[:, 1] - segs[:, 0]) + (ref[1] - ref[0]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def segment_ioa(segs, ref):
    """Intersection of each ``segs`` row with ``ref``, over the length of ``ref`` (the
    ground truth, as FootballAction's evaluation); 0 where ``ref`` has no length."""
    segs = np.asarray(segs, np.float64).reshape(-1, 2)
    inter = np.maximum(np.minimum(segs[:, 1], ref[1]) - np.maximum(segs[:, 0], ref[0]), 0.0)
    length = ref[1] - ref[0]
    return inter / length if length > 0 else np.zeros(len(segs))


# --------------------------------------------------------------------------- fusion
def boundary_peaks(scores, rel=0.5):
    """Candidate boundaries: local maxima of ``scores`` or values above ``rel`` x the
    maximum (BMN/BSN's rule).  Returns a boolean mask."""
    s = np.asarray(scores, np.float64)
    padded = np.concatenate([[0.0], s, [0.0]])
    peak = (padded[1:-1] > padded[:-2]) & (padded[1:-1] > padded[2:])
    return peak | (s > rel * s.max())


@PROPOSAL_POSTPROCESS.register()
class ScoreFusion:
    """BMN's proposal scores from its maps: for start ``t`` and duration index ``d``
    where ``t`` is a start candidate and ``t + d`` an end candidate,
    ``score = p_start[t] * p_end[t + d] * reg[d, t] * cls[d, t]`` (``use_reg``/``use_cls``
    drop a factor); ``first_last_candidates`` also allows the first start and last end.

    The segment is ``[t, t + d + end_offset]`` in steps: ``end_offset: 1`` is BMN's
    ActivityNet evaluation (PaddleVideo's bmn_metric, ``[t/T, (t+d+1)/T]``), ``0`` is
    FootballAction's inference (``[t, t + d]``).  ``min_len``/``max_len`` bound that
    segment's length in steps (FootballAction: ``d`` in ``5..199``, i.e. ``min_len 5,
    max_len 199`` with ``end_offset 0``)."""

    def __init__(self, use_reg=True, use_cls=True, min_len=1, max_len=None, peak_rel=0.5,
                 first_last_candidates=True, end_offset=1):
        self.use_reg, self.use_cls = bool(use_reg), bool(use_cls)
        self.min_len, self.max_len = int(min_len), (int(max_len) if max_len else None)
        self.peak_rel = float(peak_rel)
        self.first_last = bool(first_last_candidates)
        self.end_offset = int(end_offset)

    def __call__(self, bm, start, end):
        """``bm`` ``(2, D, T)``, ``start``/``end`` ``(T,)`` -> proposals ``(K, 3)`` in steps."""
        bm = np.asarray(bm, np.float64)
        D, T = bm.shape[1:]
        s_ok = boundary_peaks(start, self.peak_rel)
        e_ok = boundary_peaks(end, self.peak_rel)
        if self.first_last:
            s_ok[0] = e_ok[-1] = True
        conf = np.ones((D, T))
        if self.use_reg:
            conf = conf * bm[0]
        if self.use_cls:
            conf = conf * bm[1]
        d = np.arange(D)[:, None]
        t = np.arange(T)[None, :]
        e_idx = t + d
        inside = e_idx < T
        ok = inside & s_ok[None, :] & e_ok[np.minimum(e_idx, T - 1)]
        length = d + self.end_offset
        ok &= length >= self.min_len
        if self.max_len:
            ok &= length <= self.max_len
        dd, tt = np.nonzero(ok)
        score = np.asarray(start, np.float64)[tt] * np.asarray(end, np.float64)[tt + dd] * conf[dd, tt]
        return (np.stack([tt, tt + dd + float(self.end_offset), score], axis=1) if len(tt)
                else np.zeros((0, 3)))


# --------------------------------------------------------------------------- suppression
@PROPOSAL_POSTPROCESS.register()
class SoftNMS:
    """Gaussian soft-NMS as in BMN's ActivityNet post-processing: repeatedly take the
    best proposal; every other one whose IoU with it exceeds
    ``low + (high - low) * width`` (``width`` of the taken proposal in units of
    ``width_scale``, i.e. window fractions) is decayed by ``exp(-iou^2 / alpha)``.
    Stops after ``top_k`` proposals.  (The reference loop drops the last remaining
    proposal; here it is kept.)"""

    def __init__(self, alpha=0.4, low=0.5, high=0.9, top_k=100, width_scale=1.0):
        self.alpha, self.low, self.high = float(alpha), float(low), float(high)
        self.top_k, self.width_scale = int(top_k), float(width_scale)

    def __call__(self, props):
        props = np.asarray(props, np.float64).reshape(-1, 3).copy()
        keep = []
        while len(props) and len(keep) < self.top_k:
            i = int(np.argmax(props[:, 2]))
            best = props[i].copy()
            keep.append(best)
            props = np.delete(props, i, axis=0)
            if not len(props):
                break
            iou = segment_iou(props[:, :2], best[:2])
            width = (best[1] - best[0]) / self.width_scale
            hit = iou > self.low + (self.high - self.low) * width
            props[hit, 2] *= np.exp(-np.square(iou[hit]) / self.alpha)
        return np.array(keep).reshape(-1, 3)


@PROPOSAL_POSTPROCESS.register()
class NMS:
    """Greedy 1D NMS (FootballAction's ``base_nms``): keep the best, drop every proposal
    whose IoU with it exceeds ``thresh``; ``delta`` widens starts/ends for the overlap
    test (and clips starts at 0); ``top_k`` bounds the output."""

    def __init__(self, thresh=0.7, delta=0.0, top_k=None):
        self.thresh, self.delta = float(thresh), float(delta)
        self.top_k = int(top_k) if top_k else None

    def __call__(self, props):
        props = np.asarray(props, np.float64).reshape(-1, 3)
        return props[self.keep_indices(props)]

    def keep_indices(self, props):
        """Row indices of the kept proposals, best first."""
        props = np.asarray(props, np.float64).reshape(-1, 3)
        s = np.maximum(props[:, 0] - self.delta, 0.0)
        e = props[:, 1] + self.delta
        order = np.argsort(props[:, 2])[::-1]     # base_nms's order, ties included
        keep = []
        while order.size and (self.top_k is None or len(keep) < self.top_k):
            i = order[0]
            keep.append(i)
            rest = order[1:]
            iou = segment_iou(np.stack([s[rest], e[rest]], 1), (s[i], e[i]))
            order = rest[iou <= self.thresh]
        return np.asarray(keep, dtype=np.int64)


@PROPOSAL_POSTPROCESS.register()
class BMNPostProcess:
    """Score fusion, then a score floor (``min_score``), then suppression.

    ``fusion`` and ``suppress`` are ``PROPOSAL_POSTPROCESS`` configs (or built objects).
    Called on one window's maps it returns proposals in steps of that window, divided by
    ``scale`` (``scale = T`` gives window fractions, ActivityNet's unit, for which
    SoftNMS's width rule is written)."""

    def __init__(self, fusion=None, suppress=None, min_score=0.0):
        self.fusion = _build(fusion or {"type": "ScoreFusion"})
        self.suppress = _build(suppress or {"type": "SoftNMS"})
        self.min_score = float(min_score)

    def __call__(self, bm, start, end, scale=1.0):
        props = self.fusion(bm, start, end)
        props[:, :2] /= float(scale)
        props = props[props[:, 2] >= self.min_score] if len(props) else props
        return self.suppress(props) if len(props) else props


def _build(cfg):
    if isinstance(cfg, dict):
        return PROPOSAL_POSTPROCESS.build(cfg, key_path="postprocess")
    return cfg


def build_postprocess(cfg):
    return _build(cfg)


# --------------------------------------------------------------------------- long videos
def window_starts(length, window, step):
    """Start indices of windows of ``window`` steps every ``step`` over ``length`` steps;
    the last window is aligned to the end, so every step is covered (one window, padded,
    when ``length < window``)."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, step))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def cut_windows(features, window, step):
    """``features`` ``(L, C)`` -> ``(W, C, window)`` float32 windows and their starts; a
    sequence shorter than ``window`` is zero-padded at the end."""
    feats = np.asarray(features, np.float32)
    L = len(feats)
    starts = window_starts(L, window, step)
    out = np.zeros((len(starts), feats.shape[1], window), np.float32)
    for i, s in enumerate(starts):
        chunk = feats[s:s + window]
        out[i, :, :len(chunk)] = chunk.T
    return out, starts


def stitch_windows(bms, starts_p, ends_p, starts, length):
    """Average overlapping windows' maps into whole-video maps (FootballAction's BMN
    inference): ``bms`` ``(W, 2, D, T)``, ``starts_p``/``ends_p`` ``(W, T)``; window ``i``
    covers steps ``starts[i] .. starts[i] + T``.  Returns ``bm (2, D, L)``, ``start (L,)``,
    ``end (L,)``; map cell ``[d, t]`` keeps the meaning "starts at ``t``, lasts ``d + 1``"."""
    W, _, D, T = bms.shape
    bm = np.zeros((2, D, length))
    ps, pe, cnt = np.zeros(length), np.zeros(length), np.zeros(length)
    for i, s in enumerate(starts):
        n = min(T, length - s)
        bm[:, :, s:s + n] += bms[i, :, :, :n]
        ps[s:s + n] += starts_p[i, :n]
        pe[s:s + n] += ends_p[i, :n]
        cnt[s:s + n] += 1
    cnt = np.maximum(cnt, 1)
    return bm / cnt, ps / cnt, pe / cnt
