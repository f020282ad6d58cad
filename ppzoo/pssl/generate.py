"""Pseudo-label generation over a dataset: resumable, atomic, with a file list.

Each image is explained by every (classifier, explainer) pair for its classes (the
labelled class of an ImageNet-layout set, the multi-hot image-level labels of a
segmentation set, or the committee's own top predictions), the maps go through the
consensus, and the label is written at the size of the image file the list points to
(nearest-neighbour resize from the explained size), in one or both formats:

- ``png``: ``labels/<name>.png`` (uint8 label map), with ``confidence: true`` also
  ``confidence/<name>.png`` (0..255), and ``train_list.txt`` (``image label [confidence]``)
  for ``SegFileList``;
- ``released``: PaddleSeg's released PSSL format under ``pssl/``:
  ``train/<wnid>/<image>_eiseg.npz`` (arr_0: 1 = object, 0 = background, 255 = ignored,
  which PaddleSeg reads as background), ``train.txt`` and the synsets file, readable by
  ``PSSLReleased`` and by PaddleSeg's ``PSSLDataset``.

``variants`` adds label sets from other consensus settings over the same explanations
(``variants/<name>/labels``, ``.../confidence``, ``.../train_list.txt``, PNG only).

Every file goes through a temporary file + rename, so an interrupted run never leaves a
half-written label and a rerun skips finished images.
"""
import json
import os
import time

import numpy as np
import paddle
from PIL import Image
from tqdm import tqdm

from ..core.builder import DATASETS, MODELS
from ..core.config import check_keys
from ..core.errors import ConfigError
from .consensus import Consensus, normalise
from .explainers import build_explainer
from .released import LIST_FILE, SUFFIX, SYNSETS_FILE, write_released_label, write_text_atomic

KEYS = {"_file_", "name", "seed", "dataset", "classifiers", "explainers", "consensus", "output_dir",
        "present", "top_k", "batch_size", "quality", "formats", "confidence", "variants"}
VARIANT_KEYS = {"consensus", "confidence"}
CLASSIFIER_KEYS = {"model", "weights", "layer", "classifier"}
FORMATS = ("png", "released")


def _save_png(arr, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.png"
    Image.fromarray(arr.astype(np.uint8)).save(tmp)
    os.replace(tmp, path)


def _resize_nearest(arr, wh):
    if (arr.shape[1], arr.shape[0]) == tuple(wh):
        return arr
    return np.asarray(Image.fromarray(arr.astype(np.uint8)).resize(wh, Image.NEAREST))


def load_classifiers(cfg, source):
    """[(model, entry)] for the committee; ``weights`` is a path, URL or zoo name."""
    from ..hub.load import load_pretrained
    out = []
    for i, c in enumerate(cfg.get("classifiers") or []):
        if not isinstance(c, dict) or "model" not in c:
            raise ConfigError(f"{source}: classifiers[{i}] has no 'model'")
        check_keys(c, CLASSIFIER_KEYS, f"classifiers[{i}].", source)
        m = MODELS.build(c["model"], key_path=f"classifiers[{i}].model")
        if c.get("weights"):
            load_pretrained(m, c["weights"], strict=True)
        m.eval()
        out.append((m, c))
    if not out:
        raise ConfigError(f"{source}: 'classifiers' is empty")
    return out


class Generator:
    def __init__(self, cfg):
        self.source = cfg.get("_file_", "<config>")
        check_keys(cfg, KEYS, "", self.source)
        for k in ("dataset", "explainers", "output_dir"):
            if not cfg.get(k):
                raise ConfigError(f"{self.source}: the config has no '{k}'")
        self.dataset = DATASETS.build(cfg["dataset"], key_path="dataset")
        for need in ("image_path", "item_name"):
            if not hasattr(self.dataset, need):
                raise ConfigError(f"{self.source}: dataset {type(self.dataset).__name__} has no {need}(); use "
                                  "ImageNetFolder or ImageLevelLabels")
        self.num_classes = int(self.dataset.num_classes)
        self.batch_size = int(cfg.get("batch_size", 1))
        if self.batch_size < 1:
            raise ConfigError(f"{self.source}: batch_size must be >= 1, got {self.batch_size}")
        self.classifiers = [m for m, _ in load_classifiers(cfg, self.source)]
        entries = cfg["classifiers"]
        self.members = []
        for i, (m, c) in enumerate(zip(self.classifiers, entries)):
            for e in cfg["explainers"]:
                e = dict(e)
                e.setdefault("batch_size", self.batch_size)
                for k in ("layer", "classifier"):
                    if c.get(k) and e["type"] in ("CAM", "GradCAM"):
                        e.setdefault(k, c[k])
                self.members.append((f"{type(m).__name__}{i}/{e['type']}",
                                     build_explainer(e, m, getattr(m, "num_classes", self.num_classes))))
        self.consensus = Consensus(self.num_classes, **dict(cfg.get("consensus") or {}))
        # further consensus settings over the same explanations: label sets of their own
        self.variants = {}
        for n, v in (cfg.get("variants") or {}).items():
            v = dict(v or {})
            check_keys(v, VARIANT_KEYS, f"variants.{n}.", self.source)
            con = Consensus(self.num_classes, **dict(cfg.get("consensus") or {}, **dict(v.get("consensus") or {})))
            self.variants[str(n)] = (con, bool(v.get("confidence", False)))
        self.out = cfg["output_dir"]
        self.present = cfg.get("present", "labels")
        if self.present not in ("labels", "predict", "top_k"):
            raise ConfigError(f"{self.source}: present must be 'labels', 'predict' or 'top_k', got {self.present!r}")
        self.top_k = int(cfg.get("top_k", 1))
        self.formats = cfg.get("formats", ["png"])
        self.formats = [self.formats] if isinstance(self.formats, str) else list(self.formats)
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"{self.source}: formats must be a list of {FORMATS}, got {cfg.get('formats')!r}")
        if "released" in self.formats and not hasattr(self.dataset, "wnid"):
            raise ConfigError(f"{self.source}: formats: released needs an ImageNet-layout dataset (ImageNetFolder)")
        self.write_conf = bool(cfg.get("confidence", False))
        self.quality = bool(cfg.get("quality", True))
        self.seconds = {n: 0.0 for n, _ in self.members}

    # -- classes to explain -------------------------------------------------
    def present_classes(self, samples):
        if self.present == "labels":
            out = []
            for s in samples:
                lab = np.asarray(s["label"])
                out.append([int(lab)] if lab.ndim == 0 else [int(c) for c in np.flatnonzero(lab > 0.5)])
            return out
        x = paddle.to_tensor(np.stack([s["image"] for s in samples]))
        with paddle.no_grad():
            if self.present == "predict":  # multi-label heads
                p = np.mean([paddle.nn.functional.sigmoid(m(x)).numpy() for m in self.classifiers], 0)
                return [[int(c) for c in np.flatnonzero(row > 0.5)] for row in p]
            p = np.mean([paddle.nn.functional.softmax(m(x), -1).numpy() for m in self.classifiers], 0)
        return [[int(c) for c in np.argsort(-row, kind="stable")[:self.top_k]] for row in p]

    # -- explanation + consensus -------------------------------------------
    def explain_batch(self, samples):
        """-> per sample (present, member maps (M,P,H,W), label, confidence, consensus)."""
        present = self.present_classes(samples)
        shapes = {np.asarray(s["image"]).shape for s in samples}
        groups = [list(range(len(samples)))] if len(shapes) == 1 else [[i] for i in range(len(samples))]
        per_member = [[None] * len(samples) for _ in self.members]
        for g in groups:
            imgs = np.stack([samples[i]["image"] for i in g])
            for k, (name, fn) in enumerate(self.members):
                t0 = time.perf_counter()
                maps = fn(imgs, [present[i] for i in g])
                self.seconds[name] += time.perf_counter() - t0
                for j, i in enumerate(g):
                    per_member[k][i] = maps[j]
        out = []
        for i, s in enumerate(samples):
            maps = np.stack([per_member[k][i] for k in range(len(self.members))])
            img_hwc = np.transpose(s["image"], (1, 2, 0))
            lab, conf, cons = self.consensus(maps, present[i], img_hwc)
            out.append((present[i], maps, lab, conf, cons))
        return out

    def explain_one(self, sample):
        return self.explain_batch([sample])[0]

    # -- files ----------------------------------------------------------------
    def label_sets(self):
        """(name, folder, consensus, write confidence) of every PNG label set."""
        sets = [("ensemble", self.out, self.consensus, self.write_conf)] if "png" in self.formats else []
        return sets + [(n, os.path.join(self.out, "variants", n), con, wc) for n, (con, wc) in self.variants.items()]

    def _paths(self, idx):
        name = self.dataset.item_name(idx)
        p = {"png": []}
        for _, folder, _, wc in self.label_sets():
            p["png"].append((os.path.join(folder, "labels", name + ".png"),
                             os.path.join(folder, "confidence", name + ".png") if wc else None))
        if "released" in self.formats:
            rel = f"train/{self.dataset.wnid(idx)}/{os.path.basename(self.dataset.image_path(idx))}{SUFFIX}"
            p["released"] = os.path.join(self.out, "pssl", rel)
            p["released_rel"] = rel
        return p

    def _done(self, p):
        files = [f for pair in p["png"] for f in pair if f] + ([p["released"]] if "released" in p else [])
        return all(os.path.isfile(f) for f in files)

    def _write(self, idx, p, present, labels):
        """``labels``: per label set (label, confidence); the first is the main consensus."""
        with Image.open(self.dataset.image_path(idx)) as im:
            wh = im.size
        for (lp, cp), (lab, conf) in zip(p["png"], labels[len(labels) - len(p["png"]):]):
            if cp:
                _save_png(_resize_nearest(np.round(conf * 255).astype(np.uint8), wh), cp)
            _save_png(_resize_nearest(lab.astype(np.uint8), wh), lp)
        if "released" in p:
            lab = labels[0][0]
            m = np.zeros(lab.shape, np.uint8)
            m[np.isin(lab, present)] = 1
            m[lab == self.consensus.ignore_index] = 255
            write_released_label(_resize_nearest(m, wh), p["released"])

    def run(self, echo=print):
        os.makedirs(self.out, exist_ok=True)
        sets = self.label_sets()
        for name, _, con, _ in sets:
            if max(con.background, con.ignore_index) > 255:
                raise ConfigError(f"{self.source}: PNG label values must be <= 255 (consensus.background, "
                                  f"ignore_index of {name}); use formats: [released] for 1000 classes")
        nc = self.num_classes + 1
        groups = {}
        for k, (n, _) in enumerate(self.members):
            groups.setdefault(n.split("/")[1], []).append(k)
        names = [n for n, _ in self.members] + ["ensemble"] + list(self.variants)
        if len(self.classifiers) > 1:
            names += [f"{t} (all classifiers)" for t in groups]
        conf_mats = {n: np.zeros((nc, nc + 1), np.int64) for n in names}
        done = skipped = 0
        lists = {folder: [] for _, folder, _, _ in sets}
        rel_lines, todo = [], []
        t_start = time.perf_counter()
        for idx in range(len(self.dataset)):
            p = self._paths(idx)
            img = os.path.abspath(self.dataset.image_path(idx))
            for (_, folder, _, _), (lp, cp) in zip(sets, p["png"]):
                lists[folder].append(" ".join([img, os.path.abspath(lp)] + ([os.path.abspath(cp)] if cp else [])))
            if "released" in p:
                rel_lines.append(p["released_rel"])
            if self._done(p):
                skipped += 1
            else:
                todo.append((idx, p))
        bar = tqdm(total=len(todo), desc="pssl", dynamic_ncols=True)
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s:s + self.batch_size]
            samples = [self.dataset[idx] for idx, _ in chunk]
            results = self.explain_batch(samples)
            for (idx, p), sample, (present, maps, lab, conf, _) in zip(chunk, samples, results):
                img_hwc = np.transpose(sample["image"], (1, 2, 0))
                labels = [(lab, conf)] + [con(maps, present, img_hwc)[:2] for con, _ in self.variants.values()]
                self._write(idx, p, present, labels)
                done += 1
                if self.quality and "mask" in sample:
                    self._quality_update(conf_mats, groups, sample, present, maps, labels)
            bar.update(len(chunk))
        bar.close()
        seconds = time.perf_counter() - t_start
        for folder, lines in lists.items():
            write_text_atomic(os.path.join(folder, "train_list.txt"), lines)
        if "released" in self.formats:
            write_text_atomic(os.path.join(self.out, "pssl", LIST_FILE), rel_lines)
            write_text_atomic(os.path.join(self.out, "pssl", SYNSETS_FILE), list(self.dataset.synsets))
        summary = {"generated": done, "skipped": skipped, "total": len(self.dataset)}
        if done:
            summary["seconds"] = round(seconds, 2)
            summary["images_per_s"] = {n: (done / t if t > 0 else None) for n, t in self.seconds.items()}
        if done and self.quality and any(m.sum() for m in conf_mats.values()):
            summary["quality"] = {n: _quality(c, self.num_classes) for n, c in conf_mats.items()}
            write_text_atomic(os.path.join(self.out, "quality.json"), [json.dumps(summary, indent=1)])
        echo(json.dumps({k: v for k, v in summary.items() if k in ("generated", "skipped", "total", "seconds")}))
        return summary

    def _quality_update(self, conf_mats, groups, sample, present, maps, labels):
        true = np.asarray(sample["mask"])
        true = true[..., 0] if true.ndim == 3 else true
        true = np.where((true >= 0) & (true < self.num_classes), true, -1)
        norm = normalise(maps, self.consensus.norm)
        preds = [(n, self.consensus.label(m, present)) for (n, _), m in zip(self.members, norm)]
        preds += [(n, lab) for n, (lab, _) in zip(["ensemble"] + list(self.variants), labels)]
        img_hwc = np.transpose(sample["image"], (1, 2, 0))
        for t, ks in groups.items():
            name = f"{t} (all classifiers)"
            if name in conf_mats:
                preds.append((name, self.consensus(maps[ks], present, img_hwc)[0]))
        for n, pl in preds:
            self._confuse(conf_mats[n], true, pl)

    def _confuse(self, mat, true, pred):
        """Rows: true class (0..C-1); cols: pseudo label with background = C and
        ignored = C + 1."""
        c = self.num_classes
        ok = true >= 0
        p = pred[ok]
        p = np.where(p == self.consensus.ignore_index, c + 1, np.where(p == self.consensus.background, c, p))
        mat += np.bincount(true[ok] * (c + 2) + p, minlength=(c + 1) * (c + 2)).reshape(mat.shape)


def _quality(mat, c):
    """Over the pixels the pseudo label does not ignore: mIoU over the true classes
    (background counts as wrong) and pixel accuracy; ``labelled`` = the fraction of
    valid pixels not ignored."""
    m = mat[:, :c + 1]
    inter = np.diag(m)[:c].astype(float)
    union = m[:c].sum(1) + m[:, :c].sum(0) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {"mIoU": float(np.nanmean(iou)), "pixel_acc_covered": float(inter.sum() / max(m.sum(), 1)),
            "labelled": float(m.sum() / max(mat.sum(), 1)),
            "per_class_iou": [None if np.isnan(v) else round(float(v), 4) for v in iou]}
