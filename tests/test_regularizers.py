"""Regularizers do what their papers say, on a tiny random BERT and a toy task."""
import copy
import os

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.engine import build_trainer
from ppzoo.nlp.models import TransformerClassifier
from ppzoo.regularizers import LNSR, L2SP, SMART

WORDS = ["good", "bad", "cat", "dog", "red", "blue", "big", "small", "tree", "car", "sun", "moon"]
ENCODER = dict(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A vocab folder and a TSV task: label 1 iff the sentence contains 'good'."""
    root = tmp_path_factory.mktemp("toy")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    rng = np.random.default_rng(0)
    for split, n in (("train", 192), ("dev", 96)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            words = list(rng.choice(WORDS[1:], 5))
            y = i % 2
            if y:
                words[rng.integers(5)] = "good"
            rows.append(" ".join(words) + f"\t{y}")
        (root / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def toy_cfg(toy, regularizer, tmp_path, iters=60):
    data = dict(type="GlueTSV", text_a="sentence", label="label", tokenizer=str(toy), max_seq_len=16)
    return {
        "model": {"type": "TransformerClassifier", "num_classes": 2, "encoder": ENCODER},
        "train_dataset": dict(data, path=str(toy / "train.tsv")),
        "val_dataset": dict(data, path=str(toy / "dev.tsv")),
        "loss": {"type": "CrossEntropyLoss"}, "metrics": [{"type": "Accuracy"}],
        "optimizer": {"type": "AdamW", "learning_rate": 3e-3},
        "train": {"iters": iters, "batch_size": 32, "input_keys": ["input_ids", "token_type_ids"],
                  "log_interval": 1000, "eval_interval": iters, "checkpoint_interval": iters},
        "trainer": {"type": "FineTuneTrainer"}, "regularizer": regularizer,
        "output_dir": str(tmp_path), "name": regularizer["type"], "seed": 3,
    }


def batch_of(n=4, t=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, ENCODER["vocab_size"], (n, t))
    ids[:, 0], ids[1, 7:] = 2, 0  # [CLS] first; one padded row
    return paddle.to_tensor(ids), paddle.zeros([n, t], "int64")


def make_model():
    paddle.seed(0)
    return TransformerClassifier(2, encoder=ENCODER)


class _T:  # the two things a regularizer's setup reads from a trainer
    def __init__(self, model):
        self.model = model


def lnsr_term(reg, model, ids, tt):
    hs, mask = model.hidden_states(ids, tt)
    out = model.head(hs[-1], ids)
    return reg.penalty(model, hs, mask, ids, out)


def test_lnsr_zero_without_noise_positive_and_differentiable_with_noise():
    model = make_model()
    model.eval()  # deterministic passes, so only the noise moves the upper layers
    ids, tt = batch_of()
    for noise in ("gaussian", "manifold"):
        zero = LNSR(sigma=0.0, noise=noise)
        zero.setup(_T(model))
        assert float(lnsr_term(zero, model, ids, tt)) == 0.0
        reg = LNSR(sigma=0.1, noise=noise, layer=1)
        reg.setup(_T(model))
        term = lnsr_term(reg, model, ids, tt)
        assert float(term) > 0
        term.backward()
        grads = [p.grad for p in model.encoder.encoder.layers[1].parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
        model.clear_gradients()


def test_lnsr_noise_norm_is_relative_to_hidden_norm():
    h = paddle.randn([3, 5, 32]) * 7
    for noise in ("gaussian", "manifold"):
        eps = LNSR(sigma=0.05, noise=noise).make_noise(h)
        ratio = (eps.norm(axis=-1) / h.norm(axis=-1)).numpy()
        np.testing.assert_allclose(ratio, 0.05, rtol=1e-4)


def test_lnsr_in_training_matches_dropout_so_zero_noise_is_zero(toy, tmp_path):
    cfg = toy_cfg(toy, {"type": "LNSR", "sigma": 0.0}, tmp_path, iters=1)
    trainer = build_trainer(cfg)
    batch = next(iter(trainer.train_loader))
    trainer.model.train()
    _, logs = trainer.forward_loss(batch)
    assert float(logs["lnsr"]) == 0.0


def test_l2sp_zero_at_pretrained_point_and_grows_after_a_step():
    model = make_model()
    reg = L2SP(alpha=0.1)
    reg.setup(_T(model))
    assert float(reg.penalty(model)) == 0.0
    with paddle.no_grad():
        p = model.encoder.encoder.layers[0].linear1.weight
        p.set_value(p + 0.01)
    expected = 0.1 / 2 * (0.01 ** 2) * p.size
    assert float(reg.penalty(model)) == pytest.approx(expected, rel=1e-3)


def test_mixout_p0_equals_plain_fine_tuning(toy, tmp_path):
    weights = []
    for reg in ({"type": "NoRegularizer"}, {"type": "Mixout", "p": 0.0}):
        trainer = build_trainer(toy_cfg(toy, reg, tmp_path, iters=3))
        trainer.train()
        weights.append({k: v.numpy() for k, v in trainer.model.state_dict().items()})
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k], err_msg=k)


def test_mixout_mixes_towards_pretrained_weights_only_in_training(toy, tmp_path):
    trainer = build_trainer(toy_cfg(toy, {"type": "Mixout", "p": 0.5}, tmp_path, iters=1))
    lin = trainer.model.encoder.encoder.layers[0].linear1
    with paddle.no_grad():
        lin.weight.set_value(lin._mixout_target + 1.0)  # move away from the pre-trained point
    x = paddle.randn([2, 32])
    lin.eval()
    np.testing.assert_allclose(lin(x).numpy(), (x @ lin.weight + lin.bias).numpy(), rtol=1e-5)
    lin.train()
    outs = np.stack([lin(x).numpy() for _ in range(1000)])
    assert outs.std(axis=0).mean() > 0.1  # weights resampled
    np.testing.assert_allclose(outs.mean(axis=0), (x @ lin.weight + lin.bias).numpy(), atol=0.8)


def test_smart_adversarial_step_increases_divergence():
    model = make_model()
    model.eval()
    ids, tt = batch_of()
    reg = SMART(noise_std=1e-3, step_size=1e-2, epsilon=1e-2)
    mask = model.attention_mask(ids)
    emb = model.embed(ids, tt)
    out = model.head(model.run_from(emb, mask, 0)[-1], ids)

    def div(delta):
        return float(model.divergence(model.head(model.run_from(emb + delta, mask, 0)[-1], ids), out).mean())
    delta0, delta = reg.adversarial(model, emb, mask, ids, out)
    assert float(delta.abs().max()) <= 1e-2 + 1e-7
    assert div(delta) > 2 * div(delta0)


def test_smart_bregman_term_is_zero_when_ema_equals_model():
    model = make_model()
    model.eval()
    reg = SMART(lambda_s=0.0, mu=1.0)
    reg.setup(_T(model))
    ids, tt = batch_of()
    np.testing.assert_allclose(model.divergence(model(ids, tt), reg.ema(ids, tt)).numpy(), 0, atol=1e-7)


@pytest.mark.parametrize("reg", [
    {"type": "NoRegularizer"}, {"type": "LNSR", "sigma": 0.05, "weight": 1.0},
    {"type": "LNSR", "sigma": 0.05, "noise": "manifold", "layer": 1}, {"type": "L2SP", "alpha": 0.01},
    {"type": "Mixout", "p": 0.1}, {"type": "SMART", "lambda_s": 1.0, "mu": 1.0}])
def test_tiny_model_learns_toy_task_with_each_regularizer(toy, tmp_path, reg):
    trainer = build_trainer(toy_cfg(toy, reg, tmp_path))
    before = trainer.evaluate()["acc"]
    trainer.train()
    after = trainer.evaluate()["acc"]
    assert after >= 0.9 > before or after >= 0.95, (before, after)


def test_bad_regularizer_config_errors(toy, tmp_path):
    from ppzoo.core.errors import ConfigError
    with pytest.raises(ConfigError, match="LNSR"):
        build_trainer(toy_cfg(toy, {"type": "LSNR"}, tmp_path))
    with pytest.raises(ConfigError, match="layer_weights"):
        build_trainer(toy_cfg(toy, {"type": "LNSR", "layer_weights": [1.0]}, tmp_path))
