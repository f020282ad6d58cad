"""LNSR benchmark: MiniLM-L6 fine-tuned on GLUE dev sets, plain vs LNSR vs L2-SP vs Mixout vs SMART.

Every run is a config of configs/lnsr/ trained by the shared FineTuneTrainer, scaled down by
--opts-style overrides (a fixed train subsample, max_seq_len, epochs).  Results are appended
to a JSON-lines file after every run, and the table/plot are rewritten from it, so a partial
run still leaves honest partial results.

    nice -n 5 .venv/bin/python benchmarks/lnsr_glue.py --tasks sst2 mrpc2rte --seeds 0 1 2

A task is any ``<task>`` with configs ``configs/lnsr/<task>_<method>.yml`` (e.g. ``mrpc2rte``:
train on MRPC, evaluate on RTE); every task is checked before any training (configs present,
data readable, the metric ``eval.best_metric`` names computed on a dummy prediction), so a
task that cannot be scored stops the command before it costs a run.  The metric and whether a
majority-class line applies come from the config.

The defaults (256 training examples, 3 epochs, lr 1e-4) are the few-sample regime the paper
studies.  A method may name a variant with regularizer overrides, e.g.
``--methods lnsr@weight=0.1``; variants get rows of their own.  Runs go to
``<out>/<name>_runs.jsonl`` (one line per run, with the code's git commit) and the page to
``<out>/<name>.md``; ``--report`` rewrites the page and plot from the runs file.  Every method
is compared with plain fine-tuning paired over seeds (paired t-test and Wilcoxon signed-rank
test of the metric, Pitman-Morgan test of equal variances).
"""
import argparse
import collections
import functools
import json
import os
import platform
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, CPU_SETTINGS, cpu_model, last_record  # noqa: E402  (also tunes the CPU before any math)

METHODS = ["plain", "lnsr", "l2sp", "mixout", "smart"]


def config_path(task, method):
    return os.path.join(ROOT, "configs", "lnsr", f"{task}_{method}.yml")


@functools.lru_cache(maxsize=None)
def task_info(task):
    """(metric name, is classification) of ``task`` from its plain config."""
    from ppzoo.core import load_config
    cfg = load_config(config_path(task, "plain"))
    metric = (cfg.get("eval") or {}).get("best_metric")
    return metric, (cfg.get("val_dataset") or {}).get("task", "classification") == "classification"


def check_task(task, methods):
    """Everything a run of ``task`` needs, before any training; exits with the problems."""
    import numpy as np
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS, METRICS
    problems = []
    for m in methods:
        path = config_path(task, parse_method(m)[0])
        if not os.path.isfile(path):
            problems.append(f"no config {os.path.relpath(path, ROOT)} for method {m}")
    if problems:
        return problems
    cfg = load_config(config_path(task, "plain"))
    metric = (cfg.get("eval") or {}).get("best_metric")
    if not metric:
        return [f"configs/lnsr/{task}_plain.yml sets no eval.best_metric (the benchmark's metric)"]
    try:
        for key in ("train_dataset", "val_dataset"):
            cfg_key = dict(cfg[key], max_examples=8)
            ds = DATASETS.build(cfg_key, key_path=key)
            if len(ds) == 0:
                problems.append(f"{task}: {key} is empty")
    except Exception as err:  # a missing file or a bad label: say which and stop
        return [f"{task}: {type(err).__name__}: {err}"]
    n_out = int(cfg["model"].get("num_classes", 2))
    labels = [ds.load(i)["label"] for i in range(len(ds))]
    results = {}
    for i, mcfg in enumerate(cfg.get("metrics") or []):
        met = METRICS.build(mcfg, key_path=f"metrics[{i}]")
        met.reset()
        met.update(np.zeros((len(labels), n_out), np.float32), np.stack(labels))
        results.update(met.accumulate())
    if metric not in results:
        problems.append(f"{task}: eval.best_metric {metric!r} is not among the metrics' outputs "
                        f"{sorted(results)}")
    return problems


def parse_method(method):
    """``lnsr`` or a variant ``lnsr@weight=0.1,sigma=0.1``: the config of that method with
    those ``regularizer:`` keys overridden."""
    base, _, rest = method.partition("@")
    over = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            sys.exit(f"method {method!r}: {item!r} is not key=value")
        over[key] = yaml.safe_load(value)
    return base, over


def run_one(task, method, seed, args):
    from ppzoo.core import load_config
    from ppzoo.engine import build_trainer
    base, over = parse_method(method)
    cfg = load_config(config_path(task, base))
    cfg["regularizer"].update(over)
    cfg["seed"] = seed
    cfg["name"] = f"{task}_{method.replace('@', '_').replace(',', '_').replace('=', '')}_s{seed}"
    cfg["output_dir"] = os.path.join(ROOT, "output", "bench_lnsr")
    for key in ("train_dataset", "val_dataset"):
        cfg[key]["max_seq_len"] = args.max_seq_len
    cfg["train_dataset"]["max_examples"] = args.train_examples
    cfg["optimizer"]["learning_rate"] = args.lr
    if args.pooling:
        cfg["model"]["pooling"] = args.pooling
    cfg["train"].update({"epochs": args.epochs, "batch_size": args.batch_size, "log_interval": 10 ** 9, "eval_interval": 10 ** 9,
                         "checkpoint_interval": 10 ** 9})
    trainer = build_trainer(cfg, overwrite=True)  # a rerun moves the previous run aside
    step_times = []
    orig = trainer.train_step

    def timed(batch):
        t0 = time.perf_counter()
        orig(batch)
        step_times.append(time.perf_counter() - t0)
    trainer.train_step = timed
    trainer.train()  # ends with an evaluation on the dev set; its record is the result
    step_times = sorted(step_times[1:] or step_times)  # first step warms up
    return dict({"task": task, "method": method, "seed": seed, "metric": task_info(task)[0],
                 "median_step_s": step_times[len(step_times) // 2], "iters": trainer.iter},
                **run_records(trainer.work_dir, task, trainer.iter))


def run_records(work_dir, task, iters):
    """The dev result of a finished run and its loss terms averaged over training (the log
    interval exceeds the run, so the one train record averages every step)."""
    val, tr = last_record(work_dir, "val", iters), last_record(work_dir, "train", iters)
    res = {k: v for k, v in val.items() if k not in ("mode", "epoch", "iter")}
    losses = {k: v for k, v in tr.items() if k not in ("mode", "epoch", "iter", "lr", "sec_per_iter")}
    return {"value": res[task_info(task)[0]], "results": res, "train_mean_losses": losses}


@functools.lru_cache(maxsize=None)
def majority_rate(task):
    """Dev-set accuracy of always answering the most frequent dev label: what a model that
    learned nothing scores (its Matthews correlation is 0)."""
    import numpy as np
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS
    cfg = load_config(config_path(task, "plain"))
    ds = DATASETS.build(cfg["val_dataset"], key_path="val_dataset")
    counts = np.bincount([y for _, _, y in ds.examples])
    return counts.max() / counts.sum()


def methods_of(rows, task):
    """The five methods, then any variants the runs file holds for ``task``."""
    extra = sorted({r["method"] for r in rows if r["task"] == task} - set(METHODS))
    return METHODS + extra


def variants(rows, tasks):
    """(task, method) of the variant rows, which another command (``--methods``) ran."""
    return sorted({(r["task"], r["method"]) for r in rows if r["task"] in tasks and r["method"] not in METHODS})


def loss_table(rows, tasks):
    """Loss terms averaged over training, mean over the runs that recorded them: how large
    each regularizer's term is beside the task loss it is added to."""
    import numpy as np
    out = ["Loss terms averaged over each run's training steps (`loss` = task + weighted regularizer "
           "terms; regularizer terms unweighted), mean over the runs that recorded them:", "",
           "| task | method | runs | terms |", "|---|---|---|---|"]
    for task in tasks:
        for m in methods_of(rows, task):
            rs = [r["train_mean_losses"] for r in rows
                  if r["task"] == task and r["method"] == m and "train_mean_losses" in r]
            if rs:
                terms = ", ".join(f"{k} {np.mean([r[k] for r in rs]):.3f}" for k in rs[0])
                out.append(f"| {task} | {m} | {len(rs)} | {terms} |")
    return out + [""] if len(out) > 4 else []


def cpus(rows):
    """How many runs each CPU model ran (runs written before the model was recorded: unrecorded)."""
    return collections.Counter(r.get("cpu", "unrecorded") for r in rows)


FIXED_SETTINGS = ("hyper-parameters as in configs/lnsr/ after the regularizer fixes (LNSR sigma 0.05 at the "
                  "embedding output, weight 1, no wasted pass; L2-SP alpha 0.1, beta 0.01, no weight decay; "
                  "Mixout p 0.9 per input unit on every Linear, dropout 0; SMART lambda_s 1, mu 1, mt-dnn's "
                  "normalised perturbation, teacher in eval mode updated after the step).")
EARLIER_SETTINGS = ("runs of the code *before* the regularizer fixes (issue 15): LNSR sigma 0.05 at the "
                    "embedding output, weight 1, with one wasted forward pass; L2-SP alpha 0.01, beta 0, with "
                    "AdamW weight decay 0.01; Mixout p 0.1 per weight element on the encoder only; SMART "
                    "lambda_s 1, mu 1, perturbation clipped to 1e-5, teacher with dropout, updated before the step.")


def paired_tests(x, y):
    """Paired comparison of a method's per-seed values ``x`` with plain's ``y`` (same seeds):
    mean difference, paired t-test p, exact Wilcoxon signed-rank p (both two-sided) and the
    Pitman-Morgan test of equal variances for paired samples (two-sided p)."""
    import numpy as np
    from scipy import stats
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = x - y
    out = {"n": len(d), "diff": float(d.mean()), "t_p": float("nan"), "w_p": float("nan"),
           "pm_p": float("nan")}
    if len(d) < 2:
        return out
    if np.any(d != 0):
        out["t_p"] = float(stats.ttest_rel(x, y).pvalue) if d.std() > 0 else 0.0
        out["w_p"] = float(stats.wilcoxon(x, y, zero_method="zsplit").pvalue)
    if len(d) >= 3 and x.std() > 0 and y.std() > 0:
        r = np.corrcoef(x + y, x - y)[0, 1]  # zero iff the variances are equal
        t = r * np.sqrt((len(d) - 2) / max(1 - r * r, 1e-12))
        out["pm_p"] = float(2 * stats.t.sf(abs(t), len(d) - 2))
    return out


def summarize(rows, out_md, out_png, args):
    import numpy as np
    tasks = [t for t in args.tasks if any(r["task"] == t for r in rows)]
    lines = [f"# LNSR benchmark: MiniLM-L6 fine-tuned, GLUE dev sets and a domain shift\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs; CPUs of the runs: "
             + ", ".join(f"{c} ({n} runs)" for c, n in cpus(rows).items())
             + f"; code: " + ", ".join(sorted({r.get('code', 'unrecorded') for r in rows}))
             + f". Table written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             f"Command: `nice -n 5 .venv/bin/python benchmarks/lnsr_glue.py {' '.join(a for a in sys.argv[1:] if a != '--report')}`"
             + "".join(f"; row {m}: the same with `--tasks {t} --methods {m}`" for t, m in variants(rows, tasks)),
             (f"Protocol: fixed train subsample of {args.train_examples} examples (subsample seed 0), "
              if args.train_examples else "Protocol: the whole training set, ") +
             f"max_seq_len {args.max_seq_len}, {args.epochs} epoch(s), batch {args.batch_size}, AdamW {args.lr:g} with linear "
             "decay; mean pooling unless --pooling says otherwise; evaluation on the full dev set after the last step; "
             + (FIXED_SETTINGS if all("code" in r for r in rows) else EARLIER_SETTINGS), "",
             "| task | method | seeds | metric | mean | std | step time / plain |",
             "|---|---|---|---|---|---|---|"]
    for task in tasks:
        metric, is_cls = task_info(task)
        plain_t = [r["median_step_s"] for r in rows if r["task"] == task and r["method"] == "plain"]
        if is_cls and metric == "acc":
            lines.append(f"| {task} | majority class | - | acc | {majority_rate(task):.4f} | - | - |")
        elif is_cls:
            lines.append(f"| {task} | majority class | - | {metric} | 0 | - | - |")
        for m in methods_of(rows, task):
            rs = [r for r in rows if r["task"] == task and r["method"] == m]
            if not rs:
                continue
            v = np.array([r["value"] for r in rs])
            t = np.median([r["median_step_s"] for r in rs])
            ratio = f"{t / np.median(plain_t):.2f}" if plain_t else "n/a"
            std = v.std(ddof=1) if len(v) > 1 else float("nan")
            lines.append(f"| {task} | {m} | {len(v)} | {metric} | {v.mean():.4f} | {std:.4f} | {ratio} |")
    lines += ["", "std is the sample standard deviation over seeds. Step time / plain: the median over a "
              "method's runs of each run's median step time, over the same for plain on that task "
              "(a shared machine: the ratio is noisy).", "",
              "Each method against plain fine-tuning, paired by seed (same seed: same subsample, "
              "initial head and batch order): mean difference of the metric, two-sided p of the "
              "paired t-test and of the exact Wilcoxon signed-rank test (with n seeds its smallest "
              "possible p is 2/2^n), and two-sided p of the Pitman-Morgan test that the two "
              "spreads are equal.", "",
              "| task | method | paired seeds | mean diff | t-test p | Wilcoxon p | std ratio (method/plain) | Pitman-Morgan p |",
              "|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        plain = {r["seed"]: r["value"] for r in rows if r["task"] == task and r["method"] == "plain"}
        for m in methods_of(rows, task):
            if m == "plain":
                continue
            mine = {r["seed"]: r["value"] for r in rows if r["task"] == task and r["method"] == m}
            seeds = sorted(set(mine) & set(plain))
            if not seeds:
                continue
            x, y = [mine[k] for k in seeds], [plain[k] for k in seeds]
            st = paired_tests(x, y)
            ratio = (np.std(x, ddof=1) / np.std(y, ddof=1)) if len(seeds) > 1 and np.std(y) > 0 else float("nan")
            lines.append(f"| {task} | {m} | {st['n']} | {st['diff']:+.4f} | {st['t_p']:.3f} | "
                         f"{st['w_p']:.3f} | {ratio:.2f} | {st['pm_p']:.3f} |")
    lines += [""]
    lines += loss_table(rows, tasks)
    lines += [f"Per run (JSON lines): `docs/benchmarks/{os.path.basename(out_md)[:-3]}_runs.jsonl`."]
    with open(out_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric, is_cls = task_info(task)
        names = methods_of(rows, task)
        for i, m in enumerate(names):
            vals = [r["value"] for r in rows if r["task"] == task and r["method"] == m]
            ax.scatter([i] * len(vals), vals, s=12, alpha=0.6)
            if vals:
                spread = np.std(vals, ddof=1) if len(vals) > 1 else 0.0  # as in the table
                ax.errorbar(i + 0.2, np.mean(vals), yerr=spread, fmt="o", color="k")
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        if is_cls:
            ax.axhline(majority_rate(task) if metric == "acc" else 0.0, ls="--", c="grey", lw=1,
                       label="majority class")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{task} ({metric})")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)


def git_commit():
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", nargs="+", default=["sst2", "mrpc2rte"])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--train-examples", type=int, default=256)
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--pooling", choices=["cls", "mean"], help="override the configs' model.pooling")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    p.add_argument("--name", default="lnsr_glue_v2",
                   help="runs file <name>_runs.jsonl and page <name>.md under --out (lnsr_glue: the "
                        "runs of the code before the regularizer fixes)")
    p.add_argument("--report", action="store_true", help="only rewrite the table and plot from the runs file")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    runs = os.path.join(args.out, f"{args.name}_runs.jsonl")
    md, png = os.path.join(args.out, f"{args.name}.md"), os.path.join(args.out, f"{args.name}.png")
    protocol = {k: getattr(args, k) for k in ("train_examples", "max_seq_len", "epochs", "lr",
                                               "batch_size", "pooling")}
    rows = [json.loads(l) for l in open(runs)] if os.path.exists(runs) else []
    other = [r for r in rows if r.get("protocol") != protocol]
    if other:
        sys.exit(f"{runs} holds {len(other)} run(s) of another protocol ({other[0].get('protocol')}); "
                 f"resume with those options or write elsewhere with --out")
    if args.report:
        summarize(rows, md, png, args)
        return
    problems = [p for task in args.tasks for p in check_task(task, args.methods)]
    if problems:
        sys.exit("cannot run the benchmark:\n  " + "\n  ".join(problems))
    code = git_commit()
    done = {(r["task"], r["method"], r["seed"]) for r in rows}
    for seed in args.seeds:  # seed-major: partial results stay balanced across methods
        for task in args.tasks:
            for m in args.methods:
                if (task, m, seed) in done:
                    continue
                row = dict(run_one(task, m, seed, args), protocol=protocol, cpu=cpu_model(),
                           date=time.strftime('%Y-%m-%d'), code=code)
                rows.append(row)
                with open(runs, "a") as f:
                    f.write(json.dumps(row) + "\n")
                summarize(rows, md, png, args)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
