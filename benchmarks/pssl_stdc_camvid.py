"""STDC2-Seg on CamVid at CPU scale: fine-tuning from ppzoo's own PSSL pre-training vs from scratch.

Protocol: CamVid at 128x96 (STDC2 divides by 32); ppzoo's own PSSL labels for a seeded
subset of the train frames from one SmallCNN multi-label classifier trained on 40x40 crops
(configs/pssl/camvid_classifier.yml, fewer epochs), explained by CAM and Grad-CAM (the
fast members of configs/pssl/camvid_generate.yml; SmoothGrad and LIME left out for CPU
time) with the paper's consensus (one threshold, binary labels); STDC2-Seg (PaddleSeg's
module, 12 classes = 11 + background, background weight 0.1, its three logits weighted 1)
pre-trained on those labels from random weights; then STDC2-Seg fine-tuned on 10% of the
train masks (37 frames) from that checkpoint (the 12-class heads skipped) and from
scratch (the floor), the same seeds and subsets in both arms, and from scratch on all 367
train masks with the same iterations (the ceiling at this budget), and from scratch with
the pre-training's iterations added to the fine-tuning's (a control for the extra steps); val mIoU on the 101 val frames scored on
the 480x360 masks as annotated (logits resized to the label).  The ImageNet-scale recipe is
configs/pssl/stdc2_seg_pssl.yml; this is a CPU analogue of its shape, not of its numbers.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, last_record, write_page  # noqa: E402

import numpy as np  # noqa: E402

OUT = os.path.join(ROOT, "output", "bench_pssl_stdc")
PAGE = os.path.join(ROOT, "docs", "benchmarks", "pssl_stdc_camvid.md")
HW = [96, 128]
NORM = {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def cfg(path, opts=()):
    from ppzoo.core import load_config
    return load_config(os.path.join(ROOT, path), list(opts))


def train(c, name):
    import ppzoo
    c = dict(c, name=name, output_dir=OUT)
    t = ppzoo.build_trainer(c, overwrite=True)
    t.train()
    return t


def stdc(num_classes):
    return {"type": "STDCSeg", "num_classes": num_classes, "backbone": "STDC2", "use_boundary_8": False}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--cls-epochs", type=int, default=5)
    ap.add_argument("--pseudo-fraction", type=float, default=0.26)
    ap.add_argument("--pre-epochs", type=int, default=4)
    ap.add_argument("--ft-iters", type=int, default=30)
    ap.add_argument("--ceiling-seeds", type=int, default=1, help="seeds of the all-masks arm")
    ap.add_argument("--quick", action="store_true", help="a smoke run into output/bench_pssl_stdc_quick")
    args = ap.parse_args()
    global OUT, PAGE
    if args.quick:  # never reused by, and never overwrites, the real run
        OUT = OUT + "_quick"
        PAGE = os.path.join(OUT, "page.md")
    cmd = ("nice -n 5 /work/main/.venv/bin/python benchmarks/pssl_stdc_camvid.py " +
           " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "quick"))
    import ppzoo  # noqa: F401
    from ppzoo.pssl.generate import Generator
    os.makedirs(OUT, exist_ok=True)
    t0, timings, sections = time.time(), {}, []

    def page(extra=()):
        write_page(PAGE, "STDC2-Seg on CamVid: ppzoo's PSSL pre-training vs scratch (CPU analogue)", cmd,
                   __doc__.split("\n\n")[1] + "\n\n" + "\n\n".join(sections + list(extra)))

    # 1. one classifier on image-level labels of crops
    t = time.time()
    if last_record(os.path.join(OUT, "cls0"), "val") is None:
        train(cfg("configs/pssl/camvid_classifier.yml", ["seed=0", f"train.epochs={args.cls_epochs}"]), "cls0")
    rec = last_record(os.path.join(OUT, "cls0"), "val")
    timings["classifier"] = round(time.time() - t, 1)
    sections.append(f"## Classifier (SmallCNN, {args.cls_epochs} epochs, 40x40 crops)\n\nval micro F1 "
                    f"{rec['f1']:.3f}, mAP {rec['mAP']:.3f}")
    # 2. pseudo labels: CAM + Grad-CAM, the paper's consensus
    t = time.time()
    g = cfg("configs/pssl/camvid_generate.yml", [f"output_dir={OUT}/labels",
                                                 f"dataset.dataset.subset_fraction={args.pseudo_fraction}"])
    g["classifiers"] = [dict(g["classifiers"][0], weights=f"{OUT}/cls0/latest/model.pdparams")]
    g["explainers"] = [e for e in g["explainers"] if e["type"] in ("CAM", "GradCAM")]
    g["variants"] = {}
    gen = Generator(g)
    gen.run()
    timings["generation"] = round(time.time() - t, 1)
    qual = json.load(open(f"{OUT}/labels/quality.json"))["quality"]["ensemble"]
    sections.append(f"## Pseudo labels ({len(gen.dataset)} train frames, CAM + Grad-CAM, paper consensus)\n\n"
                    f"against the true masks: mIoU {qual['mIoU']:.3f}, pixel accuracy {qual['pixel_acc_covered']:.3f}")
    page()
    # 3. pre-train STDC2-Seg on the pseudo labels
    t = time.time()
    pre = cfg("configs/pssl/camvid_pretrain.yml", [f"train_dataset.root={OUT}/labels",
                                                   f"train_dataset.file_list={OUT}/labels/train_list.txt",
                                                   f"train.epochs={args.pre_epochs}", "train.batch_size=8"])
    pre["model"] = stdc(12)
    pre["loss"] = dict(pre["loss"], coefs=[1.0, 1.0, 1.0])
    pre["train_dataset"]["transforms"] = [{"type": "Resize", "size": HW}, {"type": "RandomHorizontalFlip"},
                                          NORM, {"type": "ToCHW"}]
    log = os.path.join(OUT, "pretrain", "train.log")  # a cut-off pre-training is not reused
    if not (os.path.isfile(log) and "training done" in open(log, encoding="utf-8").read()):
        train(pre, "pretrain")
    timings["pretrain"] = round(time.time() - t, 1)
    # 4. fine-tune on 10% of the masks, two arms, paired seeds
    arms = {"scratch (floor)": None, "ppzoo PSSL pre-training": f"{OUT}/pretrain/latest/model.pdparams",
            "scratch on all 367 train masks (ceiling at this budget)": "all",
            "scratch, the pre-training's iterations added (compute control)": "long"}
    import re
    pre_iters = int(re.search(r"training done: (\d+) iterations", open(log, encoding="utf-8").read()).group(1))
    res = {a: [] for a in arms}
    it = args.ft_iters
    for seed in range(args.seeds):
        for a, init in arms.items():
            if init in ("all", "long") and seed >= args.ceiling_seeds:
                continue
            run = f"ft_{init if init in ('all', 'long') else 'pssl' if init else 'scratch'}_{seed}"
            n_it = it + pre_iters if init == "long" else it
            if args.quick:
                run += "_q"
            rec = last_record(os.path.join(OUT, run), "val", n_it)
            if rec is None:
                ft = cfg("configs/pssl/camvid_finetune.yml", [f"seed={seed}", f"train.iters={n_it}", "train.batch_size=8",
                                                              f"train.eval_interval={n_it}", f"train_dataset.subset_seed={seed}"])
                ft["model"] = stdc(11)
                ft["pretrained"] = None if init in ("all", "long") else init
                if init == "all":
                    ft["train_dataset"]["subset_fraction"] = None
                ft["loss"] = dict(ft["loss"], coefs=[1.0, 1.0, 1.0])
                ft["train_dataset"]["transforms"] = [{"type": "Resize", "size": HW}, {"type": "RandomHorizontalFlip"},
                                                     NORM, {"type": "ToCHW"}]
                ft["val_dataset"]["transforms"] = [{"type": "Resize", "size": HW, "mask": False}, NORM, {"type": "ToCHW"}]
                if args.quick:
                    ft["val_dataset"]["limit"] = 4
                t = time.time()
                train(ft, run)
                timings[run] = round(time.time() - t, 1)
                rec = last_record(os.path.join(OUT, run), "val", n_it)
            res[a].append(rec["mIoU"])
            tab = "| init | mIoU per seed | mean ± std |\n|---|---|---|\n" + "\n".join(
                f"| {k} | {', '.join(f'{v:.4f}' for v in vs)} | {np.mean(vs):.4f}"
                f" ± {np.std(vs, ddof=1) if len(vs) > 1 else float('nan'):.4f} |" for k, vs in res.items() if vs)
            page([f"## Fine-tuning STDC2-Seg, {it} iterations, batch 8; val mIoU (101 frames)\n\n" + tab])
    d = np.subtract(res["ppzoo PSSL pre-training"], res["scratch (floor)"])
    test = ""
    if len(d) > 2:
        from scipy.stats import ttest_rel
        test = (f" Mean {d.mean():+.4f}, paired t-test p = "
                f"{ttest_rel(res['ppzoo PSSL pre-training'], res['scratch (floor)']).pvalue:.3f}.")
    timings["total"] = round(time.time() - t0, 1)
    json.dump({"finetune": res, "timings_s": timings}, open(os.path.join(OUT, "results.json"), "w"), indent=1)
    page([f"## Fine-tuning STDC2-Seg, {it} iterations, batch 8; val mIoU (101 frames)\n\n" + tab +
          f"\n\nPaired by seed: PSSL - scratch = {', '.join(f'{v:+.4f}' for v in d)}.{test}\n\n"
          f"Timings (s; this invocation's, a reused step shows its reuse time): {timings}"])


if __name__ == "__main__":
    main()
