"""EDL-Dist benchmark: student samples/s, CPU per side and accuracy for student-alone,
online, offline and edl with 1..N teacher workers, with one teacher, student and data.

    nice -n 5 python benchmarks/distill_throughput.py [--workers 1 2] [--epochs 8]

Writes docs/benchmarks/distill.md.  Everything runs through build_trainer and the
configs in configs/distill/ (with --opts-style overrides), as tools/train.py would.
"""
import argparse
import copy
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(cfg):
    from ppzoo.engine.trainer import build_trainer
    t0 = time.time()
    tr = build_trainer(copy.deepcopy(cfg))
    build_s = time.time() - t0
    c0, t0 = cpu_self(), time.time()
    tr.train()
    wall = time.time() - t0
    student_cpu = cpu_self() - c0
    samples = tr.iter * tr.batch_size
    stats = getattr(tr, "teacher_stats", {})
    teacher_cpu = sum(stats.get("teacher_cpu_s", {}).values())
    acc = tr.evaluate()["top1"]
    return {"samples_s": samples / wall, "student_ms": 1000 * student_cpu / samples,
            "teacher_ms": 1000 * teacher_cpu / samples, "wall": wall, "build_s": build_s,
            "student_cores": student_cpu / wall, "teacher_cores": teacher_cpu / wall,
            "wait_s": stats.get("wait_s", 0.0), "acc": acc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--teacher-width", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prefetch", type=int, default=4, help="student batches read ahead (edl)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks/distill.md"))
    args = ap.parse_args()
    import paddle
    from ppzoo.engine.cpu import tune_cpu
    tune_cpu(1)     # paddle.base.core.set_num_threads: one thread for the student's kernels
    from ppzoo.core.config import load_config
    from ppzoo.engine.export import export_from_config
    from ppzoo.engine.trainer import build_trainer

    work = tempfile.mkdtemp(prefix="distill_bench_")
    quiet = ["train.log_interval=1000", f"output_dir={work}"]
    tcfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                       [f"model.width={args.teacher_width}", "train.epochs=10", *quiet])
    t = build_trainer(tcfg)
    t.train()
    teacher_acc = t.evaluate()["top1"]
    tdir = os.path.join(work, "teacher_inference")
    export_from_config(tcfg, os.path.join(t.work_dir, "best", "model.pdparams"), tdir)

    total = args.epochs * 23
    common = [f"distill.teacher_dir={tdir}", f"train.epochs={args.epochs}",
              f"train.eval_interval={total}", f"train.checkpoint_interval={total}",
              "distill.ray_num_cpus=2", *quiet]
    edl = os.path.join(ROOT, "configs/distill/digits_edl.yml")
    configs = []
    alone = load_config(edl, common + ["trainer.type=Trainer", "name=alone"])
    alone.pop("distill")
    alone["loss"] = {"type": "CrossEntropyLoss"}
    configs.append(("student alone", alone))
    configs.append(("online", load_config(edl, common + ["distill.mode=online", "name=online"])))
    off = load_config(edl, common + ["distill.mode=offline", "distill.num_workers=0", "name=offline"])
    build_trainer(copy.deepcopy(off), build_train=True)   # writes the soft labels once
    configs.append(("offline (labels precomputed)", off))
    ap_edl = [f"distill.prefetch={args.prefetch}", f"distill.max_in_flight={2 * args.prefetch}"]
    for n in args.workers:
        configs.append((f"edl, {n} teacher worker{'s' if n > 1 else ''}", load_config(
            edl, common + ap_edl + ["distill.mode=edl", f"distill.num_workers={n}",
                                    f"distill.worker_cpus={2.0 / max(n, 2)}", f"name=edl{n}"])))
    # the machine is shared: run the modes round-robin and report medians
    results = {name: [] for name, _ in configs}
    for _ in range(args.repeats):
        for name, cfg in configs:
            results[name].append(run(cfg))
    rows = [(name, {k: float(np.median([r[k] for r in rs])) for k in rs[0]})
            for name, rs in results.items()]
    import ray
    if ray.is_initialized():
        ray.shutdown()

    base = rows[0][1]["samples_s"]
    online = rows[1][1]["samples_s"]
    lines = ["| mode | student samples/s | x student-alone | x online | student CPU ms/sample | "
             "teacher-worker CPU ms/sample | student cores | teacher cores | "
             "wait for soft labels (s) | top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['samples_s']:.0f} | {r['samples_s'] / base:.2f} | "
                     f"{r['samples_s'] / online:.2f} | {r['student_ms']:.3f} | "
                     f"{r['teacher_ms']:.3f} | {r['student_cores']:.2f} | "
                     f"{r['teacher_cores']:.2f} | {r['wait_s']:.1f} | {100 * r['acc']:.2f} |")
    body = (f"Teacher: SmallCNN width {args.teacher_width} (top-1 {100 * teacher_acc:.2f}), "
            f"exported and run with Paddle Inference (1 thread per worker); student: SmallCNN "
            f"width 8; digits, batch 64, {args.epochs} epochs; distillation loss "
            f"0.7 KD(T=4) + 0.3 CE; edl reads {args.prefetch} batches ahead with "
            f"{2 * args.prefetch} requests of 32 in flight.  Throughput is over the training loop only (pool start-up "
            f"not included); CPU cores = CPU seconds / wall seconds of each side; medians of "
            f"{args.repeats} round-robin repeats.\n\n"
            + "\n".join(lines))
    write_page(args.out, "EDL-Dist throughput", "nice -n 5 python benchmarks/distill_throughput.py "
               + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
