"""Query time of every classification strategy on a CIFAR-10-sized pool.

    python benchmarks/active_query_time.py --candidates 10000 --query 100

The pool is the 50000 CIFAR-10 training images; each strategy scores a random subset of
``--candidates`` of them (``active.candidates``; the noise-stability code scores 10000) with
the configs' SmallCNN (32x32 input, width 16) and picks ``--query`` samples; 1000 labelled
samples serve as CoreSet's centers and POAL's in-distribution data.  Weights are random: the
cost of a query does not depend on them.  Writes docs/benchmarks/active_query_time.md.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from ppzoo.core.paths import data_root  # noqa: E402

import numpy as np  # noqa: E402


READING = """Reading: a query's cost is the forward passes over the candidates (one pass for
entropy, margin, least confidence, CoreSet, BADGE and POAL; 10 for BALD; 50 for noise
stability), the selection itself (k-center distance updates, k-means++ seeding, POAL's
Pareto search) adds seconds at most. Noise stability over the 50000-image pool therefore
scores a random subset of candidates (`active.candidates: 10000`, as the reference code's
10000), which takes minutes on one thread; scoring all 50000 would take about five times as
long."""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", type=int, default=10000)
    p.add_argument("--query", type=int, default=100)
    p.add_argument("--labelled", type=int, default=1000)
    args = p.parse_args()
    import paddle
    from ppzoo.active.classification import PoolState
    from ppzoo.active.learners import DatasetInputs, PaddleLearner
    from ppzoo.active.strategies import STRATEGIES
    from ppzoo.core.builder import DATASETS, MODELS
    root = os.path.join(data_root(), "cifar10", "train")
    pool = DATASETS.build({"type": "ImageFolder", "root": root, "transforms": [
        {"type": "Normalize", "mean": [0.491, 0.482, 0.447], "std": [0.247, 0.243, 0.262]},
        {"type": "ToCHW"}]})
    paddle.seed(0)
    model = MODELS.build({"type": "SmallCNN", "num_classes": 10, "in_channels": 3, "width": 16,
                          "depth": 2, "dropout": 0.3})
    model.eval()
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(pool))
    labelled, cand = perm[:args.labelled], np.sort(perm[args.labelled:args.labelled + args.candidates])
    labels = np.full(len(pool), -2)
    labels[labelled] = np.asarray([s[1] for s in pool.samples])[labelled]
    inputs = DatasetInputs(pool)
    t0, c0 = time.time(), time.process_time()
    inputs(np.concatenate([cand, labelled]))
    rows = [f"| decode and normalize {len(cand) + len(labelled)} JPEGs (once per run) | "
            f"{time.time() - t0:.1f} | {time.process_time() - c0:.1f} |"]
    strategies = [("EntropySampling", {}), ("MarginSampling", {}), ("LeastConfidence", {}),
                  ("BALD", {"passes": 10}), ("CoreSet", {}), ("BADGE", {}),
                  ("NoiseStability", {"passes": 50}), ("POAL", {"ood_model": "gaussian"})]
    for name, kw in strategies:
        learner = PaddleLearner(model, inputs, batch_size=500)  # fresh: no cached forward pass
        strat = STRATEGIES.build(dict({"type": name}, **kw))
        state = PoolState(cand, labelled, labels, None, np.random.default_rng(1))
        t0, c0 = time.time(), time.process_time()
        picks = strat(learner, state, args.query)
        wall, cpu = time.time() - t0, time.process_time() - c0
        assert len(set(picks.tolist())) == args.query
        opts = ", ".join(f"{k}={v}" for k, v in kw.items())
        rows.append(f"| {name}{' (' + opts + ')' if opts else ''} | {wall:.1f} | {cpu:.1f} |")
        print(rows[-1], flush=True)
    body = (f"{args.candidates} candidates of the 50000-image pool, query of {args.query}, "
            f"{args.labelled} labelled; SmallCNN width 16, depth 2 on 32x32x3; batches of 500; "
            f"one compute thread (`PPZOO_CPU_THREADS={os.environ.get('PPZOO_CPU_THREADS', 'all')}`). "
            "Wall time depends on the machine's other load (the 2 cores were shared); CPU time "
            "is this process's.\n\n| step | wall s | CPU s |\n|---|---|---|\n" + "\n".join(rows)
            + "\n\n" + READING)
    write_page(os.path.join(ROOT, "docs", "benchmarks", "active_query_time.md"),
               "Active learning: query time per strategy on a CIFAR-10-sized pool",
               f"PPZOO_CPU_THREADS=1 python benchmarks/active_query_time.py --candidates "
               f"{args.candidates} --query {args.query}", body)


if __name__ == "__main__":
    main()
