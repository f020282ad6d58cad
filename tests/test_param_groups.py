"""Per-parameter-group learning-rate multipliers (``optimizer.param_groups``): each group's
update equals the optimizer's own update at lr * lr_mult, computed here by hand."""
import numpy as np
import paddle
import pytest

from ppzoo.core import build_optimizer
from ppzoo.core.errors import ConfigError


class TwoLayer(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.backbone = paddle.nn.Linear(3, 4)
        self.head = paddle.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(paddle.nn.functional.relu(self.backbone(x)))


def _step(opt_cfg, seed=0):
    paddle.seed(seed)
    model = TwoLayer()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    opt = build_optimizer(opt_cfg, model.named_parameters(), float(opt_cfg["learning_rate"]))
    x = paddle.to_tensor(np.random.RandomState(seed).randn(5, 3).astype("float32"))
    loss = (model(x) ** 2).mean()
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    opt.step()
    after = {k: v.numpy() for k, v in model.state_dict().items()}
    return before, after, grads


def test_sgd_group_update_is_lr_times_multiplier_times_grad():
    cfg = {"type": "SGD", "learning_rate": 0.5,
           "param_groups": [{"pattern": r"^backbone\.", "lr_mult": 0.1}]}
    before, after, grads = _step(cfg)
    for name in before:
        mult = 0.1 if name.startswith("backbone.") else 1.0
        np.testing.assert_allclose(after[name], before[name] - 0.5 * mult * grads[name],
                                   rtol=1e-5, atol=1e-7, err_msg=name)


def test_adam_first_step_scales_with_multiplier_and_zero_freezes():
    # Adam's first step moves every coordinate by lr * sign(grad) (bias-corrected m/sqrt(v)).
    cfg = {"type": "Adam", "learning_rate": 0.01,
           "param_groups": [{"pattern": r"^head\.", "lr_mult": 10.0},
                            {"pattern": r"^backbone\.bias", "lr_mult": 0.0}]}
    before, after, grads = _step(cfg)
    for name in before:
        mult = 10.0 if name.startswith("head.") else 0.0 if name == "backbone.bias" else 1.0
        expected = before[name] - 0.01 * mult * np.sign(grads[name])
        np.testing.assert_allclose(after[name], expected, rtol=1e-4, atol=1e-6, err_msg=name)


def test_group_weight_decay_applies_only_to_its_group():
    cfg = {"type": "Momentum", "learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.0,
           "param_groups": [{"pattern": r"^head\.weight$", "weight_decay": 0.5}]}
    before, after, grads = _step(cfg)
    for name in before:
        decay = 0.5 * before[name] if name == "head.weight" else 0.0
        np.testing.assert_allclose(after[name], before[name] - 0.1 * (grads[name] + decay),
                                   rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("groups, message", [
    ([{"pattern": "^neck\\."}], "matches no parameter"),
    ([{"pattern": "(", "lr_mult": 1}], "not a valid regex"),
    ([{"pattern": "head", "lr_mul": 2}], "unknown key"),
    ([{"pattern": "head", "lr_mult": "fast"}], "lr_mult='fast'"),
    ([{"lr_mult": 2}], "pattern"),
])
def test_bad_groups_name_the_key(groups, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _step({"type": "SGD", "learning_rate": 0.1, "param_groups": groups})


def test_trainer_passes_groups_from_the_config(digits_cfg, tmp_path):
    from ppzoo.engine import build_trainer
    digits_cfg["optimizer"]["param_groups"] = [{"pattern": r"^features\.", "lr_mult": 0.0}]
    digits_cfg["train"].update({"epochs": 1})
    trainer = build_trainer(digits_cfg, work_dir=str(tmp_path / "run"))
    before = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    after = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
    frozen = [k for k in before if k.startswith("features.") and "_mean" not in k and "_variance" not in k]
    moved = [k for k in before if not k.startswith("features.")]
    assert frozen and moved
    for k in frozen:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert any(not np.array_equal(after[k], before[k]) for k in moved)
