"""Learning-to-rank data: SVMlight/LETOR files grouped by query, and the query dataset.

Two text forms are read, one document a line:

* LETOR / SVMlight with query ids: ``label qid:Q idx:value ... [# comment]``; a query is a
  run of consecutive lines with the same ``qid`` (a qid seen again after another one is an
  error: the file is not grouped).
* LightGBM's form: ``label idx:value ...`` without ``qid:``, and a ``<file>.query`` file
  holding the number of documents of each consecutive query, one count a line.

Feature indices are 1-based (``idx`` 1 is column 0); absent features are 0.  Labels are
integer relevance grades >= 0.  Every problem is a ``DataError`` naming the file and line.

What the reader takes from scikit-learn's ``load_svmlight_file(query_id=True)`` (the
reference for the format): a qid is an integer (``qid:01`` and ``qid:1`` are one query; a
qid that is not an integer is refused), and a feature index given twice on a line is
refused, as scikit-learn refuses it, instead of one value silently winning.  Indices in any
order are accepted (scikit-learn wants them ascending; the meaning is the same).
"""
import os

import numpy as np

from ..core.builder import DATASETS
from ..core.errors import DataError
from ..core.paths import resolve_data_path
from ..datasets.base import BaseDataset

NORMALIZATIONS = ("none", "query_minmax")


class Query:
    """One query: ``features`` [D, F] float32, ``labels`` [D] int64, ``qid`` (an int when
    read from a file: the ``qid:`` value, or the query's position in LightGBM's form) and the
    file lines its documents came from (1-based)."""
    __slots__ = ("qid", "features", "labels", "lines")

    def __init__(self, qid, features, labels, lines):
        self.qid, self.features, self.labels, self.lines = qid, features, labels, lines

    def __len__(self):
        return len(self.labels)


def _parse_line(text, path, lineno):
    body = text.split("#", 1)[0].split()
    if not body:
        return None
    try:
        label = float(body[0])
    except ValueError:
        raise DataError(f"{path}:{lineno}: the first field {body[0]!r} is not a relevance label") from None
    # isfinite first: int(nan) and int(inf) raise ValueError/OverflowError without a line
    if not np.isfinite(label) or label < 0 or label != int(label):
        raise DataError(f"{path}:{lineno}: relevance label {body[0]} is not an integer >= 0")
    qid, feats = None, {}
    for tok in body[1:]:
        key, sep, val = tok.partition(":")
        if not sep:
            raise DataError(f"{path}:{lineno}: field {tok!r} is not 'index:value'")
        if key == "qid":
            try:
                qid = int(val)  # as scikit-learn: qid:01 and qid:1 are the same query
            except ValueError:
                raise DataError(f"{path}:{lineno}: qid {val!r} is not an integer") from None
            continue
        try:
            idx, v = int(key), float(val)
        except ValueError:
            raise DataError(f"{path}:{lineno}: field {tok!r} is not 'index:value' with an "
                            f"integer index and a number") from None
        if idx < 1:
            raise DataError(f"{path}:{lineno}: feature index {idx} < 1 (indices are 1-based)")
        if not np.isfinite(v):
            raise DataError(f"{path}:{lineno}: feature {idx} has the non-finite value {val}")
        if idx in feats:
            raise DataError(f"{path}:{lineno}: feature index {idx} appears twice on the line "
                            f"({feats[idx]:g} and {v:g}); each index may be given once")
        feats[idx] = v
    return int(label), qid, feats


def _read_lines(path):
    """The lines of a text file, read one at a time; bytes that are not UTF-8 (a damaged or
    binary file) are a DataError naming the file and line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{lineno}: not UTF-8 text (byte {raw[err.start:err.start + 1]!r}"
                                f" at column {err.start + 1}); the file is damaged or not a "
                                f"ranking file") from None


def read_group_sizes(path):
    """The counts of a LightGBM ``.query`` file."""
    sizes = []
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        try:
            n = int(line.strip())
        except ValueError:
            raise DataError(f"{path}:{lineno}: {line.strip()!r} is not a document count") from None
        if n <= 0:
            raise DataError(f"{path}:{lineno}: a query needs at least one document, got {n}")
        sizes.append(n)
    return sizes


def read_ltr_file(path, query_file="auto", num_features=None):
    """Read ``path`` into a list of :class:`Query`.

    ``query_file``: ``"auto"`` uses ``<path>.query`` when the lines carry no ``qid:``;
    a path forces that group file; ``None`` requires ``qid:`` on every line.
    ``num_features``: the feature width (default: the largest index in the file); a
    larger index in the file is an error.
    """
    if not os.path.isfile(path):
        raise DataError(f"ranking data file not found: {path}")
    rows = []
    for lineno, line in enumerate(_read_lines(path), 1):
        parsed = _parse_line(line, path, lineno)
        if parsed is not None:
            rows.append((lineno,) + parsed)
    if not rows:
        raise DataError(f"{path} holds no documents")
    with_qid = [r[2] is not None for r in rows]
    if any(with_qid) and not all(with_qid):
        # the first line that differs from the file's first document names the mix
        bad = rows[with_qid.index(not with_qid[0])][0]
        this, first = ("has no", "has") if with_qid[0] else ("has", "has no")
        raise DataError(f"{path}:{bad}: this line {this} 'qid:' while line {rows[0][0]} {first} "
                        f"'qid:'; use it on every line or on none")
    max_idx = max((max(r[3]) for r in rows if r[3]), default=0)
    width = int(num_features) if num_features else max_idx
    if max_idx > width:
        raise DataError(f"{path}: feature index {max_idx} exceeds num_features={width}")
    X = np.zeros((len(rows), width), np.float32)
    y = np.zeros(len(rows), np.int64)
    for i, (_, label, _, feats) in enumerate(rows):
        y[i] = label
        for idx, v in feats.items():
            X[i, idx - 1] = v
    lines = np.array([r[0] for r in rows], np.int64)

    if all(with_qid):
        if query_file not in (None, "auto"):
            raise DataError(f"{path} has 'qid:' on its lines and a group file {query_file} was "
                            f"given as well; use one of them")
        bounds, seen = [0], set()
        for i in range(1, len(rows)):
            if rows[i][2] != rows[i - 1][2]:
                if rows[i][2] in seen or rows[i][2] == rows[bounds[-1]][2]:
                    raise DataError(f"{path}:{rows[i][0]}: qid {rows[i][2]} appears again after "
                                    f"other queries; the documents of a query must be consecutive")
                seen.add(rows[i - 1][2])
                bounds.append(i)
        bounds.append(len(rows))
        qids = [rows[b][2] for b in bounds[:-1]]
    else:
        qf = path + ".query" if query_file == "auto" else query_file
        if qf is None or not os.path.isfile(qf):
            raise DataError(f"{path} has no 'qid:' fields and its group file {qf} is missing "
                            f"(LightGBM form needs <file>.query with one count a line)")
        sizes = read_group_sizes(qf)
        if sum(sizes) != len(rows):
            raise DataError(f"{qf}: the counts sum to {sum(sizes)} but {path} has {len(rows)} documents")
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        qids = list(range(len(sizes)))
    return [Query(q, X[a:b], y[a:b], lines[a:b]) for q, a, b in zip(qids, bounds[:-1], bounds[1:])]


def _format_value(v, precision):
    """``precision=None``: the shortest text that reads back as the same float32 (numpy's
    shortest round-trip form of the float32 value); an int: that many significant digits."""
    if precision is None:
        return str(np.float32(v))
    return f"{float(v):.{int(precision)}g}"


def _check_writable(queries, with_qid):
    """Refuse what :func:`read_ltr_file` would refuse, before a byte is written: a query
    without documents, a label that is not an integer >= 0, a non-finite feature, a qid that
    is not an integer (qids are integers, as for scikit-learn) or one used twice."""
    seen = set()
    for n, q in enumerate(queries):
        feats, labels = np.asarray(q.features), np.asarray(q.labels)
        if len(labels) == 0 or feats.ndim != 2 or len(feats) != len(labels):
            raise DataError(f"write_ltr_file: query {n} (qid {q.qid!r}) has {len(labels)} labels and "
                            f"features of shape {list(feats.shape)}; a query needs documents, one "
                            f"feature row each")
        bad = ~np.isfinite(labels.astype(np.float64))
        bad |= ~bad & ((labels < 0) | (labels != np.round(labels)))
        if bad.any():
            d = int(np.flatnonzero(bad)[0])
            raise DataError(f"write_ltr_file: query {n} (qid {q.qid!r}) document {d}: label "
                            f"{labels[d]} is not an integer >= 0")
        if not np.isfinite(feats).all():
            d, j = (int(i) for i in np.argwhere(~np.isfinite(feats))[0])
            raise DataError(f"write_ltr_file: query {n} (qid {q.qid!r}) document {d}: feature "
                            f"{j + 1} is {feats[d, j]}; the format holds finite numbers only")
        if with_qid:
            try:
                qid = int(str(q.qid).strip()) if not isinstance(q.qid, (bool, float)) else None
            except ValueError:
                qid = None
            if qid is None or str(q.qid).strip() != str(q.qid):
                raise DataError(f"write_ltr_file: query {n}: qid {q.qid!r} is not an integer "
                                f"(the reader takes integer qids, as scikit-learn does)")
            if qid in seen:
                raise DataError(f"write_ltr_file: query {n}: qid {qid} is used by an earlier "
                                f"query; each query needs its own qid")
            seen.add(qid)


def write_ltr_file(path, queries, with_qid=True, precision=None):
    """Write queries in SVMlight form (``qid:`` lines, or LightGBM's form plus ``.query``),
    each file written to a temporary name and renamed.  By default every value is written
    in the shortest form that reads back as the same float32 (six digits did not: 1.5e-6
    off); ``precision=k`` writes k significant digits instead.  Queries the reader would
    refuse are a ``DataError`` and leave no file."""
    _check_writable(queries, with_qid)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for q in queries:
            qid = f" qid:{int(str(q.qid))}" if with_qid else ""
            for x, lab in zip(np.asarray(q.features), np.asarray(q.labels)):
                feats = " ".join(f"{j + 1}:{_format_value(v, precision)}" for j, v in enumerate(x) if v != 0)
                f.write(f"{int(lab)}{qid} {feats}\n")
    if not with_qid:
        qtmp = f"{path}.query.tmp-{os.getpid()}"
        with open(qtmp, "w", encoding="utf-8") as f:
            f.writelines(f"{len(q)}\n" for q in queries)
        os.replace(qtmp, path + ".query")
    os.replace(tmp, path)


def normalize_features(x, mode):
    """``query_minmax`` scales each feature to [0, 1] within a query (a constant feature
    becomes 0), the usual LETOR normalisation; ``none`` leaves the values."""
    if mode == "none":
        return x
    if mode == "query_minmax":
        lo, hi = x.min(0, keepdims=True), x.max(0, keepdims=True)
        rng = np.where(hi > lo, hi - lo, 1.0)
        return ((x - lo) / rng).astype(np.float32)
    raise DataError(f"normalize must be one of {NORMALIZATIONS}, got {mode!r}")


def pad_queries(samples, pad_label=-1):
    """Stack per-query samples into ``features`` [Q, D, F], ``mask`` [Q, D] and ``label``
    [Q, D] (padding label ``-1``), D the longest query of the batch."""
    d = max(len(s["features"]) for s in samples)
    f = samples[0]["features"].shape[1]
    feats = np.zeros((len(samples), d, f), np.float32)
    mask = np.zeros((len(samples), d), np.float32)
    labels = np.full((len(samples), d), pad_label, np.float32)
    for i, s in enumerate(samples):
        n = len(s["features"])
        feats[i, :n] = s["features"]
        mask[i, :n] = 1
        if "label" in s:
            labels[i, :n] = s["label"]
    out = {"features": feats, "mask": mask, "label": labels}
    if "index" in samples[0]:
        out["index"] = np.array([s["index"] for s in samples], np.int64)
    return out


@DATASETS.register()
class LTRDataset(BaseDataset):
    """A ranking file as a dataset of queries: item ``i`` is query ``i`` with ``features``
    [D, F], ``label`` [D] (grades as float32) and ``index``; ``collate_fn`` pads a batch of
    queries to its longest one, with ``mask`` marking real documents and label -1 on padding.

    Because an item is a whole query, the engine's resumable batch sampler draws batches
    of queries (a query is never split across batches).

    A relative ``path`` is resolved by ``ppzoo.core.paths`` (data root first).  ``subset`` keeps only those query indices (in that order).
    """

    def __init__(self, path, query_file="auto", num_features=None, normalize="none",
                 subset=None, transforms=None, seed=0):
        super().__init__(transforms, seed)
        self.path = resolve_data_path(path)
        if query_file not in (None, "auto"):
            query_file = resolve_data_path(query_file)
        if normalize not in NORMALIZATIONS:
            raise DataError(f"LTRDataset.normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.normalize = normalize
        self.queries = read_ltr_file(self.path, query_file, num_features)
        self.num_features = self.queries[0].features.shape[1]
        self.indices = list(range(len(self.queries))) if subset is None else [int(i) for i in subset]
        for i in self.indices:
            if not 0 <= i < len(self.queries):
                raise DataError(f"LTRDataset.subset: query index {i} out of range for "
                                f"{self.path} ({len(self.queries)} queries)")

    def __len__(self):
        return len(self.indices)

    def load(self, idx):
        q = self.queries[self.indices[idx]]
        return {"features": normalize_features(q.features, self.normalize),
                "mask": np.ones(len(q), np.float32),
                "label": q.labels.astype(np.float32), "index": self.indices[idx]}

    @staticmethod
    def collate_fn(samples):
        return pad_queries(samples)
