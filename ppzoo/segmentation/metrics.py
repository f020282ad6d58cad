"""Mean IoU with a per-class table, from a confusion matrix accumulated over the set."""
import numpy as np

from ..core.builder import METRICS
from ..core.errors import DataError


@METRICS.register()
class MeanIoU:
    def __init__(self, num_classes, ignore_index=255, class_names=None):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = class_names
        self.reset()

    def reset(self):
        self.conf = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, output, label):
        pred = output.argmax(1) if output.ndim == 4 else output
        if pred.size and (pred.max() >= self.num_classes or pred.min() < 0):
            raise DataError(f"MeanIoU(num_classes={self.num_classes}) got a prediction of class "
                            f"{int(pred.max())}: the model has more classes than the metric")
        label = np.asarray(label)
        ok = (label != self.ignore_index) & (label >= 0) & (label < self.num_classes)
        idx = label[ok].astype(np.int64) * self.num_classes + pred[ok].astype(np.int64)
        self.conf += np.bincount(idx, minlength=self.num_classes ** 2).reshape(self.conf.shape)

    def per_class_iou(self):
        inter = np.diag(self.conf).astype(np.float64)
        union = self.conf.sum(0) + self.conf.sum(1) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, inter / union, np.nan)

    def table(self):
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        rows = ["| class | IoU |", "|---|---|"]
        rows += [f"| {n} | {v:.4f} |" for n, v in zip(names, self.per_class_iou())]
        return "\n".join(rows)

    def accumulate(self):
        iou = self.per_class_iou()
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        total = self.conf.sum()
        out = {"mIoU": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 0.0,
               "pixel_acc": float(np.diag(self.conf).sum() / total) if total else 0.0}
        out.update({f"IoU/{n}": (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)})
        return out
