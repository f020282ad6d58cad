"""Where a dataset's files are: the one rule every dataset uses for a path in a config.

A config names its data relative to the data root (``cifar10/train``, ``glue/RTE/dev.tsv``)
or by an absolute path, so the same config reads the same files from any working
directory and on any machine.  A relative path is looked up, first hit wins, in

1. ``$PPZOO_DATA`` (default ``<repo>/../shared/data``): the downloaded datasets;
2. the working directory: what an earlier pipeline step wrote there (``output/<run>/...``,
   ``data/<set>/features`` of ``tools/extract_features.py``), since the tools write
   relative output paths into the working directory;
3. the repository root: the same outputs when that step ran from the repository root,
   and the ``data/<set>/`` folders the docs' download commands create there.

A path found nowhere resolves to its place under the data root, so the error a dataset
raises names where the file was expected; :func:`describe_search` says where else it looked.
"""
import os

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def data_root():
    """``$PPZOO_DATA``, or ``<repo>/../shared/data`` when it is unset or empty (absolute)."""
    return os.path.abspath(os.environ.get("PPZOO_DATA") or
                           os.path.join(REPO_ROOT, "..", "shared", "data"))


def candidates(path):
    """The places a relative ``path`` is looked up, in order (one place for an absolute one)."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isabs(path):
        return [path]
    out = []
    for base in (data_root(), os.getcwd(), REPO_ROOT):
        p = os.path.normpath(os.path.join(base, path))
        if p not in out:
            out.append(p)
    return out


def resolve_data_path(path):
    """The absolute path a config's data path names (see the module doc); ``None`` stays ``None``.

    A path that exists nowhere resolves under the data root, for the dataset's own error."""
    if path is None:
        return None
    places = candidates(path)
    for p in places:
        if os.path.exists(p):
            return p
    return places[0]


def describe_search(path):
    """``<path> (looked in A, B, C)``: for an error about a data path found nowhere."""
    places = candidates(path)
    return str(path) if len(places) == 1 else f"{path} (looked in {', '.join(places)})"
