"""Reader of the officially released PSSL ImageNet labels.

Layout: ``<root>/<wnid>/<image>.JPEG_eiseg.npz`` with key ``arr_0``, a binary object
mask; the class comes from the wnid's index in the sorted ImageNet class list;
background is class 1000 and ignore 1001 in the released configs.
"""
import os
import zipfile

import numpy as np

from ..core.errors import DataError

BACKGROUND, IGNORE = 1000, 1001


def read_released_label(path, class_id, background=BACKGROUND, ignore_index=IGNORE):
    """A released ``.npz`` -> an (H,W) int64 label map (object = ``class_id``)."""
    if not os.path.isfile(path):
        raise DataError(f"PSSL label file not found: {path}")
    try:
        with np.load(path) as z:
            if "arr_0" not in z:
                raise DataError(f"{path}: no key 'arr_0' (keys: {list(z.keys())})")
            m = np.asarray(z["arr_0"])
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read PSSL label {path}: {err}") from None
    if m.ndim != 2:
        raise DataError(f"{path}: arr_0 has shape {list(m.shape)}, expected a 2-D mask")
    vals = np.unique(m)
    if not np.isin(vals, [0, 1, 255]).all():
        raise DataError(f"{path}: arr_0 is not a binary mask (values {vals[:5].tolist()}...)")
    lab = np.where(m == 1, class_id, background).astype(np.int64)
    lab[m == 255] = ignore_index
    return lab


def scan_released(root, image_root=None, wnids=None):
    """List (image_path, label_path, class_id) for a released tree.

    ``wnids``: ordered class list (default: the sorted sub-folders of ``root``).
    """
    if not os.path.isdir(root):
        raise DataError(f"PSSL label folder not found: {root}")
    wnids = list(wnids) if wnids else sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    index = {w: i for i, w in enumerate(wnids)}
    out = []
    for w in sorted(index):
        d = os.path.join(root, w)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.endswith("_eiseg.npz"):
                img = f[:-len("_eiseg.npz")]
                img_path = os.path.join(image_root, w, img) if image_root else None
                out.append((img_path, os.path.join(d, f), index[w]))
    return out
