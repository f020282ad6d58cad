"""PSSL on CamVid, a CPU-sized analogue of the paper.

Protocol: CamVid at 120x90; image-level labels = classes covering >= 3% of a 40x40 random
crop of a train frame (whole frames hold nearly every class, see configs/pssl/camvid_classifier.yml);
two SmallCNN multi-label classifiers (seeds 0, 1) trained on such crops; pseudo labels for a
seeded subset of the train frames from CAM, Grad-CAM, SmoothGrad and LIME of both
classifiers (8 members, settings in configs/pssl/camvid_generate.yml and below), explaining
the classes present in the whole frame, with the paper's consensus (one threshold, binary
labels, no pixel weights) and, over the same explanations, ppzoo's extensions (ignore band
+ agreement weights); SmallSegNet pre-trained 10 epochs on each label set (12 classes,
background weight 0.1) from the classifier's trunk (the released PSSL configs start from an
ImageNet backbone); then fine-tuned on 10% of the train masks and compared with the same
model from scratch and with only the classifier's trunk loaded, over 3 seeds.

    nice -n 5 /work/main/.venv/bin/python benchmarks/pssl_camvid.py [--quick]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, last_record, write_page  # noqa: E402

import numpy as np  # noqa: E402

OUT = os.path.join(ROOT, "output", "bench_pssl")
PAGE = os.path.join(ROOT, "docs", "benchmarks", "pssl_camvid.md")
GRID = os.path.join(ROOT, "docs", "benchmarks", "pssl_camvid_grid.png")
CMD = "nice -n 5 /work/main/.venv/bin/python benchmarks/pssl_camvid.py --cls-epochs 20 --pseudo-fraction 0.26"


def cfg(path, opts):
    from ppzoo.core import load_config
    return load_config(os.path.join(ROOT, path), opts)


def train(path, name, opts):
    import ppzoo
    c = cfg(path, opts + [f"name={name}", f"output_dir={OUT}"])
    t = ppzoo.build_trainer(c, overwrite=True)  # a rerun moves the previous run aside
    t.train()
    return t


def last_val(run, at_iter=None):
    return last_record(os.path.join(OUT, run), "val", at_iter)


def picture_grid(gen, path, n=4):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ppzoo.segmentation.datasets import CAMVID_PALETTE
    pal = np.array(CAMVID_PALETTE + [[0, 0, 0]] + [[255, 255, 255]] * 244, np.uint8)
    names = [m for m, _ in gen.members if m.startswith("SmallCNN0")]
    cols = 1 + len(names) + 3
    fig, axes = plt.subplots(n, cols, figsize=(2.0 * cols, 1.6 * n))
    for r, idx in enumerate(np.linspace(0, len(gen.dataset) - 1, n).astype(int)):
        s = gen.dataset[idx]
        present, maps, lab, conf, cons = gen.explain_one(s)
        img = np.transpose(s["image"], (1, 2, 0)) * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])
        panels = [("image", np.clip(img, 0, 1))]
        for k, nm in enumerate(names):
            m = maps[k].max(0) if present else np.zeros(lab.shape)
            panels.append((nm.split("/")[1], m))
        true = np.asarray(s["mask"]).copy()
        true[true == 255] = 12
        panels += [("consensus", cons.max(0) if present else np.zeros(lab.shape)),
                   ("pseudo label", pal[np.where(lab == 255, 12, lab)]),
                   ("true mask", pal[true])]
        for c, (title, p) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(p, cmap=None if p.ndim == 3 else "jet")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cls-epochs", type=int, default=30, help="classifier training epochs")
    ap.add_argument("--pseudo-fraction", type=float, default=1.0,
                    help="fraction of the train images that get pseudo labels")
    args = ap.parse_args()
    global OUT, PAGE, GRID
    if args.quick:  # a smoke run must never be reused by, or overwrite, the real one
        OUT = OUT + "_quick"
        PAGE, GRID = os.path.join(OUT, "pssl_camvid.md"), os.path.join(OUT, "pssl_camvid_grid.png")
    import ppzoo  # noqa: F401
    from ppzoo.pssl.generate import Generator
    os.makedirs(OUT, exist_ok=True)
    q = args.quick
    lim = ["train_dataset.dataset.limit=24", "val_dataset.dataset.limit=16"] if q else []
    t0 = time.time()
    log = {"timings_s": {}}
    prev_path = os.path.join(OUT, "results.json")
    prev = json.load(open(prev_path)).get("timings_s", {}) if os.path.isfile(prev_path) and not q else {}

    def timed(step, started, reused):
        """Wall time of a step; a step reused from an earlier run keeps that run's time."""
        log["timings_s"][step] = prev.get(step, "reused") if reused else round(time.time() - started, 1)
    sections = []

    def page():
        write_page(PAGE, "PSSL on CamVid (CPU analogue)", CMD, __doc__.split("\n\n")[1] + "\n\n" + "\n\n".join(sections))

    # 1. classifiers on image-level labels
    cls_res = []
    reused = not q
    for s in (0, 1):
        if q or not os.path.isfile(os.path.join(OUT, f"cls{s}", "latest", "model.pdparams")):
            reused = False
            train("configs/pssl/camvid_classifier.yml", f"cls{s}",
                  lim + [f"seed={s}"] + [f"train.epochs={1 if q else args.cls_epochs}"])
        cls_res.append(last_val(f"cls{s}"))  # training ends with a val pass: its record
    timed("classifiers", t0, reused)
    sections.append(f"## Classifiers ({1 if q else args.cls_epochs} epochs; one 40x40 crop per val frame, crop-level labels)\n\n| classifier | micro F1 | mAP |\n|---|---|---|\n" +
                    "\n".join(f"| SmallCNN seed {s} | {r['f1']:.3f} | {r['mAP']:.3f} |" for s, r in enumerate(cls_res)))
    page()

    # 2. pseudo labels
    t1 = time.time()
    gopts = [f"output_dir={OUT}/labels"] + (["dataset.dataset.limit=8"] if q else [f"dataset.dataset.subset_fraction={args.pseudo_fraction}"])
    gcfg = cfg("configs/pssl/camvid_generate.yml", gopts)
    gcfg["classifiers"] = [dict(gcfg["classifiers"][0], weights=f"{OUT}/cls{s}/latest/model.pdparams") for s in (0, 1)]
    gen = Generator(gcfg)
    summary = gen.run()
    timed("generation", t1, summary["generated"] == 0)
    saved = json.load(open(f"{OUT}/labels/quality.json"))
    qual, ips = saved["quality"], saved["images_per_s"]
    n_img = len(gen.dataset)
    order = ([n for n, _ in gen.members] + [n for n in qual if n.endswith("(all classifiers)")]
             + ["ensemble"] + list(gen.variants))
    label = {"ensemble": "**consensus of all 8 (paper: one threshold, binary)**",
             "extensions": "consensus of all 8 + ignore band (ext.)"}
    rows = "\n".join(f"| {label.get(n, n)} | {qual[n]['mIoU']:.3f} | {qual[n]['pixel_acc_covered']:.3f} | "
                     f"{qual[n]['labelled']:.3f} |" for n in order)
    ex = {e["type"]: e for e in gcfg["explainers"]}
    thr = "\n".join(f"| {n} | {ips[n]:.2f} | {json.dumps({k: v for k, v in ex[n.split('/')[1]].items() if k != 'type'})} |"
                     for n, _ in gen.members)
    con = gcfg["consensus"]
    sections.append(
        f"## Pseudo-label quality on {n_img} train frames (a seeded {args.pseudo_fraction:.0%} subset) vs. the true masks\n\n"
        "mIoU over the 11 classes and pixel accuracy, both over the pixels the pseudo label does not "
        "ignore (background counts as a wrong answer); `labelled` = fraction of valid pixels not ignored. "
        "A single member's label uses the same consensus rule on its own map. "
        f"Consensus: `{json.dumps(con)}`; extensions: `{json.dumps(gcfg['variants']['extensions'])}`.\n\n"
        "| member / consensus | mIoU | pixel acc | labelled |\n|---|---|---|---|\n" + rows +
        f"\n\n### Explainer throughput (images/s, one classifier, 120x90 frames, batch {gcfg['batch_size']}, "
        "every class present in the frame explained)\n\n"
        "| member | images/s | settings |\n|---|---|---|\n" + thr +
        f"\n\nGeneration took {log['timings_s']['generation']} s (explanations, consensus, both label sets, quality).")
    picture_grid(gen, GRID)
    sections.append("![grid](pssl_camvid_grid.png)\n\nimage | explanations of classifier 0 "
                    "(max over present classes) | consensus | pseudo label of the paper's consensus "
                    "(black = background) | true mask")
    page()

    # 3. pre-train the whole model on each label set, from the classifier's trunk as the
    #    released PSSL configs start from an ImageNet backbone
    pre = [f"train_dataset.file_list={OUT}/labels/train_list.txt"] + (["train.epochs=1"] if q else [])
    pre_ext = [f"train_dataset.file_list={OUT}/labels/variants/extensions/train_list.txt"] + (["train.epochs=1"] if q else [])
    trunk = f"{OUT}/cls0/latest/model.pdparams"
    for run, conf, opts in (("pretrain_paper", "configs/pssl/camvid_pretrain.yml", pre),
                            ("pretrain_ext", "configs/pssl/camvid_pretrain_ext.yml", pre_ext)):
        t2 = time.time()
        reused = not q and os.path.isfile(os.path.join(OUT, run, "latest", "model.pdparams"))
        if not reused:
            train(conf, run, opts + [f"pretrained={trunk}"])
        timed(run, t2, reused)

    # 4. fine-tune on 10% of the masks, four arms
    arms = {"scratch": ("scratch", "null"),
            "classifier trunk": ("trunk", trunk),
            "PSSL (paper consensus)": ("pssl_paper", f"{OUT}/pretrain_paper/latest/model.pdparams"),
            "PSSL + extensions (ignore band, agreement weights)": ("pssl_ext", f"{OUT}/pretrain_ext/latest/model.pdparams")}
    res = {a: [] for a in arms}
    iters = 6 if q else 80
    for seed in range(args.seeds):
        for a, (tag, init) in arms.items():
            run = f"ft_{tag}_{seed}"
            rec = None if q else last_val(run, iters)
            if rec is None:
                train("configs/pssl/camvid_finetune.yml", run,
                      [f"pretrained={init}", f"seed={seed}", f"train.iters={iters}", "train.batch_size=8",
                       f"train.eval_interval={iters}", f"train_dataset.subset_seed={seed}"]
                      + (["val_dataset.limit=8"] if q else []))
                rec = last_val(run, iters)
            res[a].append(rec["mIoU"])
            tab = "| init | mIoU per seed | mean ± std |\n|---|---|---|\n" + "\n".join(
                f"| {k} | {', '.join(f'{v:.4f}' for v in vs)} | "
                f"{np.mean(vs):.4f} ± {np.std(vs, ddof=1) if len(vs) > 1 else float('nan'):.4f} |"
                for k, vs in res.items() if vs)
            sec = (f"## Fine-tuning on 10% of the train masks (37 images), {iters} iterations, "
                   f"batch 8; val mIoU (101 images), mean ± sample std over seeds\n\n" + tab)
            page_sections = sections + [sec]
            write_page(PAGE, "PSSL on CamVid (CPU analogue)", CMD,
                       __doc__.split("\n\n")[1] + "\n\n" + "\n\n".join(page_sections))
    log["timings_s"]["total"] = round(time.time() - t0, 1)
    if args.seeds > 1:
        from scipy.stats import ttest_rel
        base = res["scratch"]
        lines = ["| arm vs scratch | mean difference | paired t-test p |", "|---|---|---|"]
        for a in list(arms)[1:]:
            d = np.subtract(res[a], base)
            lines.append(f"| {a} | {d.mean():+.4f} | {ttest_rel(res[a], base).pvalue:.3f} |")
        d = np.subtract(res["PSSL + extensions (ignore band, agreement weights)"], res["PSSL (paper consensus)"])
        lines.append(f"| extensions vs paper consensus | {d.mean():+.4f} | "
                     f"{ttest_rel(res['PSSL + extensions (ignore band, agreement weights)'], res['PSSL (paper consensus)']).pvalue:.3f} |")
        sec = sec + "\n\nPaired by seed (the same 10% subset and seed in every arm):\n\n" + "\n".join(lines)
    json.dump({"finetune": res, "quality": qual, "classifiers": cls_res, **log},
              open(os.path.join(OUT, "results.json"), "w"), indent=1)
    sections.append(sec + f"\n\nTimings (s; a step reused from an earlier run keeps that run's time, "
                        f"total is this invocation's): {log['timings_s']}")
    page()


if __name__ == "__main__":
    main()
