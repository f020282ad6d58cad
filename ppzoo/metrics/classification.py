"""Metrics accumulate NumPy outputs and labels over an evaluation and report a dict."""
import numpy as np

from ..core.builder import METRICS


class Metric:
    def reset(self):
        raise NotImplementedError

    def update(self, output, label):
        raise NotImplementedError

    def accumulate(self):
        raise NotImplementedError


@METRICS.register()
class TopKAccuracy(Metric):
    """Top-k accuracy for each k in ``topk``, reported as ``top1``, ``top5``, ..."""

    def __init__(self, topk=(1, 5)):
        self.topk = [int(k) for k in (topk if isinstance(topk, (list, tuple)) else [topk])]
        self.reset()

    def reset(self):
        self.correct = {k: 0 for k in self.topk}
        self.count = 0

    def update(self, output, label):
        label = np.asarray(label).reshape(-1)
        order = np.argsort(-np.asarray(output), axis=1)
        for k in self.topk:
            self.correct[k] += int((order[:, :k] == label[:, None]).any(axis=1).sum())
        self.count += len(label)

    def accumulate(self):
        return {f"top{k}": self.correct[k] / max(self.count, 1) for k in self.topk}


@METRICS.register()
class ClassificationReport(Metric):
    """Per-class precision, recall, F1 and support, plus macro F1 and the confusion matrix."""

    def __init__(self, num_classes, class_names=None):
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.reset()

    def reset(self):
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, output, label):
        pred = np.asarray(output).argmax(axis=1)
        label = np.asarray(label).reshape(-1)
        np.add.at(self.confusion, (label, pred), 1)

    def per_class(self):
        tp = np.diag(self.confusion).astype(float)
        support = self.confusion.sum(axis=1)
        predicted = self.confusion.sum(axis=0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                       where=(precision + recall) > 0)
        return precision, recall, f1, support

    def table(self):
        p, r, f, s = self.per_class()
        width = max(8, max(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}} precision recall  f1     support"]
        for i, name in enumerate(self.class_names):
            lines.append(f"{name:<{width}} {p[i]:9.4f} {r[i]:6.4f} {f[i]:6.4f} {int(s[i]):7d}")
        return "\n".join(lines)

    def accumulate(self):
        p, r, f, s = self.per_class()
        present = s > 0
        return {"macro_f1": float(f[present].mean()) if present.any() else 0.0,
                "report": self.table()}
