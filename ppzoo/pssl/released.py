"""The officially released PSSL ImageNet labels, read (and written) as PaddleSeg reads them.

Layout (PaddleSeg ``paddleseg/datasets/pssl.py``)::

    pssl_root/train.txt                          # lines: train/<wnid>/<image>.JPEG_eiseg.npz
    pssl_root/imagenet_lsvrc_2015_synsets.txt    # one wnid a line; line number = class id
    pssl_root/train/<wnid>/<image>.JPEG_eiseg.npz   # key arr_0: the object mask
    imagenet_root/train/<wnid>/<image>.JPEG

PaddleSeg's semantics: the image of a list line is the line cut after ``.JPEG`` under
``imagenet_root``; its class is the synsets line number of the file name's prefix before
``_``; label value 1 becomes that class and every other value background (1000); 1001 is
the ignore index of the loss (PaddleSeg never writes it into a label).
"""
import os
import zipfile

import numpy as np

from ..core.errors import DataError

BACKGROUND, IGNORE = 1000, 1001
LIST_FILE, SYNSETS_FILE = "train.txt", "imagenet_lsvrc_2015_synsets.txt"
SUFFIX = "_eiseg.npz"


def read_released_label(path, class_id, background=BACKGROUND):
    """A released ``.npz`` -> an (H,W) int64 label map: 1 -> ``class_id``, else background."""
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
    lab = np.full(m.shape, background, np.int64)
    lab[m == 1] = class_id
    return lab


def read_synsets(path):
    if not os.path.isfile(path):
        raise DataError(f"PSSL synsets file not found: {path} (one wnid a line)")
    with open(path, encoding="utf-8") as f:
        return {line.strip(): i for i, line in enumerate(f)}


def image_of(label_rel):
    """PaddleSeg's rule: the label path cut after ``.JPEG``."""
    return label_rel.split(".JPEG")[0] + ".JPEG"


def scan_released(pssl_root, imagenet_root, list_file=LIST_FILE, synsets_file=SYNSETS_FILE):
    """(image_path, label_path, class_id) for every line of the list, as PaddleSeg pairs them."""
    if not os.path.isdir(pssl_root):
        raise DataError(f"PSSL root not found: {pssl_root}")
    lst = list_file if os.path.isabs(list_file) else os.path.join(pssl_root, list_file)
    if not os.path.isfile(lst):
        raise DataError(f"PSSL list file not found: {lst} (lines: train/<wnid>/<image>.JPEG{SUFFIX})")
    syn = synsets_file if os.path.isabs(synsets_file) else os.path.join(pssl_root, synsets_file)
    ids = read_synsets(syn)
    out = []
    with open(lst, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            rel = line.strip()
            if not rel:
                continue
            img_rel = image_of(rel)
            wnid = os.path.basename(img_rel).split("_")[0]
            if wnid not in ids:
                raise DataError(f"{lst}:{n}: class {wnid!r} of {rel!r} is not in {syn}")
            out.append((os.path.join(imagenet_root, img_rel), os.path.join(pssl_root, rel), ids[wnid]))
    return out


def write_released_label(mask01, path):
    """Write one label (1 = object, anything else = background when read) atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path[:-len(".npz")] + ".tmp.npz"
    np.savez_compressed(tmp, np.asarray(mask01, np.uint8))
    os.replace(tmp, path)


def write_text_atomic(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(x + "\n" for x in lines))
    os.replace(tmp, path)
