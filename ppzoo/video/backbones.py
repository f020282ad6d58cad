"""ResNet backbones for 2D video recognizers: TSN (no temporal modelling), TSM (temporal
shift in each residual branch) and PP-TSM (TSM on ResNet-vd: three 3x3 stem convs and
average-pooled downsampling shortcuts).

Inputs are frames folded into the batch, (N * num_seg, C, H, W); the temporal shift
unfolds them to move channels between neighbouring segments.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import BACKBONES
from ..core.errors import ConfigError

DEPTHS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]),
          50: ("bottleneck", [3, 4, 6, 3]), 101: ("bottleneck", [3, 4, 23, 3]),
          152: ("bottleneck", [3, 8, 36, 3])}


def temporal_shift(x, num_seg, shift_ratio):
    """TSM: of C channels, the first C*ratio take the previous segment's values, the next
    C*ratio the following segment's; the rest stay (zeros enter at the clip ends).  This is
    Paddle's channel order, which PaddleVideo's released weights were trained with."""
    return F.temporal_shift(x, seg_num=num_seg, shift_ratio=shift_ratio)


def shift_by_slices(x, num_seg, shift_ratio):
    """:func:`temporal_shift` (Paddle's channel order: the first ``int(C * r)`` channels
    from the previous segment, up to ``int(2 C r)`` from the next, zeros at the clip ends)
    written as slices and a concat, which Paddle Inference runs in oneDNN's own layout
    (the shift op has no oneDNN kernel)."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    c1, c2 = int(c * shift_ratio), int(c * 2 * shift_ratio)
    v = x.reshape([-1, num_seg, c, h, w])
    zero1 = paddle.zeros_like(v[:, :1, :c1])
    zero2 = paddle.zeros_like(v[:, :1, c1:c2])
    prev = paddle.concat([zero1, v[:, :-1, :c1]], axis=1)
    nxt = paddle.concat([v[:, 1:, c1:c2], zero2], axis=1)
    return paddle.concat([prev, nxt, v[:, :, c2:]], axis=2).reshape([-1, c, h, w])


def activate(x, act, onednn_ops=False):
    """``relu``/``leaky_relu`` (slope 0.01, as PP-TSM).  Leaky ReLU is written as
    max(x, 0.01 x): Paddle Inference 3.3's oneDNN conv+leaky_relu fusion crashes while
    building the fused op, and this form computes the same values without matching it.
    ``onednn_ops``: ``leaky_relu`` itself, which oneDNN runs (``maximum`` it does not); an
    export with it must skip that fusion pass (:data:`LEAKY_CONV_PASS`)."""
    if act == "leaky_relu":
        return F.leaky_relu(x, 0.01) if onednn_ops else paddle.maximum(x, x * 0.01)
    return getattr(F, act)(x) if act else x


#: The oneDNN fusion pass that Paddle Inference 3.3 crashes in when a convolution is
#: followed by ``leaky_relu`` (it builds the fused op without the slope).
LEAKY_CONV_PASS = "conv_activation_mkldnn_fuse_pass"


class ConvBN(nn.Layer):
    """Conv (no bias) + BatchNorm + optional activation; ``avg_down`` puts ResNet-D's 2x2
    average pooling before a stride-1 conv."""

    def __init__(self, cin, cout, k, stride=1, act=None, avg_down=False):
        super().__init__()
        self.pool = nn.AvgPool2D(2, 2, ceil_mode=True) if avg_down else None
        self.conv = nn.Conv2D(cin, cout, k, stride=1 if avg_down else stride,
                              padding=(k - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = act
        self.onednn_ops = False      # ResNetTSM.use_onednn_ops

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        return activate(self.bn(self.conv(x)), self.act, self.onednn_ops)


class _Block(nn.Layer):
    def __init__(self, cin, width, stride, kind, shift, num_seg, shift_ratio, vd, act, first=False):
        super().__init__()
        self.shift, self.num_seg, self.shift_ratio, self.act = shift, num_seg, shift_ratio, act
        self.onednn_ops = False      # ResNetTSM.use_onednn_ops
        expansion = 4 if kind == "bottleneck" else 1
        cout = width * expansion
        if kind == "bottleneck":
            self.conv0 = ConvBN(cin, width, 1, act=act)
            self.conv1 = ConvBN(width, width, 3, stride, act=act)
            self.conv2 = ConvBN(width, cout, 1)
        else:
            self.conv0 = ConvBN(cin, width, 3, stride, act=act)
            self.conv1 = ConvBN(width, cout, 3)
            self.conv2 = None
        # PaddleVideo: the first block of every stage has a 1x1 projection shortcut (also
        # 64 -> 64 in ResNet-18/34); ResNet-vd's average pooling is only in bottleneck
        # shortcuts (PaddleVideo's ResNetTweaksTSM basic blocks use a strided 1x1 conv).
        self.short = None
        if first or stride != 1 or cin != cout:
            self.short = ConvBN(cin, cout, 1, stride,
                                avg_down=vd and stride != 1 and kind == "bottleneck")
        self.out_channels = cout

    def forward(self, x):
        shift = shift_by_slices if self.onednn_ops else temporal_shift
        y = shift(x, self.num_seg, self.shift_ratio) if self.shift else x
        y = self.conv1(self.conv0(y))
        if self.conv2 is not None:
            y = self.conv2(y)
        short = x if self.short is None else self.short(x)
        return activate(y + short, self.act, self.onednn_ops)


@BACKBONES.register()
class ResNetTSM(nn.Layer):
    """ResNet-{18,34,50,101,152} with optional temporal shift and ResNet-vd tweaks.

    ``shift: false`` gives the TSN backbone; ``vd: true, act: leaky_relu`` the PP-TSM
    one (PaddleVideo's ResNetTweaksTSM).  ``stage_blocks``/``base_width`` shrink the net
    for tests.  ``pretrained``: ImageNet weights for the backbone alone (a path, URL or zoo
    name: paddle.vision's ``resnet<depth>_imagenet``, PaddleVideo's ImageNet files), with
    ``pretrained_strict`` as for the recognizers.
    """

    def __init__(self, depth=50, num_seg=8, shift=True, shift_ratio=None, vd=False, act="relu",
                 in_channels=3, base_width=64, stage_blocks=None, pretrained=None,
                 pretrained_strict=False):
        super().__init__()
        if int(depth) not in DEPTHS:
            raise ConfigError(f"ResNetTSM.depth: {depth} is not one of {sorted(DEPTHS)}")
        kind, blocks = DEPTHS[int(depth)]
        blocks = list(stage_blocks) if stage_blocks else blocks
        self.num_seg = int(num_seg)
        # PaddleVideo shifts 1/num_seg of the channels each way; capped for very short clips
        ratio = float(shift_ratio) if shift_ratio is not None else min(1.0 / self.num_seg, 0.25)
        if not 0 < ratio < 0.5:
            raise ConfigError(f"ResNetTSM.shift_ratio: {ratio} must be in (0, 0.5)")
        w = int(base_width)
        if vd:
            self.stem = nn.Sequential(ConvBN(in_channels, w // 2, 3, 2, act=act),
                                      ConvBN(w // 2, w // 2, 3, act=act),
                                      ConvBN(w // 2, w, 3, act=act))
        else:
            self.stem = nn.Sequential(ConvBN(in_channels, w, 7, 2, act=act))
        self.pool = nn.MaxPool2D(3, 2, padding=1)
        stages, cin = [], w
        for s, n in enumerate(blocks):
            layer = []
            for i in range(n):
                blk = _Block(cin, w * 2 ** s, 2 if (i == 0 and s > 0) else 1, kind, bool(shift),
                             self.num_seg, ratio, bool(vd), act, first=i == 0)
                cin = blk.out_channels
                layer.append(blk)
            stages.append(nn.Sequential(*layer))
        self.stages = nn.LayerList(stages)
        self.out_channels = cin
        for m in self.sublayers():
            if isinstance(m, nn.Conv2D):
                nn.initializer.KaimingNormal()(m.weight)
        if pretrained:
            from .weights import load_backbone_pretrained
            load_backbone_pretrained(self, pretrained, strict=pretrained_strict)

    def use_onednn_ops(self, on=True):
        """Compute with ops Paddle Inference runs in oneDNN (the same values): the shift as
        slices + concat, the leaky ReLU as ``leaky_relu``.  The former ops have no oneDNN
        kernels, so every residual block switched twice between oneDNN's blocked layout
        and NCHW (about 30% of a PP-TSM R50 forward on the CPU).  Returns the oneDNN
        passes an export of this graph must skip (:data:`LEAKY_CONV_PASS` with a leaky
        ReLU)."""
        for m in self.sublayers():
            if isinstance(m, (ConvBN, _Block)):
                m.onednn_ops = bool(on)
        leaky = any(getattr(m, "act", None) == "leaky_relu" for m in self.sublayers())
        return [LEAKY_CONV_PASS] if on and leaky else []

    def forward(self, x):
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return x
