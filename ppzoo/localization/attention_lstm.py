"""AttentionLSTM proposal classifier with IoU regression (PaddleVideo's
ActionAttentionLstmHead of FootballAction/BasketballAction).

Each feature stream (image features, optionally audio) runs through a bidirectional
LSTM; dropout; a linear layer scores every step; the scores are turned into attention
weights by a softmax over the real (mask = 1) steps; the weighted sum of the LSTM
outputs pools the proposal.  The pooled streams are concatenated and go through
fc-BN-ReLU-dropout twice, then ``fc_cls`` (class scores) and ``fc_iou`` + sigmoid
(the proposal's predicted IoU with its event).
"""
import re

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import LOSSES, MODELS

# PaddleVideo's ActionAttentionLstmHead layer names -> this model's
_REFERENCE_NAMES = ((re.compile(r"(^|\.)bi_lstm(\d+)\."), r"\1lstms.\2."),
                    (re.compile(r"(^|\.)att_fc(\d+)\."), r"\1att.\2."),
                    (re.compile(r"(^|\.)fc3\."), r"\1fc_cls."),
                    (re.compile(r"(^|\.)fc4\."), r"\1fc_iou."))


@MODELS.register()
class AttentionLSTM(nn.Layer):
    """``forward(feature (N, L, C), mask (N, L)[, audio, audio_mask])`` -> ``(logits
    (N, num_classes), iou (N,))``; the exported forward returns softmax probabilities.

    ``lstm_size`` is the LSTM's hidden size per direction (PaddleVideo: the stream's
    feature size, the default); ``fc_dims`` the two fully connected widths (8192, 4096
    there).  ``audio_dim`` adds the second stream (PaddleVideo's FootballAction preset:
    ``feature_dim 2048, audio_dim 1024``).  PaddleVideo's weights load under their own
    names (``bi_lstmN``, ``att_fcN``, ``fc3``, ``fc4``: :meth:`pretrained_key`)."""

    whole_model_weights = True     # a partial pretrained load warns (ppzoo.hub.load)

    @staticmethod
    def pretrained_key(name):
        """A weights file's name -> this model's: PaddleVideo's head names are mapped,
        others kept."""
        for pat, rep in _REFERENCE_NAMES:
            name = pat.sub(rep, name)
        return name

    def __init__(self, feature_dim=2048, num_classes=8, lstm_size=None, fc_dims=(8192, 4096),
                 dropout=0.5, audio_dim=None, audio_lstm_size=None):
        super().__init__()
        dims = [int(feature_dim)] + ([int(audio_dim)] if audio_dim else [])
        sizes = [int(lstm_size or feature_dim)] + ([int(audio_lstm_size or audio_dim)]
                                                   if audio_dim else [])
        self.lstms = nn.LayerList([nn.LSTM(d, h, direction="bidirect") for d, h in zip(dims, sizes)])
        self.att = nn.LayerList([nn.Linear(2 * h, 1) for h in sizes])
        self.dropout = nn.Dropout(dropout)
        f1, f2 = (int(v) for v in fc_dims)
        self.fc1 = nn.Linear(2 * sum(sizes), f1)
        self.bn1 = nn.BatchNorm1D(f1)
        self.fc2 = nn.Linear(f1, f2)
        self.bn2 = nn.BatchNorm1D(f2)
        self.fc_cls = nn.Linear(f2, int(num_classes))
        self.fc_iou = nn.Linear(f2, 1)

    def pool(self, i, x, mask):
        out, _ = self.lstms[i](x, sequence_length=mask.sum(1).astype("int64"))
        out = self.dropout(out)
        w = self.att[i](out).squeeze(-1)                        # (N, L)
        w = w - (1.0 - mask) * 1e9                              # padded steps get no weight
        w = F.softmax(w, axis=1) * mask
        w = w / paddle.clip(w.sum(1, keepdim=True), min=1e-12)
        return (out * w.unsqueeze(-1)).sum(1)

    def forward(self, feature, mask, audio=None, audio_mask=None):
        return self.outputs(feature, mask, audio, audio_mask)

    def outputs(self, feature, mask, audio=None, audio_mask=None):
        pooled = [self.pool(0, feature, mask)]
        if audio is not None:
            pooled.append(self.pool(1, audio, audio_mask))
        y = paddle.concat(pooled, axis=1)
        y = self.dropout(F.relu(self.bn1(self.fc1(y))))
        y = self.dropout(F.relu(self.bn2(self.fc2(y))))
        return self.fc_cls(y), F.sigmoid(self.fc_iou(y)).squeeze(-1)

    def export_forward(self, feature, mask, audio=None, audio_mask=None):
        logits, iou = self.outputs(feature, mask, audio, audio_mask)
        return F.softmax(logits, axis=1), iou


@LOSSES.register()
class AttentionLSTMLoss(nn.Layer):
    """Cross-entropy on the class plus ``iou_weight`` (10, as PaddleVideo) times the
    squared error of the predicted IoU, averaged over the batch."""

    def __init__(self, iou_weight=10.0):
        super().__init__()
        self.iou_weight = float(iou_weight)

    def forward(self, outputs, batch):
        logits, iou = outputs
        ce = F.cross_entropy(logits, batch["label"].reshape([-1, 1]).astype("int64"))
        mse = ((iou - batch["iou"].astype(iou.dtype).reshape([-1])) ** 2).mean()
        loss = ce + self.iou_weight * mse
        return loss, {"loss": loss, "ce": ce, "iou_mse": mse}
