"""Predictions on unlabelled sets: PaddleVideo's FSD-10 ``submission.csv``
(``sample_index,predict_category``: the row of the test array and the arg-max class id).

``tools/eval.py`` calls ``dataset.write_predictions(path, scores)`` when its val set has no
labels; ``tools/infer.py`` writes the same file next to ``results.jsonl`` for skeleton
arrays.  Files are written to a temporary name and moved into place.
"""
import csv
import os

import numpy as np

from ..core.errors import DataError

SUBMISSION_HEADER = ["sample_index", "predict_category"]


def write_csv(path, header, rows):
    """Write ``rows`` under ``header`` to ``path`` atomically (no half-written file)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_submission(path, scores, indices=None):
    """PaddleVideo's FSD-10 submission: one ``sample_index,predict_category`` row per
    sequence, the class being the arg-max of ``scores`` (N, num_classes)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or not len(scores):
        raise DataError(f"submission {path}: expected scores of shape [N, classes], got {list(scores.shape)}")
    indices = range(len(scores)) if indices is None else indices
    return write_csv(path, SUBMISSION_HEADER,
                     [(int(i), int(c)) for i, c in zip(indices, scores.argmax(axis=1))])
