"""GLUE task presets name their classes as GLUE does, and predictions carry those names
rather than the file's label codes."""
import os

import pytest
import yaml

import ppzoo  # noqa: F401
from ppzoo.core.errors import ConfigError
from ppzoo.engine.predictor import run_inference
from ppzoo.nlp.datasets import GlueTSV

from test_lnsr_export import ENCODER, exported, vocab  # noqa: F401  (the fixture)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# GLUE's label names per dataset, keyed by the code the TSV writes (the GLUE benchmark's
# task definitions: CoLA 0 unacceptable / 1 acceptable, SST-2 0 negative / 1 positive, MRPC 0
# not_equivalent / 1 equivalent; RTE writes its names)
GLUE_NAMES = {"CoLA": {"0": "unacceptable", "1": "acceptable"},
              "SST-2": {"0": "negative", "1": "positive"},
              "MRPC": {"0": "not_equivalent", "1": "equivalent"},
              "RTE": {"entailment": "entailment", "not_entailment": "not_entailment"}}
PRESETS = ["cola", "sst2", "mrpc", "rte", "mrpc2rte", "rte2mrpc"]


@pytest.mark.parametrize("preset", PRESETS)
def test_each_classification_preset_names_its_classes_as_glue(preset):
    cfg = yaml.safe_load(open(os.path.join(ROOT, "configs", "lnsr", "_base_", f"{preset}.yml")))
    for key in ("train_dataset", "val_dataset"):
        if key not in cfg:
            continue  # inherited from the preset it builds on, checked there
        d = cfg[key]
        glue = GLUE_NAMES[d["path"].split("/")[1]]
        names = d.get("label_names") or d["labels"]
        # class i is the file's code labels[i]; its name must be GLUE's name of that code
        assert names == [glue[str(code)] for code in d["labels"]], (preset, key)


def test_label_names_must_match_the_labels(tmp_path):
    (tmp_path / "d.tsv").write_text("sentence\tlabel\ngood\t1\n")
    common = dict(path=str(tmp_path / "d.tsv"), text_a="sentence", label="label", tokenizer=None)
    with pytest.raises(ConfigError, match=r"label_names \['negative'\] needs `labels` of the same length"):
        GlueTSV(labels=["0", "1"], label_names=["negative"], **common)
    with pytest.raises(ConfigError, match="repeats a name"):
        GlueTSV(labels=["0", "1"], label_names=["a", "a"], **common)


def test_predictions_carry_the_label_names(tmp_path, vocab):  # noqa: F811
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood cat\t1\nbad dog\t0\n")
    data = dict(type="GlueTSV", path=str(tmp_path / "dev.tsv"), text_a="sentence", label="label",
                labels=["0", "1"], label_names=["negative", "positive"], tokenizer=vocab,
                max_seq_len=64, header=True)
    ds = GlueTSV(**{k: v for k, v in data.items() if k != "type"})
    assert [ds.load(i)["label"] for i in range(2)] == [1, 0]  # classes still from the codes
    _, save, deploy = exported(tmp_path, vocab, {"type": "TransformerClassifier", "num_classes": 2,
                                                 "encoder": ENCODER},
                               data, {"type": "CrossEntropyLoss"}, [{"type": "Accuracy"}], "names")
    assert deploy["label_names"] == ["negative", "positive"]
    (tmp_path / "in.txt").write_text("good cat\nbad dog\nthe red cat\n")
    res = run_inference(save, str(tmp_path / "in.txt"), echo=None, device="cpu", use_mkldnn=False,
                        output=str(tmp_path / "out.jsonl"))
    assert len(res) == 3
    for r in res:
        assert r["label"] == ["negative", "positive"][r["class_id"]]
