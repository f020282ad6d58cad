"""The LNSR configs ship the noise scale docs/lnsr.md states, and that scale is the one the v3
benchmark's runs support: at it no seed collapses to a constant answer."""
import csv
import glob
import json
import os
import re

import pytest

from ppzoo.core import load_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def stated_sigma():
    text = open(os.path.join(ROOT, "docs", "lnsr.md"), encoding="utf-8").read()
    block = text[text.index("**Shipped setting**"):]
    m = re.search(r"^\| `sigma` \| ([0-9.]+) \|", block, re.M)
    assert m, "docs/lnsr.md: the shipped-setting table has no sigma row"
    return float(m.group(1))


def test_every_lnsr_config_ships_the_stated_sigma():
    sigma = stated_sigma()
    files = sorted(glob.glob(os.path.join(ROOT, "configs", "lnsr", "*_lnsr.yml")) +
                   glob.glob(os.path.join(ROOT, "configs", "lnsr", "*_lnsr_manifold.yml")))
    assert len(files) == 16
    for f in files:
        reg = load_config(f)["regularizer"]
        assert reg["type"] == "LNSR" and reg["sigma"] == sigma and reg["weight"] == 1.0, f


def _dev_rates(data_root, folder, label_col):
    with open(os.path.join(data_root, "glue", folder, "dev.tsv"), encoding="utf-8-sig") as f:
        labels = [r[label_col] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    n = len(labels)
    return {labels.count(v) / n for v in set(labels)}  # what a one-label answer scores


def test_the_stated_sigma_is_the_one_the_v3_runs_support(data_root):
    sigma = stated_sigma()
    rows = [json.loads(line) for line in open(os.path.join(ROOT, "docs", "benchmarks", "lnsr_glue_v3_runs.jsonl"))]

    def values(task, method):
        return [r["results"] for r in rows if r["task"] == task and r["method"] == method]

    shipped = f"lnsr@sigma={sigma:g}"
    constant = {"rte": _dev_rates(data_root, "RTE", "label"), "sst2": _dev_rates(data_root, "SST-2", "label")}
    for task in ("cola", "rte", "sst2"):
        runs = values(task, shipped)
        assert len(runs) == 3, (task, shipped)
        if task == "cola":  # a constant answer has Matthews correlation 0
            assert all(r["mcc"] != 0 for r in runs), task
            assert all(r["mcc"] == 0 for r in values(task, "lnsr"))  # sigma 0.05 collapsed
        else:
            assert not any(min(abs(r["acc"] - c) for c in constant[task]) < 1e-9 for r in runs), task
    assert all(min(abs(r["acc"] - c) for c in constant["rte"]) < 1e-9 for r in values("rte", "lnsr"))
