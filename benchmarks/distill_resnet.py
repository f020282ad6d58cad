"""EDL-Dist with a real heavy teacher: an exported ResNet (default ResNet-152; ResNet-18
at 32x32 costs ~0.5 ms per sample, less than the student's step) on CIFAR-10 (32x32) and a small
CNN student; student samples/s for online distillation, edl with 1/2/4 teacher replicas,
and the student alone.

    PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_resnet.py \
        [--replicas 1 2 4] [--iters 25] [--repeats 3] [--depth 152]

The teacher is randomly initialised (seeded) and exported with the project's exporter:
its weights do not change its cost, and throughput is what is measured here.  No
simulated latency: every millisecond of teacher time is real compute.  Data: the real
CIFAR-10 training images from ``$PPZOO_DATA/cifar10`` (JPEG decoding is part of the
student's step in every mode).  One thread per process (``tune_cpu(1)``, Paddle Inference
``cpu_threads: 1``); timed from iteration 3 to the last-but-one (no start-up, eval or
checkpoint); median of round-robin repeats.  Also measured: the teacher's forward and the
student's training step alone, in ms/sample, and the 1-minute load average during the run.

On a machine with fewer free cores than replicas + 1 the replicas share cores with the
student and each other: the scaling measured is bounded by the cores, not by EDL-Dist.
Writes ``docs/benchmarks/distill_resnet.md`` and ``distill_resnet.png``.
"""
import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("PPZOO_CPU_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from ppzoo.core.paths import data_root  # noqa: E402
from distill_common import export_untrained, run_config, run_options  # noqa: E402
from ppzoo.engine.hooks import Hook  # noqa: E402

DATA = os.path.join(data_root(), "cifar10")


class Clock(Hook):
    """Wall-clock and this process's CPU time at the end of every iteration."""
    priority = 1

    def __init__(self):
        self.t, self.cpu = [], []

    def after_iter(self, trainer):
        self.t.append(time.perf_counter())
        self.cpu.append(time.process_time())


def timed(cfg, warmup):
    """Student samples/s and the student process's CPU ms per sample over iterations
    warmup+1 .. last-but-one; the teachers' CPU ms per sample served (whole run)."""
    import copy

    from ppzoo.engine.trainer import build_trainer
    tr = build_trainer(copy.deepcopy(cfg))
    clock = Clock()
    tr.register_hook(clock)
    tr.train()
    n = (len(clock.t) - 2 - warmup) * tr.batch_size
    stats = getattr(tr, "teacher_stats", {})
    served = sum((stats.get("per_worker") or {}).values())
    tcpu = sum((stats.get("teacher_cpu_s") or {}).values())
    return (n / (clock.t[-2] - clock.t[warmup]),
            1e3 * (clock.cpu[-2] - clock.cpu[warmup]) / n,
            1e3 * tcpu / served if served else float("nan"), stats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--iters", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--depth", type=int, default=152)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks/distill_resnet.md"))
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(DATA, "train")):
        sys.exit(f"CIFAR-10 not found at {DATA} (set $PPZOO_DATA to the data root)")
    import paddle

    from ppzoo.core.config import load_config
    from ppzoo.distill.pool import TeacherRunner, init_ray

    work = tempfile.mkdtemp(prefix="distill_resnet_")
    data = [f"train_dataset.root={DATA}/train", f"val_dataset.root={DATA}/test"]
    quiet = ["train.log_interval=100000", f"output_dir={work}", *data]
    tcfg = load_config(os.path.join(ROOT, "configs/distill/cifar10_teacher.yml"),
                       [f"model.depth={args.depth}", *quiet])
    paddle.seed(0)
    tdir = export_untrained(tcfg, work)

    # the teacher's forward alone, one thread, batch 16 (the request size)
    runner = TeacherRunner(tdir, cpu_threads=1)
    x = np.random.RandomState(0).randn(16, 3, 32, 32).astype(np.float32)
    for _ in range(5):
        runner.infer([x])
    t0 = time.perf_counter()
    n = 30
    for _ in range(n):
        runner.infer([x])
    teacher_ms = (time.perf_counter() - t0) * 1e3 / (n * 16)
    del runner
    print(f"teacher forward {teacher_ms:.3f} ms/sample", flush=True)

    init_ray(None, num_cpus=2 * max(args.replicas) + 1)
    total = args.iters
    common = run_options(tdir, total, quiet)
    edl = os.path.join(ROOT, "configs/distill/cifar10_edl.yml")
    online = os.path.join(ROOT, "configs/distill/cifar10_online.yml")
    k = [0]

    def cfg_of(cell):
        k[0] += 1
        return run_config(edl, online, common, cell[0], cell[1], f"run{k[0]}")

    cells = [("alone", 0), ("online", 0)] + [("edl", r) for r in args.replicas]
    res = {c: [] for c in cells}
    cpu = {c: [] for c in cells}
    tcpu = {c: [] for c in cells}
    loads = []
    t_start = time.time()
    for rep in range(args.repeats):
        for cell in cells:
            loads.append(os.getloadavg()[0])
            sps, scpu, tc, stats = timed(cfg_of(cell), args.warmup)
            res[cell].append(sps)
            cpu[cell].append(scpu)
            tcpu[cell].append(tc)
            print(f"repeat {rep} {cell} {sps:.1f} samples/s {stats.get('per_worker', '')}",
                  flush=True)
    wall = time.time() - t_start
    med = {c: float(np.median(v)) for c, v in res.items()}

    def fmt(c):
        v = res[c]
        return f"{med[c]:.0f} [{min(v):.0f}-{max(v):.0f}]"

    on = med[("online", 0)]
    alone = med[("alone", 0)]
    lines = ["| mode | student samples/s | / online | / student alone | student process CPU "
             "ms/sample | teacher workers' CPU ms/sample |", "|---|---|---|---|---|---|"]
    for c in cells:
        label = {"alone": "student alone (no teacher)", "online": "online (teacher in-process)"}\
            .get(c[0], f"edl, {c[1]} replica(s)")
        tc = np.median(tcpu[c])
        lines.append(f"| {label} | {fmt(c)} | {med[c] / on:.2f}x | {med[c] / alone:.2f}x | "
                     f"{np.median(cpu[c]):.2f} | {'-' if np.isnan(tc) else f'{tc:.2f}'} |")
    plot = os.path.splitext(args.out)[0] + ".png"
    plot_line = ""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        rs = args.replicas
        ax.plot(rs, [med[("edl", r)] for r in rs], "-o", label="edl")
        ax.axhline(on, color="k", label="online")
        ax.axhline(alone, color="grey", ls="--", label="student alone")
        ax.set_xlabel("teacher replicas")
        ax.set_ylabel("student samples/s")
        ax.set_xticks(rs)
        ax.set_title(f"ResNet-{args.depth} teacher, CIFAR-10, 2 shared cores")
        ax.legend()
        fig.tight_layout()
        tmp = plot + ".tmp.png"
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, plot)
        plot_line = f"![resnet]({os.path.basename(plot)})\n\n"
    except ImportError:
        pass
    body = (f"Teacher ResNet-{args.depth} (paddle.vision, randomly initialised, exported; "
            f"Paddle Inference, 1 thread, 0.5 Ray CPU per replica): **{teacher_ms:.2f} ms per "
            f"sample** for its forward alone (batch 16, measured in the benchmark process "
            f"before Ray started).  Student SmallCNN width 16 depth 2, batch 64, real "
            f"CIFAR-10 training JPEGs; request size 16, prefetch 4, `max_in_flight` 2 x "
            f"replicas + 2.  {total} iterations per run timed from iteration {args.warmup} to "
            f"the last-but-one; median [min-max] of {args.repeats} round-robin repeats; "
            f"{len(cells) * args.repeats} runs in {wall / 60:.1f} min; 1-minute load average "
            f"at the start of each run: median {np.median(loads):.1f}, range "
            f"{min(loads):.1f}-{max(loads):.1f} (other jobs share the machine).\n\n"
            + plot_line + "\n".join(lines) + "\n")
    cmd = "PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_resnet.py " + " ".join(
        sys.argv[1:])
    write_page(args.out, f"EDL-Dist with a real heavy teacher (ResNet-{args.depth}, CIFAR-10)",
               cmd, body)


if __name__ == "__main__":
    main()
