"""PP-TSM (8 segments, 224 px) and ST-GCN (FSD-10 shapes: 2 x 350 x 25 x 1): training step
time, and latency/throughput of the exported Paddle Inference predictor vs dygraph.

Models are built from the shipped configs (configs/video/pptsm_r50.yml with 30 classes,
configs/skeleton/stgcn_fsd10.yml); BatchNorm statistics are set from one random batch so
the outputs have a realistic scale.  Inference runs are interleaved after warm-up.

    nice -n 5 python benchmarks/video_bench.py [--batches 1 16] [--train-batch 4] [--rounds 3]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

from _common import ROOT, calibrate_bn, write_page

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
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "video.md"))
    return p.parse_args()


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
