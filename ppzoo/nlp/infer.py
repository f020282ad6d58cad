"""The ``text`` inference task: exported text models on TSV, JSON-lines or plain-text files.

``export: {task: text}`` (set in ``configs/lnsr/_base_/minilm.yml``, with both the batch and
the sequence dimension free) writes into ``deploy.yml``:

- ``text.type``: ``classification``, ``regression`` or ``qa`` (extractive span), from the
  val dataset (``GlueTSV.task``, or ``SquadQA``);
- ``text.tokenizer`` (the config's spec: ``pkg://...``, an absolute folder or a PaddleNLP
  name; it must be reachable where the model is served), ``text.max_seq_len`` and, for QA,
  ``doc_stride``, ``max_query_len`` and ``max_answer_len``;
- ``reader``: the text columns (``text_a``, ``text_b``: names or indices) and ``header`` of
  the training TSV, used to read TSV inputs;
- ``label_names``: the classes in output order.

Input files (``tools/infer.py --input``): ``.tsv`` (the columns above; a header row when the
training TSV had one), ``.jsonl`` (one object a line: the column names above, or ``text_a`` /
``text`` and ``text_b``; ``question`` and ``context`` for QA) or ``.txt`` (one input a line;
a tab separates the two texts of a pair).  Each record is one input named ``file:line``;
blank lines of a ``.txt`` are not records.  A record that lacks a text stops with an error
naming the file and line.
"""
import json
import os

import numpy as np

from ..core.errors import DataError
from ..engine.predictor import INFER_TASKS, InferTask
from .datasets import qa_features, span_text
from .metrics import best_span
from .pretrained import build_tokenizer

TEXT_TYPES = ("classification", "regression", "qa")


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@INFER_TASKS.register(name="text")
class TextTask(InferTask):
    """Sentence (pair) classification, regression or extractive QA on text records."""

    extensions = (".tsv", ".jsonl", ".txt")

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        vcfg = dict(cfg.get("val_dataset") or {})
        if type(dataset).__name__ == "SquadQA" or vcfg.get("type") == "SquadQA":
            kind = "qa"
        else:
            kind = "regression" if vcfg.get("task") == "regression" else "classification"
        spec = str(vcfg.get("tokenizer", getattr(dataset, "tokenizer_spec", "")))
        if not spec.startswith("pkg://") and os.path.isdir(spec):
            spec = os.path.abspath(spec)
        text = {"type": kind, "tokenizer": spec,
                "max_seq_len": int(vcfg.get("max_seq_len", getattr(dataset, "max_seq_len", 128)))}
        if kind == "qa":
            text.update(doc_stride=int(vcfg.get("doc_stride", 128)),
                        max_query_len=int(vcfg.get("max_query_len", 64)), max_answer_len=30)
            reader = {}
        else:
            reader = {"text_a": vcfg.get("text_a"), "text_b": vcfg.get("text_b"),
                      "header": bool(vcfg.get("header", True))}
        return {"text": text, "reader": reader, "postprocess": {}}

    def __init__(self, deploy, **options):
        super().__init__(deploy, **options)
        self.text = dict(deploy.get("text") or {})
        if self.text.get("type") not in TEXT_TYPES:
            raise DataError(f"deploy.yml: text.type must be one of {TEXT_TYPES}, got "
                            f"{self.text.get('type')!r}")
        self.kind = self.text["type"]
        self.tokenizer = build_tokenizer(self.text["tokenizer"])
        self.records = {}

    # ------------------------------------------------------------------ reading
    def list_inputs(self, path):
        """One entry per record (``<file>:<line>``) of every input file."""
        names = []
        for path in super().list_inputs(path):
            for line, rec in self._parse(path):
                name = f"{path}:{line}"
                self.records[name] = rec
                names.append(name)
            if not names or not names[-1].startswith(f"{path}:"):
                raise DataError(f"{path}: holds no input records")
        return names

    def _parse(self, path):
        ext = os.path.splitext(path)[1].lower()
        try:
            with open(path, encoding="utf-8-sig") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read {path}: {err}") from None
        if ext == ".jsonl":
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{n}: not a JSON object ({err.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
                yield n, self._from_json(obj, f"{path}:{n}")
        elif ext == ".tsv":
            yield from self._from_tsv(path, lines)
        else:
            if self.kind == "qa":
                raise DataError(f"{path}: QA needs question and context: give a .jsonl file")
            for n, line in enumerate(lines, start=1):
                if line.strip():
                    a, _, b = line.partition("\t")
                    yield n, self._record(a, b if _ else None, f"{path}:{n}")

    def _record(self, a, b, where):
        if self.kind == "qa":
            if not a or not b:
                raise DataError(f"{where}: QA needs a non-empty question and context")
            return {"question": a, "context": b}
        pair = self.reader.get("text_b") is not None
        if not a or not str(a).strip():
            raise DataError(f"{where}: empty text")
        if pair and (b is None or not str(b).strip()):
            raise DataError(f"{where}: this model reads sentence pairs; the second text is missing")
        return {"text_a": str(a), "text_b": str(b) if pair else None}

    def _from_json(self, obj, where):
        if self.kind == "qa":
            return self._record(obj.get("question"), obj.get("context"), where)

        def pick(spec, *aliases):
            keys = ([spec] if isinstance(spec, str) else []) + list(aliases)
            return next((obj[k] for k in keys if k in obj), None)
        return self._record(pick(self.reader.get("text_a"), "text_a", "text", "sentence"),
                            pick(self.reader.get("text_b"), "text_b"), where)

    def _from_tsv(self, path, lines):
        rows = [(n, line.split("\t")) for n, line in enumerate(lines, start=1) if line.strip()]
        header = self.reader.get("header", True)
        names = rows.pop(0)[1] if header and rows else None

        def col(spec):
            if spec is None or isinstance(spec, int):
                return spec
            if names is None or spec not in names:
                raise DataError(f"{path}: no column {spec!r} (header: {names})")
            return names.index(spec)
        if self.kind == "qa":
            ia, ib = col("question"), col("context")
        else:
            ia, ib = col(self.reader.get("text_a", 0)), col(self.reader.get("text_b"))
        for n, row in rows:
            need = max(i for i in (ia, ib) if i is not None)
            if len(row) <= need:
                raise DataError(f"{path}:{n}: {len(row)} columns, expected more than {need}")
            yield n, self._record(row[ia], row[ib] if ib is not None else None, f"{path}:{n}")

    def read(self, name):
        rec = self.records.get(name)
        if rec is None:
            raise DataError(f"unknown input {name}")
        if self.kind == "qa":
            ex = dict(rec, answers=[])
            feats = qa_features(self.tokenizer, ex, 0, self.text["max_seq_len"],
                                self.text["max_query_len"], self.text["doc_stride"])
            return {"windows": feats, "context": rec["context"]}
        enc = self.tokenizer(rec["text_a"], text_pair=rec["text_b"],
                             max_length=self.text["max_seq_len"], truncation=True)
        return {"input_ids": np.asarray(enc["input_ids"], np.int64),
                "token_type_ids": np.asarray(enc["token_type_ids"], np.int64)}

    def preprocess(self, sample):
        return sample

    def collate(self, samples):
        """Pad to the batch's longest sequence (QA: one row per window of every sample)."""
        rows = [w for s in samples for w in s["windows"]] if self.kind == "qa" else samples
        length = max(len(r["input_ids"]) for r in rows)
        out = []
        for name in self.input_names:
            arr = np.zeros((len(rows), length), np.int64)
            for i, r in enumerate(rows):
                if name not in r:
                    raise DataError(f"the model input {name!r} is not a text input "
                                    f"(inputs: {self.input_names})")
                arr[i, :len(r[name])] = r[name]
            out.append(arr)
        return out

    # ------------------------------------------------------------------ results
    def postprocess(self, outputs, samples):
        out = np.asarray(outputs[0], dtype=np.float64)
        if self.kind == "regression":
            return [{"score": round(float(v), 6)} for v in out.reshape(len(samples), -1)[:, 0]]
        if self.kind == "classification":
            if out.ndim != 2:
                raise DataError(f"text classification expects outputs [batch, classes], got "
                                f"{list(out.shape)}")
            probs = _softmax(out)
            results = []
            for row in probs:
                i = int(np.argmax(row))
                results.append({"label": self.label_name(i), "class_id": i,
                                "scores": [round(float(p), 6) for p in row]})
            return results
        results, at = [], 0
        for s in samples:
            best = None
            for w in s["windows"]:
                score, i, j = best_span(out[at], w, self.text.get("max_answer_len", 30))
                at += 1
                if best is None or score > best[0]:
                    best = (score, span_text(s["context"], w, i, j))
            results.append({"answer": best[1], "score": round(best[0], 6)})
        return results

    def format(self, result):
        if self.kind == "regression":
            return f"{result['file']}: {result['score']:.4f}"
        if self.kind == "qa":
            return f"{result['file']}: {result['answer']!r} ({result['score']:.3f})"
        return f"{result['file']}: {result['label']} ({max(result['scores']):.4f})"
