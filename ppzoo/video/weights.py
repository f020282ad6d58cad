"""Loading PaddleVideo-released ``.pdparams`` into ppzoo's recognizers.

PaddleVideo names layers after its ConvBNLayer (``_conv``/``_batch_norm``), its blocks
(``bb_<stage>_<i>`` or ``res<stage+2><letter>``) and ST-GCN's ``st_gcn_networks`` /
``tcn`` Sequential indices; its ST-GCN head is a 1x1 conv.  ``map_paddlevideo_names``
rewrites such a state dict into ppzoo names (and shapes); ppzoo names pass unchanged.
"""
import os
import re

import numpy as np

from ..core import safeload
from ..core.errors import WeightsError

_TCN = {"0": "bn1", "2": "tconv", "3": "bn2"}
_RES = {"0": "res_conv", "1": "res_bn"}


def _convbn(rest):
    return rest.replace("_conv.", "conv.").replace("_batch_norm.", "bn.")


def _map_name(name):
    m = re.match(r"^(backbone\.)conv1_([123])\.(.*)$", name)  # ResNet-vd stem
    if m:
        return f"{m[1]}stem.{int(m[2]) - 1}.{_convbn(m[3])}"
    m = re.match(r"^(backbone\.)conv1?\.(_conv\..*|_batch_norm\..*)$", name)  # 7x7 stem
    if m:
        return f"{m[1]}stem.0.{_convbn(m[2])}"
    m = re.match(r"^(backbone\.)bb_(\d+)_(\d+)\.(.*)$", name)  # bottleneck blocks
    if m:
        return f"{m[1]}stages.{m[2]}.{m[3]}.{_convbn(m[4])}"
    m = re.match(r"^(backbone\.)res(\d)([a-z])(\d*)\.(.*)$", name)  # basic blocks
    if m:
        idx = int(m[4]) if m[4] else ord(m[3]) - 97
        return f"{m[1]}stages.{int(m[2]) - 2}.{idx}.{_convbn(m[5])}"
    m = re.match(r"^(backbone\.)st_gcn_networks\.(\d+)\.(.*)$", name)  # ST-GCN
    if m:
        rest = m[3]
        rest = re.sub(r"^gcn\.conv\.", "gcn.", rest)
        rest = re.sub(r"^tcn\.(\d)\.", lambda t: _TCN[t[1]] + ".", rest)
        rest = re.sub(r"^residual\.(\d)\.", lambda t: _RES[t[1]] + ".", rest)
        return f"{m[1]}blocks.{m[2]}.{rest}"
    if name.startswith("head.fcn."):
        return "head.fc." + name[len("head.fcn."):]
    return name


_VISION_CONV = {"1": "conv0", "2": "conv1", "3": "conv2"}


def _map_vision_name(name):
    """paddle.vision ResNet names (``conv1``, ``bn1``, ``layer<s>.<i>.conv<k>``/``bn<k>``,
    ``downsample.0/1``) -> ResNetTSM names; ``None`` for the ImageNet classifier."""
    if name.startswith("fc."):
        return None
    m = re.match(r"^(conv1|bn1)\.(.*)$", name)
    if m:
        return f"stem.0.{'conv' if m[1] == 'conv1' else 'bn'}.{m[2]}"
    m = re.match(r"^layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.*)$", name)
    if m:
        return f"stages.{int(m[1]) - 1}.{m[2]}.{_VISION_CONV[m[4]]}.{'conv' if m[3] == 'conv' else 'bn'}.{m[5]}"
    m = re.match(r"^layer(\d)\.(\d+)\.downsample\.([01])\.(.*)$", name)
    if m:
        return f"stages.{int(m[1]) - 1}.{m[2]}.short.{'conv' if m[3] == '0' else 'bn'}.{m[4]}"
    return name


def backbone_state(state):
    """An ImageNet (or recognizer) file as ``backbone.``-prefixed PaddleVideo/ppzoo names:
    paddle.vision's ResNet names, PaddleClas/PaddleVideo ImageNet files (the backbone's
    names without a prefix: ``conv1_1``, ``bb_0_0``, ``res2a`` ...), or a whole recognizer
    (its ``backbone.`` part).  Classifier tensors (``fc``, ``out``, ``head``) are dropped."""
    keys = list(state)
    if any(k.startswith("backbone.") for k in keys):
        return {k: v for k, v in state.items() if k.startswith("backbone.")}
    vision = any(k.startswith("layer1.") for k in keys)
    out = {}
    for k, v in state.items():
        if k.split(".")[0] in ("fc", "out", "head", "fc_0"):
            continue
        name = _map_vision_name(k) if vision else k
        if name is not None:
            out["backbone." + name] = v
    return out


def map_paddlevideo_names(state_dict):
    """PaddleVideo names/shapes -> ppzoo names/shapes (NumPy arrays out)."""
    out = {}
    for name, value in state_dict.items():
        arr = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        new = _map_name(name)
        if name.startswith("head.fcn.") and name.endswith("weight") and arr.ndim == 4:
            arr = arr.reshape(arr.shape[0], arr.shape[1]).T  # 1x1 conv -> Linear (in, out)
        out[new] = arr
    return out


def fixed_buffers(model):
    """Names of ``model``'s registered buffers (skeleton graphs ``A``): they are part of the
    architecture, set by the config, and never taken from a weights file."""
    return {name for name, _ in model.named_buffers()}


def load_paddlevideo_weights(model, path_or_state, strict=True, report=None):
    """Load PaddleVideo (or ppzoo) weights into ``model``; returns the list of skipped keys.

    A name that does not exist in ``model`` or a shape that differs raises WeightsError
    naming the file and key (``strict: false`` skips them instead, e.g. a new head); with
    ``strict`` a parameter the file lacks is an error too.  Fixed buffers (the skeleton
    graph ``A``) are never loaded: a checkpoint trained on another graph leaves the model's
    own graph in place.  ``report`` (a dict) receives ``loaded``, ``skipped``, ``missing``
    and ``fixed_kept`` (file entries for fixed buffers, not loaded).
    """
    source = path_or_state if isinstance(path_or_state, str) else "<state dict>"
    if isinstance(path_or_state, str):
        if not os.path.isfile(path_or_state):
            raise WeightsError(f"weights file not found: {path_or_state}")
        try:
            state = safeload.load(path_or_state)
        except WeightsError:
            raise
        except Exception as err:  # noqa: BLE001 - any unreadable file is one clear error
            raise WeightsError(f"cannot read weights {path_or_state}: {err}") from None
    else:
        state = path_or_state
    if not isinstance(state, dict):
        raise WeightsError(f"{source}: expected a state dict, got {type(state).__name__}")
    if hasattr(model, "backbone") and not any(k.startswith(("backbone.", "head.")) for k in state):
        state = backbone_state(state)  # an ImageNet / backbone-only file
    mapped = map_paddlevideo_names(state)
    own = model.state_dict()
    fixed = fixed_buffers(model)
    skipped, load, fixed_kept = [], {}, []
    for k, v in mapped.items():
        if k in fixed:
            fixed_kept.append(k)
            continue
        if k not in own:
            problem = f"{source}: parameter {k!r} has no counterpart in {type(model).__name__}"
        elif tuple(own[k].shape) != tuple(v.shape):
            problem = f"{source}: {k!r} has shape {tuple(v.shape)}, the model {tuple(own[k].shape)}"
        else:
            load[k] = v.astype(str(own[k].numpy().dtype)) if v.dtype != own[k].numpy().dtype else v
            continue
        if strict:
            raise WeightsError(problem)
        skipped.append(k)
    missing = [k for k in own if k not in load and k not in fixed]
    if not load:
        raise WeightsError(f"{source}: no tensor fits {type(model).__name__} (file names like "
                           f"{', '.join(list(state)[:3])})")
    if strict and missing:
        raise WeightsError(f"{source}: no weights for {len(missing)} parameters of "
                           f"{type(model).__name__}, e.g. {', '.join(missing[:3])}")
    model.set_state_dict(dict(load, **{k: own[k] for k in fixed if k in own}))
    if report is not None:
        report.update(loaded=sorted(load), skipped=skipped, missing=missing, fixed_kept=fixed_kept)
    return skipped


def load_backbone_pretrained(backbone, source, strict=False, logger=None):
    """``backbone.pretrained`` of ResNetTSM: ImageNet weights (a path, URL or zoo name such
    as ``resnet50_imagenet`` or ``paddlevideo_resnet50_vd_ssld_v2``) into the backbone alone,
    whatever the file's naming (see ``backbone_state``)."""
    from ..hub.load import resolve
    path, _ = resolve(source)
    try:
        state = safeload.load(path)
    except WeightsError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is one clear error
        raise WeightsError(f"cannot read weights {source}: {err}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{source}: expected a state dict, got {type(state).__name__}")
    holder = _Holder(backbone)
    return load_pretrained(holder, backbone_state(state), strict=strict, logger=logger, label=str(source))


class _Holder:
    """Presents a backbone as ``<model>.backbone`` to the name-mapping loader."""

    def __init__(self, backbone):
        import paddle.nn as nn
        self.layer = nn.Layer()
        self.layer.add_sublayer("backbone", backbone)

    def __getattr__(self, name):
        return getattr(self.layer, name)


def load_pretrained(model, source, strict=False, logger=None, label=None):
    """Model-level ``pretrained:`` of the recognizers (``source``: a file or a state dict;
    ``label`` names it in messages).  ``strict`` (``pretrained_strict: true``): every tensor
    of the file must fit and every parameter must be in the file.  Otherwise a partial load
    is allowed and summarised loudly (a warning with the counts and the first names
    skipped and left at their initial values)."""
    import logging
    logger = logger or logging.getLogger("ppzoo")
    label = label or (source if isinstance(source, str) else "<state dict>")
    target = model.layer if isinstance(model, _Holder) else model
    report = {}
    try:
        load_paddlevideo_weights(target, source, strict=bool(strict), report=report)
    except WeightsError as err:
        raise WeightsError(str(err).replace("<state dict>", label)) from None
    if report["skipped"] or report["missing"]:
        logger.warning(
            f"pretrained {label}: PARTIAL load into {type(target).__name__}: "
            f"{len(report['loaded'])} tensors loaded, {len(report['skipped'])} of the file "
            f"skipped (no counterpart or other shape: {', '.join(report['skipped'][:6])}), "
            f"{len(report['missing'])} model tensors keep their initial values "
            f"({', '.join(report['missing'][:6])}); set pretrained_strict: true to make this an error")
    else:
        logger.info(f"pretrained {label}: all {len(report['loaded'])} tensors loaded")
    return report
