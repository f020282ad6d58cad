"""The benchmark's over-fitting regime: with --eval-every-epochs a run records the dev metric
at each evaluation (read back from the run's own metrics.jsonl here), on a fixed dev
subsample, and the page gets the per-epoch table with peak - final."""
import json
import os

import numpy as np
import pytest

from test_lnsr_bench import args_of, bench, toy  # noqa: F401  (fixtures)


def test_a_run_records_its_dev_curve_on_the_dev_subsample(bench, toy, tmp_path):  # noqa: F811
    args = args_of(epochs=4, eval_every_epochs=2, dev_examples=20)
    cfg = bench.run_config("toy", "plain", 0, args)
    assert cfg["val_dataset"]["max_examples"] == 20
    assert cfg["train"]["eval_interval"] == 2 * 4  # 64 examples / batch 16 = 4 steps an epoch
    rows = bench.run_one("toy", "plain", 0, args)
    work = os.path.join(str(toy / "output"), "bench_lnsr", "toy_plain_s0")
    with open(os.path.join(work, "metrics.jsonl")) as f:
        vals = [r for r in map(json.loads, f) if r["mode"] == "val"]
    assert [(p["epoch"], p["iter"]) for p in rows[0]["curve"]] == [(r["epoch"], r["iter"]) for r in vals]
    assert {p["iter"] for p in rows[0]["curve"]} >= {8, 16}
    assert [p["value"] for p in rows[0]["curve"]] == [r["acc"] for r in vals]
    assert rows[0]["value"] == rows[0]["curve"][-1]["value"]
    # every accuracy is a multiple of 1/20: the 20-example subsample was scored
    assert all(abs(p["value"] * 20 - round(p["value"] * 20)) < 1e-6 for p in rows[0]["curve"])
    pr = bench.protocol_of(args)
    assert pr["dev_examples"] == 20 and "dev subsample of 20 examples" in bench.protocol_text(pr)
    assert "dev_examples" not in bench.protocol_of(args_of())  # earlier protocols unchanged


def test_page_has_the_curve_table_with_peak_minus_final(bench, toy, tmp_path):  # noqa: F811
    args = args_of(tasks=["toy"], epochs=6, eval_every_epochs=2)
    pr = bench.protocol_of(args)
    rows = []
    for m, fall in (("plain", 0.05), ("lnsr", 0.0)):
        for s in range(3):
            curve = [{"epoch": e, "iter": 4 * e, "value": v} for e, v in
                     ((2, 0.70 + 0.01 * s), (4, 0.75 + 0.01 * s), (6, 0.75 + 0.01 * s - (fall + 0.001 * s if fall else 0.0)))]
            rows.append(dict(task="toy", method=m, seed=s, value=curve[-1]["value"], curve=curve,
                             median_step_s=1.0, protocol=pr, code="abc", command="--tasks toy",
                             train_mean_losses={"loss": 0.5}))
    md = str(tmp_path / "page.md")
    bench.summarize(rows, md, str(tmp_path / "page.png"), args)
    text = open(md).read()
    line = next(ln for ln in text.splitlines() if ln.startswith("| plain | 0.7100"))
    peak_minus_final = np.mean([0.05 + 0.001 * s for s in range(3)])
    assert f"{peak_minus_final:+.4f}" in line and "| epoch 2 | epoch 4 | epoch 6 | peak - final |" in text
    assert any(ln.startswith("| lnsr |") and "+0.0000" in ln for ln in text.splitlines())
