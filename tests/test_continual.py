"""Continual representation learning: probes, strategies, scenarios, resume, feature forgetting.

Each component is checked against its definition computed separately (scikit-learn's
logistic regression and ridge classifier, the Fisher information and KL divergence by
hand, the reservoir's inclusion probability by a chi-square test)."""
import copy
import json
import os

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.continual.data import ContinualTaskSet, MultiFactorImages, Scenario
from ppzoo.continual.probe import LinearProbe, forgetting, forward_transfer
from ppzoo.continual.strategies import ReservoirBuffer, compute_fisher, distillation_loss
from ppzoo.core import load_config
from ppzoo.core.builder import build_model
from ppzoo.core.errors import ConfigError, PPZooError
from ppzoo.engine.trainer import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "continual")


def _digits_cfg(**cont):
    cfg = load_config(os.path.join(CFG, "digits_task_il.yml"))
    cfg["model"]["encoder"]["width"] = 8
    cfg["continual"].update({"epochs": 1, "split": {"by": "classes", "tasks": [[0, 1], [2, 3], [4, 5]],
                                                    "train_per_class": 60, "test_per_class": 30}})
    cfg["continual"].update(cont)
    return cfg


# ---------------------------------------------------------------------- probes
def test_probe_on_identity_encoder_equals_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.8 * rng.normal(size=(300, 3)), 1)
    model = build_model({"type": "ContinualNet", "num_classes": 3,
                         "encoder": {"type": "IdentityEncoder", "out_dim": 6}})
    model.eval()
    feats = model.probe_features(paddle.to_tensor(x), 0).numpy()
    np.testing.assert_array_equal(feats, x)
    mine = LinearProbe(C=0.3, standardize=False, tol=1e-10, max_iter=2000).fit(feats, y)
    ref = LogisticRegression(C=0.3, tol=1e-10, max_iter=5000).fit(x, y)
    np.testing.assert_allclose(mine.predict_proba(feats), ref.predict_proba(x), atol=2e-4)
    assert np.mean(mine.predict(feats) == ref.predict(x)) == 1.0
    ridge = LinearProbe(solver="ridge", alpha=2.0, standardize=False).fit(feats, y)
    ref_r = RidgeClassifier(alpha=2.0).fit(x, y)
    np.testing.assert_allclose(ridge.decision_function(feats), ref_r.decision_function(x), atol=1e-6)


def test_forgetting_and_forward_transfer_by_hand():
    R = np.array([[0.9, 0.6, 0.5], [0.7, 0.95, 0.6], [0.8, 0.85, 0.9]])
    # task 0: best earlier 0.9 - final 0.8; task 1: 0.95 - 0.85
    assert forgetting(R) == pytest.approx((0.1 + 0.1) / 2)
    # from_seen=False also counts rows before the task was learned (task 1: max(0.6, 0.95))
    assert forgetting(R, from_seen=False) == pytest.approx(0.1)
    assert forward_transfer(R, [0.5, 0.55, 0.45]) == pytest.approx(((0.6 - 0.55) + (0.6 - 0.45)) / 2)


# ---------------------------------------------------------------------- strategies' pieces
def test_reservoir_buffer_keeps_a_uniform_sample_of_the_stream():
    from scipy.stats import chisquare
    n, cap, trials = 40, 8, 3000
    counts = np.zeros(n)
    for s in range(trials):
        buf = ReservoirBuffer(cap)
        rng = np.random.default_rng(s)
        buf.add([(0, i) for i in range(n // 2)], rng)  # two tasks' streams one after the other
        buf.add([(1, i) for i in range(n // 2)], rng)
        assert len(buf.items) == cap and len(set(buf.items)) == cap and buf.n_seen == n
        for t, i in buf.items:
            counts[t * n // 2 + i] += 1
    assert chisquare(counts).pvalue > 1e-3, counts  # every item kept with probability cap / n
    assert abs(counts.mean() / trials - cap / n) < 1e-9


def test_ewc_fisher_equals_hand_computation():
    paddle.seed(0)
    rng = np.random.default_rng(1)
    lin = paddle.nn.Linear(4, 3)
    xs = rng.normal(size=(5, 4)).astype(np.float32)
    ys = rng.integers(0, 3, size=5)

    def loglik(i):
        return paddle.nn.functional.log_softmax(lin(paddle.to_tensor(xs[i:i + 1])), axis=1), ys[i]

    fw, fb = compute_fisher(loglik, [lin.weight, lin.bias], range(5))
    W, b = lin.weight.numpy().astype(np.float64), lin.bias.numpy().astype(np.float64)
    hw, hb = np.zeros_like(W), np.zeros_like(b)
    for x, y in zip(xs.astype(np.float64), ys):
        z = x @ W + b
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        d = np.eye(3)[y] - p  # d log p_y / d z
        hw += np.outer(x, d) ** 2
        hb += d ** 2
    np.testing.assert_allclose(fw, hw / 5, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(fb, hb / 5, rtol=1e-4, atol=1e-7)


def test_lwf_distillation_is_zero_when_models_agree_and_a_kl_otherwise():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 4)).astype(np.float32)
    b = rng.normal(size=(6, 4)).astype(np.float32)
    assert abs(float(distillation_loss(paddle.to_tensor(a), paddle.to_tensor(a), 2.0))) < 1e-7
    T = 2.0
    sm = lambda z: np.exp(z / T) / np.exp(z / T).sum(1, keepdims=True)  # noqa: E731
    p, q = sm(b.astype(np.float64)), sm(a.astype(np.float64))
    kl = np.mean(np.sum(p * (np.log(p) - np.log(q)), 1))
    assert float(distillation_loss(paddle.to_tensor(a), paddle.to_tensor(b), T)) == pytest.approx(kl, rel=1e-5)
    assert float(distillation_loss(paddle.to_tensor(a), paddle.to_tensor(b), T, t_squared=True)) == \
        pytest.approx(T * T * kl, rel=1e-5)


# ---------------------------------------------------------------------- scenarios and data
def test_class_split_of_digits_and_factor_split_of_synthetic():
    sc = Scenario({"by": "classes", "classes_per_task": 2, "order_seed": 3}, num_classes=10)
    assert sorted(c for t in sc.tasks for c in t["classes"]) == list(range(10)) and sc.num_tasks == 5
    ds = ContinualTaskSet({"type": "DigitsDataset", "split": "train"},
                          {"by": "classes", "tasks": [[0, 1], [7, 9]], "train_per_class": 20}, tasks=[1])
    assert sorted(set(ds.labels.tolist())) == [7, 9] and len(ds) == 40
    assert all(int(ds.load(i)["label"]) == int(ds.base.labels[ds.indices[i]]) for i in range(len(ds)))
    syn = {"type": "MultiFactorImages", "num_samples": 60, "image_size": 16}
    fs = ContinualTaskSet(syn, {"by": "factors", "factors": ["color", "position"], "disjoint": True}, tasks=[0, 1])
    base = fs.base
    assert len(fs) == 60
    for i in (0, 45):
        s = fs.load(i)
        t = int(s["task"])
        f = ["color", "position"][t]
        assert int(s["label"]) == 2 * t + base.factor(int(fs.indices[i]), f)


def test_synthetic_generator_is_seeded_and_factors_are_visible():
    a = MultiFactorImages(num_samples=20, image_size=16, seed=5)
    b = MultiFactorImages(num_samples=20, image_size=16, seed=5)
    c = MultiFactorImages(num_samples=20, image_size=16, seed=5, split="test")
    np.testing.assert_array_equal(a.render(3), b.render(3))
    assert not np.array_equal(a.render(3), c.render(3))
    # colour 0 is red, colour 1 green: the object's mean red minus green says which
    img = MultiFactorImages(num_samples=200, image_size=32, seed=1, noise=0.0)
    diff = np.array([img.render(i)[..., 0].astype(float).mean() - img.render(i)[..., 1].astype(float).mean()
                     for i in range(200)])
    col = img.factors[:, img.factor_names.index("color")]
    assert diff[col == 0].min() > diff[col == 1].max()


def test_bad_continual_configs_fail_with_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="classes_per_task"):
        Scenario({"by": "classes", "classes_per_task": 3}, num_classes=10)
    with pytest.raises(ConfigError, match="unknown keys"):
        Scenario({"by": "classes", "clases_per_task": 2}, num_classes=10)
    with pytest.raises(ConfigError, match="no labelled factors"):
        Scenario({"by": "factors", "factors": ["color"]}, num_classes=10)
    cfg = _digits_cfg(strategy={"type": "GatingAdapters"})
    with pytest.raises(ConfigError, match="adapter"):
        build_trainer(cfg, work_dir=str(tmp_path / "a"))
    cfg = _digits_cfg(scenaro="task_il")
    with pytest.raises(ConfigError, match="scenario"):
        build_trainer(cfg, work_dir=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="continual.forgetting must be best or learned"):
        build_trainer(_digits_cfg(forgetting="max"), work_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="LwF.reduction"):
        build_trainer(_digits_cfg(strategy={"type": "LwF", "reduction": "avg"}), work_dir=str(tmp_path / "d"))


# ---------------------------------------------------------------------- runs
def _final(tr):
    return {k: v.numpy().copy() for k, v in tr.model.state_dict().items()}


def test_resume_at_a_task_boundary_reproduces_the_uninterrupted_run(tmp_path):
    cfg = _digits_cfg(scenario="class_il", strategy={"type": "Replay", "capacity": 30, "batch_size": 8})
    full = build_trainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "full")).train()
    part = copy.deepcopy(cfg)
    part["continual"]["stop_after"] = 0
    build_trainer(part, work_dir=str(tmp_path / "cut")).train()
    with pytest.raises(PPZooError, match="--resume"):
        build_trainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "cut"))
    resumed = build_trainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "cut"), resume=True)
    assert resumed.start_task == 1 and len(resumed.strategy.buffer.items) == 30
    resumed.train()
    a, b = _final(full), _final(resumed)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    np.testing.assert_allclose(full.results["A"], resumed.results["A"])
    np.testing.assert_allclose(full.results["R"], resumed.results["R"])
    assert os.path.isfile(tmp_path / "cut" / "results.json")
    assert sorted(os.listdir(tmp_path / "cut")) == sorted(os.listdir(tmp_path / "full"))


@pytest.mark.parametrize("trunk", ["first_task", "always"])
def test_gating_adapters_leave_earlier_tasks_outputs_unchanged(tmp_path, trunk):
    cfg = _digits_cfg(strategy={"type": "GatingAdapters", "trunk": trunk})
    cfg["model"].update({"num_tasks": 3, "adapter": {"bottleneck": 8, "gate": "vector"}})
    cfg["optimizer"]["weight_decay"] = 1e-3  # decay must not move frozen parameters either
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32))
    cut = copy.deepcopy(cfg)
    cut["continual"]["stop_after"] = 0
    tr = build_trainer(cut, work_dir=str(tmp_path / "run")).train()
    tr.model.eval()
    before = tr.model(x, task=0).numpy()
    tr2 = build_trainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "run"), resume=True).train()
    tr2.model.eval()
    after = tr2.model(x, task=0).numpy()
    if trunk == "first_task":
        np.testing.assert_array_equal(before, after)
        assert tr2.results["A"][2][0] == tr2.results["A"][0][0]  # task 0's accuracy is kept exactly
    else:  # the control: a trunk that keeps training moves task 0's outputs
        assert np.abs(before - after).max() > 1e-4


def test_fine_tuning_forgets_the_first_factor_that_joint_training_keeps(tmp_path):
    """On the synthetic data the first task's factor (stripe orientation) is decodable after
    task 0, and after the colour task it is lost under fine-tuning but not under joint training."""
    R = {}
    for strat in ("Naive", "Joint"):
        cfg = load_config(os.path.join(CFG, "synthetic_factors.yml"))
        cfg["train_dataset"]["num_samples"] = 1000
        cfg["val_dataset"]["num_samples"] = 400
        cfg["continual"]["split"]["factors"] = ["stripes", "color"]
        cfg["continual"]["strategy"] = {"type": strat}
        tr = build_trainer(cfg, work_dir=str(tmp_path / strat)).train()
        R[strat] = np.array(tr.results["R"])
    assert R["Naive"][0, 0] > 0.9 and R["Joint"][0, 0] > 0.9      # learned in task 0
    assert R["Joint"][1, 0] > 0.9                                  # joint keeps it
    assert R["Naive"][1, 0] < R["Joint"][1, 0] - 0.2              # fine-tuning loses it


def test_split_cifar10_tasks_from_the_shared_data(data_root):
    root = os.path.join(data_root, "cifar10")
    if not os.path.isdir(root):
        pytest.skip(f"CIFAR-10 not found under {root}")
    split = {"by": "classes", "classes_per_task": 2, "train_per_class": 5}
    ds = ContinualTaskSet({"type": "ImageFolder", "root": os.path.join(root, "train")}, split, tasks=[4])
    assert ds.base.class_names[8:] == ["ship", "truck"] and sorted(set(ds.labels.tolist())) == [8, 9]
    s = ds.load(0)
    assert s["image"].shape == (32, 32, 3) and int(s["task"]) == 4


def test_train_and_eval_tools_run_a_continual_config(tmp_path, capsys):
    """tools/train.py trains the tasks (a second start without --resume is one error line),
    tools/eval.py scores the saved model over all classes."""
    from test_tools import tool_inprocess  # the tools' main() in this process

    def tool(name, *args):
        done = tool_inprocess(name, *args, capsys=capsys)
        return done.returncode, done

    cfg = os.path.join(CFG, "digits_class_il.yml")
    opts = ["--opts", "model.encoder.width=8", "continual.split.train_per_class=30",
            "continual.split.test_per_class=10", "continual.split.classes_per_task=5"]
    code, _ = tool("train.py", "-c", cfg, "--save-dir", tmp_path / "run", *opts)
    assert code == 0
    with open(tmp_path / "run" / "results.json") as f:
        res = json.load(f)
    assert np.array(res["A"]).shape == (2, 2) and np.array(res["R"]).shape == (2, 2)
    assert set(res["summary"]) >= {"final_acc", "avg_probe", "rep_forgetting", "forward_transfer",
                                   "acc_backward_transfer", "rep_backward_transfer"}
    A = np.array(res["A"])
    assert res["summary"]["acc_backward_transfer"] == pytest.approx(A[1, 0] - A[0, 0])
    code, out = tool("train.py", "-c", cfg, "--save-dir", tmp_path / "run", *opts)
    assert code == 2 and "--resume" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    code, out = tool("eval.py", "-c", cfg, "--weights", tmp_path / "run" / "continual", *opts)
    assert code == 0 and "top1" in out.stdout


def test_a_diverging_task_stops_with_one_clear_error(tmp_path):
    from ppzoo.continual.trainer import TrainingDiverged
    cfg = _digits_cfg()
    cfg["optimizer"]["learning_rate"] = float("nan")
    with pytest.raises(TrainingDiverged, match="task 0 diverged at iteration 2"):
        build_trainer(cfg, work_dir=str(tmp_path / "run")).train()


def test_resume_in_the_middle_of_a_task_reproduces_the_uninterrupted_run(tmp_path):
    """SIGINT during task 1 saves task_1/latest and stops; --resume finishes task 1 from there
    (the engine's exact resume) with the continual state of task 0, and ends as the
    uninterrupted run does."""
    import signal

    from ppzoo.core.builder import HOOKS
    from ppzoo.engine.hooks import Hook

    class StopInTask(Hook):
        def __init__(self, folder, at):
            self.folder, self.at = folder, int(at)

        def after_iter(self, trainer):
            if os.path.basename(trainer.work_dir) == self.folder and trainer.iter == self.at:
                os.kill(os.getpid(), signal.SIGINT)

    HOOKS.register(StopInTask, name="ContinualTestStopInTask", force=True)
    cfg = _digits_cfg(strategy={"type": "EWC", "lam": 10.0, "fisher_samples": 20})
    cfg["continual"]["epochs"] = 2
    cfg["train"]["checkpoint_interval"] = 1
    full = build_trainer(copy.deepcopy(cfg), work_dir=str(tmp_path / "full")).train()
    cut = copy.deepcopy(cfg)
    cut["hooks"] = [{"type": "ContinualTestStopInTask", "folder": "task_1", "at": 3}]
    from ppzoo.core.errors import PPZooError
    with pytest.raises(PPZooError, match="interrupted"):
        build_trainer(cut, work_dir=str(tmp_path / "cut")).train()
    with open(tmp_path / "cut" / "task_1" / "latest" / "state.json") as f:
        assert json.load(f)["iter"] == 3
    resumed = build_trainer(copy.deepcopy(cut), work_dir=str(tmp_path / "cut"), resume=True).train()
    with open(tmp_path / "cut" / "task_1" / "train.log") as f:
        assert "at iter 3" in f.read()  # task 1 continued from its latest/, not from its start
    a, b = _final(full), _final(resumed)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    np.testing.assert_allclose(full.results["R"], resumed.results["R"])


def test_a_damaged_probe_sample_stops_with_its_file_instead_of_hanging():
    """The probes read data outside the engine's training loop; a file that cannot be read
    there is one error naming it (a bare paddle DataLoader left the main thread waiting)."""
    from types import SimpleNamespace

    from _threads import run_bounded

    import paddle

    from ppzoo.continual.trainer import ContinualTrainer
    from ppzoo.core.errors import DataError

    class Damaged(paddle.io.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 5:
                raise DataError("cannot read image /data/task1/5.jpg: Truncated File Read")
            return {"image": np.zeros((3, 4, 4), np.float32), "task": np.int64(0)}

    loader = ContinualTrainer._loader(SimpleNamespace(probe_batch=4), Damaged())
    finished, err = run_bounded(lambda: [None for _ in loader])
    assert finished, "the probe loader hung on a damaged sample"
    assert isinstance(err, DataError) and "/data/task1/5.jpg" in str(err) \
        and "probe dataset (Damaged)" in str(err)
