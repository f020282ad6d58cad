"""Text datasets: GLUE-format TSV (classification, regression) and SQuAD-format JSON (QA).

Samples are dicts of token ids; ``collate_fn`` pads a batch to its longest sequence.
A relative ``path`` is resolved by ``ppzoo.core.paths`` (under ``$PPZOO_DATA`` first), so
configs say ``glue/RTE/train.tsv``.
"""
import json
import os
import re
import string

import numpy as np

from ..core.builder import DATASETS
from ..core import paths
from ..core.errors import ConfigError, DataError
from ..datasets.base import BaseDataset
from .pretrained import build_tokenizer

def resolve_data_path(path):
    """The file a config's ``path`` names (``ppzoo.core.paths``); a DataError if there is none."""
    found = paths.resolve_data_path(path)
    if not os.path.isfile(found):
        raise DataError(f"data file not found: {paths.describe_search(path)}")
    return found


def subsample(n, max_examples, seed):
    """A fixed subset of ``range(n)`` (the same for every run with the same seed)."""
    if not max_examples or max_examples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(int(seed)).permutation(n)[:int(max_examples)])


class _TextDataset(BaseDataset):
    def __init__(self, tokenizer, max_seq_len=128, seed=0):
        super().__init__(None, seed)
        self.tokenizer_spec = tokenizer
        self.max_seq_len = int(max_seq_len)
        self._tok = None

    @property
    def tokenizer(self):
        if self._tok is None:
            self._tok = build_tokenizer(self.tokenizer_spec)
        return self._tok

    def collate_fn(self, samples):
        """Pad input_ids/token_type_ids with 0 to the batch's longest sample; stack the rest."""
        length = max(len(s["input_ids"]) for s in samples)
        out = {}
        for key in samples[0]:
            if key in ("input_ids", "token_type_ids"):
                arr = np.zeros((len(samples), length), np.int64)
                for i, s in enumerate(samples):
                    arr[i, :len(s[key])] = s[key]
                out[key] = arr
            else:
                out[key] = np.stack([np.asarray(s[key]) for s in samples])
        return out


NEWLINE = b"\n"


def _undecodable(path, err, data=None):
    """A DataError naming the file and the line of bytes that are not UTF-8."""
    line = "" if data is None else f":{data.count(NEWLINE, 0, err.start) + 1}"
    return DataError(f"{path}{line}: not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} "
                     f"at offset {err.start}); the file is damaged or in another encoding")


def read_text(path, encoding="utf-8"):
    """The text of ``path``; bytes that are not ``encoding`` are a DataError naming the file
    and line, not a UnicodeDecodeError from deep inside a loader."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise _undecodable(path, err, data) from None


def _read_tsv(path, header):
    text = read_text(path, "utf-8-sig")  # MRPC starts with a BOM
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    rows = [line.split("\t") for line in lines if line.strip()]
    if not rows:
        raise DataError(f"{path}: empty file")
    return (rows[0], rows[1:]) if header else (None, rows)


@DATASETS.register()
class GlueTSV(_TextDataset):
    """A GLUE-format TSV: one or two text columns and a label column, named or by index.

    ``labels`` lists the label values (as written in the file) in class order; without it
    labels must be integers.  ``label_names`` gives the classes' names in the same order
    (SST-2 writes ``0``/``1``; its names are ``negative``/``positive``): they become
    ``class_names``, which export writes into ``deploy.yml`` so predictions carry names
    rather than file codes (default: the ``labels`` values).  ``task: regression`` reads
    float labels (STS-B).
    ``max_examples`` keeps a fixed random subset (chosen by ``subsample_seed``).
    """

    def __init__(self, path, text_a, label, tokenizer, text_b=None, header=True, labels=None,
                 task="classification", max_seq_len=128, max_examples=None, subsample_seed=0,
                 seed=0, label_names=None):
        super().__init__(tokenizer, max_seq_len, seed)
        if task not in ("classification", "regression"):
            raise ConfigError(f"GlueTSV.task must be classification or regression, got {task!r}")
        self.path = resolve_data_path(path)
        self.task = task
        names, rows = _read_tsv(self.path, header)

        def col(spec):
            if spec is None:
                return None
            if isinstance(spec, int):
                return spec
            if names is None:
                raise ConfigError(f"{self.path}: has no header; name column {spec!r} by index")
            if spec not in names:
                raise ConfigError(f"{self.path}: no column {spec!r} (columns: {names})")
            return names.index(spec)

        ia, ib, il = col(text_a), col(text_b), col(label)
        codes = [str(x) for x in labels] if labels else None
        if label_names is not None:
            if task == "regression" or not codes or len(label_names) != len(codes):
                raise ConfigError(f"GlueTSV.label_names {list(label_names)} needs `labels` of the same "
                                  f"length (the file's values in class order), got labels={labels}")
            if len({str(n) for n in label_names}) != len(label_names):
                raise ConfigError(f"GlueTSV.label_names {list(label_names)} repeats a name")
        self.class_names = [str(n) for n in label_names] if label_names is not None else codes
        lut = {v: i for i, v in enumerate(codes or [])}
        self.examples = []
        need = max(i for i in (ia, ib, il) if i is not None)
        for n, row in enumerate(rows, start=2 if header else 1):
            if len(row) <= need:
                raise DataError(f"{self.path}:{n}: {len(row)} columns, expected more than {need}")
            raw = row[il].strip()
            if task == "regression":
                try:
                    y = float(raw)
                except ValueError:
                    raise DataError(f"{self.path}:{n}: label {raw!r} is not a number") from None
            elif lut:
                if raw not in lut:
                    raise DataError(f"{self.path}:{n}: label {raw!r} not in labels {codes}")
                y = lut[raw]
            else:
                try:
                    y = int(raw)
                except ValueError:
                    raise DataError(f"{self.path}:{n}: label {raw!r} is not an integer; "
                                    "list the label values in `labels`") from None
            self.examples.append((row[ia], row[ib] if ib is not None else None, y))
        keep = subsample(len(self.examples), max_examples, subsample_seed)
        self.examples = [self.examples[i] for i in keep]

    def __len__(self):
        return len(self.examples)

    def load(self, idx):
        a, b, y = self.examples[idx]
        enc = self.tokenizer(a, text_pair=b, max_length=self.max_seq_len, truncation=True)
        label = np.float32(y) if self.task == "regression" else np.int64(y)
        return {"input_ids": np.asarray(enc["input_ids"], np.int64),
                "token_type_ids": np.asarray(enc["token_type_ids"], np.int64),
                "label": np.asarray([label]) if self.task == "regression" else label}


# ---------------------------------------------------------------------- SQuAD
def normalize_answer(s):
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def qa_features(tok, ex, ex_idx, max_seq_len, max_query_len, doc_stride):
    """The windows (features) of one SQuAD-style example ``{question, context, answers}``:
    ``[CLS] question [SEP] context window [SEP]``, windows ``doc_stride`` tokens apart."""
    ctx = ex["context"]
    words, word_chars = [], []  # whitespace words and their char span
    for m in re.finditer(r"\S+", ctx):
        words.append(m.group())
        word_chars.append((m.start(), m.end()))
    tokens, tok_word = [], []
    for w, word in enumerate(words):
        for piece in tok.tokenize(word):
            tokens.append(piece)
            tok_word.append(w)
    span = None
    if ex["answers"]:
        a = ex["answers"][0]
        s, e = a["answer_start"], a["answer_start"] + len(a["text"])
        ws = [w for w, (cs, ce) in enumerate(word_chars) if cs < e and ce > s]
        if ws:
            ts = tok_word.index(ws[0])
            te = len(tok_word) - 1 - tok_word[::-1].index(ws[-1])
            span = (ts, te)
    q_tokens = tok.tokenize(ex["question"])[:max_query_len]
    room = max_seq_len - len(q_tokens) - 3
    if room <= 0:
        raise ConfigError(f"SquadQA: max_seq_len {max_seq_len} leaves no room for the context")
    feats, begin = [], 0
    while True:
        window = tokens[begin:begin + room]
        ids = tok.convert_tokens_to_ids(["[CLS]"] + q_tokens + ["[SEP]"] + window + ["[SEP]"])
        offset = len(q_tokens) + 2
        tt = [0] * offset + [1] * (len(window) + 1)
        start = end = 0
        if span and span[0] >= begin and span[1] < begin + len(window):
            start, end = span[0] - begin + offset, span[1] - begin + offset
        feats.append({"example": ex_idx, "input_ids": ids, "token_type_ids": tt,
                      "start": start, "end": end, "offset": offset,
                      "tok_word": tok_word[begin:begin + len(window)]})
        if begin + room >= len(tokens):
            break
        begin += min(room, doc_stride)
    return feats


def span_text(context, feat, start, end):
    """The context words a token span [start, end] of a window ``feat`` covers."""
    ws, we = feat["tok_word"][start - feat["offset"]], feat["tok_word"][end - feat["offset"]]
    spans = [m.span() for m in re.finditer(r"\S+", context)]
    return context[spans[ws][0]:spans[we][1]]


@DATASETS.register()
class SquadQA(_TextDataset):
    """SQuAD-format JSON (``data[].paragraphs[].{context, qas[].{id, question, answers}}``).

    Each question becomes one feature per window of the context (``doc_stride`` apart).
    Training labels are the answer's token positions (0, the [CLS] token, where the window
    does not hold it); the label also carries the feature's index, which the ``SquadMetric``
    uses to map predicted spans back to words.
    """

    def __init__(self, path, tokenizer, max_seq_len=384, doc_stride=128, max_query_len=64,
                 max_examples=None, subsample_seed=0, seed=0):
        super().__init__(tokenizer, max_seq_len, seed)
        self.path = resolve_data_path(path)
        try:
            data = json.loads(read_text(self.path))["data"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{self.path}: not SQuAD-format JSON ({err})") from None
        self.examples = []
        for a, article in enumerate(data):
            for p, para in enumerate(article.get("paragraphs", [])):
                if "context" not in para:
                    raise DataError(f"{self.path}: data[{a}].paragraphs[{p}] has no context")
                for q, qa in enumerate(para.get("qas", [])):
                    answers = qa.get("answers") or []
                    for ans in answers:
                        start = int(ans.get("answer_start", -1))
                        if para["context"][start:start + len(ans["text"])] != ans["text"]:
                            raise DataError(f"{self.path}: data[{a}].paragraphs[{p}].qas[{q}]: "
                                            f"answer {ans['text']!r} not at answer_start {start}")
                    self.examples.append({"id": qa.get("id", f"{a}.{p}.{q}"),
                                          "question": qa["question"],
                                          "context": para["context"], "answers": answers})
        keep = subsample(len(self.examples), max_examples, subsample_seed)
        self.examples = [self.examples[i] for i in keep]
        self.doc_stride, self.max_query_len = int(doc_stride), int(max_query_len)
        self._features = None

    @property
    def features(self):
        if self._features is None:
            self._features = [f for i, ex in enumerate(self.examples) for f in self._featurize(i, ex)]
        return self._features

    def _featurize(self, ex_idx, ex):
        return qa_features(self.tokenizer, ex, ex_idx, self.max_seq_len, self.max_query_len,
                           self.doc_stride)

    def __len__(self):
        return len(self.features)

    def load(self, idx):
        f = self.features[idx]
        return {"input_ids": np.asarray(f["input_ids"], np.int64),
                "token_type_ids": np.asarray(f["token_type_ids"], np.int64),
                "label": np.asarray([f["start"], f["end"], idx], np.int64)}

    def answer_text(self, feat_idx, start, end):
        """The context words a predicted token span [start, end] of a feature covers."""
        f = self.features[feat_idx]
        return span_text(self.examples[f["example"]]["context"], f, start, end)
