"""GLUE and SQuAD metrics: accuracy, F1, Matthews correlation, Pearson/Spearman, EM/F1."""
import collections

import numpy as np

from ..core.builder import METRICS
from ..metrics.classification import Metric
from .datasets import normalize_answer


class _PredLabel(Metric):
    """Collects (prediction, label) pairs; subclasses score them in ``accumulate``."""

    def reset(self):
        self.preds, self.labels = [], []

    def __init__(self):
        self.reset()

    def update(self, output, label):
        out = np.asarray(output)
        self.preds.append(out.argmax(axis=-1) if out.ndim > 1 and out.shape[-1] > 1 else out.reshape(-1))
        self.labels.append(np.asarray(label).reshape(-1))

    def arrays(self):
        return np.concatenate(self.preds), np.concatenate(self.labels)


@METRICS.register()
class Accuracy(_PredLabel):
    def accumulate(self):
        p, y = self.arrays()
        return {"acc": float((p == y).mean())}


@METRICS.register()
class BinaryF1(_PredLabel):
    """F1 of the positive class (label 1), as GLUE reports for MRPC and QQP."""

    def accumulate(self):
        p, y = self.arrays()
        tp = float(((p == 1) & (y == 1)).sum())
        prec = tp / max((p == 1).sum(), 1)
        rec = tp / max((y == 1).sum(), 1)
        return {"f1": 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0}


@METRICS.register()
class MatthewsCorrelation(_PredLabel):
    """Matthews correlation of binary predictions (CoLA's metric); 0 where undefined."""

    def accumulate(self):
        p, y = self.arrays()
        tp = float(((p == 1) & (y == 1)).sum()); tn = float(((p == 0) & (y == 0)).sum())
        fp = float(((p == 1) & (y == 0)).sum()); fn = float(((p == 0) & (y == 1)).sum())
        den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return {"mcc": float((tp * tn - fp * fn) / den) if den > 0 else 0.0}


def _rank(x):
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), float)
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # ties share their mean rank
        idx = x == v
        if idx.sum() > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks


@METRICS.register()
class PearsonSpearman(_PredLabel):
    """Pearson and Spearman correlation of regression outputs (STS-B) and their mean."""

    def accumulate(self):
        p, y = self.arrays()
        p, y = p.astype(float), y.astype(float)
        def corr(a, b):
            return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
        pe, sp = corr(p, y), corr(_rank(p), _rank(y))
        return {"pearson": pe, "spearman": sp, "corr": (pe + sp) / 2}


def token_f1(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if not p or not g:
        return float(p == g)
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def best_span(logits, feat, max_answer_len=30):
    """(score, start, end) of the best context span of a window: start + end logit, at most
    ``max_answer_len`` tokens; positions index the window's tokens."""
    lo, hi = feat["offset"], feat["offset"] + len(feat["tok_word"])
    s, e = logits[lo:hi, 0], logits[lo:hi, 1]
    score = s[:, None] + e[None, :]
    length = np.arange(len(s))[None, :] - np.arange(len(s))[:, None]
    score = np.where((length >= 0) & (length < int(max_answer_len)), score, -np.inf)
    i, j = np.unravel_index(np.argmax(score), score.shape)
    return float(score[i, j]), lo + int(i), lo + int(j)


@METRICS.register()
class SquadMetric(Metric):
    """SQuAD exact match and F1 (percent) of the best span per question over its windows.

    Needs the evaluation dataset (``SquadQA``) to map token spans to text; the fine-tuning
    trainer binds it through ``bind_dataset``.
    """

    def __init__(self, max_answer_len=30):
        self.max_answer_len = int(max_answer_len)
        self.dataset = None
        self.reset()

    def bind_dataset(self, dataset):
        self.dataset = dataset

    def reset(self):
        self.best = {}  # example index -> (score, text)

    def update(self, output, label):
        if self.dataset is None:
            raise RuntimeError("SquadMetric needs bind_dataset(SquadQA) before update")
        out, label = np.asarray(output), np.asarray(label)
        for logits, lab in zip(out, label):
            feat = self.dataset.features[int(lab[2])]
            score, i, j = best_span(logits, feat, self.max_answer_len)
            text = self.dataset.answer_text(int(lab[2]), i, j)
            ex = feat["example"]
            if ex not in self.best or score > self.best[ex][0]:
                self.best[ex] = (score, text)

    def accumulate(self):
        em = f1 = 0.0
        for ex, (_, text) in self.best.items():
            golds = [a["text"] for a in self.dataset.examples[ex]["answers"]] or [""]
            em += max(float(normalize_answer(text) == normalize_answer(g)) for g in golds)
            f1 += max(token_f1(text, g) for g in golds)
        n = max(len(self.best), 1)
        return {"exact_match": 100 * em / n, "f1": 100 * f1 / n}
