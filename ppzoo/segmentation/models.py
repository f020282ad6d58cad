"""Segmentation models.

``SmallSegNet`` is the CPU-sized encoder-decoder of tests and benchmarks; its encoder
has the same layer names as ``SmallCNN.features`` so a classifier's backbone loads into
it.  The paper's models wrap PaddleSeg; PaddleSeg is imported inside ``__init__`` so
``import ppzoo`` stays fast.  Every model returns a list of logits (the main one first)
in train mode and the main logits at input resolution in eval mode.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import MODELS
from ..core.errors import ConfigError


@MODELS.register()
class SmallSegNet(nn.Layer):
    """conv-BN-ReLU encoder (SmallCNN layout, ``features``) + a light decoder ``head``."""

    def __init__(self, num_classes=12, in_channels=3, width=16, depth=3):
        super().__init__()
        layers, c = [], in_channels
        for i in range(depth):
            out = width * (2 ** i)
            layers += [nn.Conv2D(c, out, 3, padding=1, bias_attr=False), nn.BatchNorm2D(out), nn.ReLU(),
                       nn.Conv2D(out, out, 3, padding=1, bias_attr=False), nn.BatchNorm2D(out), nn.ReLU()]
            if i < depth - 1:
                layers.append(nn.MaxPool2D(2))
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2D(c, width * 2, 3, padding=1, bias_attr=False), nn.BatchNorm2D(width * 2), nn.ReLU(),
            nn.Conv2D(width * 2, num_classes, 1))
        self.num_classes = num_classes

    def forward(self, x):
        y = self.head(self.features(x))
        y = F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)
        return [y] if self.training else y


class _PaddleSegWrapper(nn.Layer):
    """Adapts a PaddleSeg model (returns a list always) to the ppzoo convention."""

    def forward(self, x):
        outs = self.net(x)
        return list(outs) if self.training else outs[0]


# ImageNet weights PaddleSeg's configs start these backbones from: entries of the weights
# table (ppzoo/hub/weights.yml) that hold PaddleSeg's own URLs
BACKBONE_IMAGENET = {
    "ResNet50_vd": "resnet50_vd_ssld_v2_paddleseg",
    "HRNet_W18": "hrnet_w18_ssld_paddleseg",
}


def _backbone(name, pretrained, multi_grid=None):
    """A PaddleSeg backbone; ``pretrained`` (a path, URL, zoo name, or ``imagenet`` for
    PaddleSeg's published ImageNet weights of that backbone) loads through ppzoo's hub, so
    it is cached, verified where a hash is known, and reported like every other load.
    ``multi_grid`` multiplies the last ResNet stage's dilation per block (PaddleSeg's
    ``multi_grid``); ``None`` keeps PaddleSeg's default (1, 1, 1)."""
    from paddleseg.models import backbones
    if name == "ResNet50_vd":
        grid = (1, 1, 1) if multi_grid is None else tuple(multi_grid)
        if len(grid) != 3 or not all(isinstance(g, int) and g >= 1 for g in grid):
            raise ConfigError(f"model.multi_grid: {list(grid)} is not three positive integers "
                              "(one dilation factor per block of the last stage)")
        net = backbones.ResNet50_vd(output_stride=8, multi_grid=grid, pretrained=None)
    elif multi_grid is not None:
        raise ConfigError(f"model.multi_grid: only ResNet50_vd has a multi-grid, not {name!r}")
    elif name == "HRNet_W18":
        net = backbones.HRNet_W18(pretrained=None)
    else:
        raise ConfigError(f"model.backbone: unknown backbone {name!r} (ResNet50_vd, HRNet_W18)")
    if pretrained:
        from ..hub.load import load_pretrained
        load_pretrained(net, BACKBONE_IMAGENET[name] if pretrained == "imagenet" else pretrained)
    return net


@MODELS.register()
class PSPNet(_PaddleSegWrapper):
    def __init__(self, num_classes, backbone="ResNet50_vd", backbone_pretrained=None, aux_loss=True):
        super().__init__()
        from paddleseg.models import PSPNet as _P
        self.net = _P(num_classes, _backbone(backbone, backbone_pretrained), backbone_indices=(2, 3),
                      pp_out_channels=1024, bin_sizes=(1, 2, 3, 6), enable_auxiliary_loss=aux_loss)
        self.num_classes = num_classes


@MODELS.register()
class DeepLabV3(_PaddleSegWrapper):
    """PaddleSeg's DeepLabV3.  ``multi_grid`` defaults to (1, 2, 4), as PaddleSeg's
    ResNet50_vd DeepLabV3 configs set it (last-stage dilations 4/8/16 at output stride 8),
    so weights trained there give PaddleSeg's logits here; ``null`` gives 4/4/4."""

    def __init__(self, num_classes, backbone="ResNet50_vd", backbone_pretrained=None, multi_grid=(1, 2, 4)):
        super().__init__()
        from paddleseg.models import DeepLabV3 as _D
        if backbone != "ResNet50_vd" and multi_grid == (1, 2, 4):
            multi_grid = None  # the default belongs to the ResNet backbone only
        self.net = _D(num_classes, _backbone(backbone, backbone_pretrained, multi_grid), backbone_indices=(3,),
                      aspp_ratios=(1, 12, 24, 36), aspp_out_channels=256)
        self.num_classes = num_classes


@MODELS.register()
class OCRNet(_PaddleSegWrapper):
    def __init__(self, num_classes, backbone="HRNet_W18", backbone_pretrained=None):
        super().__init__()
        from paddleseg.models import OCRNet as _O
        self.net = _O(num_classes, _backbone(backbone, backbone_pretrained), backbone_indices=(0,))
        self.num_classes = num_classes
