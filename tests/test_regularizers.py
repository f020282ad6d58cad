"""Regularizers do what their papers say, on a tiny random BERT and a toy task."""
import copy
import os

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.engine import build_trainer
from ppzoo.nlp.models import TransformerClassifier
from ppzoo.regularizers import LNSR, L2SP, SMART, Mixout

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
        "optimizer": {"type": "AdamW", "learning_rate": 3e-3,
                      "weight_decay": 0.0 if regularizer["type"] == "L2SP" else 0.01},
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
    paddle.seed(0)
    h = paddle.randn([3, 5, 32]) * 7
    for noise in ("gaussian", "manifold"):
        eps = LNSR(sigma=0.05, noise=noise).make_noise(h)
        ratio = (eps.norm(axis=-1) / h.norm(axis=-1)).numpy()
        np.testing.assert_allclose(ratio, 0.05, rtol=1e-4)


def test_derangement_has_no_fixed_point_and_is_a_permutation():
    from ppzoo.regularizers.regularizers import derangement
    paddle.seed(0)
    for n in (2, 3, 5, 16):
        for _ in range(50):
            d = derangement(n).numpy()
            assert sorted(d.tolist()) == list(range(n))
            assert (d != np.arange(n)).all(), d


def test_lnsr_manifold_noise_is_nonzero_for_every_example():
    paddle.seed(1)
    reg = LNSR(sigma=0.05, noise="manifold")
    for n in (1, 2, 4, 8):  # a lone example falls back to Gaussian noise
        h = paddle.randn([n, 5, 32])
        for _ in range(20):
            per_example = reg.make_noise(h).abs().sum(axis=[1, 2]).numpy()
            assert (per_example > 0).all(), per_example


def _count_layer_calls(model):
    calls = [0] * model.num_layers
    for i, layer in enumerate(model.encoder.encoder.layers):
        def hook(_layer, _inputs, _output, i=i):
            calls[i] += 1
        layer.register_forward_post_hook(hook)
    return calls


def test_lnsr_runs_each_layer_no_more_than_needed(toy, tmp_path):
    """Layers up to the injection layer run once (clean), the layers above twice (clean and
    noisy): no extra forward pass."""
    for layer in (0, 1):
        trainer = build_trainer(toy_cfg(toy, {"type": "LNSR", "layer": layer}, tmp_path / str(layer), iters=1))
        calls = _count_layer_calls(trainer.model)
        batch = next(iter(trainer.train_loader))
        trainer.model.train()
        trainer.forward_loss(batch)
        assert calls == [1 if i < layer else 2 for i in range(trainer.model.num_layers)], (layer, calls)


def test_lnsr_in_training_matches_dropout_so_zero_noise_is_zero(toy, tmp_path):
    cfg = toy_cfg(toy, {"type": "LNSR", "sigma": 0.0}, tmp_path, iters=1)
    trainer = build_trainer(cfg)
    batch = next(iter(trainer.train_loader))
    trainer.model.train()
    _, logs = trainer.forward_loss(batch)
    assert float(logs["lnsr"]) == 0.0


def test_l2sp_zero_at_pretrained_point_and_grows_after_a_step():
    model = make_model()
    reg = L2SP(alpha=0.1, beta=0.0)
    reg.setup(_T(model))
    assert float(reg.penalty(model)) == 0.0
    with paddle.no_grad():
        p = model.encoder.encoder.layers[0].linear1.weight
        p.set_value(p + 0.01)
    expected = 0.1 / 2 * (0.01 ** 2) * p.size
    assert float(reg.penalty(model)) == pytest.approx(expected, rel=1e-3)


def test_l2sp_head_term_and_defaults_follow_li_et_al():
    """alpha/2 ||w_enc - w0||^2 + beta/2 ||w_head||^2, with the head term on by default."""
    model = make_model()
    reg = L2SP()
    assert reg.alpha == 0.1 and reg.beta == 0.01
    reg.setup(_T(model))
    with paddle.no_grad():
        p = model.encoder.encoder.layers[0].linear1.weight
        p.set_value(p + 0.01)
    head = (model.classifier.weight.numpy().astype(np.float64) ** 2).sum() + \
        (model.classifier.bias.numpy().astype(np.float64) ** 2).sum()
    expected = 0.1 / 2 * (0.01 ** 2) * p.size + 0.01 / 2 * head
    assert float(reg.penalty(model)) == pytest.approx(expected, rel=1e-4)


def test_l2sp_refuses_weight_decay_toward_zero(toy, tmp_path):
    from ppzoo.core.errors import ConfigError
    cfg = toy_cfg(toy, {"type": "L2SP"}, tmp_path, iters=1)
    cfg["optimizer"].pop("weight_decay")  # AdamW's default decays toward zero
    with pytest.raises(ConfigError, match="weight_decay"):
        build_trainer(cfg)
    cfg["regularizer"]["allow_weight_decay"] = True
    build_trainer(cfg)


def test_l2sp_configs_replace_weight_decay_and_keep_the_head_term():
    import glob
    from ppzoo.core import load_config
    root = os.path.join(os.path.dirname(__file__), "..", "configs", "lnsr")
    files = sorted(glob.glob(os.path.join(root, "*_l2sp.yml")))
    assert files
    for f in files:
        cfg = load_config(f)
        assert cfg["optimizer"]["weight_decay"] == 0.0, f
        assert cfg["regularizer"]["beta"] > 0 and cfg["regularizer"]["alpha"] >= 0.1, f


def test_mixout_p0_equals_plain_fine_tuning(toy, tmp_path):
    weights = []
    for reg in ({"type": "NoRegularizer"}, {"type": "Mixout", "p": 0.0, "dropout": None}):
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


def test_mixout_masks_whole_input_units():
    """One draw per input unit (a row of Paddle's [in, out] weight), as the reference's
    mask per column of torch's [out, in] weight: each row of the mixed weight is either
    the target row or the rescaled current row."""
    paddle.seed(0)
    model = make_model()
    reg = Mixout(p=0.5)
    reg.setup(_T(model))
    lin = model.encoder.encoder.layers[0].linear1
    w0 = lin._mixout_target.numpy()
    with paddle.no_grad():
        lin.weight.set_value(lin._mixout_target + 1.0)
    w = lin.weight.numpy()
    lin.train()
    eye = paddle.eye(w.shape[0])
    seen = set()
    for _ in range(5):
        mixed = (lin(eye) - lin.bias).numpy()
        kept = np.abs(mixed - (w - 0.5 * w0) / 0.5).max(axis=1) < 1e-4
        dropped = np.abs(mixed - w0).max(axis=1) < 1e-4
        assert (kept ^ dropped).all()
        seen.update(kept.tolist())
    assert seen == {True, False}


def test_mixout_reference_scope_converts_the_head_and_turns_dropout_off():
    model = make_model()
    reg = Mixout(p=0.9)
    reg.setup(_T(model))
    assert model.classifier in reg.layers and model.encoder.pooler.dense in reg.layers
    np.testing.assert_array_equal(model.classifier._mixout_target.numpy(), model.classifier.weight.numpy())
    assert all(layer.p == 0.0 for layer in model.sublayers() if isinstance(layer, paddle.nn.Dropout))
    enc_only = make_model()
    Mixout(p=0.9, scope="encoder", dropout=None).setup(_T(enc_only))
    assert not hasattr(enc_only.classifier, "_mixout_target")
    assert enc_only.dropout.p == 0.1


def test_smart_adversarial_step_increases_divergence():
    model = make_model()
    model.eval()
    ids, tt = batch_of()
    reg = SMART(noise_std=1e-3, step_size=1e-2, epsilon=1e-2, projection="clip")
    mask = model.attention_mask(ids)
    emb = model.embed(ids, tt)
    out = model.head(model.run_from(emb, mask, 0)[-1], ids)

    def div(delta):
        return float(model.divergence(model.head(model.run_from(emb + delta, mask, 0)[-1], ids), out).mean())
    delta0, delta = reg.adversarial(model, emb, mask, ids, out)
    assert float(delta.abs().max()) <= 1e-2 + 1e-7
    assert div(delta) > 2 * div(delta0)


def test_smart_reference_projection_normalises_each_token():
    """mt-dnn / smart-pytorch: after the ascent step the perturbation is divided by its
    per-token inf-norm, so no coordinate sits at a tiny clip bound."""
    paddle.seed(0)
    model = make_model()
    model.eval()
    ids, tt = batch_of()
    reg = SMART()
    assert reg.projection == "normalize"
    mask = model.attention_mask(ids)
    emb = model.embed(ids, tt)
    out = model.head(model.run_from(emb, mask, 0)[-1], ids)
    delta0, delta = reg.adversarial(model, emb, mask, ids, out)
    top = delta.abs().max(axis=-1, keepdim=True)
    # m / (m + 1e-6) with m ~ 3e-5, the largest coordinate of the noise plus the step
    assert 0.9 < float(top.min()) and float(top.max()) <= 1.0
    at_bound = float((delta.abs() >= 0.99 * top).astype("float32").mean())
    assert at_bound < 0.2, at_bound
    clipped = SMART(epsilon=1e-5, projection="clip").adversarial(model, emb, mask, ids, out)[1]
    assert float((clipped.abs() >= 0.99e-5).astype("float32").mean()) > 0.9  # the inert old form


def test_smart_teacher_runs_in_eval_mode_and_updates_after_the_step(toy, tmp_path):
    cfg = toy_cfg(toy, {"type": "SMART", "lambda_s": 0.0, "mu": 1.0, "beta": 0.5}, tmp_path, iters=1)
    trainer = build_trainer(cfg)
    reg = trainer.regularizer
    w0 = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    batch = next(iter(trainer.train_loader))
    trainer.train_step(batch)
    assert not reg.ema.training
    inputs = trainer.inputs_of(batch)
    with paddle.no_grad():
        np.testing.assert_array_equal(reg.ema(*inputs).numpy(), reg.ema(*inputs).numpy())
    w1 = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
    ema = {k: v.numpy() for k, v in reg.ema.state_dict().items()}
    moved = [k for k in w0 if not np.array_equal(w0[k], w1[k])]
    assert moved
    for k in moved:
        np.testing.assert_allclose(ema[k], 0.5 * w0[k] + 0.5 * w1[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_smart_teacher_is_checkpointed_and_resumed(toy, tmp_path):
    cfg = toy_cfg(toy, {"type": "SMART", "lambda_s": 0.0, "mu": 1.0, "beta": 0.5}, tmp_path, iters=2)
    cfg["train"]["checkpoint_interval"] = 2
    trainer = build_trainer(cfg)
    trainer.train()
    ema = {k: v.numpy() for k, v in trainer.regularizer.ema.state_dict().items()}
    resumed = build_trainer(cfg, resume=True)
    assert resumed.iter == 2
    got = {k: v.numpy() for k, v in resumed.regularizer.ema.state_dict().items()}
    pretrained = {k: v.numpy() for k, v in resumed.model.state_dict().items()}
    assert any(not np.array_equal(ema[k], pretrained[k]) for k in ema)
    for k in ema:
        np.testing.assert_array_equal(got[k], ema[k], err_msg=k)


def test_smart_bregman_term_is_zero_when_ema_equals_model():
    model = make_model()
    model.eval()
    reg = SMART(lambda_s=0.0, mu=1.0)
    reg.setup(_T(model))
    ids, tt = batch_of()
    np.testing.assert_allclose(model.divergence(model(ids, tt), reg.ema(ids, tt)).numpy(), 0, atol=1e-7)


@pytest.mark.parametrize("reg", [
    {"type": "NoRegularizer"}, {"type": "LNSR", "sigma": 0.05, "weight": 0.1},  # 1.0 collapses 3 of 4 seeds of this 32-wide toy
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
