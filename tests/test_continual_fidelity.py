"""Continual learning against independent definitions: scikit-learn's C for two-class probes,
the LwF paper's distillation term (and Avalanche's summing over heads), the identical-model
zero check of LwF in both scenarios, Avalanche's EWC Fisher scaling re-derived in numpy,
stable EWC defaults, and the forgetting / backward-transfer definitions on a worked matrix."""
import copy
import os

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.continual.probe import LinearProbe, backward_transfer, forgetting, summarize
from ppzoo.core import load_config
from ppzoo.engine.trainer import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "continual")


# ---------------------------------------------------------------------- item: probe's C
@pytest.mark.parametrize("n_classes", [2, 3])
def test_probe_C_means_scikit_learns_C_for_two_and_more_classes(n_classes):
    """Every continual task has two classes; a two-column softmax with 0.5 ||W||^2 is
    scikit-learn's binary fit at 2C, so the probe must fit one vector there."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    score = x[:, :n_classes] + 0.7 * rng.normal(size=(200, n_classes))
    y = (score[:, 0] > 0).astype(int) if n_classes == 2 else np.argmax(score, 1)
    xt = rng.normal(size=(3000, 5))
    for C in (0.05, 1.0):
        mine = LinearProbe(C=C, standardize=False, tol=1e-10, max_iter=3000).fit(x, y)
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(x, y)
        np.testing.assert_allclose(mine.predict_proba(xt), ref.predict_proba(xt), atol=1e-4)
        assert np.mean(mine.predict(xt) == ref.predict(xt)) >= 0.999
    # the same probe is not scikit-learn's C=2 fit (what the two-column softmax gave)
    mine = LinearProbe(C=0.05, standardize=False, tol=1e-10, max_iter=3000).fit(x, y)
    other = LogisticRegression(C=0.1, tol=1e-10, max_iter=10000).fit(x, y)
    assert np.abs(mine.predict_proba(xt) - other.predict_proba(xt)).max() > 1e-2


# ---------------------------------------------------------------------- item: forgetting, BWT
def test_forgetting_forms_and_backward_transfer_on_the_worked_matrix():
    """Task 0 improves after task 1 (0.90 -> 0.95): the best-earlier forgetting (Chaudhry et
    al.) counts from 0.95, the after-learning form (Avalanche's) from 0.90 = -BWT."""
    A = [[.9, .5, .5], [.95, .85, .5], [.8, .6, .88]]
    # by hand: best: (0.95 - 0.8 + 0.85 - 0.6) / 2; learned: (0.9 - 0.8 + 0.85 - 0.6) / 2
    assert forgetting(A) == pytest.approx(0.200)
    assert forgetting(A, reference="learned") == pytest.approx(0.175)
    assert backward_transfer(A) == pytest.approx((0.8 - 0.9 + 0.6 - 0.85) / 2) == pytest.approx(-0.175)
    s = summarize(A, A, [0.5, 0.5, 0.5])
    assert s["acc_forgetting"] == pytest.approx(0.2) and s["forgetting_reference"] == "best"
    assert s["acc_backward_transfer"] == pytest.approx(-0.175) == s["rep_backward_transfer"]
    s = summarize(A, A, [0.5, 0.5, 0.5], reference="learned")
    assert s["rep_forgetting"] == pytest.approx(0.175)


# ---------------------------------------------------------------------- item: LwF
def _np_kd(new, old, T):
    """The LwF paper's distillation term up to a constant (KL(old_T || new_T), batch mean),
    as Avalanche's LwF computes it for one head."""
    def log_sm(z):
        z = z / T
        return z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    lo, ln = log_sm(old.astype(np.float64)), log_sm(new.astype(np.float64))
    return float(np.mean(np.sum(np.exp(lo) * (lo - ln), 1)))


def _lwf_trainer(tmp_path, scenario, **lwf):
    cfg = load_config(os.path.join(CFG, "digits_task_il.yml"))
    cfg["model"]["encoder"] = {"type": "IdentityEncoder", "out_dim": 64}  # no BatchNorm: train == eval
    cfg["continual"].update({"scenario": scenario, "epochs": 1, "strategy": {"type": "LwF", **lwf},
                             "split": {"by": "classes", "tasks": [[0, 1], [2, 3], [4, 5]],
                                       "train_per_class": 20, "test_per_class": 5}})
    return build_trainer(cfg, work_dir=str(tmp_path / scenario))


def _batch(ct, task, n=24):
    ds = ct.task_dataset([task], "train", augment=False)
    samples = [ds[i] for i in range(n)]
    return {k: paddle.to_tensor(np.stack([np.asarray(s[k]) for s in samples])) for k in ("image", "label", "task")}


@pytest.mark.parametrize("scenario", ["task_il", "class_il"])
def test_lwf_is_zero_with_zero_gradient_when_the_old_model_is_the_new_one(tmp_path, scenario):
    """Old == new must give a zero LwF term and gradient in both scenarios; distilling the
    task-masked training logits (earlier classes at -1e9) does not (0.14 here in task-IL)."""
    paddle.seed(0)
    ct = _lwf_trainer(tmp_path, scenario)
    lwf = ct.strategy
    ct.current_task = 2
    lwf.before_task(ct, 2)
    lwf.after_task(ct, 1)  # the snapshot is the model itself
    batch = _batch(ct, 2)
    _, logs = lwf.loss(ct, None, batch)
    params = [p for p in ct.model.parameters() if not p.stop_gradient]
    grads = paddle.grad(logs["loss_lwf"], params, allow_unused=True)
    assert abs(float(logs["loss_lwf"])) < 1e-6
    assert max(float(g.abs().max()) for g in grads if g is not None) < 1e-6
    # a different new model: the term is the KD of its unmasked outputs, summed over tasks 0, 1
    old = ct.model(batch["image"]).numpy()
    with paddle.no_grad():
        ct.model.head.weight.set_value(ct.model.head.weight + 0.3 * paddle.randn(ct.model.head.weight.shape))
    new = ct.model(batch["image"]).numpy()
    _, logs = lwf.loss(ct, None, batch)
    groups = [[0, 1], [2, 3]] if scenario == "task_il" else [[0, 1, 2, 3]]
    want = sum(_np_kd(new[:, g], old[:, g], 2.0) for g in groups)
    assert float(logs["loss_lwf"]) == pytest.approx(want, rel=1e-4)


def test_lwf_scale_options_against_the_papers_term(tmp_path):
    """Default: no T^2, per-task terms summed (Avalanche); ``t_squared`` and ``reduction: mean``
    scale it by T^2 and 1/(number of earlier tasks)."""
    rng = np.random.default_rng(3)
    new, old = rng.normal(size=(8, 10)).astype(np.float32), rng.normal(size=(8, 10)).astype(np.float32)
    ct = _lwf_trainer(tmp_path, "task_il", temperature=4.0)
    base = sum(_np_kd(new[:, g], old[:, g], 4.0) for g in ([0, 1], [2, 3]))
    got = float(ct.strategy.distillation(ct, paddle.to_tensor(new), paddle.to_tensor(old), 2))
    assert got == pytest.approx(base, rel=1e-5)
    from ppzoo.continual.strategies import LwF
    for kw, factor in (({"t_squared": True}, 16.0), ({"reduction": "mean"}, 0.5),
                       ({"t_squared": True, "reduction": "mean"}, 8.0)):
        s = LwF(temperature=4.0, **kw)
        got = float(s.distillation(ct, paddle.to_tensor(new), paddle.to_tensor(old), 2))
        assert got == pytest.approx(factor * base, rel=1e-5), kw


# ---------------------------------------------------------------------- item: EWC's scale
def _ewc_trainer(tmp_path, **ewc):
    cfg = load_config(os.path.join(CFG, "digits_task_il.yml"))
    cfg["model"]["encoder"] = {"type": "IdentityEncoder", "out_dim": 64}  # logits = x W + b
    cfg["continual"].update({"epochs": 1, "strategy": {"type": "EWC", **ewc},
                             "split": {"by": "classes", "tasks": [[0, 1], [2, 3]],
                                       "train_per_class": 11, "test_per_class": 5}})
    return build_trainer(cfg, work_dir=str(tmp_path / "ewc"))


def test_ewc_with_fisher_batch_and_2x_lambda_is_avalanches_penalty(tmp_path):
    """Avalanche's EWCPlugin: importance = mean over minibatches (the last one smaller) of
    (d CE_batch-mean / d theta)^2, penalty = ewc_lambda * sum imp (theta - theta*)^2.
    Re-derived here in numpy for logits = x W + b with the task-IL mask (softmax over the
    task's classes); ppzoo's ``fisher_batch: B, lam: 2 L, normalize: none`` must equal it."""
    B, L, n = 4, 3.0, 10
    ct = _ewc_trainer(tmp_path, lam=2 * L, fisher_samples=n, fisher_batch=B, normalize="none")
    ct.current_task = 0
    ct.strategy.before_task(ct, 0)
    W0, b0 = ct.model.head.weight.numpy().astype(np.float64), ct.model.head.bias.numpy().astype(np.float64)
    ct.strategy.after_task(ct, 0)
    ds = ct.task_dataset([0], "train", augment=False)
    pick = np.random.default_rng([ct.seed, 0, 21]).permutation(len(ds))[:n]  # the samples the strategy uses
    xs = np.stack([np.asarray(ds[int(i)]["image"], np.float64).reshape(-1) for i in pick])
    ys = np.array([int(ds[int(i)]["label"]) for i in pick])
    cls = [0, 1]
    imp_w, imp_b, nb = np.zeros_like(W0), np.zeros_like(b0), 0
    for s in range(0, n, B):
        x, y = xs[s:s + B], ys[s:s + B]
        z = x @ W0[:, cls] + b0[cls]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = np.zeros((len(y), W0.shape[1]))
        d[:, cls] = p - np.eye(len(cls))[[cls.index(v) for v in y]]  # d CE_i / d z
        imp_w += (x.T @ d / len(y)) ** 2
        imp_b += (d.mean(0)) ** 2
        nb += 1
    imp_w, imp_b = imp_w / nb, imp_b / nb
    rng = np.random.default_rng(5)
    dW, db = 0.1 * rng.normal(size=W0.shape), 0.1 * rng.normal(size=b0.shape)
    ct.model.head.weight.set_value((W0 + dW).astype(np.float32))
    ct.model.head.bias.set_value((b0 + db).astype(np.float32))
    want = L * (np.sum(imp_w * dW ** 2) + np.sum(imp_b * db ** 2))
    assert want > 1e-4
    assert float(ct.strategy.penalty(ct.model)) == pytest.approx(want, rel=1e-4)
    # at batch size 1 the same importance is ppzoo's per-sample Fisher
    from ppzoo.continual.strategies import compute_fisher
    lin = paddle.nn.Linear(3, 2)
    xs1 = np.random.default_rng(6).normal(size=(6, 3)).astype(np.float32)

    def loglik(i):
        return paddle.nn.functional.log_softmax(lin(paddle.to_tensor(xs1[i:i + 1])), axis=1), i % 2

    f1 = compute_fisher(loglik, [lin.weight], range(6), batch_size=1)[0]
    fb = compute_fisher(loglik, [lin.weight], range(6), batch_size=6)[0]
    per = [paddle.grad(loglik(i)[0][0, i % 2], [lin.weight])[0].numpy().astype(np.float64) for i in range(6)]
    np.testing.assert_allclose(f1, np.mean([g ** 2 for g in per], 0), rtol=1e-5)
    np.testing.assert_allclose(fb, np.mean(per, 0) ** 2, rtol=1e-5, atol=1e-12)


def _wide_input_cfg(strategy):
    """Class-incremental digits read by a linear head on inputs scaled to about +-10: a
    raw Fisher whose largest entry is about 2 after the first task."""
    cfg = load_config(os.path.join(CFG, "digits_task_il.yml"))
    cfg["model"]["encoder"] = {"type": "IdentityEncoder", "out_dim": 64}
    for key in ("train_dataset", "val_dataset"):
        for tf in cfg[key]["transforms"]:
            if tf["type"] == "Normalize":
                tf["std"] = [0.05]
    cfg["continual"].update({"scenario": "class_il", "epochs": [1, 10], "probe_init": False,
                             "strategy": strategy,
                             "split": {"by": "classes", "tasks": [[0, 1], [2, 3]],
                                       "train_per_class": 60, "test_per_class": 5}})
    return cfg


def test_ewc_defaults_train_stably_where_the_raw_fisher_is_large(tmp_path):
    """lam 100 on the raw Fisher (the former default) makes lr * lam * F_max = 10 > 2(1 + 0.9)
    here and diverges; the default (max-normalised Fisher, lam 10) trains with finite loss."""
    from ppzoo.continual.strategies import EWC
    from ppzoo.continual.trainer import TrainingDiverged
    assert (EWC().lam, EWC().normalize) == (10.0, "max")
    tr = build_trainer(_wide_input_cfg({"type": "EWC", "fisher_samples": 50}), work_dir=str(tmp_path / "new"))
    tr.train()
    assert np.isfinite(tr.summary["summary"]["final_acc"])
    assert max(float(f.max()) for f in tr.strategy.penalties[0][1]) == pytest.approx(1.0)
    old = {"type": "EWC", "fisher_samples": 50, "lam": 100.0, "normalize": "none"}
    with pytest.raises(TrainingDiverged, match="task 1 diverged"):
        build_trainer(_wide_input_cfg(old), work_dir=str(tmp_path / "old")).train()


def test_every_shipped_continual_config_keeps_the_default_ewc_penalty_stable():
    """With the max-normalised Fisher every direction of the summed penalty has curvature at
    most lam * (earlier tasks); momentum SGD is stable below lr * curvature = 2 (1 + momentum)."""
    import glob

    from ppzoo.continual.data import Scenario
    from ppzoo.continual.strategies import EWC
    for path in sorted(glob.glob(os.path.join(CFG, "*.yml"))):
        cfg = load_config(path)
        strategy = dict(cfg["continual"]["strategy"])
        ewc = EWC(**{k: v for k, v in strategy.items() if k != "type"}) if strategy["type"] == "EWC" else EWC()
        assert ewc.normalize == "max", path
        opt = cfg["optimizer"]
        momentum = float(opt.get("momentum", 0.0)) if opt["type"] == "Momentum" else 0.0
        split = dict(cfg["continual"]["split"])
        T = (len(split["factors"]) if split.get("by") == "factors"
             else Scenario(split, cfg["model"]["num_classes"]).num_tasks)
        assert float(opt["learning_rate"]) * ewc.lam * (T - 1) < 2 * (1 + momentum), path
