"""PP-TSM (8 segments, 224 px) and ST-GCN (FSD-10 shapes: 2 x 350 x 25 x 1): training step
time, and latency/throughput of the exported Paddle Inference predictor vs dygraph.

Models are built from the shipped configs (configs/video/pptsm_r50.yml with 30 classes,
configs/skeleton/stgcn_fsd10.yml); BatchNorm statistics are set from one random batch so
the outputs have a realistic scale.  Inference runs are interleaved after warm-up.

    nice -n 5 python benchmarks/video_bench.py [--batches 1 16] [--train-batch 4] [--rounds 3]

``--decode`` measures the video decoder instead: time and peak memory to decode the 8
frames a Sampler picks from synthetic 720p H.264 clips of growing length, each run in a
fresh process, for the lazy decoder (with and without keyframe seeking) against decoding
every frame first (the previous behaviour, kept here as the baseline):

    nice -n 5 python benchmarks/video_bench.py --decode [--seconds 2.5 5 10 20] [--rounds 3]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

from bench_common import ROOT, calibrate_bn, write_page

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import ppzoo  # noqa: E402,F401
from ppzoo.core import MODELS, load_config  # noqa: E402
from ppzoo.engine.export import export_model  # noqa: E402
from ppzoo.engine.predictor import Predictor  # noqa: E402

CASES = {
    "PP-TSM R50 (8x3x224x224)": ("configs/video/pptsm_r50.yml", "video", (8, 3, 224, 224)),
    "ST-GCN (2x350x25x1, FSD-10)": ("configs/skeleton/stgcn_fsd10.yml", "data", (2, 350, 25, 1)),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default=None, help="run only cases whose name contains this")
    p.add_argument("--out", default=None)
    p.add_argument("--decode", action="store_true", help="benchmark decoding instead")
    p.add_argument("--seconds", type=float, nargs="+", default=[2.5, 5, 10, 20])
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--gop", type=int, default=50, help="keyframe interval of the clips")
    p.add_argument("--decode-worker", nargs=2, metavar=("CLIP", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.out is None:
        name = "video_decoding.md" if args.decode else "video.md"
        args.out = os.path.join(ROOT, "docs", "benchmarks", name)
    return args


# ---------------------------------------------------------------- decoding

DECODE_MODES = ("all frames first", "lazy, seek", "lazy, no seek")


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def make_clip(path, seconds, fps, gop, w=1280, h=720):
    """A moving colour pattern with noise, H.264 (PyAV's libx264), keyframe every ``gop``."""
    import av
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(int(seconds * fps)):
            base = ((xx + 4 * i) % 256).astype(np.uint8)
            img = np.stack([base, ((yy + 2 * i) % 256).astype(np.uint8), (base // 2 + 64)], -1)
            img[::8, ::8] = rng.integers(0, 255, img[::8, ::8].shape, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def decode_worker(clip, mode):
    """One measurement in this (fresh) process: prints seconds and added peak RSS (MiB)."""
    import resource
    from ppzoo.video.transforms import PyAVReader, Sampler
    sampler = Sampler(num_seg=8, valid_mode=True)
    base = _rss_mib()
    t0 = time.perf_counter()
    if mode == DECODE_MODES[0]:
        import av
        with av.open(clip) as c:  # every frame decoded and kept, then 8 picked
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        sample = {"frames_len": len(frames), "_read_frames": lambda idx: [frames[i] for i in idx]}
    else:
        reader = PyAVReader(clip, seek=mode == DECODE_MODES[1])
        sample = {"frames_len": reader.frames_len, "_read_frames": reader.read}
    out = sampler(sample, np.random.default_rng(0))
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert len(out["imgs"]) == 8
    print(f"{secs:.4f} {peak - base:.1f} {out['frames_len']}")


def decode_bench(args):
    import subprocess
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sec in args.seconds:
            clip = os.path.join(tmp, f"clip_{sec}s.mp4")
            make_clip(clip, sec, args.fps, args.gop)
            size = os.path.getsize(clip) / 2 ** 20
            for mode in DECODE_MODES:
                times, peaks = [], []
                for _ in range(args.rounds):
                    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--decode-worker", clip, mode],
                                         capture_output=True, text=True, check=True)
                    t, m, n = res.stdout.split()[-3:]
                    times.append(float(t))
                    peaks.append(float(m))
                rows.append((sec, int(n), size, mode, statistics.median(times), min(times), max(times), max(peaks)))
                print(rows[-1], flush=True)
    body = [f"Synthetic 1280x720 H.264 clips (libx264 ultrafast, crf 23, {args.fps} fps, a keyframe "
            f"every {args.gop} frames); a `Sampler(num_seg=8, valid_mode=true)` picks 8 frames.  "
            f"Each run is a fresh process; time = decoder open + the 8 frames as RGB arrays "
            f"(median, min-max of {args.rounds} runs); memory = peak resident set size above the "
            f"process's size before decoding (max of the runs).", "",
            "| clip | frames | file MiB | decoder | s / clip (median) | min - max | peak extra MiB |",
            "|---|---|---|---|---|---|---|"]
    body += [f"| {sec:g} s | {n} | {size:.1f} | {mode} | {t:.2f} | {lo:.2f} - {hi:.2f} | {m:.0f} |"
             for sec, n, size, mode, t, lo, hi, m in rows]
    write_page(args.out, "Video decoding: time and peak memory against clip length",
               "nice -n 5 python benchmarks/video_bench.py " + " ".join(sys.argv[1:]), "\n".join(body))


def median_time(fn, rounds):
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def bench(name, cfg_path, key, shape, args):
    cfg = load_config(os.path.join(ROOT, cfg_path))
    cfg["model"]["head"]["num_classes"] = 30
    cfg["model"]["backbone"].pop("pretrained", None)  # timing only: random weights, no download
    paddle.seed(0)
    model = MODELS.build(cfg["model"])
    rng = np.random.default_rng(0)
    rows = []
    # training step: forward + backward + Momentum update
    xb = rng.normal(size=(args.train_batch,) + shape).astype("float32")
    yb = paddle.to_tensor(rng.integers(0, 30, size=(args.train_batch,)))
    opt = paddle.optimizer.Momentum(0.01, parameters=model.parameters(), momentum=0.9)
    model.train()

    def step():
        loss = paddle.nn.functional.cross_entropy(model(paddle.to_tensor(xb)), yb)
        loss.backward()
        opt.step()
        opt.clear_grad()
    step()
    train_s = median_time(step, args.rounds)
    print(f"{name}: train step batch {args.train_batch}: {train_s:.2f} s", flush=True)

    calibrate_bn(model, rng.normal(size=(2,) + shape).astype("float32"))
    save = os.path.join(tempfile.mkdtemp(prefix="video_bench_"), "inference")
    export_model(model, {"model": cfg["model"], "export": {"task": cfg["export"]["task"], "input_spec": [
        {"name": key, "shape": [None] + list(shape), "dtype": "float32"}]}}, save)
    pred = Predictor(save, device="cpu", cpu_threads=args.threads)
    for bs in args.batches:
        x = rng.normal(size=(bs,) + shape).astype("float32")
        xt = paddle.to_tensor(x)

        def dyg():
            with paddle.no_grad():
                return model(xt).numpy()

        def inf():
            return pred.run([x])[0]
        diff = float(np.abs(dyg() - inf()).max())
        t = {"dygraph": [], "predictor": []}
        for _ in range(args.rounds):
            t["dygraph"].append(median_time(dyg, 1))
            t["predictor"].append(median_time(inf, 1))
        med = {k: statistics.median(v) for k, v in t.items()}
        for k in ("dygraph", "predictor"):
            rows.append((name, bs, k, med[k], med["dygraph"] / med[k], diff))
            print(f"{name} batch {bs} {k}: {med[k] * 1e3:.0f} ms (x{med['dygraph'] / med[k]:.2f}, "
                  f"max diff {diff:.1e})", flush=True)
    return train_s, rows


def main():
    args = parse_args()
    if args.decode_worker:
        return decode_worker(*args.decode_worker)
    if args.decode:
        return decode_bench(args)
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)
    train_rows, rows = [], []
    for name, (cfg, key, shape) in CASES.items():
        if args.only and args.only not in name:
            continue
        train_s, r = bench(name, cfg, key, shape, args)
        train_rows.append((name, train_s))
        rows += r
    body = [f"Threads: {args.threads}; medians of {args.rounds} timed runs after one warm-up run.",
            "", f"## Training step (forward + backward + Momentum), batch {args.train_batch}", "",
            "| model | s / step | clips / s |", "|---|---|---|"]
    body += [f"| {n} | {s:.2f} | {args.train_batch / s:.2f} |" for n, s in train_rows]
    body += ["", "## Inference: exported predictor (oneDNN) vs dygraph", "",
             "| model | batch | runner | ms / batch | clips / s | speed-up vs dygraph | max abs diff |",
             "|---|---|---|---|---|---|---|"]
    body += [f"| {n} | {bs} | {k} | {m * 1e3:.0f} | {bs / m:.2f} | {r:.2f}x | {d:.1e} |"
             for n, bs, k, m, r, d in rows]
    write_page(args.out, "Video and skeleton recognizers on the CPU",
               "nice -n 5 python benchmarks/video_bench.py " + " ".join(sys.argv[1:]), "\n".join(body))


if __name__ == "__main__":
    main()
