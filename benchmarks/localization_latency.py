"""Latency of the localization pipeline at the presets' own settings, by stage, and the
frame-feature settings that cut its dominant stage, measured interleaved in one run.

PP-TSM ResNet-50-vd frame features (``configs/video/pptsm_football.yml``: 224 px,
groups of 8, FootballAction's 341x256 resize), BMN as ``configs/localization/
bmn_football.yml`` (2048-d, tscale = dscale = 200, its export post-processing: score
floor 0.03, NMS 0.7) and AttentionLSTM as ``lstm_football_image.yml``, all exported with
random weights (the cost does not depend on them, only the number of proposals does,
and it is reported), on one generated 1280x720 H.264 video at 25 fps sampled at 5 fps.

Feature settings (each a fresh predictor, warmed up on every batch shape it will see,
then one timed pass over the video; rounds interleave them so the machine's load falls
on all alike): ``before`` is the extractor as it was (the backbone's own trace: leaky
ReLU as max(x, 0.01x) and the temporal-shift op, which oneDNN does not run), ``after``
the oneDNN-friendly export (``export_extractor(onednn_graph=True)``), ``after bf16`` the
same in oneDNN bfloat16, each on one math thread (the primary, load-robust measure: CPU
seconds of the process), and both exports on every core once.  Each stage reports wall
seconds and process CPU seconds (all threads).  The numerical effect of each change on
the features, BMN's proposals and the classifier's labels is measured on the same video.

    nice -n 5 python benchmarks/localization_latency.py [--seconds 20] [--rounds 2]
"""
import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time

from bench_common import ROOT, write_page

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import yaml  # noqa: E402

import ppzoo  # noqa: E402,F401
from ppzoo.core import load_config  # noqa: E402
from ppzoo.core.builder import build_model  # noqa: E402
from ppzoo.engine.export import export_model  # noqa: E402
from ppzoo.engine.predictor import Predictor  # noqa: E402
from ppzoo.engine.trainer import without_pretrained  # noqa: E402
from ppzoo.localization.features import (default_cpu_threads, export_extractor,  # noqa: E402
                                         extract_video, sample_frames)
from ppzoo.localization.infer import (classify_proposals, select_events,  # noqa: E402
                                      video_proposals)
from ppzoo.localization.postprocess import window_starts  # noqa: E402

FPS = 5.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the generated video")
    p.add_argument("--rounds", type=int, default=2,
                   help="interleaved rounds of the one-thread settings (the spread)")
    p.add_argument("--probe-proposals", type=int, default=32,
                   help="proposals classified to measure the cost per proposal (random BMN "
                        "weights leave none above the preset's score floor)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks",
                                                 "localization_latency.md"))
    p.add_argument("--from-json", default=None,
                   help="write the page from a saved run (<page>.json) instead of running")
    return p.parse_args()


def write_video(path, seconds, width=1280, height=720, fps=25):
    """Noisy pitch with a few moving blocks, H.264."""
    import av
    rng = np.random.default_rng(0)
    base = np.clip(rng.normal(100, 30, (height, width, 3)), 0, 255).astype(np.uint8)
    with av.open(path, "w") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.roll(base, i * 3, axis=1)
            for k in range(3):
                x = int((np.sin(i / 20 + k) * 0.4 + 0.5) * (width - 80))
                img[200 + 150 * k:260 + 150 * k, x:x + 60] = 230
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)


def exports(work):
    paddle.seed(0)
    out = {}
    pptsm = load_config(os.path.join(ROOT, "configs", "video", "pptsm_football.yml"))
    rec = build_model(without_pretrained({"model": pptsm["model"]})["model"])
    rec.eval()
    wfile = os.path.join(work, "pptsm.pdparams")
    paddle.save(rec.state_dict(), wfile)
    for name, onednn in (("old", False), ("new", True)):           # the preset's resize
        out[name] = os.path.join(work, "pptsm_features_" + name)
        export_extractor(pptsm, out[name], weights=wfile, onednn_graph=onednn)
    for name in ("bmn", "lstm"):
        preset = "bmn_football.yml" if name == "bmn" else "lstm_football_image.yml"  # no audio here
        cfg = load_config(os.path.join(ROOT, "configs", "localization", preset))
        cfg = copy.deepcopy(cfg)
        if cfg["export"].get("input_spec") is None:   # BMN's spec without data
            cfg["export"]["input_spec"] = cfg["export"]["default_input_spec"]
        cfg["export"]["verify_atol"] = None
        out[name] = os.path.join(work, name)
        export_model(build_model(cfg["model"]), cfg, out[name])
        dep = os.path.join(out[name], "deploy.yml")
        with open(dep) as f:
            d = yaml.safe_load(f)
        d["reader"]["fps"] = FPS          # what the preset's dataset gives
        with open(dep, "w") as f:
            yaml.safe_dump(d, f)
    return out


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    res = fn()
    return res, time.perf_counter() - t, time.process_time() - c


def warm_up(pred, frames, groups):
    """oneDNN builds its kernels per input shape: run every batch shape of the video once."""
    r = pred.deploy["reader"]
    seg, size = int(r["num_seg"]), int(r["target_size"])
    total = math.ceil(frames / seg)
    for g in sorted({min(groups, total), total % groups or groups}):
        pred.run([np.zeros((g, seg, 3, size, size), np.float32)])


def extraction(model_dir, video, frames, threads, groups, precision):
    pred = Predictor(model_dir, device="cpu", cpu_threads=threads, precision=precision)
    warm_up(pred, frames, groups)
    wall, cpu = {}, {}
    feats = extract_video(pred, video, FPS, batch_groups=groups, timings=wall, cpu_timings=cpu)
    return feats, wall, cpu


def compare(a, ref):
    """How far features ``a`` are from ``ref`` (rows are frames)."""
    d = np.abs(a.astype(np.float64) - ref)
    cos = (a * ref).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1),
                                        1e-30)
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "max_rel": float(d.max() / np.abs(ref).max()),
            "mean_rel": float(d.mean() / np.abs(ref).mean()), "min_cos": float(cos.min())}


def main():
    args = parse_args()
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            res = json.load(f)
        args.seconds, args.rounds = res["seconds"], res["rounds"]
        return write(args, res, res["frames"], res["command"])
    load0 = os.getloadavg()[0]
    cores = default_cpu_threads()
    res = {"runs": [], "load_start": load0, "cores": cores}
    # (label, export, groups a call, threads, precision); before = the former defaults
    one = [("before", "old", 4, 1, "fp32"), ("after", "new", 1, 1, "fp32"),
           ("after, 4 groups", "new", 4, 1, "fp32"), ("after bf16", "new", 1, 1, "bf16")]
    every = [("before", "old", 4, cores, "fp32"), ("after", "new", 1, cores, "fp32")]
    feats = {}
    with tempfile.TemporaryDirectory() as work:
        video = os.path.join(work, "match.mp4")
        write_video(video, args.seconds)
        frames = sum(1 for _ in sample_frames(video, FPS))
        ex = exports(work)
        plan = [(r, s) for r in range(args.rounds) for s in one] + [(0, s) for s in every]
        for rnd, (label, exp, groups, threads, prec) in plan:
            f, wall, cpu = extraction(ex[exp], video, frames, threads, groups, prec)
            feats.setdefault((label, threads), f)
            run = {"label": label, "export": exp, "groups": groups, "threads": threads,
                   "precision": prec,
                   "round": rnd, "frames": len(f), "wall": wall, "cpu": cpu,
                   "load": os.getloadavg()[0]}
            res["runs"].append(run)
            print(json.dumps(run), flush=True)
        # BMN and AttentionLSTM at the presets' settings, one thread, on the fp32 features
        bmn = Predictor(ex["bmn"], device="cpu", cpu_threads=1)
        lstm = Predictor(ex["lstm"], device="cpu", cpu_threads=1)
        tscale = int(bmn.deploy["inputs"][0]["shape"][-1])
        post = dict(bmn.deploy.get("postprocess") or {})
        epost = dict(lstm.deploy.get("postprocess") or {})
        base = feats[("after", 1)]

        def run_bmn(x, p=post):
            return video_proposals(lambda b: bmn.run([b]), x, tscale, FPS, p)

        def run_lstm(x, props):
            return classify_proposals(lambda f, m: lstm.run([f, m]), x, props, FPS,
                                      int(epost.get("max_len", 300)))

        props = run_bmn(base)                                   # warm-up
        props, bw, bc = timed(lambda: run_bmn(base))
        run_lstm(base, props)
        _, lw, lc = timed(lambda: select_events(props, *run_lstm(base, props), epost, None))
        step = int(post.get("window_step") or tscale)
        res["bmn"] = {"wall": bw, "cpu": bc, "proposals": int(len(props)),
                      "windows": len(window_starts(len(base), tscale, step)),
                      "window_seconds": step / FPS}
        res["classification"] = {"wall": lw, "cpu": lc}
        k = int(args.probe_proposals)
        starts = np.linspace(0, max(0.0, args.seconds - 4.0), k)
        probe = np.stack([starts, starts + 4.0, np.full(k, 0.5)], 1)
        run_lstm(base, probe)
        _, pw, pc = timed(lambda: run_lstm(base, probe))
        res["probe"] = {"proposals": k, "wall": pw, "cpu": pc}
        # numerical effect: features, BMN's proposals (every candidate: no score floor,
        # as random weights put none above it), the classifier's labels on the probe
        loose = dict(post, min_score=0.0)
        ref_props = run_bmn(base, loose)
        ref_probs, _ = run_lstm(base, probe)
        res["numerics"] = {}
        for name, key in (("after vs before", ("before", 1)),
                          ("after, 4 groups vs after", ("after, 4 groups", 1)),
                          ("after bf16 vs after", ("after bf16", 1)),
                          ("every core vs one thread (after)", ("after", cores))):
            other = feats[key]
            if name.startswith("after vs"):      # the old export is the reference here
                num = compare(base, other)
            else:
                num = compare(other, base)
            p2 = run_bmn(other, loose)
            probs, _ = run_lstm(other, probe)
            top = min(10, len(ref_props), len(p2))
            num.update({
                "proposals": [int(len(ref_props)), int(len(p2))],
                "top10_same_segments": bool(top == 0 or np.array_equal(
                    np.round(ref_props[:top, :2], 3), np.round(p2[:top, :2], 3))),
                "max_score_diff": float(np.abs(ref_props[:top, 2] - p2[:top, 2]).max())
                if top else 0.0,
                "labels_same": float((np.argmax(ref_probs, 1) == np.argmax(probs, 1)).mean()),
                "max_prob_diff": float(np.abs(ref_probs - probs).max())})
            res["numerics"][name] = num
    res.update(load_end=os.getloadavg()[0], seconds=args.seconds, rounds=args.rounds,
               frames=frames,
               command=("nice -n 5 python benchmarks/localization_latency.py " +
                        " ".join(sys.argv[1:])).strip())
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
    write(args, res, frames, res["command"])


def _stat(xs):
    return f"{np.mean(xs):.1f}" + (f" ({min(xs):.1f}-{max(xs):.1f})" if len(xs) > 1 else "")


def write(args, res, frames, cmd):
    minute = 60.0 / args.seconds
    cores = res["cores"]
    runs = res["runs"]

    def sel(label, threads):
        return [r for r in runs if r["label"] == label and r["threads"] == threads]

    # BMN runs one window per window_step frames: a long video costs one window per
    # window_seconds, whatever this short video's padding
    bm = res["bmn"]
    bmn_min = bm["cpu"] / bm["windows"] * 60.0 / bm["window_seconds"]
    lc = res["classification"]["cpu"]
    body = ["## Frame features: before and after, interleaved", "",
            f"One generated {args.seconds:g} s 1280x720 H.264 video at 25 fps, {frames} frames "
            f"sampled at 5 fps. before: the extractor's former export and defaults (4 groups "
            f"of 8 frames a call); after: the oneDNN-friendly export, 1 group a call. One math "
            f"thread, "
            f"{args.rounds} interleaved rounds (mean, range in brackets); CPU seconds of the "
            f"process per video minute. 1-min load average {res['load_start']:.1f} at the start, "
            f"{res['load_end']:.1f} at the end (2 cores, shared).", "",
            "| setting | groups a call | decode CPU s/min | network CPU s/min | features CPU s/min | "
            "features wall s/min | CPU s per frame | CPU vs before |",
            "|---|---|---|---|---|---|---|---|"]
    before = [(r["cpu"]["decode"] + r["cpu"]["features"]) * minute for r in sel("before", 1)]
    for label in ("before", "after", "after, 4 groups", "after bf16"):
        rs = sel(label, 1)
        dec = [r["cpu"]["decode"] * minute for r in rs]
        net = [r["cpu"]["features"] * minute for r in rs]
        tot = [a + b for a, b in zip(dec, net)]
        wall = [(r["wall"]["decode"] + r["wall"]["features"]) * minute for r in rs]
        per = [(r["cpu"]["decode"] + r["cpu"]["features"]) / r["frames"] for r in rs]
        body.append(f"| {label} | {rs[0]['groups']} | {_stat(dec)} | {_stat(net)} | {_stat(tot)} | {_stat(wall)} | "
                    f"{np.mean(per):.3f} | {np.mean(tot) / np.mean(before):.2f} |")
    body += ["", f"Every core ({cores} threads), one round:", "",
             "| setting | features CPU s/min | features wall s/min |", "|---|---|---|"]
    for label in ("before", "after"):
        for r in sel(label, cores):
            body.append(f"| {label}, {cores} threads | "
                        f"{(r['cpu']['decode'] + r['cpu']['features']) * minute:.1f} | "
                        f"{(r['wall']['decode'] + r['wall']['features']) * minute:.1f} |")
    body += ["", "## Stages of the whole pipeline (one thread, per video minute)", "",
             f"BMN {res['bmn']['proposals']} proposals after the preset's score floor and NMS "
             f"(random weights); BMN and classification timed once on the fp32 features. "
             f"BMN: {bm['cpu']:.1f} CPU s for {bm['windows']} window(s) of "
             f"{bm['window_seconds']:g} s, counted per minute as a long video's "
             f"{60.0 / bm['window_seconds']:g} windows a minute. Classification: this video's "
             f"{bm['proposals']} proposals; see the classifier's cost below.", "",
             "| stage | before CPU s | share | after CPU s | share | after bf16 CPU s | share |",
             "|---|---|---|---|---|---|---|"]
    cols = {}
    for label in ("before", "after", "after bf16"):
        rs = sel(label, 1)
        cols[label] = {"decode": np.mean([r["cpu"]["decode"] for r in rs]) * minute,
                       "features": np.mean([r["cpu"]["features"] for r in rs]) * minute,
                       "bmn": bmn_min, "classification": lc * minute}
    for stage in ("decode", "features", "bmn", "classification"):
        cells = []
        for label in ("before", "after", "after bf16"):
            c = cols[label]
            cells.append(f"{c[stage]:.1f} | {100 * c[stage] / sum(c.values()):.0f}%")
        body.append(f"| {stage} | " + " | ".join(cells) + " |")
    body.append("| total | " + " | ".join(f"{sum(cols[lb].values()):.1f} | "
                                         for lb in ("before", "after", "after bf16")) + "")
    pr = res["probe"]
    body += ["", f"AttentionLSTM cost: {pr['proposals']} proposals of 4 s in {pr['cpu']:.1f} CPU s "
             f"({pr['cpu'] / pr['proposals']:.2f} CPU s a proposal in one batch). The classifier "
             f"runs batches of up to 32 proposals, each padded to its longest, one LSTM step a "
             f"frame: the stage's cost follows the number of batches and their longest "
             f"proposal more than the count (this video's {bm['proposals']} proposals, one "
             f"batch, took {lc:.1f} CPU s).", "",
             "## Numerical effect", "",
             "Features compared row by row (relative: to the largest / mean absolute value of "
             "the reference); BMN run with no score floor (every candidate after NMS) and its "
             "first 10 proposals compared; the classifier's arg-max label and probabilities "
             f"on the {pr['proposals']} probe proposals.", "",
             "| comparison | max abs | mean abs | max rel | mean rel | min cosine | "
             "BMN proposals (ref, this) | first 10 same | max score diff | labels same | "
             "max prob diff |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, n in res["numerics"].items():
        body.append(f"| {name} | {n['max_abs']:.3g} | {n['mean_abs']:.3g} | {n['max_rel']:.2g} | "
                    f"{n['mean_rel']:.2g} | {n['min_cos']:.6f} | {n['proposals'][0]}, "
                    f"{n['proposals'][1]} | {'yes' if n['top10_same_segments'] else 'no'} | "
                    f"{n['max_score_diff']:.2g} | {100 * n['labels_same']:.0f}% | "
                    f"{n['max_prob_diff']:.2g} |")
    write_page(args.out, "Localization latency at the presets' settings", cmd,
               "\n".join(body))


if __name__ == "__main__":
    main()
