"""EDL-Dist teacher-cost sweep: student samples/s against the teacher's cost and the number
of teacher replicas, for online distillation, edl and the student alone.

    PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_sweep.py \
        [--latency-ms 0 1 2 4 8] [--replicas 1 2 4] [--iters 30] [--repeats 3]

The teacher's cost is set with ``distill.simulated_ms_per_sample``: a labelled benchmark
knob that makes the teacher sleep that many milliseconds per sample after its forward
pass, standing for a remote or much heavier teacher (the paper's ResNeXt101 teacher for a
ResNet50 student).  A sleep costs no CPU, so this sweep measures the *mechanism* (overlap
of teacher latency with the student's step, and spreading it over replicas) on a machine
with too few cores to run real heavy teachers in parallel.

Timed region: from the end of iteration ``--warmup`` to the end of the last-but-one
iteration, measured by a hook (no start-up, Ray or model loading, eval or checkpoint in
it; eval and checkpoint intervals are set past the run).  Threads: one per process
(``ppzoo.engine.cpu.tune_cpu`` -> ``paddle.base.core.set_num_threads``; Paddle Inference
``cpu_threads: 1``; ``OMP_NUM_THREADS=1`` for the Ray workers).  Writes
``docs/benchmarks/distill_sweep.md`` and ``distill_sweep.png``.
"""
import argparse
import copy
import os
import sys
import tempfile
import time

os.environ.setdefault("PPZOO_CPU_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from distill_common import export_untrained, run_config, run_options  # noqa: E402

from ppzoo.engine.hooks import Hook  # noqa: E402


class IterClock(Hook):
    """Wall-clock time at the end of every iteration (runs before checkpoint/eval hooks)."""
    priority = 1

    def __init__(self):
        self.t = []

    def after_iter(self, trainer):
        self.t.append(time.perf_counter())


def timed(cfg, warmup):
    from ppzoo.engine.trainer import build_trainer
    tr = build_trainer(copy.deepcopy(cfg))
    clock = IterClock()
    tr.register_hook(clock)
    tr.train()
    t = clock.t
    n_iters = len(t) - 1 - warmup - 1          # iterations warmup+1 .. last-but-one
    wall = t[-2] - t[warmup]
    return n_iters * tr.batch_size / wall, getattr(tr, "teacher_stats", {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-ms", type=float, nargs="+", default=[0, 1, 2, 4, 8])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--teacher-width", type=int, default=64)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks/distill_sweep.md"))
    args = ap.parse_args()
    from ppzoo.core.config import load_config
    from ppzoo.distill.pool import init_ray

    work = tempfile.mkdtemp(prefix="distill_sweep_")
    quiet = ["train.log_interval=100000", f"output_dir={work}"]
    # the teacher's weights do not matter for throughput: an untrained, seeded export
    tcfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                       [f"model.width={args.teacher_width}", *quiet])
    tdir = export_untrained(tcfg, work)
    init_ray(None, num_cpus=max(args.replicas) + 1)   # one Ray for the whole sweep

    total = args.iters
    common = run_options(tdir, total, quiet)
    edl = os.path.join(ROOT, "configs/distill/digits_edl.yml")
    online = os.path.join(ROOT, "configs/distill/digits_online.yml")
    k = [0]

    def cfg_of(cell):
        kind, ms, r = cell
        k[0] += 1
        lat = [f"distill.simulated_ms_per_sample={ms}"] if kind != "alone" else []
        return run_config(edl, online, common + lat, kind, r, f"run{k[0]}")

    cells = [("alone", 0, 0)] + [(kind, ms, r) for ms in args.latency_ms
                                 for kind, r in [("online", 0)] + [("edl", r)
                                                                   for r in args.replicas]]
    res = {c: [] for c in cells}
    for rep in range(args.repeats):             # round robin: load changes hit every cell
        for cell in cells:
            sps, stats = timed(cfg_of(cell), args.warmup)
            res[cell].append(sps)
            print(f"repeat {rep} {cell} {sps:.1f} samples/s {stats.get('per_worker', '')}",
                  flush=True)
    med = {c: float(np.median(v)) for c, v in res.items()}

    def fmt(c):
        v = res[c]
        return f"{med[c]:.0f}" + (f" [{min(v):.0f}-{max(v):.0f}]" if len(v) > 1 else "")

    alone_sps = med[("alone", 0, 0)]
    rows = [{"ms": ms, "online": med[("online", ms, 0)],
             **{r: med[("edl", ms, r)] for r in args.replicas}} for ms in args.latency_ms]
    head = ("| teacher latency (simulated, ms/sample) | online | "
            + " | ".join(f"edl x{r}" for r in args.replicas)
            + " | " + " | ".join(f"edl x{r} / online" for r in args.replicas) + " |")
    lines = [head, "|" + "---|" * (2 + 2 * len(args.replicas))]
    for ms in args.latency_ms:
        on = med[("online", ms, 0)]
        lines.append(f"| {ms:g} | {fmt(('online', ms, 0))} | "
                     + " | ".join(fmt(("edl", ms, r)) for r in args.replicas) + " | "
                     + " | ".join(f"{med[('edl', ms, r)] / on:.2f}x" for r in args.replicas)
                     + " |")
    plot = os.path.splitext(args.out)[0] + ".png"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [row["ms"] for row in rows]
        ax.plot(xs, [row["online"] for row in rows], "k-o", label="online")
        for r in args.replicas:
            ax.plot(xs, [row[r] for row in rows], "-o", label=f"edl, {r} replicas")
        ax.axhline(alone_sps, color="grey", ls="--", label="student alone")
        ax.set_xlabel("simulated teacher latency (ms/sample)")
        ax.set_ylabel("student samples/s")
        ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        tmp = plot + ".tmp.png"
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, plot)
        plot_line = f"![sweep]({os.path.basename(plot)})\n\n"
    except ImportError:
        plot_line = ""
    body = (f"Student SmallCNN width 8 on the digits, batch 64; teacher SmallCNN width "
            f"{args.teacher_width} (Paddle Inference, 1 thread) plus the simulated latency; "
            f"{total} iterations per run, timed from iteration {args.warmup} to the "
            f"last-but-one (start-up, eval and checkpoints excluded); median of "
            f"{args.repeats} round-robin repeats per cell, [min-max] beside it.\n\n"
            f"Student alone: **{fmt(('alone', 0, 0))} samples/s**.\n\n" + plot_line
            + "\n".join(lines) + "\n")
    cmd = "PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_sweep.py " + " ".join(
        sys.argv[1:])
    write_page(args.out, "EDL-Dist teacher-cost sweep (simulated teacher latency)", cmd, body)


if __name__ == "__main__":
    main()
