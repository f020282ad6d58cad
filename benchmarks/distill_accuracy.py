"""Does distillation help the student?  Top-1 of the student trained alone vs distilled from
the teacher, over several seeds, paired by seed.

    PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_accuracy.py [--seeds 0 1 2 3 4]

The teacher (SmallCNN width 64) is trained once; each seed trains the student (SmallCNN
width 8) twice with the same seed, hence the same initialisation and data order: alone
(cross-entropy) and distilled (``online`` mode: the same soft labels edl delivers, which
the tests check to give the same accuracy).  Writes docs/benchmarks/distill_accuracy.md.
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("PPZOO_CPU_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks/distill_accuracy.md"))
    args = ap.parse_args()
    from scipy import stats
    from ppzoo.core.config import load_config
    from ppzoo.engine.export import export_from_config
    from ppzoo.engine.trainer import build_trainer

    work = tempfile.mkdtemp(prefix="distill_acc_")
    quiet = ["train.log_interval=100000", f"output_dir={work}"]
    tcfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                       [f"train.epochs={args.teacher_epochs}", *quiet])
    t = build_trainer(tcfg)
    t.train()
    teacher_acc = t.evaluate()["top1"]
    tdir = os.path.join(work, "teacher_inference")
    export_from_config(tcfg, os.path.join(t.work_dir, "best", "model.pdparams"), tdir)
    online = os.path.join(ROOT, "configs/distill/digits_online.yml")
    common = [f"distill.teacher_dir={tdir}", f"train.epochs={args.epochs}",
              f"train.eval_interval={10 ** 6}", *quiet]
    rows = []
    for seed in args.seeds:
        res = {}
        for mode in ("alone", "distilled"):
            cfg = load_config(online, common + [f"seed={seed}", f"name={mode}_{seed}"])
            if mode == "alone":
                cfg["trainer"] = {"type": "Trainer"}
                cfg.pop("distill")
                cfg["loss"] = {"type": "CrossEntropyLoss"}
            tr = build_trainer(cfg)
            tr.train()
            res[mode] = 100 * tr.evaluate()["top1"]   # the final model, not the best
        rows.append((seed, res["alone"], res["distilled"]))
        print(seed, res, flush=True)
    a = np.array([r[1] for r in rows])
    d = np.array([r[2] for r in rows])
    diff = d - a
    t_res = stats.ttest_rel(d, a)
    w_res = stats.wilcoxon(d, a) if len(rows) >= 5 and np.any(diff) else None
    lines = ["| seed | alone top-1 | distilled top-1 | difference |", "|---|---|---|---|"]
    lines += [f"| {s} | {x:.2f} | {y:.2f} | {y - x:+.2f} |" for s, x, y in rows]
    lines.append(f"| mean ± sd | {a.mean():.2f} ± {a.std(ddof=1):.2f} | "
                 f"{d.mean():.2f} ± {d.std(ddof=1):.2f} | {diff.mean():+.2f} ± "
                 f"{diff.std(ddof=1):.2f} |")
    body = (f"Digits (sklearn 8x8), teacher SmallCNN width 64 trained {args.teacher_epochs} "
            f"epochs (top-1 {100 * teacher_acc:.2f}); student SmallCNN width 8, "
            f"{args.epochs} epochs, batch 64; distilled = 0.7 KD(T=4) + 0.3 CE from the "
            f"teacher's soft labels (`online` mode); alone = CE.  Same seed = same "
            f"initialisation and data order for both.  Top-1 of the final model on the "
            f"validation split.\n\n" + "\n".join(lines) + "\n\n"
            f"Paired t-test over {len(rows)} seeds: t = {t_res.statistic:.2f}, "
            f"p = {t_res.pvalue:.3f}"
            + (f"; Wilcoxon signed-rank p = {w_res.pvalue:.3f}" if w_res else "") + ".\n")
    cmd = "PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_accuracy.py " + " ".join(
        sys.argv[1:])
    write_page(args.out, "EDL-Dist: distilled vs student alone over seeds", cmd, body)


if __name__ == "__main__":
    main()
