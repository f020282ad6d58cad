"""Data paths before and after: CamVid samples/s, digits batch building, a CamVid training epoch.

"before" is the previous path, selected by options in the same process: PIL decoding
(``ppzoo.transforms.base.IMAGE_BACKEND = "pil"``), a SeedSequence generator per sample
(``ppzoo.datasets.base.SAMPLE_RNG = "seedsequence"``) and no sample cache. "after" is the
default: OpenCV for PNG, a PCG64 set from a SplitMix64 hash, and CamVid's cache. The
variants run alternately in every round, so load on the machine hits them alike; the
table gives the median over rounds and each round's after/before ratio.

    python benchmarks/bench_data.py [--rounds 3] [--samples 120] [--train-epochs 2]
"""
import argparse
import os
import statistics
import time

from bench_common import ROOT, write_page

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import ppzoo  # noqa: E402
from ppzoo.core import DATASETS, HOOKS, load_config  # noqa: E402
from ppzoo.datasets import base as dbase  # noqa: E402
from ppzoo.engine import Hook  # noqa: E402
from ppzoo.transforms import base as tbase  # noqa: E402

CAMVID_CFG = os.path.join(ROOT, "configs", "segmentation", "camvid_smallseg.yml")
VARIANTS = {  # name: (image backend, sample rng, cache)
    "before (PIL, SeedSequence, no cache)": ("pil", "seedsequence", False),
    "OpenCV decoding only": ("auto", "seedsequence", False),
    "after (OpenCV, PCG64, cache)": ("auto", "pcg64", True),
}


def use(variant):
    backend, rng, cache = VARIANTS[variant]
    tbase.IMAGE_BACKEND, dbase.SAMPLE_RNG = backend, rng
    return cache


def camvid_samples_per_s(variant, n, epochs=2):
    """Samples per CPU second of this process (wall time on a shared machine is noise)."""
    cache = use(variant)
    cfg = dict(load_config(CAMVID_CFG)["train_dataset"], cache=cache)
    ds = DATASETS.build(cfg)
    out = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        t0 = time.process_time()
        for i in range(n):
            ds[i]
        out.append(n / (time.process_time() - t0))
    return out


def digits_batches_per_s(variant, batch_size=64):
    use(variant)
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"))
    ds = DATASETS.build(cfg["train_dataset"])
    sampler = paddle.io.BatchSampler(ds, batch_size=batch_size, shuffle=False)
    loader = paddle.io.DataLoader(ds, batch_sampler=sampler, use_shared_memory=False)
    t0 = time.process_time()
    n = sum(1 for _ in loader)
    return n / (time.process_time() - t0)


def rng_us(kind, n=20000):
    t0 = time.process_time()
    for i in range(n):
        dbase.sample_rng(42, 3, i, kind=kind)
    return (time.process_time() - t0) / n * 1e6


@HOOKS.register()
class _EpochTimer(Hook):
    priority = 0

    def __init__(self):
        self.times = []
        self._t0 = None

    def before_epoch(self, trainer):
        self._t0 = (time.perf_counter(), time.process_time())

    def after_epoch(self, trainer):
        self.times.append((time.perf_counter() - self._t0[0], time.process_time() - self._t0[1]))


def camvid_epochs(variant, epochs, work):
    cache = use(variant)
    cfg = load_config(CAMVID_CFG, [f"train.epochs={epochs}", "train.log_interval=1000000",
                                   "train.checkpoint_interval=1000000"])
    cfg.pop("val_dataset")
    cfg["train_dataset"]["cache"] = cache
    t = ppzoo.build_trainer(cfg, work_dir=work, overwrite=True)
    timer = _EpochTimer()
    t.register_hook(timer)
    t.train()
    return timer.times


def fmt_rounds(before, after):
    return ", ".join(f"{a / b:.2f}" for b, a in zip(before, after))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--samples", type=int, default=120, help="CamVid samples read per epoch")
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "data.md"))
    args = p.parse_args()
    names = list(VARIANTS)
    before, after = names[0], names[-1]
    sps = {v: [] for v in names}
    dig = {v: [] for v in (before, after)}
    rng = {"seedsequence": [], "pcg64": []}
    ep = {v: [] for v in (before, after)}
    work = os.path.join(ROOT, "output", "bench_data")
    for r in range(args.rounds):
        for v in names:
            sps[v].append(camvid_samples_per_s(v, args.samples))
            print(f"round {r} camvid {v}: {sps[v][-1][0]:.1f} / {sps[v][-1][1]:.1f} samples/s", flush=True)
        for v in (before, after):
            dig[v].append(digits_batches_per_s(v))
        for k in rng:
            rng[k].append(rng_us(k))
        print(f"round {r} digits batches/s {dig[before][-1]:.1f} -> {dig[after][-1]:.1f}; "
              f"rng us {rng['seedsequence'][-1]:.1f} -> {rng['pcg64'][-1]:.1f}", flush=True)
        for v in (before, after) if r % 2 == 0 else (after, before):
            ep[v].append(camvid_epochs(v, args.train_epochs, os.path.join(work, f"r{r}")))
            print(f"round {r} camvid epochs {v}: {['%.1f/%.1f' % s for s in ep[v][-1]]} wall/CPU s",
                  flush=True)
    med = statistics.median
    lines = ["## CamVid train split, dataset samples/s (camvid_smallseg transforms: Resize 90x120, "
             "flip, normalize)", "",
             f"{args.samples} samples read in order, twice (epoch 1: cache empty; epoch 2: cache "
             "filled), in one process, no loader workers; samples per CPU second of the process "
             "(the machine is shared, so wall time mostly measures the neighbours).", "",
             "| path | epoch 1 samples/s (median) | epoch 2 samples/s (median) | epoch 1 per round | "
             "epoch 2 per round |", "|---|---|---|---|---|"]
    for v in names:
        e1, e2 = [x[0] for x in sps[v]], [x[1] for x in sps[v]]
        lines.append(f"| {v} | {med(e1):.1f} | {med(e2):.1f} | {', '.join('%.1f' % x for x in e1)} | "
                     f"{', '.join('%.1f' % x for x in e2)} |")
    b1, a1 = [x[0] for x in sps[before]], [x[0] for x in sps[after]]
    b2, a2 = [x[1] for x in sps[before]], [x[1] for x in sps[after]]
    lines += ["", f"after/before speed-up per round: epoch 1 {fmt_rounds(b1, a1)}; "
              f"epoch 2 {fmt_rounds(b2, a2)}.", "",
              "## Digits, building every batch of an epoch (batch 64, RandomCrop + Normalize + ToCHW)", "",
              "| path | batches per CPU s (median) | per round |", "|---|---|---|"]
    for v in (before, after):
        lines.append(f"| {v} | {med(dig[v]):.1f} | {', '.join('%.1f' % x for x in dig[v])} |")
    lines += ["", f"after/before per round: {fmt_rounds(dig[before], dig[after])}.", "",
              "Making one sample's generator (CPU microseconds, median over rounds of 20000 calls): "
              f"`np.random.default_rng([seed, epoch, index])` {med(rng['seedsequence']):.1f} us, "
              f"PCG64 set from a SplitMix64 hash {med(rng['pcg64']):.1f} us.", "",
              f"## CamVid training epochs (camvid_smallseg: SmallSegNet width 16, batch 16, "
              f"{args.train_epochs} epochs of 23 iterations, no evaluation)", "",
              "| path | " + " | ".join(f"epoch {i + 1} CPU s (wall s), median"
                                       for i in range(args.train_epochs))
              + " | CPU s per round |", "|---|" + "---|" * (args.train_epochs + 1)]
    for v in (before, after):
        cols = [med([x[i][1] for x in ep[v]]) for i in range(args.train_epochs)]
        wall = [med([x[i][0] for x in ep[v]]) for i in range(args.train_epochs)]
        rounds = "; ".join("/".join("%.1f" % s[1] for s in x) for x in ep[v])
        lines.append(f"| {v} | " + " | ".join(f"{c:.1f} ({w:.1f})" for c, w in zip(cols, wall))
                     + f" | {rounds} |")
    for i in range(args.train_epochs):
        lines.append("")
        lines.append(f"epoch {i + 1}: after/before CPU time per round "
                     f"{fmt_rounds([x[i][1] for x in ep[before]], [x[i][1] for x in ep[after]])}.")
    write_page(args.out, "Data paths: before and after",
               f"nice -n 5 python benchmarks/bench_data.py --rounds {args.rounds} --samples "
               f"{args.samples} --train-epochs {args.train_epochs}", "\n".join(lines))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
