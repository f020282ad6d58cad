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


def activate(x, act):
    """``relu``/``leaky_relu`` (slope 0.01, as PP-TSM).  Leaky ReLU is written as
    max(x, 0.01 x): Paddle Inference 3.3's oneDNN conv+leaky_relu fusion crashes while
    building the fused op, and this form computes the same values without matching it."""
    if act == "leaky_relu":
        return paddle.maximum(x, x * 0.01)
    return getattr(F, act)(x) if act else x


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

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        return activate(self.bn(self.conv(x)), self.act)


class _Block(nn.Layer):
    def __init__(self, cin, width, stride, kind, shift, num_seg, shift_ratio, vd, act, first=False):
        super().__init__()
        self.shift, self.num_seg, self.shift_ratio, self.act = shift, num_seg, shift_ratio, act
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
        y = temporal_shift(x, self.num_seg, self.shift_ratio) if self.shift else x
        y = self.conv1(self.conv0(y))
        if self.conv2 is not None:
            y = self.conv2(y)
        short = x if self.short is None else self.short(x)
        return activate(y + short, self.act)


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

    def forward(self, x):
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return x
