"""Recognizers (backbone + head) and heads for video and skeleton action recognition."""
import paddle
import paddle.nn as nn

from ..core.builder import HEADS, MODELS


def _load_pretrained(model, path, strict):
    if path:
        from .weights import load_pretrained
        load_pretrained(model, path, strict=strict)


def average(x, axis):
    """Mean over ``axis`` written as a sum times 1/n: the same values, but Paddle Inference
    3.3's oneDNN reduce_mean prints a line to stdout on every run, reduce_sum does not."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    sizes = [int(x.shape[a]) for a in axes]
    if any(n < 0 for n in sizes):  # a dynamic size: no static 1/n
        return x.mean(axis=axes)
    n = 1
    for k in sizes:
        n *= k
    return x.sum(axis=axes) * (1.0 / n)


class _KeepsFixedBuffers:
    """Every way weights reach a recognizer (``pretrained:``, resume, ``--weights``, the hub)
    ends in ``set_state_dict``; fixed buffers (skeleton graphs ``A``) are dropped there, so
    the graph the config builds is the graph the model runs, whatever file was loaded."""

    def set_state_dict(self, state_dict, *args, **kwargs):
        from .weights import fixed_buffers
        fixed = fixed_buffers(self)
        if fixed & set(state_dict):
            own = self.state_dict()
            state_dict = {k: (own[k] if k in fixed else v) for k, v in state_dict.items()}
        return super().set_state_dict(state_dict, *args, **kwargs)

    set_dict = set_state_dict

    def map_published_state(self, state):
        """PaddleVideo's names (and 1x1-conv heads) -> this model's; ppzoo names pass.
        ``pretrained:`` and the tools' ``--weights`` both call it (``ppzoo.hub.map_to_model``),
        so a released file loads the same way everywhere."""
        from .weights import map_paddlevideo_names
        return self._with_fixed_buffers(map_paddlevideo_names(state))

    def _with_fixed_buffers(self, state):
        """Fixed buffers (graphs, the bone matrix) a file lacks are the model's own: they
        are never taken from a file, so a file need not hold them to load strictly."""
        from .weights import fixed_buffers
        missing = fixed_buffers(self) - set(state)
        if missing:
            own = self.state_dict()
            state = dict(state, **{k: own[k].numpy() for k in missing})
        return state


@HEADS.register()
class TSNHead(nn.Layer):
    """Average-pools each segment, averages the segments (TSN consensus), then dropout + fc."""

    def __init__(self, num_classes, in_channels, num_seg=8, drop_ratio=0.4):
        super().__init__()
        self.num_seg = int(num_seg)
        self.dropout = nn.Dropout(drop_ratio) if drop_ratio else None
        self.fc = nn.Linear(in_channels, num_classes)

    def _segments(self, num_seg):
        """The views per clip: the input's T where the recognizer knows it (evaluation may
        take more views than training: PaddleVideo's TSN tests 25 segments x TenCrop)."""
        return int(num_seg) if num_seg is not None and int(num_seg) > 0 else self.num_seg

    def forward(self, x, num_seg=None):
        x = average(average(x, [2, 3]).reshape([-1, self._segments(num_seg), x.shape[1]]), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


@HEADS.register()
class TSMHead(TSNHead):
    """TSM/PP-TSM head: per-segment scores averaged over segments (PaddleVideo's
    TSMHead/ppTSMHead); the same parameters as TSNHead."""

    def forward(self, x, num_seg=None):
        x = average(x, [2, 3])
        if self.dropout is not None:
            x = self.dropout(x)
        score = self.fc(x)
        return average(score.reshape([-1, self._segments(num_seg), score.shape[1]]), 1)


HEADS.register(TSMHead, name="ppTSMHead")


@MODELS.register()
class Recognizer2D(_KeepsFixedBuffers, nn.Layer):
    """Runs a 2D backbone on every sampled frame and lets the head fuse the segments.

    Takes ``video`` as (N, T, C, H, W) or (N * T, C, H, W); returns (N, num_classes) logits.
    ``pretrained``: a PaddleVideo (or ppzoo) ``.pdparams`` loaded with name mapping.
    ``pretrained_strict: true``: the file must fit entirely (every tensor, every parameter);
    otherwise tensors that do not fit (e.g. a head for other classes) are skipped and a
    warning summarises what was loaded, skipped and left at its initial value.
    """

    def __init__(self, backbone, head, pretrained=None, pretrained_strict=False):
        super().__init__()
        self.backbone, self.head = backbone, head
        _load_pretrained(self, pretrained, pretrained_strict)

    def forward(self, video):
        num_seg = None
        if video.ndim == 5:
            num_seg = video.shape[1]
            video = video.reshape([-1] + list(video.shape[2:]))
        return self.head(self.backbone(video), num_seg=num_seg)


@HEADS.register()
class STGCNHead(nn.Layer):
    """Global average over time, joints and persons, then a linear classifier."""

    def __init__(self, num_classes, in_channels=256, drop_ratio=0.0):
        super().__init__()
        self.dropout = nn.Dropout(drop_ratio) if drop_ratio else None
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x, num_person):
        x = average(x, [2, 3])  # (N*M, C)
        x = average(x.reshape([-1, num_person, x.shape[1]]), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


@MODELS.register()
class RecognizerGCN(_KeepsFixedBuffers, nn.Layer):
    """Skeleton recognizer: ``data`` (N, C, T, V, M) -> (N, num_classes) logits;
    ``pretrained``/``pretrained_strict`` as for Recognizer2D."""

    def __init__(self, backbone, head, pretrained=None, pretrained_strict=False):
        super().__init__()
        self.backbone, self.head = backbone, head
        _load_pretrained(self, pretrained, pretrained_strict)

    def forward(self, data):
        feat = self.backbone(data)
        return self.head(feat, data.shape[4])


@MODELS.register()
class SkeletonFusion(_KeepsFixedBuffers, nn.Layer):
    """Score fusion of skeleton streams (2s-AGCN's joint + bone): each stream is
    ``{input: joint|bone, model: <recognizer config, with its own pretrained weights>}``; the bone stream's input is computed from the joint data inside the model
    (each joint minus its parent in ``layout``, the same as the ``JointToBone`` transform).
    Returns sum_s weight_s * softmax(logits_s), so it evaluates and exports like one model
    on the joint pipeline; train the streams separately.
    """

    _lazy_keys = ("streams",)  # built here, after taking each stream's ``input``

    def __init__(self, streams, weights=None, layout="fsd10"):
        super().__init__()
        from ..core.errors import ConfigError
        from .graph import LAYOUTS
        if not streams:
            raise ConfigError("SkeletonFusion.streams: give at least one stream")
        if layout not in LAYOUTS:
            raise ConfigError(f"SkeletonFusion.layout: {layout!r} unknown (known: {', '.join(LAYOUTS)})")
        self.inputs, models = [], []
        for i, stream in enumerate(streams):
            if not isinstance(stream, dict) or "model" not in stream:
                raise ConfigError(f"SkeletonFusion.streams[{i}]: expected {{input: joint|bone, "
                                  f"model: {{type: ...}}}}, got {stream!r}")
            kind = stream.get("input", "joint")
            if kind not in ("joint", "bone"):
                raise ConfigError(f"SkeletonFusion.streams[{i}].input: {kind!r} is not joint or bone")
            extra = set(stream) - {"input", "model"}
            if extra:
                raise ConfigError(f"SkeletonFusion.streams[{i}]: unknown keys {sorted(extra)}")
            self.inputs.append(kind)
            models.append(MODELS.build(stream["model"], key_path=f"model.streams[{i}].model"))
        self.streams = nn.LayerList(models)
        self.fusion_weights = [float(w) for w in (weights or [1.0] * len(models))]
        if len(self.fusion_weights) != len(models):
            raise ConfigError(f"SkeletonFusion.weights: {len(self.fusion_weights)} weights for "
                              f"{len(models)} streams")
        num_node, edges, _ = LAYOUTS[layout]
        bone = paddle.eye(num_node).numpy()
        for parent, child in edges:
            bone[parent, child] -= 1.0
        bone[:, [j for j in range(num_node) if j not in {c for _, c in edges}]] = 0.0
        self.register_buffer("bone_matrix", paddle.to_tensor(bone))

    def map_published_state(self, state):
        """Each stream's part (``streams.<i>.``) mapped as that stream's recognizer maps it."""
        from .weights import map_paddlevideo_names
        out = {}
        for k, v in state.items():
            parts = k.split(".", 2)
            if len(parts) == 3 and parts[0] == "streams" and parts[1].isdigit():
                (name, arr), = map_paddlevideo_names({parts[2]: v}).items()
                out[f"streams.{parts[1]}.{name}"] = arr
            else:
                out[k] = v
        return self._with_fixed_buffers(out)

    def forward(self, data):
        bone = None
        out = 0
        for kind, model, w in zip(self.inputs, self.streams, self.fusion_weights):
            x = data
            if kind == "bone":
                if bone is None:  # (N, C, T, V, M) -> V mixed by the bone matrix
                    bone = paddle.einsum("nctvm,vw->nctwm", data, self.bone_matrix)
                x = bone
            out = out + w * paddle.nn.functional.softmax(model(x), axis=-1)
        return out
