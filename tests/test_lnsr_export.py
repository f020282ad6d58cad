"""Text models export with free batch and sequence length and serve through tools/infer.py:
classification, regression and extractive QA; the predictor equals the dygraph model."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

import ppzoo  # noqa: F401
from ppzoo.core.errors import DataError
from ppzoo.engine import build_trainer
from ppzoo.engine.export import export_from_config
from ppzoo.engine.predictor import Predictor, run_inference
from ppzoo.nlp.pretrained import build_tokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORDS = ["good", "bad", "cat", "dog", "red", "blue", "big", "small", "what", "is", "the",
         "capital", "paris", "?", "."]
ENCODER = dict(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32)
SPEC = [{"name": "input_ids", "shape": [None, None], "dtype": "int64"},
        {"name": "token_type_ids", "shape": [None, None], "dtype": "int64"}]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    return str(root)


def exported(tmp_path, vocab, model, data, loss, metrics, name):
    """A config like configs/lnsr/ (its export section), random weights saved and exported."""
    base = yaml.safe_load(open(os.path.join(ROOT, "configs", "lnsr", "_base_", "minilm.yml")))
    assert base["export"]["task"] == "text" and [s["shape"] for s in base["export"]["input_spec"]] == \
        [[None, None], [None, None]]
    cfg = {"trainer": {"type": "FineTuneTrainer"}, "model": model, "val_dataset": data,
           "loss": loss, "metrics": metrics, "export": base["export"],
           "train": {"input_keys": ["input_ids", "token_type_ids"]}, "output_dir": str(tmp_path),
           "name": name, "seed": 0}
    trainer = build_trainer(cfg, build_train=False)
    weights = str(tmp_path / f"{name}.pdparams")
    paddle.save(trainer.model.state_dict(), weights)
    save = str(tmp_path / f"{name}_inference")
    deploy = export_from_config(cfg, weights, save)
    trainer.model.eval()
    return trainer.model, save, deploy


def encode(vocab, a, b=None):
    enc = build_tokenizer(vocab)(a, text_pair=b, max_length=64, truncation=True)
    return enc["input_ids"], enc["token_type_ids"]


def padded(rows):
    n = max(len(r) for r in rows)
    return np.array([list(r) + [0] * (n - len(r)) for r in rows], np.int64)


def test_text_classification_export_infer_equals_dygraph(tmp_path, vocab):
    (tmp_path / "dev.tsv").write_text("label\ts1\ts2\n1\tgood cat\tred dog\n0\tbad\tblue\n")
    data = dict(type="GlueTSV", path=str(tmp_path / "dev.tsv"), text_a="s1", text_b="s2", label="label",
                labels=["0", "1"], tokenizer=vocab, max_seq_len=64, header=True)
    model, save, deploy = exported(tmp_path, vocab, {"type": "TransformerClassifier", "num_classes": 2,
                                                     "encoder": ENCODER},
                                   data, {"type": "CrossEntropyLoss"}, [{"type": "Accuracy"}], "cls")
    assert deploy["task"] == "text" and deploy["text"]["type"] == "classification"
    assert [i["shape"] for i in deploy["inputs"]] == [[-1, -1], [-1, -1]]
    assert deploy["label_names"] == ["0", "1"] and deploy["text"]["max_seq_len"] == 64
    assert deploy["reader"] == {"text_a": "s1", "text_b": "s2", "header": True}

    # batches and lengths other than the sample the export traced: 3 x 5 and 2 x 40 tokens
    pred = Predictor(save, device="cpu", use_mkldnn=False)
    rng = np.random.default_rng(0)
    for b, t in ((3, 5), (2, 40)):
        ids = rng.integers(5, ENCODER["vocab_size"], (b, t))
        ids[:, 0] = 2
        ids[0, t // 2:] = 0  # padding
        tt = np.zeros_like(ids)
        with paddle.no_grad():
            ref = model(paddle.to_tensor(ids), paddle.to_tensor(tt)).numpy()
        np.testing.assert_allclose(pred.run([ids, tt])[0], ref, atol=1e-5)

    pairs = [("good cat", "red dog"), ("bad", "blue big small dog cat"), ("the cat", "is red")]
    (tmp_path / "in.tsv").write_text("s1\ts2\n" + "".join(f"{a}\t{b}\n" for a, b in pairs))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"s1": a, "s2": b}) + "\n" for a, b in pairs))
    (tmp_path / "in.txt").write_text("".join(f"{a}\t{b}\n\n" for a, b in pairs))
    enc = [encode(vocab, a, b) for a, b in pairs]
    with paddle.no_grad():
        ref = model(paddle.to_tensor(padded([e[0] for e in enc])),
                    paddle.to_tensor(padded([e[1] for e in enc]))).numpy()
    probs = np.exp(ref) / np.exp(ref).sum(1, keepdims=True)
    for f in ("in.tsv", "in.jsonl", "in.txt"):
        res = run_inference(save, str(tmp_path / f), batch_size=2, echo=None, device="cpu",
                            use_mkldnn=False, output=str(tmp_path / f"{f}.out.jsonl"))
        assert [r["class_id"] for r in res] == list(ref.argmax(1)), f
        np.testing.assert_allclose([r["scores"] for r in res], probs, atol=1e-5)
        assert res[0]["file"].endswith(f"{f}:{2 if f == 'in.tsv' else 1}")
        assert len(open(tmp_path / f"{f}.out.jsonl").readlines()) == 3

    # a record without its second text: one error naming the file and line, no output file
    (tmp_path / "bad.jsonl").write_text(json.dumps({"s1": "good", "s2": "cat"}) + "\n" +
                                        json.dumps({"s1": "bad"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: .*second text is missing"):
        run_inference(save, str(tmp_path / "bad.jsonl"), echo=None, device="cpu",
                      output=str(tmp_path / "bad_out.jsonl"))
    assert not os.path.exists(tmp_path / "bad_out.jsonl")

    # the command line on a text file
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir", save,
                          "--input", str(tmp_path / "in.txt"), "--device", "cpu", "--no-mkldnn"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("in.txt:") == 3


def test_text_regression_export_infer(tmp_path, vocab):
    (tmp_path / "dev.tsv").write_text("score\tsentence\n1.5\tgood cat\n4.0\tbad dog\n")
    data = dict(type="GlueTSV", task="regression", path=str(tmp_path / "dev.tsv"), text_a="sentence",
                label="score", tokenizer=vocab, max_seq_len=64)
    model, save, deploy = exported(tmp_path, vocab, {"type": "TransformerClassifier", "num_classes": 1,
                                                     "encoder": ENCODER, "pooling": "mean"},
                                   data, {"type": "MSELoss"}, [{"type": "PearsonSpearman"}], "reg")
    assert deploy["text"]["type"] == "regression"
    (tmp_path / "in.txt").write_text("good cat\nbad dog big\n")
    res = run_inference(save, str(tmp_path / "in.txt"), echo=None, device="cpu", use_mkldnn=False)
    enc = [encode(vocab, "good cat"), encode(vocab, "bad dog big")]
    with paddle.no_grad():
        ref = model(paddle.to_tensor(padded([e[0] for e in enc])),
                    paddle.to_tensor(padded([e[1] for e in enc]))).numpy()[:, 0]
    np.testing.assert_allclose([r["score"] for r in res], ref, atol=1e-5)


def test_text_qa_export_infer_picks_the_dygraph_span(tmp_path, vocab):
    ctx = "the capital is paris . the cat is red"
    squad = {"data": [{"paragraphs": [{"context": ctx, "qas": [
        {"id": "a", "question": "what is the capital ?", "answers": [{"text": "paris",
                                                                      "answer_start": ctx.index("paris")}]}]}]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    data = dict(type="SquadQA", path=str(tmp_path / "dev.json"), tokenizer=vocab, max_seq_len=16,
                doc_stride=4)
    model, save, deploy = exported(tmp_path, vocab, {"type": "TransformerQA", "encoder": ENCODER},
                                   data, {"type": "SpanLoss"}, [{"type": "SquadMetric"}], "qa")
    assert deploy["text"]["type"] == "qa" and deploy["text"]["doc_stride"] == 4
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "what is the capital ?", "context": ctx}) + "\n")
    res = run_inference(save, str(tmp_path / "q.jsonl"), echo=None, device="cpu", use_mkldnn=False)
    # the same decoding from the dygraph model over the dataset's own windows
    from ppzoo.nlp.datasets import SquadQA
    from ppzoo.nlp.metrics import best_span
    ds = SquadQA(str(tmp_path / "dev.json"), tokenizer=vocab, max_seq_len=16, doc_stride=4)
    best = None
    for k, feat in enumerate(ds.features):
        with paddle.no_grad():
            logits = model(paddle.to_tensor([feat["input_ids"]]), paddle.to_tensor([feat["token_type_ids"]]))
        score, i, j = best_span(logits.numpy()[0], feat)
        if best is None or score > best[0]:
            best = (score, ds.answer_text(k, i, j))
    assert len(ds.features) > 1
    assert res[0]["answer"] == best[1] and res[0]["answer"] in ctx
    assert res[0]["score"] == pytest.approx(best[0], abs=1e-4)
