"""BMN, the boundary-matching network (Lin et al., ICCV 2019), as PaddleVideo builds it.

The model maps a feature sequence ``(N, C, T)`` to

- a boundary-matching confidence map ``(N, 2, D, T)``: channel 0 is the regression
  confidence, channel 1 the classification confidence of the proposal that starts at
  ``t`` and lasts ``d + 1`` steps (``[t / T, (t + d + 1) / T]`` in window units);
- start and end probabilities ``(N, T)`` (the temporal evaluation module, TEM).

The proposal evaluation module (PEM) samples ``num_sample`` points between each
proposal's extended boundaries with the fixed interpolation mask of
:func:`interp1d_mask` (a matmul), then 3D/2D convolutions.  Losses (:class:`BMNLoss`):
TEM's weighted binary logistic loss on start/end, PEM's regression (MSE on balanced
high/medium/low IoU cells) and classification (weighted logistic at IoU 0.9).
"""
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import LOSSES, MODELS
from ..core.errors import ConfigError


# --------------------------------------------------------------------------- sample mask
def interp1d_mask(tscale, dscale, prop_boundary_ratio=0.5, num_sample=32, num_sample_perbin=3):
    """The PEM sampling matrix, ``(T, num_sample * D * T)`` float32.

    For the proposal starting at ``s`` with duration index ``d`` (end ``s + d < T``), the
    region ``[s - r L, s + d + r L]`` (``L = d + 1``, ``r = prop_boundary_ratio``) is cut
    into ``num_sample * num_sample_perbin`` evenly spaced points; each point is linearly
    interpolated between ``trunc(x)`` and ``ceil(x)`` (the reference's ``math.modf``
    rule, so a point in (-1, 0) puts its whole weight on index 0) and each bin averages
    its ``num_sample_perbin`` points.  Column ``(k, d, s)`` in C order holds bin ``k``.
    """
    T, D, S, P = int(tscale), int(dscale), int(num_sample), int(num_sample_perbin)
    d = np.arange(D, dtype=np.float64)[:, None]          # (D, 1)
    s = np.arange(T, dtype=np.float64)[None, :]          # (1, T)
    length = d + 1.0
    xmin = s - length * prop_boundary_ratio
    xmax = s + d + length * prop_boundary_ratio
    step = (xmax - xmin) / (S * P - 1.0)
    pts = xmin[..., None] + step[..., None] * np.arange(S * P)   # (D, T, S*P)
    down = np.trunc(pts)
    frac = pts - down
    up = np.ceil(pts)
    mask = np.zeros((T, S, D, T), np.float64)                    # (t, k, d, s)
    dd, ss, ii = np.meshgrid(np.arange(D), np.arange(T), np.arange(S * P), indexing="ij")
    kk = ii // P
    valid_prop = (ss + dd) < T
    for idx, w in ((down, 1.0 - frac), (up, frac)):
        idx = idx.astype(np.int64)
        ok = valid_prop & (idx >= 0) & (idx <= T - 1)
        np.add.at(mask, (idx[ok], kk[ok], dd[ok], ss[ok]), w[ok])
    mask /= P
    return mask.reshape(T, -1).astype(np.float32)


def bm_valid_mask(tscale, dscale):
    """``(D, T)``: 1 where the proposal (start ``t``, duration index ``d``) ends inside
    the window (``t + d < T``)."""
    d = np.arange(int(dscale))[:, None]
    t = np.arange(int(tscale))[None, :]
    return ((t + d) < int(tscale)).astype(np.float32)


def _uniform_attr(fan_in):
    k = 1.0 / math.sqrt(fan_in)
    return paddle.ParamAttr(initializer=nn.initializer.Uniform(-k, k))


@MODELS.register()
class BMN(nn.Layer):
    """Boundary-matching network over ``feature`` ``(N, feat_dim, tscale)``.

    Returns ``(bm_map (N, 2, D, T), start (N, T), end (N, T))``.  The hidden widths
    (256/128/512 in the paper and PaddleVideo) are options for small test models.
    Layer names are PaddleVideo's, so its weights load as they are.
    """

    whole_model_weights = True     # a partial pretrained load warns (ppzoo.hub.load)

    def __init__(self, feat_dim=400, tscale=100, dscale=100, prop_boundary_ratio=0.5,
                 num_sample=32, num_sample_perbin=3, hidden_dim_1d=256, hidden_dim_2d=128,
                 hidden_dim_3d=512, groups=4):
        super().__init__()
        if dscale > tscale:
            raise ConfigError(f"BMN: dscale {dscale} must not exceed tscale {tscale}")
        self.feat_dim, self.tscale, self.dscale = int(feat_dim), int(tscale), int(dscale)
        self.num_sample = int(num_sample)
        h1, h2, h3 = int(hidden_dim_1d), int(hidden_dim_2d), int(hidden_dim_3d)

        def conv1d(cin, cout, k, g):
            return nn.Conv1D(cin, cout, k, padding=k // 2, groups=g,
                             weight_attr=_uniform_attr(cin * k), bias_attr=_uniform_attr(cin * k))

        self.b_conv1 = conv1d(self.feat_dim, h1, 3, groups)
        self.b_conv2 = conv1d(h1, h1, 3, groups)
        self.ts_conv1 = conv1d(h1, h1, 3, groups)
        self.ts_conv2 = conv1d(h1, 1, 1, 1)
        self.te_conv1 = conv1d(h1, h1, 3, groups)
        self.te_conv2 = conv1d(h1, 1, 1, 1)
        self.p_conv1 = conv1d(h1, h2, 3, 1)
        self.p_conv3d1 = nn.Conv3D(h2, h3, (self.num_sample, 1, 1), stride=(self.num_sample, 1, 1))
        self.p_conv2d1 = nn.Conv2D(h3, h2, 1)
        self.p_conv2d2 = nn.Conv2D(h2, h2, 3, padding=1)
        self.p_conv2d3 = nn.Conv2D(h2, h2, 3, padding=1)
        self.p_conv2d4 = nn.Conv2D(h2, 2, 1)
        mask = interp1d_mask(self.tscale, self.dscale, prop_boundary_ratio, self.num_sample,
                             num_sample_perbin)
        self.register_buffer("sample_mask", paddle.to_tensor(mask), persistable=False)

    def forward(self, feature):
        x = F.relu(self.b_conv1(feature))
        x = F.relu(self.b_conv2(x))
        start = F.sigmoid(self.ts_conv2(F.relu(self.ts_conv1(x)))).squeeze(1)
        end = F.sigmoid(self.te_conv2(F.relu(self.te_conv1(x)))).squeeze(1)
        p = F.relu(self.p_conv1(x))
        p = paddle.matmul(p, self.sample_mask)
        p = p.reshape([0, 0, self.num_sample, self.dscale, self.tscale])
        p = F.relu(self.p_conv3d1(p)).squeeze(2)
        p = F.relu(self.p_conv2d1(p))
        p = F.relu(self.p_conv2d2(p))
        p = F.relu(self.p_conv2d3(p))
        bm = F.sigmoid(self.p_conv2d4(p))
        return bm, start, end


# --------------------------------------------------------------------------- targets
def _ioa_with_anchors(amin, amax, bmin, bmax):
    """Intersection over the anchor's length, in the reference's order of operations."""
    inter = np.maximum(np.minimum(amax, bmax) - np.maximum(amin, bmin), 0.0)
    return inter / (amax - amin)


def _iou_with_anchors(amin, amax, bmin, bmax):
    """IoU as the reference writes it (``len - inter + bmax - bmin``): the same
    operations in the same order, so on-grid segments round (and tie) identically."""
    inter = np.maximum(np.minimum(amax, bmax) - np.maximum(amin, bmin), 0.0)
    return inter / ((amax - amin) - inter + bmax - bmin)


def bmn_targets(segments, tscale, dscale):
    """Training targets of one window from its ground-truth ``segments`` (``(K, 2)``,
    start/end as fractions of the window, clipped to [0, 1]), as PaddleVideo's
    GetMatchMap + GetVideoLabel compute them, float operations included:

    - ``gt_iou_map`` ``(D, T)``: the best IoU of proposal ``[t g, t g + (d + 1) g]``
      (``g = 1 / T``) with a segment;
    - ``gt_start``/``gt_end`` ``(T,)``: the best IoA of anchor ``[t g, (t + 1) g]`` with
      a region of ``3 g`` centred on each segment's start (end).

    A window without segments gets all-zero targets (the reference needs one segment).
    """
    T, D = int(tscale), int(dscale)
    seg = np.clip(np.asarray(segments, np.float64).reshape(-1, 2), 0.0, 1.0)
    gap = 1.0 / T
    t = np.arange(T, dtype=np.float64)
    d = np.arange(D, dtype=np.float64)
    pmin = np.broadcast_to(gap * t[None, :], (D, T))
    pmax = pmin + gap * (d[:, None] + 1.0)
    a_min, a_max = gap * t, gap * (t + 1.0)
    iou = np.zeros((D, T))
    start = np.zeros(T)
    end = np.zeros(T)
    small = 3 * gap
    for s, e in seg:
        iou = np.maximum(iou, _iou_with_anchors(pmin, pmax, s, e))
        start = np.maximum(start, _ioa_with_anchors(a_min, a_max, s - small / 2, s + small / 2))
        end = np.maximum(end, _ioa_with_anchors(a_min, a_max, e - small / 2, e + small / 2))
    return iou.astype(np.float32), start.astype(np.float32), end.astype(np.float32)


# --------------------------------------------------------------------------- losses
def _weighted_logistic(pred, gt_pos, valid, eps=1e-6):
    """BMN's balanced binary logistic loss: positives weighted ``0.5 r``, negatives
    ``0.5 r / (r - 1)`` with ``r = entries / positives``; averaged over entries."""
    num_entries = valid.sum()
    num_pos = gt_pos.sum()
    ratio = num_entries / paddle.clip(num_pos, min=1.0)
    coef_0 = 0.5 * ratio / paddle.clip(ratio - 1, min=1e-6)
    coef_1 = 0.5 * ratio
    loss_pos = coef_1 * paddle.log(pred + eps) * gt_pos
    loss_neg = coef_0 * paddle.log(1.0 - pred + eps) * (valid - gt_pos)
    return -(loss_pos + loss_neg).sum() / num_entries


def tem_loss(pred_start, pred_end, gt_start, gt_end):
    """Boundary (TEM) loss: the weighted logistic loss on start plus on end; a position
    is positive where its target exceeds 0.5."""
    out = 0.0
    for pred, gt in ((pred_start, gt_start), (pred_end, gt_end)):
        pred, gt = pred.flatten(), gt.flatten()
        pos = (gt > 0.5).astype(pred.dtype)
        out = out + _weighted_logistic(pred, pos, paddle.ones_like(pred))
    return out


def pem_reg_loss(pred, gt_iou, mask, high=0.7, low=0.3, rng=None):
    """PEM regression loss: squared error on all cells with IoU > ``high``, and on random
    subsets of the medium (``low`` < IoU <= ``high``) and low (IoU <= ``low``, inside the
    valid mask) cells of about the same size; half the sum over the chosen cells' count.

    ``rng`` (a ``numpy.random.Generator``) draws the subsets; default NumPy's global RNG
    (seeded per step by the trainer)."""
    gt_iou = gt_iou * mask
    h = (gt_iou > high).astype(pred.dtype)
    m = ((gt_iou <= high) & (gt_iou > low)).astype(pred.dtype)
    lo = ((gt_iou <= low) & (gt_iou >= 0)).astype(pred.dtype) * mask
    num_h, num_m, num_l = h.sum(), m.sum(), lo.sum()
    r_m = num_h / paddle.clip(num_m, min=1.0)
    r_l = num_h / paddle.clip(num_l, min=1.0)
    draw = (rng.random if rng is not None else np.random.random)
    shape = list(gt_iou.shape[-2:])  # one draw per (d, t) cell, shared by the batch
    u_m = paddle.to_tensor(draw(shape).astype("float32"))
    u_l = paddle.to_tensor(draw(shape).astype("float32"))
    sm = ((m * u_m) > (1.0 - r_m)).astype(pred.dtype)
    sl = ((lo * u_l) > (1.0 - r_l)).astype(pred.dtype)
    w = h + sm + sl
    se = (pred - gt_iou) ** 2 * w
    return 0.5 * se.sum() / paddle.clip(w.sum(), min=1.0)


def pem_cls_loss(pred, gt_iou, mask, pos_thresh=0.9):
    """PEM classification loss: the weighted logistic loss with positives at IoU >
    ``pos_thresh``, over the valid cells."""
    gt_iou = gt_iou * mask
    pos = (gt_iou > pos_thresh).astype(pred.dtype)
    neg = (gt_iou <= pos_thresh).astype(pred.dtype) * mask
    return _weighted_logistic(pred, pos, pos + neg)


@LOSSES.register()
class BMNLoss(nn.Layer):
    """``tem + reg_weight * pem_reg + pem_cls`` (reg_weight 10, as the paper and
    PaddleVideo).  Called with the model's outputs and the batch."""

    def __init__(self, tscale=100, dscale=100, reg_weight=10.0, tem_weight=1.0, cls_weight=1.0):
        super().__init__()
        self.reg_weight, self.tem_weight, self.cls_weight = reg_weight, tem_weight, cls_weight
        self.register_buffer("mask", paddle.to_tensor(bm_valid_mask(tscale, dscale)),
                             persistable=False)

    def forward(self, outputs, batch):
        bm, start, end = outputs
        gt_iou = batch["gt_iou_map"] * self.mask
        reg = pem_reg_loss(bm[:, 0], gt_iou, self.mask)
        cls = pem_cls_loss(bm[:, 1], gt_iou, self.mask)
        tem = tem_loss(start, end, batch["gt_start"], batch["gt_end"])
        loss = self.tem_weight * tem + self.reg_weight * reg + self.cls_weight * cls
        return loss, {"loss": loss, "tem": tem, "pem_reg": reg, "pem_cls": cls}
