"""Task losses for regression and extractive QA (classification uses CrossEntropyLoss)."""
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import LOSSES


@LOSSES.register()
class MSELoss(nn.Layer):
    """Mean squared error of a ``[batch, 1]`` regression output against ``[batch, 1]`` targets."""

    def forward(self, output, label):
        return F.mse_loss(output.reshape([-1]), label.astype(output.dtype).reshape([-1]))


@LOSSES.register()
class SpanLoss(nn.Layer):
    """Mean of the start and end token cross-entropies; label is ``[batch, 3]`` (start, end, id)."""

    def forward(self, output, label):
        start = F.cross_entropy(output[:, :, 0], label[:, 0])
        end = F.cross_entropy(output[:, :, 1], label[:, 1])
        return (start + end) / 2
