"""Skeleton backbones (ST-GCN, 2s-AGCN) and transforms for (C, T, V, M) sequences."""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import BACKBONES, TRANSFORMS
from ..core.errors import ConfigError, DataError
from .graph import LAYOUTS, Graph

# ---------------------------------------------------------------- transforms


def valid_length(data):
    """Number of frames up to the last frame with any non-zero value (C, T, V, M input)."""
    nonzero = np.flatnonzero(np.abs(data).sum(axis=(0, 2, 3)) > 0)
    return int(nonzero[-1]) + 1 if len(nonzero) else 0


def valid_length_signed(data):
    """PaddleVideo's count: up to the last frame whose values sum (signed) above zero; the
    whole array where no frame does.  Frames of negative coordinates sum below zero and
    are cut off with the padding."""
    for i in range(data.shape[1] - 1, -1, -1):
        if np.sum(data[:, i]) > 0:
            return i + 1
    return data.shape[1]


SAMPLINGS = ("ppzoo", "paddlevideo")
VALID_FRAMES = ("abs", "signed")


@TRANSFORMS.register()
class AutoPadding:
    """Fits a (C, T, V, M) sequence to ``window_size`` frames.

    Only the valid part (``valid_frames``: up to the last frame with a non-zero value,
    ``abs``, or PaddleVideo's last frame with a positive sum, ``signed``) is used, whether
    or not it fills the array: shorter sequences are zero-padded (at a random offset if
    ``random_pad``), longer ones are cropped to a random window in training
    (``random_crop``) or resampled:

    - ``sampling: ppzoo`` (the default): ``linspace(0, T-1, window).round()``, the first
      and the last valid frame included, evenly spaced;
    - ``sampling: paddlevideo``: PaddleVideo's ``linspace(0, T, window).astype(int)``
      (truncated; its last index is frame T, one past the valid part).  PaddleVideo
      raises IndexError where T is the array's length; there that index reads the last
      frame.  The FSD-10 presets use it: PaddleVideo's released weights were trained and
      evaluated on these frames.
    """

    def __init__(self, window_size, random_pad=False, random_crop=False, sampling="ppzoo",
                 valid_frames="abs"):
        self.window = int(window_size)
        self.random_pad, self.random_crop = bool(random_pad), bool(random_crop)
        if sampling not in SAMPLINGS:
            raise ConfigError(f"AutoPadding.sampling: {sampling!r} is not one of {', '.join(SAMPLINGS)}")
        if valid_frames not in VALID_FRAMES:
            raise ConfigError(f"AutoPadding.valid_frames: {valid_frames!r} is not one of "
                              f"{', '.join(VALID_FRAMES)}")
        self.sampling, self.valid_frames = sampling, valid_frames

    def indices(self, t, length):
        """The frames resampled from a valid length ``t`` > window of a ``length``-frame array."""
        if self.sampling == "paddlevideo":
            return np.minimum(np.linspace(0, t, self.window).astype("int64"), length - 1)
        return np.linspace(0, t - 1, self.window).round().astype(int)

    def __call__(self, sample, rng):
        data = sample["data"]
        if data.ndim != 4:
            raise DataError(f"AutoPadding: skeleton sample must be C x T x V x M, got {data.shape}")
        t = valid_length_signed(data) if self.valid_frames == "signed" else valid_length(data)
        c, length, v, m = data.shape
        out = np.zeros((c, self.window, v, m), "float32")
        if t == 0:
            pass
        elif t <= self.window:
            start = int(rng.integers(0, self.window - t + 1)) if self.random_pad else 0
            out[:, start:start + t] = data[:, :t]
        elif self.random_crop:
            start = int(rng.integers(0, t - self.window + 1))
            out[:] = data[:, start:start + self.window]
        else:
            out[:] = data[:, self.indices(t, length)]
        sample["data"] = out
        return sample


@TRANSFORMS.register()
class SkeletonNorm:
    """Keeps the first ``axis`` channels (x, y; drops confidence) and centres every frame on
    joint ``center_joint`` (8 = mid-hip in BODY_25); ``squeeze`` drops a single-person M."""

    def __init__(self, axis=2, center_joint=8, squeeze=False):
        self.axis, self.center, self.squeeze = int(axis), int(center_joint), bool(squeeze)

    def __call__(self, sample, rng):
        data = sample["data"][: self.axis]
        data = data - data[:, :, self.center:self.center + 1, :]
        if self.squeeze and data.shape[-1] == 1:
            data = data[..., 0]
        sample["data"] = np.ascontiguousarray(data, dtype="float32")
        return sample


@TRANSFORMS.register()
class JointToBone:
    """Bone stream of 2s-AGCN: each joint's vector from its parent (edges of ``layout``)."""

    def __init__(self, layout="fsd10"):
        if layout not in LAYOUTS:
            raise ConfigError(f"JointToBone.layout: {layout!r} unknown (known: {', '.join(LAYOUTS)})")
        self.edges = LAYOUTS[layout][1]

    def __call__(self, sample, rng):
        data = sample["data"]
        bone = np.zeros_like(data)
        for parent, child in self.edges:
            bone[:, :, child] = data[:, :, child] - data[:, :, parent]
        sample["data"] = bone
        return sample


# ---------------------------------------------------------------- layers


def graph_conv(x, A):
    """sum_k x_k A_k over joints: x (N, K, C, T, V), A (K, V, W) -> (N, C, T, W)."""
    n, k, c, t, v = x.shape
    x = x.transpose([0, 2, 3, 1, 4]).reshape([-1, c * t, k * v])
    y = paddle.matmul(x, A.reshape([k * v, -1]))
    return y.reshape([-1, c, t, A.shape[2]])


class GCNBlock(nn.Layer):
    """ST-GCN unit: spatial graph conv over K partitions, then a (kt x 1) temporal conv."""

    def __init__(self, cin, cout, K, t_kernel=9, stride=1, dropout=0.0, residual=True):
        super().__init__()
        self.K = K
        self.gcn = nn.Conv2D(cin, cout * K, 1)
        self.bn1 = nn.BatchNorm2D(cout)
        self.tconv = nn.Conv2D(cout, cout, (t_kernel, 1), (stride, 1), ((t_kernel - 1) // 2, 0))
        self.bn2 = nn.BatchNorm2D(cout)
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.residual = residual
        self.res_conv = self.res_bn = None
        if residual and (cin != cout or stride != 1):
            self.res_conv = nn.Conv2D(cin, cout, 1, stride=(stride, 1))
            self.res_bn = nn.BatchNorm2D(cout)

    def forward(self, x, A):
        if not self.residual:
            res = 0
        elif self.res_conv is None:
            res = x
        else:
            res = self.res_bn(self.res_conv(x))
        y = self.gcn(x)
        n, kc, t, v = y.shape
        y = graph_conv(y.reshape([-1, self.K, kc // self.K, t, v]), A)
        y = self.bn2(self.tconv(F.relu(self.bn1(y))))
        if self.dropout is not None:
            y = self.dropout(y)
        return F.relu(y + res)


def _fold_persons(model, x):
    """(N, C, T, V, M) -> data BN over (V*C) per person -> (N*M, C, T, V)."""
    n, c, t, v, m = x.shape
    x = x.transpose([0, 4, 3, 1, 2]).reshape([-1, v * c, t])
    x = model.data_bn(x)
    x = x.reshape([-1, m, v, c, t]).transpose([0, 1, 3, 4, 2])
    return x.reshape([-1, c, t, v])


STGCN_CHANNELS = [64, 64, 64, 64, 128, 128, 128, 256, 256, 256]
STGCN_STRIDES = [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]


@BACKBONES.register()
class STGCN(nn.Layer):
    """ST-GCN (Yan et al. 2018): stacked spatial graph + temporal convolutions with learnable
    edge-importance masks.  Outputs (N*M, C, T', V) features."""

    def __init__(self, in_channels=2, layout="fsd10", strategy="spatial", channels=None,
                 strides=None, temporal_kernel=9, dropout=0.0, edge_importance_weighting=True,
                 center=None):
        super().__init__()
        graph = Graph(layout, strategy, center=center)
        self.register_buffer("A", paddle.to_tensor(graph.A))
        K, V = graph.A.shape[0], graph.A.shape[1]
        channels = list(channels or STGCN_CHANNELS)
        strides = list(strides or ([1] * len(channels) if channels != STGCN_CHANNELS else STGCN_STRIDES))
        if len(strides) != len(channels):
            raise ConfigError(f"STGCN: strides ({len(strides)}) and channels ({len(channels)}) differ in length")
        self.data_bn = nn.BatchNorm1D(in_channels * V)
        blocks, cin = [], in_channels
        for i, (c, s) in enumerate(zip(channels, strides)):
            blocks.append(GCNBlock(cin, c, K, temporal_kernel, s, dropout if i else 0.0, residual=i > 0))
            cin = c
        self.blocks = nn.LayerList(blocks)
        self.edge_importance = nn.ParameterList(
            [self.create_parameter(graph.A.shape, default_initializer=nn.initializer.Constant(1.0))
             for _ in blocks]) if edge_importance_weighting else None
        self.out_channels = cin

    def forward(self, x):
        x = _fold_persons(self, x)
        for i, blk in enumerate(self.blocks):
            A = self.A * self.edge_importance[i] if self.edge_importance is not None else self.A
            x = blk(x, A)
        return x


class AdaptiveGCN(nn.Layer):
    """2s-AGCN graph conv: per subset k, A_k (fixed) + B_k (learned) + C_k (data-dependent
    attention softmax(theta(x)^T phi(x)))."""

    def __init__(self, cin, cout, A, coff_embedding=4):
        super().__init__()
        K, V = A.shape[0], A.shape[1]
        self.K, self.inter = K, max(cout // coff_embedding, 1)
        self.register_buffer("A", paddle.to_tensor(A))
        self.PA = self.create_parameter(A.shape, default_initializer=nn.initializer.Constant(1e-6))
        self.conv_a = nn.LayerList([nn.Conv2D(cin, self.inter, 1) for _ in range(K)])
        self.conv_b = nn.LayerList([nn.Conv2D(cin, self.inter, 1) for _ in range(K)])
        self.conv_d = nn.LayerList([nn.Conv2D(cin, cout, 1) for _ in range(K)])
        self.bn = nn.BatchNorm2D(cout)
        self.down = None
        if cin != cout:
            self.down = nn.Sequential(nn.Conv2D(cin, cout, 1), nn.BatchNorm2D(cout))

    def forward(self, x):
        n, c, t, v = x.shape
        A = self.A + self.PA
        y = 0
        for k in range(self.K):
            a = self.conv_a[k](x).transpose([0, 3, 1, 2]).reshape([-1, v, self.inter * t])
            b = self.conv_b[k](x).reshape([-1, self.inter * t, v])
            att = F.softmax(paddle.matmul(a, b) / (self.inter * t), axis=-2)  # N, V, V
            adj = att + A[k]
            z = paddle.matmul(x.reshape([-1, c * t, v]), adj).reshape([-1, c, t, v])
            y = y + self.conv_d[k](z)
        y = self.bn(y)
        return F.relu(y + (x if self.down is None else self.down(x)))


class AGCNBlock(nn.Layer):
    def __init__(self, cin, cout, A, stride=1, residual=True, t_kernel=9):
        super().__init__()
        self.gcn = AdaptiveGCN(cin, cout, A)
        self.tcn = nn.Sequential(
            nn.Conv2D(cout, cout, (t_kernel, 1), (stride, 1), ((t_kernel - 1) // 2, 0)),
            nn.BatchNorm2D(cout))
        self.residual = residual
        self.res = None
        if residual and (cin != cout or stride != 1):
            self.res = nn.Sequential(nn.Conv2D(cin, cout, 1, stride=(stride, 1)), nn.BatchNorm2D(cout))

    def forward(self, x):
        res = 0 if not self.residual else (x if self.res is None else self.res(x))
        return F.relu(self.tcn(self.gcn(x)) + res)


@BACKBONES.register()
class AGCN2s(nn.Layer):
    """2s-AGCN (Shi et al. 2019) stream: the same stack as ST-GCN with adaptive graphs.
    Train one model on joints and one on bones (``JointToBone``) and add their scores
    (``SkeletonFusion``).  PaddleVideo's FSD-10 ``AGCN`` is another network (``AGCN``)."""

    def __init__(self, in_channels=2, layout="fsd10", strategy="spatial", channels=None,
                 strides=None, temporal_kernel=9, center=None):
        super().__init__()
        graph = Graph(layout, strategy, center=center)
        V = graph.A.shape[1]
        channels = list(channels or STGCN_CHANNELS)
        strides = list(strides or ([1] * len(channels) if channels != STGCN_CHANNELS else STGCN_STRIDES))
        if len(strides) != len(channels):
            raise ConfigError(f"AGCN: strides ({len(strides)}) and channels ({len(channels)}) differ in length")
        self.data_bn = nn.BatchNorm1D(in_channels * V)
        blocks, cin = [], in_channels
        for i, (c, s) in enumerate(zip(channels, strides)):
            blocks.append(AGCNBlock(cin, c, graph.A, s, residual=i > 0, t_kernel=temporal_kernel))
            cin = c
        self.blocks = nn.LayerList(blocks)
        self.out_channels = cin

    def forward(self, x):
        x = _fold_persons(self, x)
        for blk in self.blocks:
            x = blk(x)
        return x


class _PVGraphMix(nn.Layer):
    """PaddleVideo AGCN's graph layer: a 1x1 conv to 3 x C channels, then a learned mixing
    of the 3 x V (subset, joint) inputs into each of the V joints (``conv2``, V x 3V):
    the joint adjacency is a free parameter, not built from a skeleton."""

    def __init__(self, cin, cout, num_joints):
        super().__init__()
        self.conv1 = nn.Conv2D(cin, 3 * cout, 1)
        self.conv2 = nn.Conv2D(num_joints * 3, num_joints, 1)

    def forward(self, x):
        y = self.conv1(x)
        n, c3, t, v = y.shape
        c = c3 // 3
        # channel index of conv1's output is c * 3 + k; mixing input index is k * V + v
        y = y.reshape([-1, c, 3, t, v]).transpose([0, 1, 3, 2, 4]).reshape([-1, c, t, 3 * v])
        w = self.conv2.weight.reshape([v, 3 * v])
        return paddle.matmul(y, w, transpose_y=True) + self.conv2.bias  # (N, C, T, V)


class _PVAGCNBlock(nn.Layer):
    """graph mix -> BN, ReLU, (kt x 1) temporal conv, BN; plus a 1x1 conv + BN residual
    (built in every block, also the first, which does not use it), then ReLU."""

    def __init__(self, cin, cout, num_joints, stride=1, residual=True, t_kernel=9):
        super().__init__()
        self.residual = residual
        self.bn_res = nn.BatchNorm2D(cout)
        self.conv_res = nn.Conv2D(cin, cout, 1, stride=(stride, 1))
        self.gcn = _PVGraphMix(cin, cout, num_joints)
        self.tcn = nn.Sequential(nn.BatchNorm2D(cout), nn.ReLU(),
                                 nn.Conv2D(cout, cout, (t_kernel, 1), (stride, 1), ((t_kernel - 1) // 2, 0)),
                                 nn.BatchNorm2D(cout))

    def forward(self, x):
        y = self.tcn(self.gcn(x))
        if self.residual:
            y = y + self.bn_res(self.conv_res(x))
        return F.relu(y)


@BACKBONES.register()
class AGCN(nn.Layer):
    """PaddleVideo's FSD-10 ``AGCN`` (the network behind its figure-skating result and
    released weights; not 2s-AGCN, see ``AGCN2s``): 10 blocks of a learned joint-mixing
    graph layer and a temporal conv, channels 64 x 4, 128 x 3 (stride 2), 256 x 3
    (stride 2), every residual a 1x1 conv + BN.

    PaddleVideo builds ``data_bn`` (BatchNorm1D over 25 x 2) but never applies it; so does
    ppzoo by default (``use_data_bn: false``) so that its weights give the same outputs.
    Outputs (N*M, C, T', V) features for ``STGCNHead``.
    """

    def __init__(self, in_channels=2, num_joints=25, channels=None, strides=None,
                 temporal_kernel=9, use_data_bn=False):
        super().__init__()
        channels = list(channels or STGCN_CHANNELS)
        strides = list(strides or ([1] * len(channels) if channels != STGCN_CHANNELS else STGCN_STRIDES))
        if len(strides) != len(channels):
            raise ConfigError(f"AGCN: strides ({len(strides)}) and channels ({len(channels)}) differ in length")
        self.use_data_bn = bool(use_data_bn)
        self.data_bn = nn.BatchNorm1D(in_channels * int(num_joints))
        blocks, cin = [], in_channels
        for i, (c, s) in enumerate(zip(channels, strides)):
            blocks.append(_PVAGCNBlock(cin, c, int(num_joints), s, residual=i > 0, t_kernel=temporal_kernel))
            cin = c
        self.agcn = nn.LayerList(blocks)
        self.out_channels = cin

    def forward(self, x):
        if self.use_data_bn:
            x = _fold_persons(self, x)
        else:
            n, c, t, v, m = x.shape
            x = x.transpose([0, 4, 1, 2, 3]).reshape([-1, c, t, v])
        for blk in self.agcn:
            x = blk(x)
        return x
