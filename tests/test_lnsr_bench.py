"""The LNSR benchmark's own machinery: Holm's correction, evaluating a trained model on another
task's dev set (domain shift) and the side-by-side step timing, on a tiny random BERT."""
import argparse
import importlib.util
import os

import numpy as np
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["good", "bad", "cat", "dog", "red", "blue", "big", "small", "tree", "car", "sun", "moon"]
ENCODER = dict(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("lnsr_glue_bench", os.path.join(ROOT, "benchmarks", "lnsr_glue.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def args_of(**kw):
    base = dict(max_seq_len=16, train_examples=64, lr=3e-3, pooling=None, epochs=1, batch_size=16,
                timing=2, timing_steps=2)
    return argparse.Namespace(**dict(base, **kw))


def test_holm_equals_the_step_down_procedure(bench):
    """Adjusted p <= alpha exactly where Holm's procedure (reject the k-th smallest p while
    p_(k) <= alpha / (m - k + 1)) rejects at level alpha."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = list(rng.uniform(0, 0.2, size=rng.integers(1, 9)))
        adj = bench.holm(p)
        for alpha in np.linspace(0.001, 0.3, 60):
            rejected = set()
            for k, i in enumerate(np.argsort(p)):
                if p[i] > alpha / (len(p) - k):
                    break
                rejected.add(i)
            assert {i for i, a in enumerate(adj) if a <= alpha} == rejected
    assert np.isnan(bench.holm([0.01, float("nan")])[1]) and bench.holm([0.01, float("nan")])[0] == 0.01


def test_transfer_only_between_tasks_that_train_the_same(bench):
    """mrpc2rte trains exactly what mrpc trains (every method), so mrpc's runs evaluate it; rte
    trains on other data and is refused, naming the config and the section."""
    args = args_of()
    assert bench.check_transfer("mrpc", "mrpc2rte", bench.METHODS, args) == []
    assert bench.check_transfer("rte", "rte2mrpc", bench.METHODS, args) == []
    problems = bench.check_transfer("rte", "mrpc2rte", ["plain"], args)
    assert problems and "mrpc2rte_plain.yml" in problems[0] and "train_dataset" in problems[0]


def test_minilm_configs_decay_unless_the_schedule_is_constant(bench):
    """On the real configs (MiniLM base: PolynomialDecay) the constant schedule removes the
    decay and the default keeps it; each named page runs in its own work folder.  (Before the toy fixture,
    which points the module at its own configs.)"""
    lin = bench.run_config("sst2", "lnsr", 0, args_of(lr_schedule="linear", name="a"))
    con = bench.run_config("sst2", "lnsr", 0, args_of(lr_schedule="constant", name="b"))
    assert lin["lr_scheduler"]["type"] == "PolynomialDecay" and not con.get("lr_scheduler")
    assert lin["output_dir"] != con["output_dir"] and lin["output_dir"].endswith("a")

@pytest.fixture(scope="module")
def toy(tmp_path_factory, bench):
    """Tasks ``toy`` and ``toyshift`` (same training data, another dev set) with configs for
    plain and LNSR; the benchmark reads them instead of configs/lnsr/."""
    root = tmp_path_factory.mktemp("toybench")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("dev", 32), ("shift", 24)):
        rows = ["sentence\tlabel"]
        for i in range(n):  # the shifted dev set has another label balance (1 in 3 positive)
            words, y = list(rng.choice(WORDS[1:], 4)), int(i % 3 == 0) if split == "shift" else i % 2
            if y:
                words[rng.integers(4)] = "good"
            rows.append(" ".join(words) + f"\t{y}")
        (root / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    data = dict(type="GlueTSV", text_a="sentence", label="label", tokenizer=str(root), max_seq_len=16)
    regs = {"plain": {"type": "NoRegularizer"}, "lnsr": {"type": "LNSR", "weight": 1.0, "sigma": 0.05}}
    for task, dev in (("toy", "dev"), ("toyshift", "shift")):
        for m, reg in regs.items():
            cfg = {"model": {"type": "TransformerClassifier", "num_classes": 2, "encoder": ENCODER},
                   "train_dataset": dict(data, path=str(root / "train.tsv")),
                   "val_dataset": dict(data, path=str(root / f"{dev}.tsv")),
                   "loss": {"type": "CrossEntropyLoss"}, "metrics": [{"type": "Accuracy"}],
                   "eval": {"best_metric": "acc"}, "optimizer": {"type": "AdamW", "learning_rate": 1e-3},
                   "train": {"epochs": 1, "batch_size": 16, "input_keys": ["input_ids", "token_type_ids"]},
                   "trainer": {"type": "FineTuneTrainer"}, "regularizer": reg, "seed": 0}
            (root / f"{task}_{m}.yml").write_text(yaml.safe_dump(cfg))
    mp = pytest.MonkeyPatch()
    mp.setattr(bench, "config_path", lambda task, method: str(root / f"{task}_{method}.yml"))
    mp.setattr(bench, "OUTPUT", str(root / "output"))
    yield root
    mp.undo()


def test_transfer_rows_evaluate_the_trained_model_on_the_other_dev_set(bench, toy):
    """One training run gives the in-domain row and the shifted row; the shifted value is what
    the same weights score on the other dev set, computed here separately."""
    import paddle
    from ppzoo.engine import build_trainer
    args = args_of(keep_checkpoints=True)
    rows = bench.run_one("toy", "lnsr", 1, args, transfer=["toyshift"])
    assert [r["task"] for r in rows] == ["toy", "toyshift"] and rows[1]["trained_on"] == "toy"
    work = os.path.join(str(toy / "output"), "bench_lnsr", "toy_lnsr_s1")
    cfg = bench.run_config("toyshift", "lnsr", 1, args)
    cfg.update(name="check", output_dir=str(toy / "output" / "check"))
    t = build_trainer(cfg, build_train=False, overwrite=True)
    t.model.set_state_dict(paddle.load(os.path.join(work, "latest", "model.pdparams")))
    assert t.evaluate()["acc"] == pytest.approx(rows[1]["value"], abs=1e-9)
    assert rows[0]["value"] == pytest.approx(rows[0]["results"]["acc"])


def test_finished_runs_drop_their_checkpoints_unless_asked_to_keep_them(bench, toy):
    """A grid of MiniLM runs at ~0.5 GB of checkpoints each fills a disk: by default a run keeps
    its config, log and metrics and loses best/ and latest/ once its rows are read."""
    rows = bench.run_one("toy", "plain", 2, args_of())
    work = os.path.join(str(toy / "output"), "bench_lnsr", "toy_plain_s2")
    assert rows[0]["value"] == pytest.approx(rows[0]["results"]["acc"])
    left = sorted(os.listdir(work))
    assert "best" not in left and "latest" not in left
    assert {"config.yml", "metrics.jsonl"} <= set(left)
    bench.run_one("toy", "plain", 2, args_of(keep_checkpoints=True))
    assert os.path.exists(os.path.join(work, "latest", "model.pdparams"))


def test_timing_interleaves_methods_and_rotates_their_order(bench, toy):
    recs = list(bench.time_steps("toy", ["plain", "lnsr"], args_of(timing=3, timing_steps=2)))
    assert len(recs) == 6 and all(r["steps"] == 2 and r["median_step_s"] > 0 for r in recs)
    assert [r["method"] for r in recs] == ["plain", "lnsr", "lnsr", "plain", "plain", "lnsr"]


def test_page_rewrite_keeps_the_written_reading(bench, toy, tmp_path):
    """Rewriting the page from the runs file replaces the tables and keeps the text below the
    reading marker; the paired table carries Holm's column."""
    args = args_of(tasks=["toy"])
    pr = bench.protocol_of(args)
    rows = [dict(task="toy", method=m, seed=s, value=0.5 + 0.01 * s + (0.02 if m == "lnsr" else 0.0),
                 median_step_s=1.0, protocol=pr, code="abc", command="--tasks toy",
                 train_mean_losses={"loss": 0.5}) for m in ("plain", "lnsr") for s in range(3)]
    md, png = str(tmp_path / "page.md"), str(tmp_path / "page.png")
    bench.summarize(rows, md, png, args)
    with open(md, "a") as f:
        f.write("\n" + bench.READING_MARKER + "\nWhat the seeds support.\n")
    bench.summarize(rows, md, png, args)
    text = open(md).read()
    assert text.count("What the seeds support.") == 1 and text.count(bench.READING_MARKER) == 1
    assert "t-test p (Holm)" in text and "| toy | lnsr | 3 | +0.0200 |" in text


def test_constant_schedule_keeps_the_rate_for_the_whole_run(bench, toy, tmp_path, monkeypatch):
    """--lr-schedule constant: every step of the run is taken at --lr although the config
    decays (as the MiniLM base does), while the default keeps the config's linear decay to
    zero; the protocol records only the non-default."""
    from ppzoo.engine import build_trainer
    cfg = yaml.safe_load((toy / "toy_plain.yml").read_text())
    cfg["lr_scheduler"] = {"type": "PolynomialDecay", "decay_steps": "auto", "end_lr": 0.0}
    (tmp_path / "decay_plain.yml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(bench, "config_path", lambda task, method: str(tmp_path / f"{task}_{method}.yml"))
    lrs = {}
    for sched in ("constant", "linear"):
        t = build_trainer(bench.run_config("decay", "plain", 0, args_of(lr=2e-3, epochs=2, lr_schedule=sched)),
                          overwrite=True)
        seen = []
        orig = t.train_step

        def step(batch, t=t, seen=seen, orig=orig):
            seen.append(t.optimizer.get_lr())
            orig(batch)
        t.train_step = step
        t.train()
        lrs[sched] = seen
    n = len(lrs["constant"])
    assert n == 2 * 64 // 16 and lrs["constant"] == [pytest.approx(2e-3)] * n
    # linear decay from 2e-3 to 0 over n steps, as written independently here
    assert lrs["linear"] == pytest.approx([2e-3 * (1 - k / n) for k in range(n)])
    assert bench.protocol_of(args_of(lr_schedule="constant"))["lr_schedule"] == "constant"
    assert "lr_schedule" not in bench.protocol_of(args_of(lr_schedule="linear"))
    assert "constant" in bench.protocol_text(bench.protocol_of(args_of(lr_schedule="constant")))


def test_fall_and_peak_are_compared_with_plain_paired_by_seed(bench):
    """The fall table: per seed, (max of the curve - last value) of a method minus plain's, and
    the same for the peak, tested with scipy's paired t-test and Wilcoxon directly."""
    from scipy import stats
    rng = np.random.default_rng(3)
    rows, falls, peaks = [], {"plain": [], "lnsr": []}, {"plain": [], "lnsr": []}
    for m in ("plain", "lnsr"):
        for s in range(5):
            vals = list(np.round(rng.uniform(0.5, 0.7, 6), 3))
            rows.append(dict(task="sst2", method=m, seed=s, value=vals[-1],
                             curve=[{"epoch": 5 * (i + 1), "iter": i, "value": v} for i, v in enumerate(vals)]))
            falls[m].append(max(vals) - vals[-1])
            peaks[m].append(max(vals))
    lines = bench.fall_lines(rows, "sst2", "acc")
    row = next(line for line in lines if line.startswith("| lnsr |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    fd = np.mean(np.subtract(falls["lnsr"], falls["plain"]))
    pd_ = np.mean(np.subtract(peaks["lnsr"], peaks["plain"]))
    assert cells[1] == "5" and float(cells[2]) == pytest.approx(fd, abs=5e-5)
    assert float(cells[3]) == pytest.approx(stats.ttest_rel(falls["lnsr"], falls["plain"]).pvalue, abs=5e-4)
    assert float(cells[4]) == pytest.approx(stats.wilcoxon(falls["lnsr"], falls["plain"]).pvalue, abs=5e-4)
    assert float(cells[5]) == pytest.approx(pd_, abs=5e-5)
    assert float(cells[6]) == pytest.approx(stats.ttest_rel(peaks["lnsr"], peaks["plain"]).pvalue, abs=5e-4)
