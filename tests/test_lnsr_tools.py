"""A regularized fine-tuning config runs through tools/train.py and tools/eval.py."""
import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORDS = ["good", "bad", "cat", "dog", "red", "blue"]


def test_train_and_eval_tools_with_lnsr(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    rows = ["sentence\tlabel"] + [f"{'good' if i % 2 else 'bad'} cat dog\t{i % 2}" for i in range(32)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    data = dict(type="GlueTSV", path=str(tmp_path / "train.tsv"), text_a="sentence", label="label",
                tokenizer=str(tmp_path), max_seq_len=8)
    cfg = {"trainer": {"type": "FineTuneTrainer"},
           "regularizer": {"type": "LNSR", "sigma": 0.05, "layer": 0, "weight": 0.1},
           "model": {"type": "TransformerClassifier", "num_classes": 2,
                     "encoder": dict(vocab_size=11, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32)},
           "train_dataset": data, "val_dataset": data, "loss": {"type": "CrossEntropyLoss"},
           "metrics": [{"type": "Accuracy"}], "optimizer": {"type": "AdamW", "learning_rate": 3e-3},
           "train": {"iters": 30, "batch_size": 16, "input_keys": ["input_ids", "token_type_ids"],
                     "eval_interval": 30}, "eval": {"best_metric": "acc"}, "name": "toy_lnsr"}
    path = tmp_path / "toy_lnsr.yml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    subprocess.run([sys.executable, "tools/train.py", "-c", str(path), "--save-dir", str(run)],
                   cwd=ROOT, check=True, capture_output=True)
    out = tmp_path / "metrics.json"
    subprocess.run([sys.executable, "tools/eval.py", "-c", str(path), "--weights",
                    str(run / "best" / "model.pdparams"), "--output", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    assert json.loads(out.read_text())["metrics"]["acc"] >= 0.9


def test_domain_shift_configs_map_entailment_to_paraphrase():
    """A paraphrase entails its pair: in both shifts the class index of MRPC's "1" (equivalent)
    must be the one of RTE's "entailment", whichever task trains, and the training part must be
    the source task's own."""
    from ppzoo.core import load_config

    def cfg(name):
        return load_config(os.path.join(ROOT, "configs", "lnsr", f"{name}_plain.yml"))
    rte, mrpc, rte2mrpc, mrpc2rte = cfg("rte"), cfg("mrpc"), cfg("rte2mrpc"), cfg("mrpc2rte")
    assert rte2mrpc["train_dataset"] == rte["train_dataset"]
    assert mrpc2rte["train_dataset"] == mrpc["train_dataset"]
    for shift, src in ((rte2mrpc, rte), (mrpc2rte, mrpc)):
        train, val = src["train_dataset"]["labels"], shift["val_dataset"]["labels"]
        rte_labels, mrpc_labels = (train, val) if src is rte else (val, train)
        assert rte_labels.index("entailment") == mrpc_labels.index("1")
        assert rte_labels.index("not_entailment") == mrpc_labels.index("0")


def test_every_lnsr_config_loads_and_names_registered_components():
    import glob
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS, LOSSES, METRICS, MODELS, TRAINERS
    from ppzoo.regularizers import REGULARIZERS
    files = sorted(glob.glob(os.path.join(ROOT, "configs", "lnsr", "*.yml")))
    assert len(files) == 48  # 8 tasks (mrpc2rte, rte2mrpc: the domain shifts) x 6 methods
    for f in files:
        cfg = load_config(f)
        REGULARIZERS.build(cfg["regularizer"], key_path="regularizer")
        assert TRAINERS.get(cfg["trainer"]["type"]) and MODELS.get(cfg["model"]["type"])
        assert DATASETS.get(cfg["train_dataset"]["type"]) and LOSSES.get(cfg["loss"]["type"])
        assert all(METRICS.get(m["type"]) for m in cfg["metrics"])
        assert cfg["train"]["input_keys"] == ["input_ids", "token_type_ids"]


def test_benchmark_checks_every_task_before_training(tmp_path):
    """A task without configs, or whose data is absent, stops the benchmark before any run,
    naming what is missing, and writes no runs file."""
    env = dict(os.environ, PPZOO_DATA=str(tmp_path / "no_data"))
    out = subprocess.run([sys.executable, "benchmarks/lnsr_glue.py", "--tasks", "nosuchtask", "sst2",
                          "--methods", "plain", "--seeds", "0", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "configs/lnsr/nosuchtask_plain.yml" in out.stderr
    assert "glue/SST-2/train.tsv" in out.stderr
    assert not list(tmp_path.glob("*_runs.jsonl"))
