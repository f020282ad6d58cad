"""``paddle.vision`` classifiers registered under ppzoo names.

Weights come through ppzoo's ``pretrained:`` (see ``ppzoo/hub``), never through
paddle.vision's own downloader, so they are cached and verified the same way.
"""
import paddle.nn as nn
from paddle.vision import models as pvm

from ...core.builder import MODELS
from ...core.errors import ConfigError

_RESNETS = {18: pvm.resnet18, 34: pvm.resnet34, 50: pvm.resnet50, 101: pvm.resnet101, 152: pvm.resnet152}


def _set_in_channels(conv, in_channels):
    if in_channels == conv._in_channels:
        return conv
    return nn.Conv2D(in_channels, conv._out_channels, conv._kernel_size, conv._stride,
                     conv._padding, bias_attr=conv._bias_attr is not False and conv.bias is not None)


@MODELS.register()
class ResNet(nn.Layer):
    """paddle.vision ResNet-18/34/50/101/152; parameter names match paddle.vision's weights.
    ``groups``/``width`` other than 1/64 give paddle.vision's ResNeXt (e.g. 32 x 4d), the
    teachers of the distillation papers."""

    def __init__(self, depth=50, num_classes=1000, in_channels=3, groups=1, width=64):
        super().__init__()
        if depth not in _RESNETS:
            raise ConfigError(f"ResNet.depth must be one of {sorted(_RESNETS)}, got {depth}")
        if int(groups) == 1 and int(width) == 64:
            net = _RESNETS[depth](pretrained=False, num_classes=num_classes)
        else:
            if depth < 50:
                raise ConfigError(f"ResNet.groups/width (ResNeXt) need depth >= 50, got {depth}")
            net = pvm.ResNet(pvm.resnet.BottleneckBlock, depth, width=int(width),
                             num_classes=num_classes, groups=int(groups))
        net.conv1 = _set_in_channels(net.conv1, in_channels)
        self.net = net
        self.num_classes = num_classes

    def forward(self, x):
        return self.net(x)

    def set_state_dict(self, state_dict, *args, **kwargs):
        # accept paddle.vision's own (unprefixed) names as well as ours
        if state_dict and not any(k.startswith("net.") for k in state_dict):
            state_dict = {f"net.{k}": v for k, v in state_dict.items()}
        return super().set_state_dict(state_dict, *args, **kwargs)


@MODELS.register()
class MobileNetV2(nn.Layer):
    def __init__(self, num_classes=1000, scale=1.0):
        super().__init__()
        self.net = pvm.MobileNetV2(scale=scale, num_classes=num_classes)
        self.num_classes = num_classes

    def forward(self, x):
        return self.net(x)


@MODELS.register()
class MobileNetV3(nn.Layer):
    def __init__(self, size="small", num_classes=1000, scale=1.0):
        super().__init__()
        cls = {"small": pvm.MobileNetV3Small, "large": pvm.MobileNetV3Large}.get(size)
        if cls is None:
            raise ConfigError(f"MobileNetV3.size must be small or large, got {size!r}")
        self.net = cls(scale=scale, num_classes=num_classes)
        self.num_classes = num_classes

    def forward(self, x):
        return self.net(x)
