"""Pseudo-label generation over a dataset: resumable, atomic, with a file list.

Each image is explained by every (classifier, explainer) pair for its present classes
(image-level labels, or the classifiers' own predictions), the maps go through the
consensus, and ``labels/<name>.png`` (uint8 label map) and ``confidence/<name>.png``
(0..255) are written through a temporary file + rename, so an interrupted run never
leaves a half-written label and a rerun skips finished images.
"""
import json
import os

import numpy as np
import paddle
from PIL import Image
from tqdm import tqdm

from ..core.builder import DATASETS, MODELS
from ..core.config import check_keys
from ..core.errors import ConfigError, WeightsError
from .consensus import Consensus
from .explainers import build_explainer

KEYS = {"_file_", "name", "seed", "dataset", "classifiers", "explainers", "consensus",
        "output_dir", "present", "batch_size", "quality"}


def _save_png(arr, path):
    tmp = path + ".tmp.png"
    Image.fromarray(arr.astype(np.uint8)).save(tmp)
    os.replace(tmp, path)


def load_classifiers(cfg, source):
    models = []
    for i, c in enumerate(cfg.get("classifiers") or []):
        if "model" not in c:
            raise ConfigError(f"{source}: classifiers[{i}] has no 'model'")
        m = MODELS.build(c["model"], key_path=f"classifiers[{i}].model")
        w = c.get("weights")
        if w:
            if not os.path.isfile(w):
                raise WeightsError(f"{source}: classifiers[{i}].weights not found: {w}")
            m.set_state_dict(paddle.load(w))
        m.eval()
        models.append(m)
    if not models:
        raise ConfigError(f"{source}: 'classifiers' is empty")
    return models


class Generator:
    def __init__(self, cfg):
        self.source = cfg.get("_file_", "<config>")
        check_keys(cfg, KEYS, "", self.source)
        for k in ("dataset", "explainers", "output_dir"):
            if not cfg.get(k):
                raise ConfigError(f"{self.source}: the config has no '{k}'")
        self.dataset = DATASETS.build(cfg["dataset"], key_path="dataset")
        self.num_classes = int(self.dataset.num_classes)
        self.classifiers = load_classifiers(cfg, self.source)
        self.members = [(f"{type(m).__name__}{i}/{e['type']}", build_explainer(e, m, self.num_classes))
                        for i, m in enumerate(self.classifiers) for e in cfg["explainers"]]
        self.consensus = Consensus(self.num_classes, **dict(cfg.get("consensus") or {}))
        self.out = cfg["output_dir"]
        self.present = cfg.get("present", "labels")
        if self.present not in ("labels", "predict"):
            raise ConfigError(f"{self.source}: present must be 'labels' or 'predict', got {self.present!r}")
        self.quality = bool(cfg.get("quality", True))

    def present_classes(self, sample):
        if self.present == "labels":
            return list(np.flatnonzero(np.asarray(sample["label"]) > 0.5))
        x = paddle.to_tensor(sample["image"][None])
        with paddle.no_grad():
            p = np.mean([paddle.nn.functional.sigmoid(m(x)).numpy()[0] for m in self.classifiers], 0)
        return list(np.flatnonzero(p > 0.5))

    def explain_one(self, sample):
        present = self.present_classes(sample)
        maps = np.stack([fn(sample["image"][None], [present])[0] for _, fn in self.members])
        img_hwc = np.transpose(sample["image"], (1, 2, 0))
        lab, conf, cons = self.consensus(maps, present, img_hwc)
        return present, maps, lab, conf, cons

    def run(self, echo=print):
        lab_dir, conf_dir = os.path.join(self.out, "labels"), os.path.join(self.out, "confidence")
        os.makedirs(lab_dir, exist_ok=True)
        os.makedirs(conf_dir, exist_ok=True)
        if max(self.consensus.background, self.consensus.ignore_index) > 255:
            raise ConfigError(f"{self.source}: label values must fit a PNG (<= 255)")
        nc = self.num_classes + 1
        conf_mats = {n: np.zeros((nc, nc), np.int64) for n, _ in self.members + [("ensemble", None)]}
        done = skipped = 0
        lines = []
        for idx in tqdm(range(len(self.dataset)), desc="pssl", dynamic_ncols=True):
            name = self.dataset.item_name(idx)
            lp, cp = os.path.join(lab_dir, name + ".png"), os.path.join(conf_dir, name + ".png")
            img_path = self.dataset.base.items[idx][0]
            lines.append(f"{img_path} {os.path.abspath(lp)} {os.path.abspath(cp)}")
            if os.path.isfile(lp) and os.path.isfile(cp):
                skipped += 1
                continue
            sample = self.dataset[idx]
            present, maps, lab, conf, _ = self.explain_one(sample)
            _save_png(np.round(conf * 255), cp)
            _save_png(lab, lp)
            done += 1
            if self.quality and "mask" in sample:
                true = np.asarray(sample["mask"])
                true = np.where((true >= 0) & (true < self.num_classes), true, -1)
                norm_members = [(n, self.consensus.label(self.consensus_norm(m), present))
                                for (n, _), m in zip(self.members, maps)]
                for n, pl in norm_members + [("ensemble", lab)]:
                    self._confuse(conf_mats[n], true, pl)
        tmp = os.path.join(self.out, "train_list.txt.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, os.path.join(self.out, "train_list.txt"))
        summary = {"generated": done, "skipped": skipped, "total": len(self.dataset)}
        if done and self.quality:
            summary["quality"] = {n: _quality(c, self.num_classes) for n, c in conf_mats.items()}
            with open(os.path.join(self.out, "quality.json"), "w") as f:
                json.dump(summary, f, indent=1)
        echo(json.dumps({k: v for k, v in summary.items() if k != "quality"}))
        return summary

    def consensus_norm(self, m):
        from .consensus import normalise
        return normalise(m, self.consensus.norm)

    def _confuse(self, mat, true, pred):
        """Rows: true class (0..C-1); cols: pseudo label with background = C; ignored
        pseudo pixels are counted apart as not covered."""
        c = self.num_classes
        ok = (true >= 0) & (pred != self.consensus.ignore_index)
        p = np.where(pred[ok] == self.consensus.background, c, pred[ok])
        mat += np.bincount(true[ok] * (c + 1) + p, minlength=(c + 1) ** 2).reshape(mat.shape)


def _quality(mat, c):
    """mIoU of the pseudo labels over the true classes (background counts as wrong) and
    the fraction of true-labelled pixels the pseudo label covers at all."""
    inter = np.diag(mat)[:c].astype(float)
    union = mat[:c].sum(1) + mat[:, :c].sum(0) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {"mIoU": float(np.nanmean(iou)), "pixel_acc_covered": float(inter.sum() / max(mat.sum(), 1)),
            "per_class_iou": [None if np.isnan(v) else round(float(v), 4) for v in iou]}
