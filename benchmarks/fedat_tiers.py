"""FedAT on digits: accuracy per tier update and where the global model moves.

Runs ``configs/federated/digits_fedat.yml`` (evaluated after every tier update) for each
variant and seed, then prints one table row per run (top1 at the end, best, at 80 simulated
seconds, simulated seconds to 0.80, MB moved) and, per run, the tier update counts and the
mean change of top1 at the slowest tier's reports against the other tiers' (docs/federated.md,
"Why FedAT's accuracy falls when the slowest tier reports").

    python benchmarks/fedat_tiers.py --out output/fedat_tiers                      # run and report
    python benchmarks/fedat_tiers.py --out output/fedat_tiers --seeds 0 1 2 \\
        --variants unreported=initial weighting=uniform
    python benchmarks/fedat_tiers.py --out output/fedat_tiers --report-only        # report finished runs

One run is 300 tier updates, about 100 s of wall time on 2 cores.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIG = os.path.join(ROOT, "configs", "federated", "digits_fedat.yml")


def run(out, variant, seed):
    key, value = variant.split("=", 1)
    save = os.path.join(out, f"{key}_{value}_seed{seed}")
    if os.path.exists(os.path.join(save, "metrics.jsonl")):
        return save
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", CONFIG, "--save-dir", save,
           "--opts", f"seed={seed}", "federated.eval_every=1", f"federated.strategy.{key}={value}"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return save


def report(folder):
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        recs = [r for r in (json.loads(line) for line in f) if r.get("mode") == "round"]
    top = np.array([r["top1"] for r in recs])
    tier = np.array([r["tier"] for r in recs])
    t = np.array([r["sim_time_s"] for r in recs])
    i80 = int(np.where(t <= 80)[0][-1]) if (t <= 80).any() else 0
    reach = f"{t[np.argmax(top >= 0.8)]:.0f}" if (top >= 0.8).any() else "not reached"
    mb = sum(r["bytes_total"] for r in recs) / 1e6
    change = np.diff(top, prepend=np.nan)
    slow = tier == tier.max()
    counts = [int((tier == i).sum()) for i in range(int(tier.max()) + 1)]
    print(f"| {os.path.basename(folder)} | {len(recs)} | {t[-1]:.0f} | {top[-1]:.3f} | {top.max():.3f} | "
          f"{top[i80]:.3f} (round {recs[i80]['round']}) | {reach} | {mb:.1f} | {counts} | "
          f"{np.nanmean(change[slow]):+.3f} | {np.nanmean(change[~slow]):+.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+",
                    default=["unreported=initial", "unreported=skip", "weighting=uniform"],
                    help="federated.strategy key=value per variant")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    folders = []
    for variant in args.variants:
        for seed in args.seeds:
            key, value = variant.split("=", 1)
            folder = os.path.join(args.out, f"{key}_{value}_seed{seed}")
            folders.append(folder if args.report_only else run(args.out, variant, seed))
    print("| run | tier updates | simulated s | top1 at the end | best top1 | top1 at 80 simulated s | "
          "simulated s to top1 >= 0.80 | MB moved | updates per tier | mean top1 change at the "
          "slowest tier's reports | at the others' |")
    print("|---" * 11 + "|")
    for folder in folders:
        if os.path.exists(os.path.join(folder, "metrics.jsonl")):
            report(folder)


if __name__ == "__main__":
    main()
