"""Engine overhead: the ppzoo Trainer against a bare hand-written Paddle loop.

Same model, data, batch size, optimizer and number of steps; the two are run
alternately several times in one process and the median seconds per step compared.
Evaluation is off and checkpoints are written only at the end (as a bare loop would).

    python benchmarks/bench_engine.py [--steps 200] [--rounds 5]
"""
import argparse
import os
import shutil
import statistics
import time

from bench_common import ROOT, write_page

import paddle  # noqa: E402

import ppzoo  # noqa: E402
from ppzoo.core import DATASETS, MODELS, load_config  # noqa: E402


def make_cfg(steps, batch_size, width):
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart", "digits.yml"))
    cfg.pop("val_dataset")
    cfg["model"]["width"] = width
    cfg["train"] = {"iters": steps, "batch_size": batch_size, "log_interval": 20,
                    "checkpoint_interval": 10 ** 9}
    return cfg


def run_trainer(cfg, work_dir):
    shutil.rmtree(work_dir, ignore_errors=True)  # a rerun replaces the previous round
    trainer = ppzoo.Trainer(cfg, work_dir=work_dir)
    it = iter(trainer.train_loader)  # warm-up: one batch through the loader and a step
    trainer.train_step(next(it))
    trainer.iter = 0
    t0 = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - t0) / cfg["train"]["iters"]


def run_bare(cfg):
    paddle.seed(cfg["seed"])
    model = MODELS.build(cfg["model"])
    data = DATASETS.build(cfg["train_dataset"])
    loader = paddle.io.DataLoader(data, batch_size=cfg["train"]["batch_size"], shuffle=True,
                                  drop_last=False, num_workers=0, use_shared_memory=False)
    steps = cfg["train"]["iters"]
    base_lr = cfg["optimizer"]["learning_rate"]
    lr = paddle.optimizer.lr.LinearWarmup(
        paddle.optimizer.lr.CosineAnnealingDecay(base_lr, T_max=steps - 20), 20, 0.0, base_lr)
    opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=0.9, weight_decay=5e-4,
                                    parameters=model.parameters())
    loss_fn = paddle.nn.CrossEntropyLoss(label_smoothing=0.05)

    def step(batch):
        loss = loss_fn(model(batch["image"]), batch["label"])
        loss.backward()
        opt.step()
        opt.clear_grad()
        lr.step()
        return float(loss)

    step(next(iter(loader)))  # warm-up
    done = 0
    t0 = time.perf_counter()
    while done < steps:
        for batch in loader:
            step(batch)
            done += 1
            if done == steps:
                break
    return (time.perf_counter() - t0) / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "engine.md"))
    args = p.parse_args()
    cfg = make_cfg(args.steps, args.batch_size, args.width)
    work = os.path.join(ROOT, "output", "bench_engine")
    ppzoo_times, bare_times = [], []
    for r in range(args.rounds):
        bare_times.append(run_bare(cfg))
        ppzoo_times.append(run_trainer(cfg, os.path.join(work, f"r{r}")))
        print(f"round {r}: bare {bare_times[-1] * 1e3:.2f} ms/step, "
              f"ppzoo {ppzoo_times[-1] * 1e3:.2f} ms/step")
    mb, mp = statistics.median(bare_times), statistics.median(ppzoo_times)
    rows = "\n".join(f"| {i} | {b * 1e3:.2f} | {t * 1e3:.2f} | {t / b:.3f} |"
                     for i, (b, t) in enumerate(zip(bare_times, ppzoo_times)))
    body = (f"SmallCNN (width {args.width}) on the digits data, batch {args.batch_size}, "
            f"Momentum + warm-up cosine LR, {args.steps} steps per run, {args.rounds} alternating rounds.\n\n"
            "| round | bare loop ms/step | ppzoo Trainer ms/step | ratio |\n|---|---|---|---|\n"
            f"{rows}\n| **median** | **{mb * 1e3:.2f}** | **{mp * 1e3:.2f}** | **{mp / mb:.3f}** |\n\n"
            f"Goal: ratio at most 1.05. Measured median ratio: {mp / mb:.3f}.\n\n"
            "What the Trainer does per step beyond the bare loop: re-seeding the RNGs from "
            "(seed, iteration) for exact resume, the per-sample seeded augmentation RNG, "
            "hook dispatch and the logged loss read back as a float (the bare loop reads it too).")
    write_page(args.out, "Engine overhead: ppzoo Trainer vs a bare Paddle loop",
               f"python benchmarks/bench_engine.py --steps {args.steps} --rounds {args.rounds}", body)


if __name__ == "__main__":
    main()
