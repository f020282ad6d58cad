"""Recognizers (backbone + head) and heads for video and skeleton action recognition."""
import paddle
import paddle.nn as nn

from ..core.builder import HEADS, MODELS


def _load_pretrained(model, path):
    if not path:
        return
    import logging
    from .weights import load_paddlevideo_weights
    skipped = load_paddlevideo_weights(model, path, strict=False)
    if skipped:
        logging.getLogger("ppzoo").warning(f"pretrained {path}: skipped {len(skipped)} tensors "
                                           f"that do not fit: {', '.join(skipped[:6])}")


@HEADS.register()
class TSNHead(nn.Layer):
    """Average-pools each segment, averages the segments (TSN consensus), then dropout + fc."""

    def __init__(self, num_classes, in_channels, num_seg=8, drop_ratio=0.4):
        super().__init__()
        self.num_seg = int(num_seg)
        self.dropout = nn.Dropout(drop_ratio) if drop_ratio else None
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = x.mean(axis=[2, 3]).reshape([-1, self.num_seg, x.shape[1]]).mean(axis=1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


@HEADS.register()
class TSMHead(TSNHead):
    """TSM/PP-TSM head: per-segment scores averaged over segments (PaddleVideo's
    TSMHead/ppTSMHead); the same parameters as TSNHead."""

    def forward(self, x):
        x = x.mean(axis=[2, 3])
        if self.dropout is not None:
            x = self.dropout(x)
        score = self.fc(x)
        return score.reshape([-1, self.num_seg, score.shape[1]]).mean(axis=1)


HEADS.register(TSMHead, name="ppTSMHead")


@MODELS.register()
class Recognizer2D(nn.Layer):
    """Runs a 2D backbone on every sampled frame and lets the head fuse the segments.

    Takes ``video`` as (N, T, C, H, W) or (N * T, C, H, W); returns (N, num_classes) logits.
    ``pretrained``: a PaddleVideo (or ppzoo) ``.pdparams`` loaded with name mapping; tensors
    that do not fit (e.g. a head for other classes) are skipped and logged.
    """

    def __init__(self, backbone, head, pretrained=None):
        super().__init__()
        self.backbone, self.head = backbone, head
        _load_pretrained(self, pretrained)

    def forward(self, video):
        if video.ndim == 5:
            video = video.reshape([-1] + list(video.shape[2:]))
        return self.head(self.backbone(video))


@HEADS.register()
class STGCNHead(nn.Layer):
    """Global average over time, joints and persons, then a linear classifier."""

    def __init__(self, num_classes, in_channels=256, drop_ratio=0.0):
        super().__init__()
        self.dropout = nn.Dropout(drop_ratio) if drop_ratio else None
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x, num_person):
        x = x.mean(axis=[2, 3])  # (N*M, C)
        x = x.reshape([-1, num_person, x.shape[1]]).mean(axis=1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


@MODELS.register()
class RecognizerGCN(nn.Layer):
    """Skeleton recognizer: ``data`` (N, C, T, V, M) -> (N, num_classes) logits;
    ``pretrained`` as for Recognizer2D."""

    def __init__(self, backbone, head, pretrained=None):
        super().__init__()
        self.backbone, self.head = backbone, head
        _load_pretrained(self, pretrained)

    def forward(self, data):
        feat = self.backbone(data)
        return self.head(feat, data.shape[4])
