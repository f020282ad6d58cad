"""The zoo's weights table: names -> URL, hash, the model they fit, where they come from.

The table ships in the package (``ppzoo/hub/weights.yml``).  ``PPZOO_WEIGHTS_TABLE``
(or a ``table=`` argument) points at another file, so tests and private zoos can use
their own names without touching the package.
"""
import difflib
import os
import re

from ..core.errors import ConfigError, WeightsError

DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.yml")
REQUIRED = ("url", "model", "source", "licence")
#: architecture, dataset, metrics (the publisher's own number and where it is given) and
#: config (the shipped config that uses the entry) make the README's model zoo table
OPTIONAL = ("sha256", "md5", "hash_note", "architecture", "dataset", "metrics", "notes", "config")
_HEX = {"sha256": 64, "md5": 32}


def table_path(table=None):
    """The table file in use: the argument, else $PPZOO_WEIGHTS_TABLE, else the shipped one."""
    return table or os.environ.get("PPZOO_WEIGHTS_TABLE") or DEFAULT_TABLE


def check_entry(name, entry, path):
    """Raise ConfigError naming the table file and entry for anything malformed."""
    where = f"{path}: entry {name!r}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(entry).__name__}")
    for key in entry:
        if key not in REQUIRED + OPTIONAL:
            close = difflib.get_close_matches(key, REQUIRED + OPTIONAL, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for key in REQUIRED:
        if not entry.get(key):
            raise ConfigError(f"{where}: missing {key!r}")
    if not re.match(r"^(https?|file)://", str(entry["url"])):
        raise ConfigError(f"{where}: url must be http(s):// or file://, got {entry['url']!r}")
    algos = [a for a in _HEX if a in entry]
    if len(algos) > 1 or (not algos and not entry.get("hash_note")):
        raise ConfigError(f"{where}: give exactly one of sha256 or md5 (or, where the publisher "
                          f"gives no hash, a hash_note saying how the file is verified), "
                          f"got {algos or 'none'}")
    if not algos:
        algo = None
    else:
        algo = algos[0]
        digest = str(entry[algo]).lower()
        if not re.fullmatch(f"[0-9a-f]{{{_HEX[algo]}}}", digest):
            raise ConfigError(f"{where}: {algo} must be {_HEX[algo]} hex digits, got {entry[algo]!r}")
    if algo == "md5" and not entry.get("hash_note"):
        # md5 is only accepted where the publisher gives nothing stronger; say so.
        raise ConfigError(f"{where}: an md5 entry needs a hash_note saying why not sha256")
    if not isinstance(entry["model"], dict) or "type" not in entry["model"]:
        raise ConfigError(f"{where}: model must be a mapping with a 'type' (the config it fits)")


def load_table(table=None):
    """Read and check the table; returns ``{name: entry}`` (entries checked)."""
    from ..core.config import yaml_load
    import yaml

    path = table_path(table)
    if not os.path.isfile(path):
        raise ConfigError(f"weights table not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must map names to entries")
    for name, entry in data.items():
        check_entry(name, entry, path)
    return data


def lookup(name, table=None):
    """The entry for ``name``; an unknown name is a WeightsError with the closest names."""
    data = load_table(table)
    if name in data:
        return dict(data[name])
    close = difflib.get_close_matches(str(name), list(data), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise WeightsError(f"pretrained {name!r} is not a file, a URL or a name in the weights "
                       f"table {table_path(table)}{hint}")
