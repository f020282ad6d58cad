"""LNSR benchmark: MiniLM-L6 fine-tuned on GLUE dev sets, plain vs LNSR vs L2-SP vs Mixout vs SMART.

Every run is a config of configs/lnsr/ trained by the shared FineTuneTrainer, scaled down by
--opts-style overrides (a fixed train subsample, max_seq_len, epochs).  Results are appended
to a JSON-lines file after every run, and the table/plot are rewritten from it, so a partial
run still leaves honest partial results.

    nice -n 5 .venv/bin/python benchmarks/lnsr_glue.py --tasks rte mrpc cola --seeds 0 1 2 3 4

The defaults (256 training examples, 3 epochs, lr 1e-4) are the few-sample regime the paper
studies, sized so the 75 runs fit a CPU: about 45 minutes per seed on 2 cores.  A method may
name a variant with regularizer overrides, e.g. ``--methods lnsr@weight=0.1``; variants get
rows of their own.  ``--report`` rewrites the table and plot from the runs file.
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
METRIC = {"rte": "acc", "mrpc": "acc", "cola": "mcc", "sst2": "acc"}


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
    cfg = load_config(os.path.join(ROOT, "configs", "lnsr", f"{task}_{base}.yml"))
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
    return dict({"task": task, "method": method, "seed": seed, "metric": METRIC[task],
                 "median_step_s": step_times[len(step_times) // 2], "iters": trainer.iter},
                **run_records(trainer.work_dir, task, trainer.iter))


def run_records(work_dir, task, iters):
    """The dev result of a finished run and its loss terms averaged over training (the log
    interval exceeds the run, so the one train record averages every step)."""
    val, tr = last_record(work_dir, "val", iters), last_record(work_dir, "train", iters)
    res = {k: v for k, v in val.items() if k not in ("mode", "epoch", "iter")}
    losses = {k: v for k, v in tr.items() if k not in ("mode", "epoch", "iter", "lr", "sec_per_iter")}
    return {"value": res[METRIC[task]], "results": res, "train_mean_losses": losses}


@functools.lru_cache(maxsize=None)
def majority_rate(task):
    """Dev-set accuracy of always answering the most frequent dev label: what a model that
    learned nothing scores (its Matthews correlation is 0)."""
    import numpy as np
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS
    cfg = load_config(os.path.join(ROOT, "configs", "lnsr", f"{task}_plain.yml"))
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


def summarize(rows, out_md, out_png, args):
    import numpy as np
    lines = [f"# LNSR benchmark: MiniLM-L6 on GLUE dev sets\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs; CPUs of the runs: "
             + ", ".join(f"{c} ({n} runs)" for c, n in cpus(rows).items())
             + f". Table written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             f"Command: `nice -n 5 .venv/bin/python benchmarks/lnsr_glue.py {' '.join(a for a in sys.argv[1:] if a != '--report')}`"
             + "".join(f"; row {m}: the same with `--tasks {t} --methods {m}`" for t, m in variants(rows, args.tasks)),
             (f"Protocol: fixed train subsample of {args.train_examples} examples (subsample seed 0), "
              if args.train_examples else "Protocol: the whole training set, ") +
             f"max_seq_len {args.max_seq_len}, {args.epochs} epoch(s), batch {args.batch_size}, AdamW {args.lr:g} with linear "
             "decay; mean pooling unless --pooling says otherwise; evaluation on the full dev set after the last step; hyper-parameters as in "
             "configs/lnsr/ (LNSR sigma 0.05 at the embedding output, weight 1; L2-SP alpha 0.01; "
             "Mixout p 0.1; SMART lambda_s 1, mu 1).", "",
             "| task | method | seeds | metric | mean | std | step time / plain |",
             "|---|---|---|---|---|---|---|"]
    stats = {}
    for task in args.tasks:
        plain_t = [r["median_step_s"] for r in rows if r["task"] == task and r["method"] == "plain"]
        if METRIC[task] == "acc":
            lines.append(f"| {task} | majority class | - | acc | {majority_rate(task):.4f} | - | - |")
        else:
            lines.append(f"| {task} | majority class | - | {METRIC[task]} | 0 | - | - |")
        for m in methods_of(rows, task):
            rs = [r for r in rows if r["task"] == task and r["method"] == m]
            if not rs:
                continue
            v = np.array([r["value"] for r in rs])
            t = np.median([r["median_step_s"] for r in rs])
            ratio = f"{t / np.median(plain_t):.2f}" if plain_t else "n/a"
            stats[(task, m)] = (v.mean(), v.std(ddof=1) if len(v) > 1 else float("nan"), len(v))
            lines.append(f"| {task} | {m} | {len(v)} | {rs[0]['metric']} | {v.mean():.4f} | "
                         f"{stats[(task, m)][1]:.4f} | {ratio} |")
    lines += ["", "std is the sample standard deviation over seeds. Step time / plain: the median over a "
              "method's runs of each run's median step time, over the same for plain on that task "
              "(runs of one task may come from different machines and days, see `cpu` and `date` in the "
              "runs file; the ratio is noisy on a shared machine).", ""]
    lines += loss_table(rows, args.tasks)
    lines += ["Per run (JSON lines): `docs/benchmarks/lnsr_glue_runs.jsonl`."]
    with open(out_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(args.tasks), figsize=(4 * len(args.tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], args.tasks):
        names = methods_of(rows, task)
        for i, m in enumerate(names):
            vals = [r["value"] for r in rows if r["task"] == task and r["method"] == m]
            ax.scatter([i] * len(vals), vals, s=12, alpha=0.6)
            if vals:
                spread = np.std(vals, ddof=1) if len(vals) > 1 else 0.0  # as in the table
                ax.errorbar(i + 0.2, np.mean(vals), yerr=spread, fmt="o", color="k")
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.axhline(majority_rate(task) if METRIC[task] == "acc" else 0.0, ls="--", c="grey", lw=1,
                   label="majority class")
        ax.set_title(f"{task} ({METRIC[task]})")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", nargs="+", default=["rte", "mrpc", "cola"])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--train-examples", type=int, default=256)
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--pooling", choices=["cls", "mean"], help="override the configs' model.pooling")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    p.add_argument("--report", action="store_true", help="only rewrite the table and plot from the runs file")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    runs = os.path.join(args.out, "lnsr_glue_runs.jsonl")
    protocol = {k: getattr(args, k) for k in ("train_examples", "max_seq_len", "epochs", "lr",
                                               "batch_size", "pooling")}
    rows = [json.loads(l) for l in open(runs)] if os.path.exists(runs) else []
    other = [r for r in rows if r.get("protocol") != protocol]
    if other:
        sys.exit(f"{runs} holds {len(other)} run(s) of another protocol ({other[0].get('protocol')}); "
                 f"resume with those options or write elsewhere with --out")
    if args.report:
        summarize(rows, os.path.join(args.out, "lnsr_glue.md"), os.path.join(args.out, "lnsr_glue.png"), args)
        return
    done = {(r["task"], r["method"], r["seed"]) for r in rows}
    for seed in args.seeds:  # seed-major: partial results stay balanced across methods
        for task in args.tasks:
            for m in args.methods:
                if (task, m, seed) in done:
                    continue
                row = dict(run_one(task, m, seed, args), protocol=protocol, cpu=cpu_model(), date=time.strftime('%Y-%m-%d'))
                rows.append(row)
                with open(runs, "a") as f:
                    f.write(json.dumps(row) + "\n")
                summarize(rows, os.path.join(args.out, "lnsr_glue.md"),
                          os.path.join(args.out, "lnsr_glue.png"), args)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
