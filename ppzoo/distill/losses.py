"""Distillation losses.

Soft labels arrive as the teacher's logits, either full ``(N, C)`` or top-k: a pair
``(values (N, k), indices (N, k))`` of the k largest logits.  With top-k the teacher's
distribution is the softmax over those k logits only (renormalised), which cuts the
transfer from C to 2k numbers per sample while keeping almost all of the mass.
"""
import paddle
import paddle.nn.functional as F

from ..core.builder import LOSSES
from ..core.errors import ConfigError


def teacher_probs(teacher, temperature):
    """Teacher distribution at ``temperature`` and the class indices it covers (or None)."""
    if isinstance(teacher, (tuple, list)):
        values, indices = teacher
        return F.softmax(values.astype("float32") / temperature, axis=-1), indices.astype("int64")
    return F.softmax(teacher.astype("float32") / temperature, axis=-1), None


def _student_logp(student_logits, temperature, indices):
    logp = F.log_softmax(student_logits / temperature, axis=-1)
    if indices is not None:
        logp = paddle.take_along_axis(logp, indices, axis=-1)
    return logp


@LOSSES.register()
class SoftCrossEntropyLoss(paddle.nn.Layer):
    """-sum_c p_teacher(c; T) log p_student(c; T), averaged over the batch, times T^2
    (Hinton et al.: keeps the gradient scale independent of T)."""

    def __init__(self, temperature=1.0):
        super().__init__()
        if float(temperature) <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student_logits, teacher):
        t = self.temperature
        p, idx = teacher_probs(teacher, t)
        logp = _student_logp(student_logits, t, idx)
        return -(p * logp).sum(axis=-1).mean() * (t * t)


@LOSSES.register()
class KDLoss(SoftCrossEntropyLoss):
    """KL(p_teacher(T) || p_student(T)) * T^2: the soft cross-entropy minus the teacher's
    entropy, so it is 0 when the student matches the teacher (same gradient)."""

    def forward(self, student_logits, teacher):
        t = self.temperature
        p, idx = teacher_probs(teacher, t)
        logp = _student_logp(student_logits, t, idx)
        kl = (p * (paddle.log(p.clip(min=1e-12)) - logp)).sum(axis=-1)
        return kl.mean() * (t * t)


@LOSSES.register()
class DistillationLoss(paddle.nn.Layer):
    """``alpha * soft + (1 - alpha) * hard``: soft is ``KDLoss`` (``soft: kd``) or
    ``SoftCrossEntropyLoss`` (``soft: ce``) at ``temperature``, hard the cross-entropy
    with the ground-truth label.  Called as ``loss(student_logits, teacher, label)``."""

    def __init__(self, temperature=4.0, alpha=0.9, soft="kd", label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"DistillationLoss.alpha must be in [0, 1], got {alpha}")
        if soft not in ("kd", "ce"):
            raise ConfigError(f"DistillationLoss.soft must be 'kd' or 'ce', got {soft!r}")
        self.alpha = float(alpha)
        self.soft = (KDLoss if soft == "kd" else SoftCrossEntropyLoss)(temperature)
        self.label_smoothing = float(label_smoothing)

    def forward(self, student_logits, teacher, label):
        parts = self.parts(student_logits, teacher, label)
        return parts["loss"]

    def parts(self, student_logits, teacher, label):
        soft = self.soft(student_logits, teacher)
        label = label.astype("int64").reshape([-1])
        hard = F.cross_entropy(student_logits, label, label_smoothing=self.label_smoothing
                               ) if self.label_smoothing else F.cross_entropy(student_logits, label)
        return {"loss": self.alpha * soft + (1 - self.alpha) * hard, "soft": soft, "hard": hard}
