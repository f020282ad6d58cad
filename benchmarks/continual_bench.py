"""Continual representation benchmark: every strategy on split CIFAR-10 (task- and
class-incremental) and on the synthetic factor sequence, over seeds.

Every run is a config of configs/continual/ trained by ContinualTrainer (the same path as
tools/train.py), scaled by overrides (``--cifar-*`` flags).  Each finished run's
results.json is appended to ``<out>/runs.jsonl``; the pages under docs/benchmarks/ are
rewritten from that file after every run, so a partial benchmark leaves honest partial
results, and a rerun skips runs already done.

    nice -n 5 .venv/bin/python benchmarks/continual_bench.py --seeds 0 1 2
    python benchmarks/continual_bench.py --report        # rewrite the pages from runs.jsonl
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402  (also tunes the CPU before any math)
from ppzoo.core.errors import PPZooError  # noqa: E402

STRATEGIES = {
    "Naive": {"type": "Naive"},
    "Joint": {"type": "Joint"},
    "FrozenEncoder": {"type": "FrozenEncoder"},
    "Replay": {"type": "Replay", "capacity": 200, "batch_size": 16},  # task-balanced buffer, combined-batch mean
    "ReplayReservoirSum": {"type": "Replay", "capacity": 200, "batch_size": 16, "buffer": "reservoir",
                           "combine": "sum"},  # the earlier form: one reservoir, current + replay loss
    "EWC": {"type": "EWC", "lam": 20.0, "fisher_samples": 100, "normalize": "max"},
    "LwF": {"type": "LwF", "lam": 1.0, "temperature": 2.0, "t_squared": False, "reduction": "sum"},
    "GatingAdapters": None,  # the part's gating config
}
PARTS = {
    "synthetic": {"cfg": "synthetic_factors.yml", "gating": "synthetic_factors_gating.yml", "opts": []},
    "cifar_til": {"cfg": "cifar10_task_il.yml", "gating": "cifar10_task_il_gating.yml", "opts": []},
    "cifar_cil": {"cfg": "cifar10_class_il.yml", "gating": "cifar10_task_il_gating.yml",
                  "opts": ["continual.scenario=class_il"]},
}
TITLES = {"synthetic": "synthetic factors (task-incremental, tasks: stripes, colour, position)",
          "cifar_til": "split CIFAR-10, task-incremental", "cifar_cil": "split CIFAR-10, class-incremental"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--cifar-train-per-class", type=int, default=80)
    p.add_argument("--cifar-test-per-class", type=int, default=50)
    p.add_argument("--cifar-size", type=int, default=16, help="CIFAR images are resized to this side")
    p.add_argument("--cifar-epochs", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "output", "bench_continual"))
    p.add_argument("--report", action="store_true", help="only rewrite the pages from runs.jsonl")
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks"),
                   help="folder the page and figures are written to")
    p.add_argument("--page", default="continual_results",
                   help="the page's name (docs/<page>.md); figures other than the default page's get it as prefix")
    return p.parse_args(argv)


def run_opts(args, part, strategy, seed):
    opts = list(PARTS[part]["opts"]) + [f"seed={seed}"]
    if part.startswith("cifar"):
        s = args.cifar_size
        opts += [f"continual.split.train_per_class={args.cifar_train_per_class}",
                 f"continual.split.test_per_class={args.cifar_test_per_class}",
                 f"continual.epochs={args.cifar_epochs}",
                 f"continual.split.subset_seed={seed}"]
        if s != 32:
            resize = {"type": "Resize", "size": [s, s]}
            opts += [f"train_dataset.transforms=[{json.dumps(resize)}, "
                     "{type: RandomCrop, size: %d, padding: 2, mask_pad: 0}, {type: RandomHorizontalFlip}, "
                     "{type: Normalize, mean: [0.491, 0.482, 0.447], std: [0.247, 0.243, 0.262]}, {type: ToCHW}]" % s,
                     f"val_dataset.transforms=[{json.dumps(resize)}, "
                     "{type: Normalize, mean: [0.491, 0.482, 0.447], std: [0.247, 0.243, 0.262]}, {type: ToCHW}]"]
    if STRATEGIES[strategy] is not None:
        opts.append("continual.strategy=" + json.dumps(STRATEGIES[strategy]))
    return opts


def run_one(args, part, strategy, seed):
    from ppzoo.core import load_config
    from ppzoo.engine.trainer import build_trainer
    cfg_name = PARTS[part]["gating" if STRATEGIES[strategy] is None else "cfg"]
    opts = run_opts(args, part, strategy, seed)
    cfg = load_config(os.path.join(ROOT, "configs", "continual", cfg_name), opts)
    work = os.path.join(args.out, part, strategy, f"seed{seed}")
    if os.path.isdir(work):  # an unfinished earlier attempt continues where it stopped
        tr = build_trainer(cfg, work_dir=work, resume=True)
    else:
        tr = build_trainer(cfg, work_dir=work)
    c0, w0 = time.process_time(), time.time()
    tr.train()
    return {"part": part, "strategy": strategy, "seed": seed, "config": cfg_name, "opts": opts,
            "cpu_s": time.process_time() - c0, "wall_s": time.time() - w0, **tr.summary}


def load_runs(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _ms(vals):
    vals = np.asarray([v for v in vals if v is not None], float)
    if not len(vals):
        return "-"
    return f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f}" if len(vals) > 1 else f"{vals.mean():.3f}"


def _paired(runs, part, a, b, key):
    from scipy.stats import ttest_rel
    va = {r["seed"]: r["summary"][key] for r in runs if r["part"] == part and r["strategy"] == a}
    vb = {r["seed"]: r["summary"][key] for r in runs if r["part"] == part and r["strategy"] == b}
    seeds = sorted(set(va) & set(vb))
    if len(seeds) < 2:
        return None
    d = np.array([va[s] - vb[s] for s in seeds])
    p = ttest_rel([va[s] for s in seeds], [vb[s] for s in seeds]).pvalue if np.any(d != d[0]) or d[0] != 0 else 1.0
    return f"{a} - {b}, {key}: mean difference {d.mean():+.3f} over {len(seeds)} paired seeds (paired t-test p = {p:.3g})"


def plot_matrices(runs, part, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    strats = [s for s in STRATEGIES if any(r["part"] == part and r["strategy"] == s for r in runs)]
    fig, axes = plt.subplots(2, len(strats), figsize=(2.3 * len(strats), 4.8), squeeze=False)
    for i, s in enumerate(strats):
        rs = [r for r in runs if r["part"] == part and r["strategy"] == s]
        for row, key in enumerate(("A", "R")):
            M = np.mean([r[key] for r in rs], 0)
            ax = axes[row, i]
            ax.imshow(M, vmin=0, vmax=1, cmap="viridis")
            for (t, j), v in np.ndenumerate(M):
                ax.text(j, t, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if v < 0.6 else "k")
            ax.set_title(f"{s}\n{key}[t, j] ({len(rs)} seeds)" if row == 0 else f"{key}[t, j]", fontsize=8)
            ax.set_xlabel("task j", fontsize=7)
            ax.set_ylabel("after task t", fontsize=7)
            ax.set_xticks(range(M.shape[1]))
            ax.set_yticks(range(M.shape[0]))
            ax.tick_params(labelsize=6)
    fig.suptitle(f"{TITLES[part]}: accuracy A (top) and linear-probe R (bottom)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_factors(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rs0 = [r for r in runs if r["part"] == "synthetic"]
    if not rs0:
        return
    factors = [t["factor"] for t in rs0[0]["tasks"]]
    fig, axes = plt.subplots(1, len(factors), figsize=(3.6 * len(factors), 3.2), squeeze=False)
    for j, f in enumerate(factors):
        ax = axes[0, j]
        for s in STRATEGIES:
            rs = [r for r in rs0 if r["strategy"] == s]
            if not rs:
                continue
            curves = np.array([[r["r_init"][j]] + [row[j] for row in r["R"]] for r in rs])
            x = np.arange(curves.shape[1]) - 1
            ax.errorbar(x, curves.mean(0), yerr=curves.std(0, ddof=1) if len(rs) > 1 else None,
                        label=s, marker="o", ms=3, capsize=2, lw=1)
        ax.set_title(f"probe accuracy of factor '{f}' (task {j})", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(["init"] + [f"after {t}" for t in range(len(factors))], fontsize=7)
        ax.set_ylim(0.4, 1.02)
        ax.axvline(j, color="gray", lw=0.5, ls=":")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ppzoo.continual.data import MultiFactorImages
    ds = MultiFactorImages(num_samples=16, image_size=16, factors=["color", "shape", "stripes", "position"], seed=0)
    big = MultiFactorImages(num_samples=16, image_size=32, factors=["color", "shape", "stripes", "position"], seed=0)
    fig, axes = plt.subplots(2, 8, figsize=(10, 3.2))
    for i, ax in enumerate(axes.ravel()):
        img = (big if i >= 8 else ds).render(i % 8)
        ax.imshow(img, interpolation="nearest")
        f = (big if i >= 8 else ds).factors[i % 8]
        ax.set_title(" ".join(f"{n[:3]}{v}" for n, v in zip(ds.factor_names, f)), fontsize=6)
        ax.axis("off")
    fig.suptitle("MultiFactorImages: 16x16 (top, the benchmark's size) and 32x32 (bottom), same factors", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(args, runs_path, command):
    failed = [r for r in load_runs(runs_path) if r.get("error")]
    runs = [r for r in load_runs(runs_path) if not r.get("error")]
    docs = args.docs
    os.makedirs(docs, exist_ok=True)
    for r in runs:  # backward transfer from the matrices, so runs recorded before it was summarised have it too
        for key, M in (("acc_backward_transfer", r["A"]), ("rep_backward_transfer", r["R"])):
            M = np.asarray(M, float)
            r["summary"].setdefault(key, float(np.mean([M[-1, j] - M[j, j] for j in range(len(M) - 1)])))
    plot_samples(os.path.join(docs, "continual_samples.png"))
    for r in runs:  # how far training on a task moves its probe from the untrained encoder's
        if r.get("r_init") is not None and r["summary"].get("probe_gain") is None:
            r["summary"]["probe_gain"] = float(np.mean([r["R"][j][j] - r["r_init"][j] for j in range(len(r["R"]))]))
    keys = [("final_acc", "final acc"), ("avg_probe", "avg probe"), ("probe_gain", "probe gain"),
            ("rep_forgetting", "rep. forgetting"),
            ("acc_forgetting", "acc. forgetting"), ("rep_backward_transfer", "rep. BWT"),
            ("acc_backward_transfer", "acc. BWT"), ("forward_transfer", "fwd transfer (probe)"),
            ("final_probe_all", "all-class probe")]
    body = [f"Scale: CIFAR-10 resized to {args.cifar_size}x{args.cifar_size}, {args.cifar_train_per_class} "
            f"training and {args.cifar_test_per_class} test images per class (subset drawn per seed), "
            f"{args.cifar_epochs} epochs per task, ResNetEncoder widths 16/32/64 (one BasicBlock a stage); "
            "synthetic: configs/continual/synthetic_factors.yml as shipped (16x16 images, 1500 training and "
            "1000 test images, an 8-feature ConvEncoder, 4 epochs per task). Mean ± sample std over seeds. "
            "Probes: L-BFGS logistic regression (C=1, standardised features) on the frozen representation, "
            "fitted on each task's training images without augmentation, scored on its test images.\n",
            "Definitions: final acc = mean_j A[T-1, j]; avg probe = mean_j R[T-1, j]; forgetting = mean over "
            "j < T-1 of (best R[t, j] for j <= t < T-1) - R[T-1, j] (same for A; Chaudhry et al.'s form, "
            "not the after-learning form R[j, j] - R[T-1, j] of Avalanche, which is minus the BWT); backward "
            "transfer (BWT) = mean over j < T-1 of R[T-1, j] - R[j, j] (same for A); forward transfer = mean over "
            "j >= 1 of R[j-1, j] - R_init[j] (the untrained encoder's probe); all-class probe = one probe over "
            "all classes after the last task (class splits only); probe gain = mean_j R[j, j] - R_init[j], how far "
            "training on a task moves its own probe from the untrained encoder's. The floor row is the untrained "
            "encoder's probe (R_init: avg probe = mean_j R_init[j], all-class probe = its all-class probe), the same "
            "for every strategy but GatingAdapters (whose adapters change the probed representation): forgetting "
            "is only worth reading where the trained rows stand clearly above it.\n",
            "Strategy settings: " + "; ".join(f"{k} {json.dumps(v)}" for k, v in STRATEGIES.items() if v) +
            "; GatingAdapters from the parts' gating configs (configs/continual/*_gating.yml: adapter bottleneck "
            "32 on CIFAR, 16 on the synthetic set, vector gates, trunk trained on the first task only). "
            "Optimizer: Momentum 0.9, lr 0.05, batch 32 (CIFAR also weight decay 5e-4), a new optimizer per task.\n",
            "The runs shared the 2 cores with other jobs (the load average above is the one at the start; it "
            "changed while they ran), so wall times are not speeds; CPU s / run is the run's own process CPU time.\n"]
    for part in PARTS:
        rows = [r for r in runs if r["part"] == part]
        if not rows:
            continue
        body.append(f"## {TITLES[part]}\n")
        body.append("| strategy | seeds | " + " | ".join(k[1] for k in keys) + " | CPU s / run |")
        body.append("|---|---|" + "---|" * (len(keys) + 1))
        floor = {}  # seed -> (mean_j r_init[j], r_init_all) of a run without adapters (same model and subset)
        for r in rows:
            if r["strategy"] != "GatingAdapters" and r.get("r_init") is not None:
                floor.setdefault(r["seed"], (float(np.mean(r["r_init"])), r.get("r_init_all")))
        if floor:
            cells = {"avg_probe": _ms([v[0] for v in floor.values()]),
                     "final_probe_all": _ms([v[1] for v in floor.values()])}
            body.append(f"| untrained encoder (floor) | {len(floor)} | "
                        + " | ".join(cells.get(k, "-") for k, _ in keys) + " | - |")
        for s in STRATEGIES:
            rs = [r for r in rows if r["strategy"] == s]
            if rs:
                body.append(f"| {s} | {len(rs)} | " + " | ".join(_ms([r["summary"].get(k) for r in rs]) for k, _ in keys)
                            + f" | {np.mean([r['cpu_s'] for r in rs]):.0f} |")
        joint = [r for r in rows if r["strategy"] == "Joint"]
        if joint:
            ref = np.mean([r["R"][-1] for r in joint], 0)
            body.append(f"\nJoint-training probe reference per task (final R row, mean of {len(joint)} seeds): "
                        + ", ".join(f"{v:.3f}" for v in ref) + "\n")
        tests = [_paired(runs, part, a, b, k) for a, b, k in
                 [("GatingAdapters", "Naive", "rep_forgetting"), ("GatingAdapters", "Naive", "avg_probe"),
                  ("Naive", "Joint", "avg_probe"), ("Replay", "Naive", "final_acc"), ("Replay", "Naive", "avg_probe"),
                  ("Replay", "ReplayReservoirSum", "final_acc")]]
        tests = [t for t in tests if t]
        for strat in ("Naive", "Joint"):  # does training move the probe above the untrained encoder's?
            g = [r["summary"].get("probe_gain") for r in rows if r["strategy"] == strat]
            g = [x for x in g if x is not None]
            if len(g) >= 2:
                from scipy.stats import ttest_1samp
                tests.append(f"{strat}, probe gain over the floor (mean_j R[j, j] - R_init[j]): {np.mean(g):+.3f} "
                             f"over {len(g)} seeds (one-sample t-test against 0: p = {ttest_1samp(g, 0).pvalue:.3g})")
            elif len(g) == 1:
                tests.append(f"{strat}, probe gain over the floor (mean_j R[j, j] - R_init[j]): {g[0]:+.3f} (one seed)")
        if tests:
            body.append("Paired comparisons (same seeds):\n\n" + "\n".join(f"- {t}" for t in tests) + "\n")
        png = (f"continual_{part}_matrices.png" if args.page == "continual_results"
               else f"{args.page}_{part}_matrices.png")
        plot_matrices(runs, part, os.path.join(docs, png))
        body.append(f"![{part} matrices]({png})\n")
        if part == "synthetic":
            fpng = "continual_synthetic_factors.png" if args.page == "continual_results" else f"{args.page}_factors.png"
            plot_factors(runs, os.path.join(docs, fpng))
            body.append("Probe accuracy of each factor over the task sequence (the dotted line marks the task "
                        f"that labels by that factor):\n\n![per-factor probes]({fpng})\n")
    if failed:
        body.append("Runs that failed (not in the means above):\n\n" + "\n".join(
            f"- {r['part']} {r['strategy']} seed {r['seed']}: {r['error']}" for r in failed) + "\n")
    body.append("Sample images of the synthetic set:\n\n![samples](continual_samples.png)\n")
    body.append(f"Total CPU time of the runs: {sum(r['cpu_s'] for r in runs) / 60:.1f} min "
                f"({len(runs)} runs; wall {sum(r['wall_s'] for r in runs) / 60:.1f} min on the shared machine).")
    write_page(os.path.join(docs, f"{args.page}.md"), "Continual representation learning benchmark", command,
               "\n".join(body))


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    runs_path = os.path.join(args.out, "runs.jsonl")
    command = "python benchmarks/continual_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.report:
        runs = load_runs(runs_path)
        seeds = sorted({r["seed"] for r in runs})
        strats = [s for s in STRATEGIES if any(r["strategy"] == s for r in runs)]
        argv = list(sys.argv[1:] if argv is None else argv)
        keep = [a for a in argv if a != "--report"]
        command = ("nice -n 5 python benchmarks/continual_bench.py " + " ".join(keep)
                   + f" --seeds {' '.join(map(str, seeds))}"
                   + ("" if len(strats) == len(STRATEGIES) else f" --strategies {' '.join(strats)}"))
    if not args.report:
        import logging
        logging.disable(logging.INFO)
        done = {(r["part"], r["strategy"], r["seed"]) for r in load_runs(runs_path)}
        for seed in args.seeds:
            for part in args.parts:
                for s in args.strategies:
                    if (part, s, seed) in done:
                        continue
                    try:
                        rec = run_one(args, part, s, seed)
                    except PPZooError as err:  # a diverged run is a result too: listed, not averaged
                        rec = {"part": part, "strategy": s, "seed": seed, "error": str(err), "cpu_s": 0.0,
                               "wall_s": 0.0, "summary": {}}
                        with open(runs_path, "a", encoding="utf-8") as f:
                            f.write(json.dumps(rec) + "\n")
                        print(f"{part} {s} seed {seed}: FAILED {err}", flush=True)
                        continue
                    with open(runs_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(f"{part} {s} seed {seed}: {json.dumps(rec['summary'])} cpu {rec['cpu_s']:.0f}s "
                          f"wall {rec['wall_s']:.0f}s", flush=True)
                    report(args, runs_path, command)
    report(args, runs_path, command)


if __name__ == "__main__":
    main()
