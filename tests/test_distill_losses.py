"""Distillation losses against hand-computed values."""
import math

import numpy as np
import paddle
import pytest

from ppzoo.core.errors import ConfigError
from ppzoo.distill.losses import DistillationLoss, KDLoss, SoftCrossEntropyLoss
from ppzoo.distill.pool import soft_labels_from_logits


def _t(x):
    return paddle.to_tensor(np.asarray(x, dtype=np.float32))


def test_soft_ce_and_kd_by_hand():
    # T=1, one sample: teacher logits [0, ln 3] -> p = [1/4, 3/4]; student logits [0, 0] -> q = [1/2, 1/2]
    s, t = _t([[0.0, 0.0]]), _t([[0.0, math.log(3.0)]])
    ce = float(SoftCrossEntropyLoss(1.0)(s, t))
    assert ce == pytest.approx(math.log(2.0), abs=1e-6)          # -(1/4 + 3/4) log 1/2
    kl = float(KDLoss(1.0)(s, t))
    assert kl == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-6)
    # the entropy of the teacher separates them
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert ce - kl == pytest.approx(h, abs=1e-6)


def test_temperature_scaling_by_hand():
    # T=2: logits divided by 2 before the softmax, loss times T^2 = 4
    s, t = _t([[0.0, 2 * math.log(3.0)]]), _t([[0.0, 0.0]])
    # teacher p = [1/2, 1/2]; student q = [1/4, 3/4]
    expect = 4 * (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75))
    assert float(KDLoss(2.0)(s, t)) == pytest.approx(expect, abs=1e-5)


def test_kd_is_zero_when_student_equals_teacher_and_averages_over_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)).astype(np.float32)
    assert float(KDLoss(3.0)(_t(x), _t(x))) == pytest.approx(0.0, abs=1e-5)
    a, b = rng.normal(size=(2, 7)), rng.normal(size=(2, 7))
    both = float(KDLoss(2.0)(_t(a), _t(b)))
    each = [float(KDLoss(2.0)(_t(a[i:i + 1]), _t(b[i:i + 1]))) for i in range(2)]
    assert both == pytest.approx(np.mean(each), abs=1e-5)


def test_mix_with_hard_label_by_hand():
    s, t = _t([[0.0, 0.0]]), _t([[0.0, math.log(3.0)]])
    label = paddle.to_tensor(np.array([1], dtype=np.int64))
    loss = DistillationLoss(temperature=1.0, alpha=0.25, soft="ce")
    parts = loss.parts(s, t, label)
    assert float(parts["hard"]) == pytest.approx(math.log(2.0), abs=1e-6)
    assert float(parts["loss"]) == pytest.approx(0.25 * math.log(2.0) + 0.75 * math.log(2.0), abs=1e-6)
    assert float(loss(s, t, label)) == pytest.approx(float(parts["loss"]))
    # alpha = 0: plain cross-entropy, the teacher does not matter
    ce_only = DistillationLoss(temperature=4.0, alpha=0.0)
    assert float(ce_only(s, _t([[9.0, -9.0]]), label)) == pytest.approx(math.log(2.0), abs=1e-6)


def test_topk_soft_labels_renormalise_over_k():
    logits = np.array([[3.0, 1.0, 2.0, -5.0]], np.float32)
    values, idx = soft_labels_from_logits(logits, topk=2)
    assert idx.tolist() == [[0, 2]] and values.tolist() == [[3.0, 2.0]]
    assert soft_labels_from_logits(logits, topk=None) is not None
    student = _t([[0.5, 0.0, -0.5, 0.0]])
    got = float(SoftCrossEntropyLoss(1.0)(student, (_t(values), paddle.to_tensor(idx))))
    p = np.exp([3.0, 2.0]) / np.exp([3.0, 2.0]).sum()
    logq = np.array([0.5, 0.0, -0.5, 0.0]) - np.log(np.exp([0.5, 0.0, -0.5, 0.0]).sum())
    assert got == pytest.approx(-(p[0] * logq[0] + p[1] * logq[2]), abs=1e-5)
    # with k = C the top-k loss equals the full one
    v4, i4 = soft_labels_from_logits(logits, topk=3)
    full = float(KDLoss(2.0)(student, _t(logits)))
    assert float(KDLoss(2.0)(student, (_t(v4), paddle.to_tensor(i4)))) != pytest.approx(full)
    assert soft_labels_from_logits(logits, topk=4).shape == (1, 4)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="alpha"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ConfigError, match="soft"):
        DistillationLoss(soft="mse")
    with pytest.raises(ConfigError, match="temperature"):
        KDLoss(temperature=0)
