"""Annotation and feature readers: ActivityNet-style JSON, PaddleVideo's
FootballAction/BasketballAction match labels, and per-video feature files.

Every reader returns ``{video_name: {"duration": seconds or None, "subset": str or None,
"events": [(start_s, end_s, label_id), ...]}}`` with times in seconds.

Formats read as they are:

- ActivityNet (``{"database": {vid: {"duration", "subset", "annotations": [{"segment":
  [s, e], "label": name}]}}}``) and PaddleVideo's BMN label file (the same entries at the
  top level, with ``duration_second``; a ``label`` may be a class id such as ``"3.0"``).
- FootballAction/BasketballAction (``{"fps": 5, "gts": [{"url": ".../x.mp4",
  "total_frames": n, "actions": [{"label_ids": [i], "label_names": [...], "start_id": s,
  "end_id": e}]}]}``): ``start_id``/``end_id`` are seconds; the video name is the URL's
  base name without extension.
"""
import json
import os

import numpy as np

from ..core.errors import DataError
from ..core.safeload import unpickle


def _load_json(path):
    if not os.path.isfile(path):
        raise DataError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read annotation file {path}: {err}") from None


def _label_id(label, class_names, where):
    if isinstance(label, (int, float)) or (isinstance(label, str) and
                                           label.replace(".", "", 1).isdigit()):
        lab = int(float(label))
    elif class_names and label in class_names:
        lab = class_names.index(label)
    else:
        raise DataError(f"{where}: label {label!r} is neither a class id nor one of "
                        f"{class_names}")
    if class_names and not 0 <= lab < len(class_names):
        raise DataError(f"{where}: label id {lab} is outside 0..{len(class_names) - 1}")
    return lab


def read_activitynet(path, class_names=None):
    data = _load_json(path)
    db = data.get("database", data) if isinstance(data, dict) else None
    if not isinstance(db, dict):
        raise DataError(f"{path}: expected a mapping of videos (ActivityNet format)")
    out = {}
    for vid, item in db.items():
        if not isinstance(item, dict) or "annotations" not in item:
            raise DataError(f"{path}: video {vid!r} has no 'annotations' list")
        dur = item.get("duration", item.get("duration_second"))
        events = []
        for k, ann in enumerate(item["annotations"]):
            where = f"{path}: {vid} annotation {k}"
            try:
                s, e = (float(v) for v in ann["segment"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: needs 'segment': [start, end]") from None
            if e < s:
                raise DataError(f"{where}: segment end {e} is before its start {s}")
            lab = _label_id(ann.get("label", 0), class_names, where) if "label" in ann else 0
            events.append((s, e, lab))
        out[str(vid)] = {"duration": float(dur) if dur is not None else None,
                         "subset": item.get("subset"), "events": events}
    return out


def read_action_labels(path, class_names=None):
    """FootballAction/BasketballAction ``label_cls*.json``."""
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("gts"), list):
        raise DataError(f"{path}: expected {{'fps': ..., 'gts': [...]}} (FootballAction format)")
    out = {}
    for i, gt in enumerate(data["gts"]):
        where = f"{path}: gts[{i}]"
        if "url" not in gt or "actions" not in gt:
            raise DataError(f"{where}: needs 'url' and 'actions'")
        name = os.path.splitext(os.path.basename(gt["url"]))[0]
        events = []
        for k, act in enumerate(gt["actions"]):
            try:
                s, e = float(act["start_id"]), float(act["end_id"])
                ids = act["label_ids"]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}.actions[{k}]: needs start_id, end_id and "
                                f"label_ids") from None
            if e < s:
                raise DataError(f"{where}.actions[{k}]: end_id {e} is before start_id {s}")
            for lab in ids:
                events.append((s, e, _label_id(lab, class_names, f"{where}.actions[{k}]")))
        total = gt.get("total_frames")
        out[name] = {"duration": float(total) if total is not None else None,
                     "subset": gt.get("mode"), "events": events}
    return out


def read_annotations(path, fmt="auto", class_names=None):
    """``fmt``: ``activitynet``, ``action`` (FootballAction/BasketballAction) or ``auto``."""
    if fmt == "auto":
        data = _load_json(path)
        fmt = "action" if isinstance(data, dict) and "gts" in data else "activitynet"
    if fmt == "activitynet":
        return read_activitynet(path, class_names)
    if fmt == "action":
        return read_action_labels(path, class_names)
    raise DataError(f"annotation format must be activitynet, action or auto, got {fmt!r}")


def check_label_ids(videos, num_classes, path):
    """One DataError line naming ``path``, the video and the id when an event's label id
    is not one of the classifier's ``num_classes`` classes (scored as ground truth it
    could never be hit, and would quietly lower the recall)."""
    for name, v in videos.items():
        for s, e, lab in v["events"]:
            if not 0 <= int(lab) < int(num_classes):
                raise DataError(f"{path}: video {name} event {s:g}-{e:g} s: label id {lab} is "
                                f"outside the classifier's classes 0..{int(num_classes) - 1}")
    return videos


def read_features(path, key="image_feature"):
    """A ``(L, C)`` float32 feature sequence from ``.npy`` or a PaddleVideo ``.pkl``
    (a dict holding ``key``), the pickle read by the restricted unpickler of
    ``ppzoo.core.safeload``: arrays, numbers, strings and containers only, never code."""
    if not os.path.isfile(path):
        raise DataError(f"feature file not found: {path}")
    try:
        if path.endswith(".pkl"):
            arr = unpickle(path, DataError, "feature file")
            if isinstance(arr, dict):
                if key not in arr:
                    raise DataError(f"{path}: no {key!r} in the feature dict ({sorted(arr)})")
                arr = arr[key]
        else:
            arr = np.load(path)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001  (numpy/pickle raise many kinds)
        raise DataError(f"cannot read feature file {path}: {err}") from None
    arr = np.asarray(arr, np.float32)
    if arr.ndim != 2 or not len(arr):
        raise DataError(f"{path}: features must be a non-empty (length, dim) array, got "
                        f"shape {list(arr.shape)}")
    return arr


def find_feature_file(feature_dir, name):
    for ext in (".npy", ".pkl"):
        p = os.path.join(feature_dir, name + ext)
        if os.path.isfile(p):
            return p
    raise DataError(f"no feature file {name}.npy or {name}.pkl in {feature_dir}")
