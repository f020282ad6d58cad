"""Latency of the localization pipeline at the presets' own settings, by stage.

PP-TSM ResNet-50-vd frame features (``configs/video/pptsm_football.yml``: 224 px,
groups of 8, FootballAction's 341x256 resize), BMN as ``configs/localization/
bmn_football.yml`` (2048-d, tscale = dscale = 200, its export post-processing: score
floor 0.03, NMS 0.7) and AttentionLSTM as ``lstm_football_image.yml``, all exported with
random weights (the cost does not depend on them, only the number of proposals does,
and it is reported), on one generated 1280x720 H.264 video at 25 fps sampled at 5 fps.

Both extraction settings run in this one process on the same video and exports, each
after a warm-up pass over the same video (oneDNN builds its kernels per input shape):
``before`` is what ``tools/extract_features.py``/``tools/localize.py`` did by default
(Paddle's default math threads, 4 groups a call), ``after`` the options this script
is given (``--after-threads``, ``--after-groups``, ``--after-mkldnn``).  Each stage
reports wall seconds and process CPU seconds (all threads): on a shared machine the
wall time follows the load, the CPU time much less.

    nice -n 5 python benchmarks/localization_latency.py [--seconds 20]
"""
import argparse
import copy
import json
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
from ppzoo.localization.features import export_extractor, extract_video  # noqa: E402
from ppzoo.localization.infer import (classify_proposals, select_events,  # noqa: E402
                                      video_proposals)

FPS = 5.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the generated video")
    p.add_argument("--after-threads", type=int, default=os.cpu_count())
    p.add_argument("--after-groups", type=int, default=8)
    p.add_argument("--after-mkldnn", type=int, default=1)
    p.add_argument("--probe-proposals", type=int, default=32,
                   help="proposals classified to measure the cost per proposal (random BMN "
                        "weights leave none above the preset's score floor)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks",
                                                 "localization_latency.md"))
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
    out["features"] = os.path.join(work, "pptsm_features")
    export_extractor(pptsm, out["features"], weights=wfile)       # the preset's resize
    for name in ("bmn", "lstm"):
        preset = "bmn_football.yml" if name == "bmn" else "lstm_football_image.yml"  # no audio here
        cfg = load_config(os.path.join(ROOT, "configs", "localization", preset))
        cfg = copy.deepcopy(cfg)
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


def extraction(model_dir, video, threads, groups, mkldnn):
    pred = Predictor(model_dir, device="cpu", cpu_threads=threads, use_mkldnn=bool(mkldnn))
    extract_video(pred, video, FPS, batch_groups=groups)          # warm-up: same shapes
    wall, cpu = {}, {}
    feats = extract_video(pred, video, FPS, batch_groups=groups, timings=wall, cpu_timings=cpu)
    return feats, wall, cpu


def main():
    args = parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as work:
        video = os.path.join(work, "match.mp4")
        write_video(video, args.seconds)
        ex = exports(work)
        settings = {"before": (None, 4, 1),
                    "after": (args.after_threads, args.after_groups, args.after_mkldnn)}
        for name, (threads, groups, mk) in settings.items():
            feats, wall, cpu = extraction(ex["features"], video, threads, groups, mk)
            res[name] = {"threads": threads, "groups": groups, "mkldnn": mk, "frames": len(feats),
                         "wall": wall, "cpu": cpu}
            print(json.dumps(res[name]), flush=True)
        # BMN and AttentionLSTM at the presets' settings (the same for both columns)
        bmn = Predictor(ex["bmn"], device="cpu", cpu_threads=os.cpu_count())
        lstm = Predictor(ex["lstm"], device="cpu", cpu_threads=os.cpu_count())
        tscale = int(bmn.deploy["inputs"][0]["shape"][-1])
        post = dict(bmn.deploy.get("postprocess") or {})
        epost = dict(lstm.deploy.get("postprocess") or {})

        def run_bmn():
            return video_proposals(lambda x: bmn.run([x]), feats, tscale, FPS, post)

        def run_lstm(props):
            probs, ious = classify_proposals(lambda f, m: lstm.run([f, m]), feats, props, FPS,
                                             int(epost.get("max_len", 300)))
            return select_events(props, probs, ious, epost, None)

        props = run_bmn()                                   # warm-up
        props, bw, bc = timed(run_bmn)
        run_lstm(props)
        _, lw, lc = timed(lambda: run_lstm(props))
        res["bmn"] = {"wall": bw, "cpu": bc, "proposals": int(len(props))}
        res["classification"] = {"wall": lw, "cpu": lc}
        # the AttentionLSTM's cost per proposal: 4 s proposals spread over the video
        k = int(args.probe_proposals)
        starts = np.linspace(0, max(0.0, args.seconds - 4.0), k)
        probe = np.stack([starts, starts + 4.0, np.full(k, 0.5)], 1)
        run_lstm(probe)
        _, pw, pc = timed(lambda: run_lstm(probe))
        res["probe"] = {"proposals": k, "wall": pw, "cpu": pc}
    print(json.dumps(res))
    minute = 60.0 / args.seconds
    b, a = res["before"], res["after"]
    rows = []
    for stage in ("decode", "features"):
        rows.append((stage, b["wall"][stage], b["cpu"][stage], a["wall"][stage], a["cpu"][stage]))
    for stage in ("bmn", "classification"):
        rows.append((stage, res[stage]["wall"], res[stage]["cpu"], res[stage]["wall"],
                     res[stage]["cpu"]))
    tot = [sum(r[i] for r in rows) for i in range(1, 5)]
    body = ["## Stages at the presets' settings", "",
            f"One generated {args.seconds:g} s 1280x720 H.264 video at 25 fps, {b['frames']} frames "
            f"sampled at 5 fps; BMN {res['bmn']['proposals']} proposals after the preset's score "
            f"floor and NMS (random weights). before: Paddle's default math threads, 4 groups of "
            f"8 frames a call, oneDNN; after: {a['threads']} threads, {a['groups']} groups a call, "
            f"oneDNN {'on' if a['mkldnn'] else 'off'}. BMN and classification are the same runs in "
            f"both columns ({os.cpu_count()} threads). Seconds for the video; the share is of the "
            f"CPU total.", "",
            "| stage | before wall s | before CPU s | share (CPU) | after wall s | after CPU s | "
            "share (CPU) | CPU before/after |", "|---|---|---|---|---|---|---|---|"]
    for st, bw_, bc_, aw_, ac_ in rows:
        body.append(f"| {st} | {bw_:.1f} | {bc_:.1f} | {100 * bc_ / tot[1]:.0f}% | {aw_:.1f} | "
                    f"{ac_:.1f} | {100 * ac_ / tot[3]:.0f}% | {bc_ / max(ac_, 1e-9):.2f} |")
    body.append(f"| total | {tot[0]:.1f} | {tot[1]:.1f} | | {tot[2]:.1f} | {tot[3]:.1f} | | "
                f"{tot[1] / tot[3]:.2f} |")
    body.append(f"| per video minute | {tot[0] * minute:.0f} | {tot[1] * minute:.0f} | | "
                f"{tot[2] * minute:.0f} | {tot[3] * minute:.0f} | | |")
    fb = (b["cpu"]["features"] + b["cpu"]["decode"]) * minute
    fa = (a["cpu"]["features"] + a["cpu"]["decode"]) * minute
    pr = res["probe"]
    body += ["", f"Frame features (decode + network) per video minute: {fb:.0f} CPU s before, "
             f"{fa:.0f} CPU s after.", "",
             f"AttentionLSTM cost per proposal (the classification stage scales with the "
             f"proposals BMN keeps; random weights keep none above the preset's floor): "
             f"{pr['proposals']} proposals of 4 s in {pr['wall']:.1f} s wall, {pr['cpu']:.1f} CPU s, "
             f"{pr['cpu'] / pr['proposals']:.2f} CPU s per proposal."]
    cmd = "nice -n 5 python benchmarks/localization_latency.py " + " ".join(sys.argv[1:])
    write_page(args.out, "Localization latency at the presets' settings", cmd.strip(),
               "\n".join(body))
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
