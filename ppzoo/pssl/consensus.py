"""Consensus of explanations -> a pseudo label map (with, as ppzoo extensions, an
ignore band and a per-pixel confidence).

The paper's point: a single explainer of a single classifier is noisy; normalising the
maps of several explainers x classifiers and aggregating them gives a steadier mask.
PaddleSeg's released labels are binary (object / background): the paper-faithful setting
is one threshold (``bg_threshold`` unset) and no confidence weights in training.
"""
import numpy as np

from ..core.errors import ConfigError

NORMS = ("minmax", "max", "rank", "none")
AGGS = ("mean", "median", "max", "min")


def normalise(sal, how="minmax"):
    """Per (image, class) map to [0, 1]; ``rank`` uses pixel percentiles (scale-free)."""
    if how not in NORMS:
        raise ConfigError(f"consensus.normalise must be one of {NORMS}, got {how!r}")
    s = np.asarray(sal, dtype=np.float32)
    flat = s.reshape(s.shape[:-2] + (-1,))
    if how == "none":
        return s
    if how == "max":
        m = flat.max(-1, keepdims=True)
        return (flat / np.where(m > 0, m, 1)).reshape(s.shape)
    if how == "minmax":
        lo, hi = flat.min(-1, keepdims=True), flat.max(-1, keepdims=True)
        return ((flat - lo) / np.where(hi > lo, hi - lo, 1)).reshape(s.shape)
    order = flat.argsort(-1, kind="stable").argsort(-1, kind="stable").astype(np.float32)
    out = order / max(flat.shape[-1] - 1, 1)
    out[flat.max(-1) == flat.min(-1)] = 0  # a constant (e.g. unasked) map carries nothing
    return out.reshape(s.shape)


def aggregate(maps, how="mean"):
    """``maps``: (M, ..., H, W) from M explainer x classifier members."""
    if how not in AGGS:
        raise ConfigError(f"consensus.aggregate must be one of {AGGS}, got {how!r}")
    return getattr(np, how)(np.asarray(maps), axis=0)


def superpixel_smooth(sal, image_hwc, num_segments=100, compactness=1.0):
    """Average each class map within SLIC superpixels so labels follow image edges."""
    from skimage.segmentation import slic
    img = image_hwc.astype(np.float64)
    img = (img - img.min()) / (img.max() - img.min() + 1e-8)
    seg = slic(img, n_segments=num_segments, compactness=compactness, start_label=0, convert2lab=False,
               channel_axis=-1 if img.shape[-1] > 1 else None)
    n = seg.max() + 1
    cnt = np.bincount(seg.ravel(), minlength=n).astype(np.float32)
    out = np.empty_like(sal)
    for c in range(sal.shape[0]):
        sums = np.bincount(seg.ravel(), weights=sal[c].ravel(), minlength=n)
        out[c] = (sums / np.maximum(cnt, 1))[seg]
    return out


class Consensus:
    """Turns member maps of one image into (label, confidence).

    rule ``threshold``: a pixel is foreground of its strongest present class when that
    class's consensus saliency >= ``fg_threshold``, else background.  Extension: with
    ``bg_threshold`` below ``fg_threshold`` pixels in between are ignored (an ignore band).
    rule ``vote`` (a reconstruction of a consensus vote): every member labels the pixel with
    the threshold rule on its own normalised map; the class with the most votes wins it
    when at least ``vote_fraction`` of the members voted for it, else background (with an
    ignore band: background only when that many members voted background, else ignored).
    rule ``top_fraction`` (extension): each present class claims its top
    ``fg_fraction`` of pixels, pixels outside every class's top ``1 - bg_fraction`` are
    background, the rest ignored.  ``confidence`` is the fraction of members whose own
    label (same rule) agrees with the consensus label at that pixel (extension: used as a
    per-pixel loss weight only when generation writes it).
    """

    def __init__(self, num_classes, background=None, ignore_index=255, normalise="minmax",
                 aggregate="mean", rule="threshold", fg_threshold=0.5, bg_threshold=None,
                 fg_fraction=0.3, bg_fraction=0.4, superpixels=None, vote_fraction=0.5):
        self.num_classes = int(num_classes)
        self.background = self.num_classes if background is None else int(background)
        self.ignore_index = int(ignore_index)
        self.norm, self.agg, self.rule = normalise, aggregate, rule
        if rule not in ("threshold", "top_fraction", "vote"):
            raise ConfigError(f"consensus.rule must be 'threshold', 'top_fraction' or 'vote', "
                              f"got {rule!r}")
        self.vote_f = float(vote_fraction)
        if not 0 < self.vote_f <= 1:
            raise ConfigError(f"consensus.vote_fraction must be in (0, 1], got {vote_fraction}")
        self.fg_t = float(fg_threshold)
        self.bg_t = self.fg_t if bg_threshold is None else float(bg_threshold)
        if self.bg_t > self.fg_t:
            raise ConfigError(f"consensus.bg_threshold ({bg_threshold}) must be <= fg_threshold ({fg_threshold})")
        self.fg_f, self.bg_f = float(fg_fraction), float(bg_fraction)
        self.superpixels = dict(superpixels) if superpixels else None

    @property
    def has_ignore_band(self):
        return self.rule in ("threshold", "vote") and self.bg_t < self.fg_t \
            or self.rule == "top_fraction"

    def label(self, sal, present):
        """``sal`` (P,H,W) normalised maps of the ``present`` class ids, in that order ->
        label map (H,W)."""
        h, w = sal.shape[1:]
        lab = np.full((h, w), self.background, np.int64)
        present = [int(c) for c in present]
        if not present:
            return lab
        s = np.asarray(sal)
        if len(s) != len(present):
            raise ConfigError(f"consensus: {len(s)} maps for {len(present)} present classes")
        best = s.argmax(0)
        top = s.max(0)
        cls = np.asarray(present)[best]
        if self.rule in ("threshold", "vote"):     # vote: one member's own label
            fg, bg = top >= self.fg_t, top < self.bg_t
        else:
            fg = np.zeros((h, w), bool)
            bgq = np.ones((h, w), bool)
            for k in range(len(present)):
                fg |= (best == k) & (s[k] >= np.quantile(s[k], 1 - self.fg_f))
                bgq &= s[k] < np.quantile(s[k], self.bg_f) if self.bg_f > 0 else False
            bg = bgq & ~fg
        lab[:] = self.ignore_index
        lab[bg] = self.background
        lab[fg] = cls[fg]
        return lab

    def vote(self, norm, present):
        """``norm`` (M,P,H,W) normalised member maps -> the members' majority label."""
        labs = np.stack([self.label(m, present) for m in norm])
        need = self.vote_f * len(labs)
        lab = np.full(labs.shape[1:], self.background, np.int64)
        if not present:
            return lab
        votes = np.stack([(labs == int(c)).sum(0) for c in present])
        best = votes.argmax(0)
        if self.has_ignore_band:
            lab[:] = self.ignore_index
            lab[(labs == self.background).sum(0) >= need] = self.background
        fg = votes.max(0) >= need
        lab[fg] = np.asarray(present, np.int64)[best][fg]
        return lab

    def __call__(self, member_maps, present, image_hwc=None):
        """``member_maps`` (M,P,H,W) raw saliency of the P ``present`` classes ->
        (label, confidence, consensus map (P,H,W))."""
        norm = normalise(member_maps, self.norm)
        if self.superpixels and image_hwc is not None:
            norm = np.stack([superpixel_smooth(m, image_hwc, **self.superpixels) for m in norm])
        cons = aggregate(norm, self.agg)
        lab = self.vote(norm, present) if self.rule == "vote" else self.label(cons, present)
        agree = np.mean([self.label(m, present) == lab for m in norm], axis=0)
        return lab, agree.astype(np.float32), cons
