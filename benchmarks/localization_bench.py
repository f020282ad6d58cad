"""Smoke test of the localization chain on the colour set, and the pipeline's latency
per minute of video by stage (with the BMN score floor at 0 and tscale 100, not the
preset's settings: ``localization_latency.py`` measures those).

The colour set is solved without learning (each class paints the frame in its own
colour: nearest class colour of a frame's mean pixel gives F1 1.000), so its accuracy
table shows that the chain runs end to end, not what BMN and the AttentionLSTM add;
``localization_motion.py`` is the benchmark for that.

Accuracy (CPU scale): per seed, generated videos (64 px, 4 fps, planted events of 3
classes, 4-9 s long) -> features of a small random TSM backbone at 1 step per second ->
BMN (40 s windows, tscale = dscale = 40) and AttentionLSTM trained through the engine ->
exported -> tools' Localizer on held-out videos.  Reports window AR@AN/AUC on the held-out
videos and event precision/recall/F1 at IoA 0.5 of the whole pipeline.

Latency: the full-size architectures (PP-TSM ResNet-50-vd at 224 px, 8-frame groups;
BMN with 2048-d input at tscale = dscale = 100 (FootballAction uses 200: about 8x the
PEM cost); AttentionLSTM 2048 -> 1024 x 2 -> 8192 -> 4096) with random weights, exported,
on one minute of generated 320x240 video at 5 fps.

    nice -n 5 python benchmarks/localization_bench.py [--seeds 0 1 2] [--latency-minutes 0.5]
"""
import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time

from bench_common import ROOT, write_page_and_runs

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import ppzoo  # noqa: E402,F401
from ppzoo.core import load_config  # noqa: E402
from ppzoo.core.builder import build_model  # noqa: E402
from ppzoo.engine import build_trainer  # noqa: E402
from ppzoo.engine.export import export_model  # noqa: E402
from ppzoo.localization.features import export_extractor, extract_videos  # noqa: E402
from ppzoo.localization.metrics import EventF1  # noqa: E402
from ppzoo.localization.annotations import read_annotations  # noqa: E402
from ppzoo.localization.pipeline import Localizer  # noqa: E402
from ppzoo.localization.synth import (TINY_RECOGNIZER, synthetic_sets,  # noqa: E402
                                     write_event_video)

T = 40
def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", choices=["colour", "motion"], default="colour",
                   help="generated set (colour: the smoke test; the motion set's benchmark, "
                        "with its baselines and a trained recognizer, is localization_motion.py)")
    p.add_argument("--train-videos", type=int, default=4)
    p.add_argument("--test-videos", type=int, default=2)
    p.add_argument("--minutes", type=float, default=5.0, help="length of each generated video")
    p.add_argument("--bmn-epochs", type=int, default=8)
    p.add_argument("--lstm-epochs", type=int, default=10)
    p.add_argument("--latency-minutes", type=float, default=0.5)
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "localization.md"))
    return p.parse_args()


def bmn_cfg(lab, feat, epochs, tscale=T, fps=1, window=T, steps=(5, 10), log_interval=20):
    """The football BMN preset scaled to a generated set (``tscale`` steps a window of
    ``window`` seconds at ``fps`` feature steps a second; train/val windows every ``steps``)."""
    cfg = load_config(os.path.join(ROOT, "configs", "localization", "bmn_football.yml"))
    cfg["model"].update(feat_dim=64, tscale=tscale, dscale=tscale, num_sample=16, num_sample_perbin=3,
                        hidden_dim_1d=64, hidden_dim_2d=32, hidden_dim_3d=64)
    cfg["loss"].update(tscale=tscale, dscale=tscale)
    for k, step in zip(("train_dataset", "val_dataset"), steps):
        cfg[k].update(annotations=lab, feature_dir=feat, fps=fps, tscale=tscale, dscale=tscale,
                      window=window, window_step=step)
    cfg["lr_scheduler"] = None
    cfg["train"].update(epochs=epochs, batch_size=8, log_interval=log_interval)
    cfg["eval"]["batch_size"] = 16
    cfg["export"]["postprocess"].update(window_step=tscale // 2, min_len=2)
    return cfg


def lstm_cfg(lab, feat, epochs, fps=1, max_len=20, log_interval=20, num_classes=None, class_names=False):
    """The image-only football event classifier (the generated sets have no audio stream)
    scaled to a generated set; ``class_names=None`` drops the preset's names."""
    cfg = load_config(os.path.join(ROOT, "configs", "localization", "lstm_football_image.yml"))
    cfg["model"].update(feature_dim=64, lstm_size=32, fc_dims=[64, 64], dropout=0.2)
    if num_classes is not None:
        cfg["model"]["num_classes"] = num_classes
    for k in ("train_dataset", "val_dataset"):
        cfg[k].update(annotations=lab, feature_dir=feat, fps=fps, max_len=max_len)
        if class_names is not False:
            cfg[k]["class_names"] = class_names
    cfg["optimizer"] = {"type": "Adam", "learning_rate": 0.005}
    cfg["train"].update(epochs=epochs, batch_size=32, log_interval=log_interval)
    cfg["export"]["postprocess"].update(score_thresh=0.3, iou_thresh=0.2)
    for spec in cfg["export"].get("input_spec") or []:   # the preset's spec is for 2048-d features
        if spec["name"] == "feature":
            spec["shape"][-1] = cfg["model"]["feature_dim"]
    return cfg


def accuracy_run(seed, args, work):
    kw = dict(duration=args.minutes * 60, num_classes=4, events_per_video=int(args.minutes * 4),
              length=(4.0, 9.0))
    make = synthetic_sets()[args.set]
    train_lab, _ = make(os.path.join(work, "train"), args.train_videos, seed=seed, **kw)
    test_lab, test_videos = make(os.path.join(work, "test"), args.test_videos, seed=seed + 100,
                                 **kw)
    paddle.seed(seed)
    rec = build_model(TINY_RECOGNIZER["model"])
    wfile = os.path.join(work, "tsm.pdparams")
    paddle.save(rec.state_dict(), wfile)
    fmodel = os.path.join(work, "features_model")
    export_extractor(dict(TINY_RECOGNIZER), fmodel, weights=wfile)
    feat = os.path.join(work, "features")
    extract_videos(fmodel, [os.path.join(work, "train", f) for f in sorted(os.listdir(
        os.path.join(work, "train"))) if f.endswith(".mp4")] + test_videos, feat, 1,
        echo=None, bar=False)
    out = {"seed": seed}
    t0 = time.time()
    for name, make, epochs, prefix in (("bmn", bmn_cfg, args.bmn_epochs, "window"),
                                       ("lstm", lstm_cfg, args.lstm_epochs, "proposal")):
        cfg = make(train_lab, feat, epochs)
        cfg["seed"] = seed
        cfg["val_dataset"]["annotations"] = test_lab   # scored on the held-out videos
        tr = build_trainer(cfg, work_dir=os.path.join(work, name))
        tr.train()
        out.update({f"{prefix} {k}": v for k, v in tr.evaluate().items()})
        export_model(tr.model, cfg, os.path.join(work, f"{name}_export"), dataset=tr.val_dataset,
                     input_keys=cfg["train"]["input_keys"])
    out["train_seconds"] = time.time() - t0
    loc = Localizer(os.path.join(work, "bmn_export"), os.path.join(work, "lstm_export"), fmodel)
    gts = read_annotations(test_lab)
    metric = EventF1([0.5])
    for v in test_videos:
        tl = loc.run(v)
        metric.update(tl["events"], gts[os.path.splitext(os.path.basename(v))[0]]["events"])
    out.update({f"events {k}": v for k, v in metric.accumulate().items()})
    return out


def latency(args, work):
    paddle.seed(0)
    pptsm = load_config(os.path.join(ROOT, "configs", "video", "pptsm_football.yml"))
    rec = build_model(pptsm["model"])
    rec.eval()
    wfile = os.path.join(work, "pptsm.pdparams")
    paddle.save(rec.state_dict(), wfile)
    fmodel = os.path.join(work, "pptsm_features")
    export_extractor(pptsm, fmodel, weights=wfile)
    bmn = load_config(os.path.join(ROOT, "configs", "localization", "bmn_football.yml"))
    bmn["model"].update(tscale=100, dscale=100)
    lstm = load_config(os.path.join(ROOT, "configs", "localization", "lstm_football_image.yml"))
    exports = {}
    for name, cfg, spec in (
            ("bmn", bmn, [{"name": "feature", "shape": [None, 2048, 100], "dtype": "float32"}]),
            ("lstm", lstm, [{"name": "feature", "shape": [None, 300, 2048], "dtype": "float32"},
                            {"name": "mask", "shape": [None, 300], "dtype": "float32"}])):
        model = build_model(cfg["model"])
        cfg = copy.deepcopy(cfg)
        cfg["export"]["input_spec"] = spec
        cfg["export"]["verify_atol"] = None
        exports[name] = os.path.join(work, name)
        export_model(model, cfg, exports[name])
        # the deploy fields a dataset would give: 5 features per second
        import yaml
        dep = os.path.join(exports[name], "deploy.yml")
        with open(dep) as f:
            d = yaml.safe_load(f)
        d["reader"]["fps"] = 5.0
        # random weights give flat maps: keep every fused proposal the NMS leaves, so the
        # classification stage sees a realistic load
        d["postprocess"].update({"window_step": 100, "min_score": 0.0} if name == "bmn" else {})
        with open(dep, "w") as f:
            yaml.safe_dump(d, f)
    dur = args.latency_minutes * 60
    video = os.path.join(work, "match.mp4")
    rng = np.random.default_rng(0)
    from ppzoo.localization.synth import plant_events
    write_event_video(video, dur, plant_events(rng, dur, 8, int(dur / 15)), fps=25, size=240)
    warm = os.path.join(work, "warmup.mp4")
    write_event_video(warm, 4, [], fps=25, size=240)
    loc = Localizer(exports["bmn"], exports["lstm"], fmodel, cpu_threads=os.cpu_count())
    loc.run(warm)   # warm-up (oneDNN kernels are built on first use)
    runs = [loc.run(video) for _ in range(2)]
    return runs, dur


def main():
    args = parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t = time.time()
            r = accuracy_run(seed, args, os.path.join(tmp, f"seed{seed}"))
            r["seconds"] = time.time() - t
            rows.append(r)
            print(json.dumps(r), flush=True)
        lat = None if args.skip_latency else latency(args, os.path.join(tmp, "latency"))
    keys = ["window AR@1", "window AR@10", "window AR@100", "window AUC", "proposal top1",
            "events precision@0.5", "events recall@0.5", "events F1@0.5"]
    body = ["The colour set is a smoke test: a rule with no learning (nearest class colour of "
            "each frame's mean pixel) solves it. What BMN and the AttentionLSTM add is measured "
            "on the motion set ([localization_motion.md](localization_motion.md)); latency at "
            "the presets' settings in [localization_latency.md](localization_latency.md).", "",
            "## Smoke test: accuracy on the colour set", "",
            f"Per seed: {args.train_videos} training and {args.test_videos} held-out generated "
            f"videos of {args.minutes:g} min (64 px, 4 fps, {int(args.minutes * 4)} planted "
            f"events each of 3 classes, 4-9 s long, noisy background with a moving object); "
            f"features of a small random TSM-18 backbone (64-d) at 1 step/s; BMN tscale = "
            f"dscale = {T} (40 s windows) for {args.bmn_epochs} epochs; AttentionLSTM for "
            f"{args.lstm_epochs} epochs; scored on the held-out videos with the exported models.",
            "", "| seed | " + " | ".join(keys) + " | seconds |",
            "|---|" + "---|" * (len(keys) + 1)]
    for r in rows:
        body.append(f"| {r['seed']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) +
                    f" | {r['seconds']:.0f} |")
    if len(rows) > 1:
        body.append("| mean ± sd | " + " | ".join(
            f"{statistics.mean(r[k] for r in rows):.3f} ± {statistics.stdev(r[k] for r in rows):.3f}"
            for k in keys) + " | |")
    if lat:
        runs, dur = lat
        stages = ["decode", "features", "bmn", "classification"]
        body += ["", "## Latency per minute of video (exported predictors, oneDNN, all cores)", "",
                 f"One generated {dur / 60:g}-minute 240x240 video at 25 fps, sampled at 5 fps "
                 f"({int(dur * 5)} frames); PP-TSM ResNet-50-vd features (224 px, groups of 8), "
                 f"BMN 2048-d tscale = dscale = 100, AttentionLSTM 2048/1024/8192/4096; random "
                 f"weights (latency does not depend on them). Two runs after a warm-up on a 4 s clip. "
                 f"Stage seconds; the last column scales the total to one minute of video.", "",
                 "| run | proposals | " + " | ".join(stages) + " | total | seconds per video minute |",
                 "|---|---|" + "---|" * (len(stages) + 2)]
        for i, tl in enumerate(runs):
            s = tl["seconds"]
            tot = sum(s[k] for k in stages)
            body.append(f"| {i + 1} | {tl['num_proposals']} | " + " | ".join(f"{s[k]:.2f}" for k in stages) +
                        f" | {tot:.2f} | {tot / (dur / 60):.2f} |")
    cmd = "nice -n 5 python benchmarks/localization_bench.py " + " ".join(sys.argv[1:])
    write_page_and_runs(args.out, "Sports action localization on generated videos", cmd.strip(),
                        "\n".join(body), rows)


if __name__ == "__main__":
    main()
