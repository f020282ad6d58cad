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


# PaddleSeg's ImageNet STDC backbones: STDCSeg's configs start from STDCNet<n>, PP-LiteSeg's
# from PP_STDCNet<n> (another training of the same architecture)
STDC_IMAGENET = {
    "STDCSeg": {"STDC2": "stdc2_imagenet_paddleseg"},
    "PPLiteSeg": {"STDC2": "pp_stdc2_imagenet_paddleseg"},
}


def imagenet_weights(model_cfg):
    """The weights-table name ``backbone_pretrained: imagenet`` of a model config loads
    (None when there is none): per model for STDC (two trainings of STDC2), else per backbone."""
    model_cfg = model_cfg or {}
    mtype = model_cfg.get("type")
    if mtype in STDC_IMAGENET:
        return STDC_IMAGENET[mtype].get(model_cfg.get("backbone", "STDC2"))
    return BACKBONE_IMAGENET.get(model_cfg.get("backbone", "ResNet50_vd"))


def _stdc(model, name, pretrained):
    """PaddleSeg's STDC1/STDC2 backbone; ``pretrained: imagenet`` loads the ImageNet file
    ``model``'s PaddleSeg configs name (through ppzoo's hub, so it is cached and reported).
    PaddleSeg's ``relative_lr`` is ppzoo's optimizer ``param_groups`` (configs set 0.1)."""
    from paddleseg.models import backbones
    if name not in ("STDC1", "STDC2"):
        raise ConfigError(f"model.backbone: unknown backbone {name!r} for {model} (STDC1, STDC2)")
    net = getattr(backbones, name)(pretrained=None)
    if pretrained:
        if pretrained == "imagenet" and name not in STDC_IMAGENET[model]:
            raise ConfigError(f"model.backbone_pretrained: no ImageNet weights of {name} for {model} in the "
                              f"weights table (known: {', '.join(STDC_IMAGENET[model])}); give a path")
        from ..hub.load import load_pretrained
        load_pretrained(net, STDC_IMAGENET[model][name] if pretrained == "imagenet" else pretrained)
    return net


@MODELS.register()
class STDCSeg(_PaddleSegWrapper):
    """PaddleSeg's STDC-Seg (STDC2-Seg50 of the PSSL results: STDC2, 512x512 inputs).  In
    train mode it returns the three segmentation logits (fused, 1/8, 1/16) and, with
    ``use_boundary_8`` (PaddleSeg's default), the 1/8 detail map for DetailAggregateLoss;
    the detail heads exist either way, so the parameters are PaddleSeg's."""

    def __init__(self, num_classes, backbone="STDC2", backbone_pretrained=None, use_boundary_8=True):
        super().__init__()
        from paddleseg.models import STDCSeg as _S
        self.net = _S(num_classes, _stdc("STDCSeg", backbone, backbone_pretrained),
                      use_boundary_8=bool(use_boundary_8))
        self.num_classes = num_classes


@MODELS.register()
class PPLiteSeg(_PaddleSegWrapper):
    """PaddleSeg's PP-LiteSeg (PP-LiteSeg-B = STDC2 with PaddleSeg's default head widths;
    PP-LiteSeg-T = STDC1 with ``arm_out_chs`` [32, 64, 128], ``seg_head_inter_chs`` [32, 64,
    64]).  Three logits in train mode, the main one in eval mode."""

    def __init__(self, num_classes, backbone="STDC2", backbone_pretrained=None, arm_out_chs=(64, 96, 128),
                 seg_head_inter_chs=(64, 64, 64), cm_bin_sizes=(1, 2, 4), cm_out_ch=128):
        super().__init__()
        from paddleseg.models import PPLiteSeg as _P
        self.net = _P(num_classes, _stdc("PPLiteSeg", backbone, backbone_pretrained),
                      arm_out_chs=list(arm_out_chs), seg_head_inter_chs=list(seg_head_inter_chs),
                      cm_bin_sizes=list(cm_bin_sizes), cm_out_ch=int(cm_out_ch))
        self.num_classes = num_classes
