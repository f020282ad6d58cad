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
studies.  The over-fitting regime of docs/benchmarks/lnsr_glue_v5.md (small data, many epochs,
``--lr-schedule constant``, ``--eval-every-epochs``) adds each method's dev curve and its fall
after the peak, compared with plain's.  A method may name a variant with regularizer overrides, e.g.
``--methods lnsr@weight=0.1``; variants get rows of their own.  Runs go to
``<out>/<name>_runs.jsonl`` (one line per run, with the code's git commit) and the page to
``<out>/<name>.md``; ``--report`` rewrites the page and plot from the runs file.  Every method
is compared with plain fine-tuning paired over seeds (paired t-test and Wilcoxon signed-rank
test of the metric, Pitman-Morgan test of equal variances), with Holm's correction over the
page's comparisons.

Each task may run at its own scale (a runs file holds one protocol per task; each run records
its protocol and command).  ``--transfer mrpc:mrpc2rte`` evaluates every trained MRPC model on
RTE dev as well, so the domain-shift rows cost no extra training (the benchmark checks first
that the two tasks' configs train the same thing).  ``--timing R`` measures the methods' step
times side by side instead: one process builds every method's trainer, and R rounds time
``--timing-steps`` steps of each method on the same batches, methods interleaved.
"""
import argparse
import collections
import functools
import json
import os
import platform
import shutil
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, CPU_SETTINGS, cpu_model, last_record  # noqa: E402  (also tunes the CPU before any math)

METHODS = ["plain", "lnsr", "l2sp", "mixout", "smart"]
OUTPUT = os.path.join(ROOT, "output")  # the runs' work folders
#: text of a page from this line on is kept when the page is rewritten from its runs file
READING_MARKER = "<!-- reading: kept when the tables above are rewritten -->"


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


def run_config(task, method, seed, args, output_dir="bench_lnsr"):
    """The config of one benchmark run: the method's config at the benchmark's scale."""
    from ppzoo.core import load_config
    base, over = parse_method(method)
    cfg = load_config(config_path(task, base))
    cfg["regularizer"].update(over)
    cfg["seed"] = seed
    cfg["name"] = f"{task}_{method.replace('@', '_').replace(',', '_').replace('=', '')}_s{seed}"
    # runs of two pages (two processes side by side) must not share a work folder
    cfg["output_dir"] = os.path.join(OUTPUT, output_dir, *([args.name] if getattr(args, "name", None) else []))
    for key in ("train_dataset", "val_dataset"):
        cfg[key]["max_seq_len"] = args.max_seq_len
    cfg["train_dataset"]["max_examples"] = args.train_examples
    cfg["optimizer"]["learning_rate"] = args.lr
    if getattr(args, "lr_schedule", "linear") == "constant":
        cfg.pop("lr_scheduler", None)  # no schedule: the trainer steps at the optimizer's rate throughout
    if args.pooling:
        cfg["model"]["pooling"] = args.pooling
    cfg["train"].update({"epochs": args.epochs, "batch_size": args.batch_size, "log_interval": 10 ** 9, "eval_interval": 10 ** 9,
                         "checkpoint_interval": 10 ** 9})
    if getattr(args, "dev_examples", None):
        cfg["val_dataset"]["max_examples"] = args.dev_examples
    if getattr(args, "eval_every_epochs", None):
        steps = -(-args.train_examples // args.batch_size)  # batches per epoch (the last one kept)
        if cfg["train"].get("drop_last"):
            steps = args.train_examples // args.batch_size
        cfg["train"]["eval_interval"] = args.eval_every_epochs * steps
    return cfg


def run_one(task, method, seed, args, transfer=()):
    """Train one run; returns its row and one row for each task of ``transfer`` (tasks that
    train on the same data and evaluate elsewhere, e.g. ``mrpc2rte`` for ``mrpc``: the trained
    model is evaluated on that task's dev set instead of being trained twice)."""
    from ppzoo.engine import build_trainer
    cfg = run_config(task, method, seed, args)
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
    common = {"method": method, "seed": seed, "median_step_s": step_times[len(step_times) // 2],
              "iters": trainer.iter, "regularizer": dict(cfg["regularizer"])}
    rows = [dict(common, task=task, metric=task_info(task)[0], **run_records(trainer.work_dir, task, trainer.iter))]
    for other in transfer:
        res = evaluate_on(trainer, other, method, seed, args)
        rows.append(dict(common, task=other, metric=task_info(other)[0], trained_on=task,
                         value=res[task_info(other)[0]], results=res,
                         train_mean_losses=rows[0]["train_mean_losses"]))
    if not getattr(args, "keep_checkpoints", False):
        drop_checkpoints(trainer.work_dir)
    return rows


def drop_checkpoints(work_dir):
    """Remove a finished run's ``best/`` and ``latest/`` (weights and optimizer state, about
    0.5 GB a MiniLM run): its results are already read into its rows, and a grid of runs would
    otherwise fill the disk.  The run's config, log and metrics stay."""
    for name in ("best", "latest"):
        shutil.rmtree(os.path.join(work_dir, name), ignore_errors=True)


def evaluate_on(trainer, other, method, seed, args):
    """Metrics of ``other``'s config on its dev set for the model ``trainer`` trained."""
    from ppzoo.core.builder import DATASETS, METRICS
    ocfg = run_config(other, method, seed, args)
    ds = DATASETS.build(ocfg["val_dataset"], key_path="val_dataset")
    own = trainer.metrics
    trainer.metrics = [METRICS.build(m, key_path=f"metrics[{i}]") for i, m in enumerate(ocfg["metrics"])]
    try:
        return trainer.evaluate(trainer._make_eval_loader(ds))
    finally:
        trainer.metrics = own


def check_transfer(task, other, methods, args):
    """``other`` may reuse ``task``'s runs only when every method trains the same thing."""
    problems = []
    for m in methods:
        a, b = run_config(task, m, 0, args), run_config(other, m, 0, args)
        for key in ("train_dataset", "model", "optimizer", "regularizer", "train", "loss", "lr_scheduler"):
            if a.get(key) != b.get(key):
                problems.append(f"--transfer {task}:{other}: configs/lnsr/{other}_{parse_method(m)[0]}.yml "
                                f"differs from {task}'s in {key!r}, so {task}'s runs do not train it")
    return problems


def run_records(work_dir, task, iters):
    """The dev result of a finished run and its loss terms averaged over training (the log
    interval exceeds the run, so the one train record averages every step)."""
    val, tr = last_record(work_dir, "val", iters), last_record(work_dir, "train", iters)
    res = {k: v for k, v in val.items() if k not in ("mode", "epoch", "iter")}
    losses = {k: v for k, v in tr.items() if k not in ("mode", "epoch", "iter", "lr", "sec_per_iter")}
    metric = task_info(task)[0]
    with open(os.path.join(work_dir, "metrics.jsonl"), encoding="utf-8") as f:
        vals = [r for r in map(json.loads, f) if r.get("mode") == "val"]
    # the dev metric at every evaluation (one point unless --eval-every-epochs)
    curve = [{"epoch": r["epoch"], "iter": r["iter"], "value": r[metric]} for r in vals]
    return {"value": res[metric], "results": res, "train_mean_losses": losses, "curve": curve}


@functools.lru_cache(maxsize=None)
def majority_rate(task, dev_examples=None):
    """Dev-set accuracy of always answering the most frequent dev label: what a model that
    learned nothing scores (its Matthews correlation is 0); on the runs' dev subsample when
    they used one."""
    import numpy as np
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS
    cfg = load_config(config_path(task, "plain"))
    if dev_examples:
        cfg["val_dataset"]["max_examples"] = dev_examples
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


def settings_text(rows):
    """The hyper-parameters the runs used: each run records its regularizer since the shipped
    LNSR sigma became 0.01; older runs (no record) ran the fixed settings of their time."""
    recorded = {r["method"]: r["regularizer"] for r in rows if "regularizer" in r}
    if not recorded or len(recorded) < len({r["method"] for r in rows}):
        return FIXED_SETTINGS if all("code" in r for r in rows) else EARLIER_SETTINGS
    parts = []
    for m, reg in sorted(recorded.items()):
        keys = ", ".join(f"{k} {v}" for k, v in reg.items() if k != "type")
        parts.append(f"{m}: {reg['type']}" + (f" ({keys})" if keys else ""))
    return "as recorded by each run: " + "; ".join(parts) + "."


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


def command_lines(rows, tasks):
    """The commands that wrote the runs (each run records its own), or this invocation's."""
    cmds = list(dict.fromkeys(r["command"] for r in rows if r["task"] in tasks and "command" in r))
    if not cmds:
        return [f"Command: `nice -n 5 .venv/bin/python benchmarks/lnsr_glue.py "
                f"{' '.join(a for a in sys.argv[1:] if a != '--report')}`"
                + "".join(f"; row {m}: the same with `--tasks {t} --methods {m}`" for t, m in variants(rows, tasks))]
    return ["Commands (each run records the command that ran it; `--report` rewrites this page):", ""] + \
        [f"    nice -n 5 .venv/bin/python benchmarks/lnsr_glue.py {c}" for c in cmds] + [""]


def protocol_text(pr):
    n = pr.get("train_examples")
    return ((f"fixed train subsample of {n} examples (subsample seed 0), " if n else "the whole training set, ")
            + f"max_seq_len {pr['max_seq_len']}, {pr['epochs']} epoch(s), batch {pr['batch_size']}, "
            f"AdamW {pr['lr']:g} " + ("constant" if pr.get("lr_schedule") == "constant" else "with linear decay")
            + (f", dev subsample of {pr['dev_examples']} examples (subsample seed 0)" if pr.get("dev_examples") else "")
            + (f", dev evaluated every {pr['eval_every_epochs']} epoch(s)" if pr.get("eval_every_epochs") else ""))


def dev_examples_of(rows, task):
    """The dev subsample size the runs of ``task`` used (None: the full dev set)."""
    return next((r["protocol"].get("dev_examples") for r in rows if r["task"] == task and "protocol" in r), None)


def curve_lines(rows, tasks):
    """The dev metric at every evaluation, mean ± std over seeds per method, and each run's
    peak minus its final value (over-fitting shows as a fall after an early peak)."""
    import numpy as np
    out = []
    for task in tasks:
        rs = [r for r in rows if r["task"] == task and len(r.get("curve") or []) > 1]
        if not rs:
            continue
        epochs = sorted({p["epoch"] for r in rs for p in r["curve"]})
        metric = task_info(task)[0]
        out += [f"{task}: dev {metric} at each evaluation (mean ± sample std over seeds); peak - final: "
                "per run, its best evaluation minus its last, mean over seeds (a paired t-test p "
                "of peak against final over the seeds in brackets).", "",
                "| method | " + " | ".join(f"epoch {e}" for e in epochs) + " | peak - final |",
                "|---" * (len(epochs) + 2) + "|"]
        for m in methods_of(rows, task):
            mine = [r for r in rs if r["method"] == m]
            if not mine:
                continue
            cells = []
            for e in epochs:
                v = [p["value"] for r in mine for p in r["curve"] if p["epoch"] == e]
                cells.append(f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else
                             (f"{v[0]:.4f}" if v else "-"))
            peak = [max(p["value"] for p in r["curve"]) for r in mine]
            final = [r["value"] for r in mine]
            st = paired_tests(peak, final)
            cells.append(f"{st['diff']:+.4f} (p {st['t_p']:.3f})")
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        out.append("")
        out += fall_lines(rs, task, metric)
    return out


def fall_lines(rs, task, metric):
    """Each method's fall (peak - final) and peak against plain's, paired by seed: does a
    regularizer shrink the fall after the peak, or only move the whole curve?"""
    def per_seed(m, what):
        return {r["seed"]: what(r) for r in rs if r["method"] == m}
    fall = lambda r: max(p["value"] for p in r["curve"]) - r["value"]  # noqa: E731
    peak = lambda r: max(p["value"] for p in r["curve"])  # noqa: E731
    out = [f"{task}: each method's fall (peak - final) and peak {metric} against plain's, paired by "
           "seed: mean difference, two-sided paired t-test p and exact Wilcoxon p (a negative fall "
           "difference: the method falls less than plain).", "",
           "| method | paired seeds | fall: method - plain | t-test p | Wilcoxon p | peak: method - plain | t-test p | Wilcoxon p |",
           "|---|---|---|---|---|---|---|---|"]
    base_f, base_p = per_seed("plain", fall), per_seed("plain", peak)
    n_rows = 0
    for m in methods_of(rs, task):
        if m == "plain":
            continue
        mf, mp = per_seed(m, fall), per_seed(m, peak)
        seeds = sorted(set(mf) & set(base_f))
        if not seeds:
            continue
        f = paired_tests([mf[k] for k in seeds], [base_f[k] for k in seeds])
        pk = paired_tests([mp[k] for k in seeds], [base_p[k] for k in seeds])
        out.append(f"| {m} | {len(seeds)} | {round(f['diff'], 4) + 0.0:+.4f} | {f['t_p']:.3f} | {f['w_p']:.3f} | "
                   f"{round(pk['diff'], 4) + 0.0:+.4f} | {pk['t_p']:.3f} | {pk['w_p']:.3f} |")  # no "-0.0000"
        n_rows += 1
    return out + [""] if n_rows else []


def protocol_lines(rows, tasks, args):
    """The scale of each task's runs (tasks may run at different scales)."""
    per_task = {}
    for t in tasks:
        prs = list(dict.fromkeys(json.dumps(r["protocol"], sort_keys=True) for r in rows if r["task"] == t and "protocol" in r))
        per_task[t] = [json.loads(x) for x in prs] or [protocol_of(args)]
    tail = ("; mean pooling unless the protocol names another; evaluation on the full dev set "
            "(or the dev subsample the protocol names) after the last step; a task trained on another task's data (`trained on`) is that "
            "task's runs evaluated on this task's dev set.")
    distinct = {json.dumps(p, sort_keys=True) for ps in per_task.values() for p in ps}
    if len(distinct) == 1:
        return ["Protocol: " + protocol_text(next(iter(per_task.values()))[0]) + tail]
    out = ["Protocol per task" + tail, "", "| task | trained on | scale |", "|---|---|---|"]
    for t, ps in per_task.items():
        src = sorted({r.get("trained_on", t) for r in rows if r["task"] == t})
        out += [f"| {t} | {', '.join(src)} | {protocol_text(p)}{', pooling ' + p['pooling'] if p.get('pooling') else ''} |"
                for p in ps]
    return out + [""]


def holm(pvalues):
    """Holm's step-down adjustment of ``pvalues`` (family-wise error; NaN stays NaN)."""
    import math
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), [float("nan")] * len(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def scale_lines(path):
    """The scale search (plain fine-tuning, one seed per scale) from ``path``: where plain
    leaves the majority class.  For accuracy the majority rate's binomial standard error on
    the dev set, sqrt(p (1 - p) / n), says how far above it a single run must be to mean more
    than chance; for Matthews correlation the null's is about 1 / sqrt(n)."""
    import math
    recs = read_jsonl(path)
    if not recs:
        return []
    out = ["Scale search: plain fine-tuning, one seed, at growing scales (the runs file "
           f"`{os.path.basename(path)}`). Majority: what always answering the most frequent dev "
           "label scores; SE: the binomial standard error of that rate on the dev set (accuracy) "
           "or 1/sqrt(n) (MCC, under no correlation).", "",
           "| task | scale | seed | metric | plain | majority | SE | plain - majority in SE | median step (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        task, metric = r["task"], r["metric"]
        n = dev_size(task)
        if metric == "acc":
            base = majority_rate(task)
            se = math.sqrt(base * (1 - base) / n)
        else:
            base, se = 0.0, 1 / math.sqrt(n)
        shown = f"{task} (trained on {r['trained_on']})" if r.get("trained_on") else task
        out.append(f"| {shown} | {protocol_text(r['protocol'])} | {r['seed']} | {metric} | {r['value']:.4f} | "
                   f"{base:.4f} | {se:.4f} | {(r['value'] - base) / se:+.1f} | {r['median_step_s']:.2f} |")
    return out + [""]


@functools.lru_cache(maxsize=None)
def dev_size(task):
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS
    cfg = load_config(config_path(task, "plain"))
    return len(DATASETS.build(cfg["val_dataset"], key_path="val_dataset"))


def timing_lines(path):
    """The side-by-side step-time table from a ``--timing`` file."""
    import numpy as np
    recs = read_jsonl(path)
    if not recs:
        return []
    out = ["Step time measured side by side (`--timing`): every method's trainer built in one "
           "process, all stepping on the same batches, methods interleaved in rounds with the order "
           "rotating; per round the median of its steps; ratio = a method's round median over "
           "plain's in the same round.", ""]
    for task in dict.fromkeys(r["task"] for r in recs):
        rs = [r for r in recs if r["task"] == task]
        first = rs[0]
        out += [f"{task}: {first['steps']} steps per method per round, {len({r['round'] for r in rs})} rounds, "
                f"{protocol_text(first['protocol'])}; {first['cpu']}, {first['date']}, code {first['code']}, "
                f"1-minute load average {min(r['load1'] for r in rs):.1f}-{max(r['load1'] for r in rs):.1f}.", "",
                "| method | median step (s) | ratio to plain: median | min | max |", "|---|---|---|---|---|"]
        plain = {r["round"]: r["median_step_s"] for r in rs if r["method"] == "plain"}
        for m in dict.fromkeys(r["method"] for r in rs):
            mine = {r["round"]: r["median_step_s"] for r in rs if r["method"] == m}
            ratios = [mine[k] / plain[k] for k in mine if k in plain]
            out.append(f"| {m} | {np.median(list(mine.values())):.3f} | "
                       + (f"{np.median(ratios):.2f} | {min(ratios):.2f} | {max(ratios):.2f} |" if ratios else "n/a | | |"))
        out.append("")
    return out


def summarize(rows, out_md, out_png, args):
    import numpy as np
    tasks = [t for t in args.tasks if any(r["task"] == t for r in rows)]
    lines = [f"# LNSR benchmark: MiniLM-L6 fine-tuned, GLUE dev sets and a domain shift\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs; CPUs of the runs: "
             + ", ".join(f"{c} ({n} runs)" for c, n in cpus(rows).items())
             + f"; code: " + ", ".join(sorted({r.get('code', 'unrecorded') for r in rows}))
             + f". Table written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             ] + command_lines(rows, tasks) + protocol_lines(rows, tasks, args) + [
             "Hyper-parameters: " + settings_text(rows), "",
             "| task | method | seeds | metric | mean | std | step time / plain |",
             "|---|---|---|---|---|---|---|"]
    for task in tasks:
        metric, is_cls = task_info(task)
        plain_t = [r["median_step_s"] for r in rows if r["task"] == task and r["method"] == "plain"]
        if is_cls and metric == "acc":
            lines.append(f"| {task} | majority class | - | acc | {majority_rate(task, dev_examples_of(rows, task)):.4f} | - | - |")
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
              "(runs made one after another on a shared machine whose load changes from run to "
              "run: this column is not a step cost; the side-by-side timing table, where there "
              "is one, is).", "",
              "Each method against plain fine-tuning, paired by seed (same seed: same subsample, "
              "initial head and batch order): mean difference of the metric, two-sided p of the "
              "paired t-test and of the exact Wilcoxon signed-rank test (with n seeds its smallest "
              "possible p is 2/2^n), and two-sided p of the Pitman-Morgan test that the two "
              "spreads are equal.  Multiple comparisons: the Holm columns adjust the t-test p and the "
              "Pitman-Morgan p over every comparison of this table (one family each, "
              "family-wise error); a difference is called significant here only where its Holm p "
              "is below 0.05.", "",
              "| task | method | paired seeds | mean diff | t-test p | t-test p (Holm) | Wilcoxon p | "
              "std ratio (method/plain) | Pitman-Morgan p | Pitman-Morgan p (Holm) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    table = []
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
            st["ratio"] = (np.std(x, ddof=1) / np.std(y, ddof=1)) if len(seeds) > 1 and np.std(y) > 0 else float("nan")
            table.append((task, m, st))
    t_holm = holm([st["t_p"] for _, _, st in table])
    pm_holm = holm([st["pm_p"] for _, _, st in table])
    for (task, m, st), th, ph in zip(table, t_holm, pm_holm):
        lines.append(f"| {task} | {m} | {st['n']} | {st['diff']:+.4f} | {st['t_p']:.3f} | {th:.3f} | "
                     f"{st['w_p']:.3f} | {st['ratio']:.2f} | {st['pm_p']:.3f} | {ph:.3f} |")
    lines += [""]
    lines += curve_lines(rows, tasks)
    lines += timing_lines(out_md[:-3] + "_timing.jsonl")
    lines += scale_lines(out_md[:-3] + "_scale_runs.jsonl")
    lines += loss_table(rows, tasks)
    lines += [f"Per run (JSON lines): `docs/benchmarks/{os.path.basename(out_md)[:-3]}_runs.jsonl`."]
    kept = ""  # a written reading below READING_MARKER survives a rewrite of the tables
    if os.path.exists(out_md):
        text = open(out_md, encoding="utf-8").read()
        if READING_MARKER in text:
            kept = "\n" + text[text.index(READING_MARKER):]
    tmp = out_md + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n" + kept)
    os.replace(tmp, out_md)
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
            ax.axhline(majority_rate(task, dev_examples_of(rows, task)) if metric == "acc" else 0.0, ls="--", c="grey", lw=1,
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
    p.add_argument("--lr-schedule", choices=["linear", "constant"], default="linear",
                   help="linear: the configs' decay to zero over the run; constant: the rate stays at --lr "
                        "(no decay that would end a long run at rest, so over-fitting can show late)")
    p.add_argument("--pooling", choices=["cls", "mean"], help="override the configs' model.pooling")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    p.add_argument("--name", default="lnsr_glue_v2",
                   help="runs file <name>_runs.jsonl and page <name>.md under --out (lnsr_glue: the "
                        "runs of the code before the regularizer fixes)")
    p.add_argument("--report", action="store_true", help="only rewrite the table and plot from the runs file")
    p.add_argument("--transfer", nargs="+", default=[], metavar="TASK:OTHER",
                   help="after each run of TASK also evaluate the trained model on OTHER's dev set "
                        "(OTHER's configs must train exactly what TASK's do, e.g. mrpc:mrpc2rte)")
    p.add_argument("--timing", type=int, metavar="REPEATS",
                   help="instead of training runs: time the methods' steps side by side on the first "
                        "task, REPEATS rounds of --timing-steps steps per method, methods interleaved")
    p.add_argument("--timing-steps", type=int, default=5)
    p.add_argument("--eval-every-epochs", type=int, default=0, metavar="K",
                   help="also evaluate every K epochs and record the dev curve (the over-fitting "
                        "regime: does the dev metric fall after an early peak?)")
    p.add_argument("--dev-examples", type=int, default=0, metavar="N",
                   help="evaluate on a fixed dev subsample of N examples (cheaper repeated evaluations)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's best/ and latest/ (by default they are removed once the run's "
                        "results are read: about 0.5 GB a run)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    runs = os.path.join(args.out, f"{args.name}_runs.jsonl")
    md, png = os.path.join(args.out, f"{args.name}.md"), os.path.join(args.out, f"{args.name}.png")
    protocol = protocol_of(args)
    rows = read_jsonl(runs)
    transfer = {}
    for item in args.transfer:
        src, colon, dst = item.partition(":")
        if not colon or src not in args.tasks:
            sys.exit(f"--transfer {item!r}: expected TASK:OTHER with TASK among --tasks {args.tasks}")
        transfer.setdefault(src, []).append(dst)
    run_tasks = args.tasks + [d for ds in transfer.values() for d in ds]
    # one protocol per task: a runs file may hold tasks run at different scales
    other = [r for r in rows if r["task"] in run_tasks and r.get("protocol") != protocol]
    if other and not args.report:
        sys.exit(f"{runs} holds {len(other)} run(s) of task {other[0]['task']} with another protocol "
                 f"({other[0].get('protocol')}); resume with those options or write elsewhere with --name")
    if args.report:
        args.tasks = run_tasks
        summarize(rows, md, png, args)
        return
    problems = [p for task in run_tasks for p in check_task(task, args.methods)]
    problems += [p for src, ds in transfer.items() for d in ds for p in check_transfer(src, d, args.methods, args)]
    if problems:
        sys.exit("cannot run the benchmark:\n  " + "\n  ".join(problems))
    code = git_commit()
    if args.timing:
        timing_file = os.path.join(args.out, f"{args.name}_timing.jsonl")
        for rec in time_steps(args.tasks[0], args.methods, args):
            rec.update(protocol=protocol, cpu=cpu_model(), date=time.strftime('%Y-%m-%d'), code=code)
            append_jsonl(timing_file, rec)
            print(json.dumps(rec), flush=True)
        args.tasks = list(dict.fromkeys([r["task"] for r in rows] + [args.tasks[0]]))
        summarize(rows, md, png, args)
        return
    args.tasks = run_tasks
    done = {(r["task"], r["method"], r["seed"]) for r in rows}
    for seed in args.seeds:  # seed-major: partial results stay balanced across methods
        for task in [t for t in args.tasks if t not in {d for ds in transfer.values() for d in ds}]:
            for m in args.methods:
                wanted = [task] + transfer.get(task, [])
                if all((t, m, seed) in done for t in wanted):
                    continue
                new_rows = [dict(r, protocol=protocol, cpu=cpu_model(), date=time.strftime('%Y-%m-%d'), code=code,
                                 command=" ".join(sys.argv[1:]))
                            for r in run_one(task, m, seed, args, transfer.get(task, []))]
                for row in new_rows:
                    if (row["task"], m, seed) in done:
                        continue
                    rows.append(row)
                    append_jsonl(runs, row)
                    print(json.dumps(row), flush=True)
                summarize(rows, md, png, args)


def protocol_of(args):
    pr = {k: getattr(args, k) for k in ("train_examples", "max_seq_len", "epochs", "lr", "batch_size", "pooling")}
    for k in ("dev_examples", "eval_every_epochs"):  # only when set: earlier runs files stay comparable
        if getattr(args, k, None):
            pr[k] = getattr(args, k)
    if getattr(args, "lr_schedule", "linear") != "linear":  # linear decay: the configs' own, unrecorded before
        pr["lr_schedule"] = args.lr_schedule
    return pr


def read_jsonl(path):
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def append_jsonl(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def time_steps(task, methods, args):
    """Step times of ``methods`` measured side by side: every method's trainer is built first,
    all step on the same batches, and each of ``args.timing`` rounds times ``args.timing_steps``
    steps of every method in turn (the order rotating each round), so load changes on a shared
    machine hit every method alike.  Yields one record per (round, method)."""
    import statistics
    from ppzoo.engine import build_trainer
    from ppzoo.engine.trainer import seed_everything
    trainers = {}
    for m in methods:
        cfg = run_config(task, m, 0, args, output_dir="bench_lnsr_timing")
        cfg["train"]["epochs"] = 1000  # the lr schedule stays away from zero while timing
        trainers[m] = build_trainer(cfg, overwrite=True)
    try:
        first = trainers[methods[0]]
        first.sampler.set_epoch(0, 0)
        batches = []
        for b in first.train_loader:
            batches.append(b)
            if len(batches) == args.timing_steps:
                break
        for m in methods:  # warm-up: the first steps build caches
            trainers[m].train_step(batches[0])
        for rnd in range(args.timing):
            order = methods[rnd % len(methods):] + methods[:rnd % len(methods)]
            for m in order:
                times = []
                for k, b in enumerate(batches):
                    seed_everything(1000003 * rnd + k)
                    t0 = time.perf_counter()
                    trainers[m].train_step(b)
                    times.append(time.perf_counter() - t0)
                yield {"task": task, "method": m, "round": rnd, "position": order.index(m),
                       "median_step_s": statistics.median(times), "steps": len(times),
                       "load1": os.getloadavg()[0]}
    finally:
        for t in trainers.values():
            t._release_lock()


if __name__ == "__main__":
    main()
