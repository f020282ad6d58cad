"""YAML configs with ``_base_`` inheritance and ``--opts key.path=value`` overrides.

A config is a plain nested dict.  ``_base_`` (a path or list of paths, relative to the
file that names it) is loaded first and the file is merged on top, recursively; a dict
holding ``_delete_: true`` replaces its base instead of merging into it.
"""
import copy
import difflib
import os
import re

import yaml

from .errors import ConfigError

#: the most values a config may stand for once its aliases are expanded
MAX_EXPANDED_VALUES = 100_000


class AliasRefused(yaml.YAMLError):
    """YAML aliases (``*name``) that expand a config past :data:`MAX_EXPANDED_VALUES`, or
    refer to themselves."""

    def __init__(self, anchor, mark, why):
        super().__init__()
        self.anchor, self.line, self.why = anchor, mark.line + 1, why

    def __str__(self):
        return (f"line {self.line}: the YAML alias *{self.anchor} is refused: {self.why}; write "
                f"the value out, or share it through {BASE_KEY}")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 needs ``1.0e-4``) and caps
    what aliases expand to: nine nested aliases of nine items each (under 400 bytes) stand
    for 9**9 values, which merging and checking a config would expand one by one.  The few
    aliases ``yaml.dump`` writes for a value used twice load as before."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            self._alias_marks.setdefault(id(node), (event.anchor, event.start_mark))
            return node
        return super().compose_node(parent, index)

    def compose_document(self):
        self._alias_marks = {}
        node = super().compose_document()
        if self._alias_marks:
            _check_expansion(node, self._alias_marks)
        return node


def _check_expansion(root, alias_marks):
    """Count the values ``root`` stands for with every alias expanded (each distinct node
    once, memoised, so the count itself stays linear) and refuse past the cap or a cycle."""
    sizes, open_nodes = {}, set()

    def refuse(node, why):
        anchor, mark = alias_marks.get(id(node), ("?", node.start_mark))
        raise AliasRefused(anchor, mark, why)

    def size(node):
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            refuse(node, "it refers to itself")
        open_nodes.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_VALUES:
                refuse(child if id(child) in alias_marks else node,
                       f"the config would expand to more than {MAX_EXPANDED_VALUES} values")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text_or_stream):
    return yaml.load(text_or_stream, Loader=_Loader)


BASE_KEY = "_base_"
DELETE_KEY = "_delete_"


def _read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml_load(f)
    except AliasRefused as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def merge_dicts(base, override):
    """Recursively merge ``override`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and v.get(DELETE_KEY):
            v = {kk: vv for kk, vv in v.items() if kk != DELETE_KEY}
            out[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _strip_delete(d):
    if isinstance(d, dict):
        return {k: _strip_delete(v) for k, v in d.items() if k != DELETE_KEY}
    if isinstance(d, list):
        return [_strip_delete(v) for v in d]
    return d


def load_config(path, opts=None, _chain=()):
    """Load ``path`` with its bases merged and ``opts`` (``["a.b=1", ...]``) applied."""
    path = os.path.abspath(path)
    if path in _chain:
        cycle = " -> ".join(list(_chain) + [path])
        raise ConfigError(f"_base_ inheritance loops: {cycle}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: {BASE_KEY} must be a path or a list of paths")
    merged = {}
    for b in bases:
        bpath = b if os.path.isabs(b) else os.path.join(os.path.dirname(path), b)
        if not os.path.isfile(bpath):
            raise ConfigError(f"{path}: {BASE_KEY} names {b!r}, which does not exist ({bpath})")
        merged = merge_dicts(merged, load_config(bpath, _chain=_chain + (path,)))
    merged = merge_dicts(merged, data)
    if not _chain:
        merged = _strip_delete(merged)
        if opts:
            apply_opts(merged, opts, source=path)
        merged.setdefault("_file_", path)
    return merged


def parse_value(text):
    """Parse an ``--opts`` value the way YAML would (``1e-3``, ``[1, 2]``, ``true``)."""
    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text


def apply_opts(cfg, opts, source="<opts>"):
    """Apply ``key.path=value`` overrides in place.

    Every key on the path but the last must exist, so a typo fails with the closest
    known key; a new last key (e.g. ``pretrained=...``) is allowed, and the trainer and
    the registries reject keys they do not know.
    """
    for opt in opts:
        if "=" not in opt:
            raise ConfigError(f"--opts {opt!r}: expected key.path=value")
        key, _, raw = opt.partition("=")
        parts = key.strip().split(".")
        node = cfg
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), source)
        last = parts[-1]
        value = parse_value(raw)
        if isinstance(node, list):
            idx = _list_index(node, last, key, source)
            node[idx] = value
        elif isinstance(node, dict):
            node[last] = value  # a new leaf is checked by whoever reads the section
        else:
            raise ConfigError(f"--opts {key}: {'.'.join(parts[:-1])} is a value, not a section")
    return cfg


def _list_index(node, part, key, source):
    try:
        idx = int(part)
        node[idx]
    except (ValueError, IndexError):
        raise ConfigError(f"--opts {key}: {part!r} is not an index of a list of {len(node)}") from None
    return idx


def _child(node, part, key, source):
    if isinstance(node, list):
        return node[_list_index(node, part, key, source)]
    if not isinstance(node, dict) or part not in node:
        _raise_unknown(part, node if isinstance(node, dict) else {}, key, source)
    return node[part]


def _raise_unknown(part, node, key, source):
    close = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"--opts {key}: {source} has no key {key!r}{hint}")


def check_keys(section, allowed, where, source, hidden=()):
    """Raise for keys of ``section`` not in ``allowed``, naming the closest known key
    (``hidden`` keys are allowed but not offered)."""
    shown = [a for a in allowed if a not in hidden]
    for k in section:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), shown, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown key {where + str(k)!r}{hint} "
                              f"(known: {', '.join(sorted(shown))})")


def save_config(cfg, path):
    data = {k: v for k, v in cfg.items() if k != "_file_"}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)
