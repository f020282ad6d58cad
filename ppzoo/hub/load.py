"""Resolve ``pretrained:`` to a local file, read it, and load what fits into a model.

Fine-tuning is the common case, so a parameter whose shape differs (a new head) is
skipped and reported, not an error; ``strict=True`` turns every difference into one.
A file whose names fit nothing in the model is always an error: loading nothing is
never what a config meant.
"""
import difflib
import fnmatch
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..core import safeload
from ..core.errors import ConfigError, WeightsError
from .archive import ARCHIVE_SUFFIXES, WEIGHT_SUFFIXES, is_archive, weights_in_archive
from .download import download, split_url_hash
from .table import lookup

SPEC_KEYS = ("path", "url", "name", "sha256", "md5", "prefix", "strip_prefix", "exclude", "strict",
             "allow_unhashed")
ALLOW_UNHASHED_ENV = "PPZOO_ALLOW_UNHASHED_URLS"
_URL = re.compile(r"^(https?|file)://", re.I)
_SHOW = 10


@dataclass
class LoadReport:
    """What a load did; ``str()`` gives the lines that are logged."""
    source: str
    file: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)       # model keys the file did not fill
    unexpected: list = field(default_factory=list)    # file keys the model does not have
    skipped: list = field(default_factory=list)       # (key, file shape, model shape)
    excluded: list = field(default_factory=list)      # file keys dropped by `exclude`
    mapping: str = ""                                 # how file names became model names

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.skipped)

    def summary(self):
        return (f"pretrained {self.source}: loaded {len(self.loaded)} tensors, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.skipped)} skipped for shape, {len(self.excluded)} excluded"
                + (f" ({self.mapping})" if self.mapping else ""))

    def details(self):
        lines = []

        def show(title, items):
            if items:
                more = f" ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
                lines.append(f"  {title}: {', '.join(map(str, items[:_SHOW]))}{more}")
        show("missing (kept as initialised)", self.missing)
        show("unexpected (ignored)", self.unexpected)
        show("skipped for shape (file -> model)",
             [f"{k} {list(a)} -> {list(b)}" for k, a, b in self.skipped])
        show("excluded", self.excluded)
        return lines

    def __str__(self):
        return "\n".join([self.summary()] + self.details())


def parse_spec(source, where="pretrained"):
    """Normalise a string or ``{path|url|name: ..., prefix, strip_prefix, exclude, ...}``."""
    if isinstance(source, (str, os.PathLike)):
        source = {"path": os.fspath(source)}
    if not isinstance(source, dict):
        raise ConfigError(f"{where} must be a path, URL, zoo name or a mapping, "
                          f"got {type(source).__name__}")
    for k in source:
        if k not in SPEC_KEYS:
            close = difflib.get_close_matches(str(k), SPEC_KEYS, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {where}.{k}{hint} (known: {', '.join(SPEC_KEYS)})")
    given = [k for k in ("path", "url", "name") if source.get(k)]
    if len(given) != 1:
        raise ConfigError(f"{where} needs exactly one of path, url or name, got {given or 'none'}")
    spec = dict(source)
    spec["path"] = os.fspath(spec.pop(given[0]))
    exclude = spec.get("exclude") or []
    spec["exclude"] = [exclude] if isinstance(exclude, str) else list(exclude)
    return spec


def resolve(source, table=None, logger=None):
    """Return ``(local weights file, table entry or None)`` for a path, URL or zoo name;
    an archive (``.tar.gz``, ``.zip`` ...) resolves to the weights file inside it."""
    path, entry = _resolve(parse_spec(source), table, logger)
    if is_archive(path):
        path = weights_in_archive(path)
    return path, entry


def _resolve(spec, table, logger):
    src = spec["path"]
    if _URL.match(src):
        _check_hash_given(src, spec)
        path = download(src, sha256=spec.get("sha256"), md5=spec.get("md5"), logger=logger)
        return path, None
    expanded = os.path.expanduser(src)
    if os.path.isdir(expanded):
        for name in ("model.safetensors", "model.pdparams"):   # safetensors hold no code
            candidate = os.path.join(expanded, name)
            if os.path.isfile(candidate):
                return candidate, None
        raise WeightsError(f"pretrained folder {src} holds no model.pdparams (or model.safetensors)")
    if os.path.isfile(expanded):
        return expanded, None
    if os.sep in src or "/" in src or src.lower().endswith(WEIGHT_SUFFIXES + ARCHIVE_SUFFIXES):
        raise WeightsError(f"pretrained file not found: {src}")
    entry = lookup(src, table)
    path = download(entry["url"], sha256=entry.get("sha256"), md5=entry.get("md5"), logger=logger)
    return path, entry


def unhashed_allowed(spec=None):
    """True where the user opted out of hashes for URLs: ``allow_unhashed: true`` in the
    mapping form, or ``$PPZOO_ALLOW_UNHASHED_URLS`` set to 1/true/yes."""
    if spec and spec.get("allow_unhashed") is not None:
        if not isinstance(spec["allow_unhashed"], bool):
            raise ConfigError(f"pretrained.allow_unhashed must be true or false, "
                              f"got {spec['allow_unhashed']!r}")
        return spec["allow_unhashed"]
    return os.environ.get(ALLOW_UNHASHED_ENV, "").strip().lower() in ("1", "true", "yes")


def _check_hash_given(src, spec):
    """An http(s) URL outside the weights table names the file it expects by its hash.

    Without one, whoever controls the server (or the network path to it) chooses the file;
    the hash makes the download that file or nothing.  ``file://`` is local, like a path.
    """
    if not re.match(r"^https?://", src, re.I):
        return
    _, frag = split_url_hash(src)
    if frag or spec.get("sha256") or spec.get("md5") or unhashed_allowed(spec):
        return
    raise WeightsError(f"pretrained {src}: a URL outside the weights table needs its hash: "
                       f"add #sha256=<hex> (or sha256: in the mapping form), or accept any file "
                       f"with allow_unhashed: true or {ALLOW_UNHASHED_ENV}=1")


def read_state_dict(path):
    """``{name: numpy array}`` from a ``.pdparams`` (or ``.safetensors``) file.

    Read with the restricted unpickler (``ppzoo.core.safeload``): a file that would run
    code while it is read is refused, naming the global it asked for.
    """
    obj = safeload.load(path, return_numpy=True)
    # a checkpoint that wraps its state dict, e.g. {"state_dict": {...}}
    if isinstance(obj, dict):
        nested = [k for k, v in obj.items() if isinstance(v, dict) and k != "StructuredToParameterName@@"]
        if len(nested) == 1 and not any(isinstance(v, np.ndarray) for v in obj.values()):
            obj = obj[nested[0]]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} is not a Paddle state dict (it holds a {type(obj).__name__})")
    state = {k: v for k, v in obj.items() if k != "StructuredToParameterName@@"}
    bad = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if bad or not state:
        what = f"entry {bad[0]!r} is a {type(state[bad[0]]).__name__}" if bad else "it is empty"
        raise WeightsError(f"{path} is not a Paddle state dict ({what}, not an array)")
    return state


def _rename(keys, strip, add):
    out = {}
    for k in keys:
        if strip:
            if not k.startswith(strip):
                continue
            name = k[len(strip):]
        else:
            name = k
        out[k] = add + name
    return out


def _auto_mapping(file_shapes, own_shapes):
    """Without explicit prefixes, find the (strip, add) under which most tensors fit
    (same name and shape; then most names; ties keep the names as they are).

    Covers the usual wrappers: ``net.`` around a paddle.vision model, ``model.`` or
    ``backbone.`` in a checkpoint saved from a larger model.
    """
    firsts = lambda keys: sorted({k.split(".", 1)[0] + "." for k in keys if "." in k})  # noqa: E731
    candidates = [("", "")]
    candidates += [(s, "") for s in firsts(file_shapes)]
    candidates += [("", a) for a in firsts(own_shapes)]
    candidates += [(s, a) for s in firsts(file_shapes) for a in firsts(own_shapes) if s != a]
    best, best_score = ("", ""), (-1, -1)
    for strip, add in candidates:
        renamed = _rename(file_shapes, strip, add)
        score = (sum(1 for k, v in renamed.items() if own_shapes.get(v) == file_shapes[k]),
                 sum(1 for v in renamed.values() if v in own_shapes))
        if score > best_score:
            best, best_score = (strip, add), score
    return best


def _reference_names(model, state):
    """``state`` under the model's own names where it knows its reference implementation's
    layer names (``pretrained_key``); returns ``(state, how many keys were renamed)``."""
    rename_key = getattr(model, "pretrained_key", None)
    if not callable(rename_key):
        return state, 0
    mapped = {rename_key(k): k for k in state}
    return {new: state[old] for new, old in mapped.items()}, sum(1 for n, o in mapped.items() if n != o)


def load_state_dict(model, state, source="<state dict>", file="", prefix=None, strip_prefix=None,
                    exclude=(), strict=False):
    """Load the fitting part of ``state`` into ``model``; returns a LoadReport.

    Nothing is loaded when the result is an error (strict differences, nothing fits).
    """
    own = model.state_dict()
    own_shapes = {k: tuple(v.shape) for k, v in own.items()}
    state, renamed = _reference_names(model, state)
    if prefix is None and strip_prefix is None:
        strip, add = _auto_mapping({k: tuple(v.shape) for k, v in state.items()}, own_shapes)
    else:
        strip, add = strip_prefix or "", prefix or ""
    names = _rename(list(state), strip, add)
    report = LoadReport(source=source, file=file)
    if strip or add:
        report.mapping = " ".join(p for p in (f"stripped {strip!r}" if strip else "",
                                              f"added {add!r}" if add else "") if p)
    if renamed:
        report.mapping = "; ".join(p for p in (report.mapping, f"{renamed} reference layer names "
                                              f"mapped by {type(model).__name__}") if p)
    dropped = [k for k in state if k not in names]
    if dropped:
        report.mapping += f"; {len(dropped)} file keys outside {strip!r} ignored"
    to_load = {}
    for k, name in names.items():
        if any(fnmatch.fnmatchcase(k, p) or fnmatch.fnmatchcase(name, p) for p in exclude):
            report.excluded.append(k)
        elif name not in own_shapes:
            report.unexpected.append(k)
        elif tuple(state[k].shape) != own_shapes[name]:
            report.skipped.append((name, tuple(state[k].shape), own_shapes[name]))
        else:
            to_load[name] = state[k]
    report.loaded = sorted(to_load)
    report.missing = [k for k in own_shapes if k not in to_load]
    if not to_load:
        raise WeightsError(
            f"pretrained {source}: no tensor of {file or 'the file'} fits the model "
            f"(file names like {', '.join(list(state)[:3])}; model names like "
            f"{', '.join(list(own_shapes)[:3])}); set prefix/strip_prefix or check the file")
    if strict and not report.ok:
        raise WeightsError(f"pretrained {source} (strict): " + "; ".join(report.details()).strip())
    for name, value in to_load.items():
        target = own[name]
        want = str(target.dtype).replace("paddle.", "")
        if want in ("float32", "float16", "float64", "int64", "int32") and str(value.dtype) != want:
            to_load[name] = value.astype(want)
    with warnings.catch_warnings():
        # Paddle warns once per missing key; the report already lists them
        warnings.filterwarnings("ignore", message="Skip loading for")
        model.set_state_dict(to_load)
    return report


def map_to_model(model, state):
    """Rename a published file's tensors to ``model``'s names, where the model knows the
    publisher's naming: a model with ``map_published_state(state) -> state`` (the video and
    skeleton recognizers read PaddleVideo's names and its 1x1-conv heads) gets its own
    names; any other model takes the names as they are.  Returns ``(state, n_renamed)``.

    ``pretrained:`` and the tools' ``--weights`` both go through here, so a file that loads
    as ``pretrained:`` loads as ``--weights`` too."""
    fn = getattr(model, "map_published_state", None)
    if fn is None:
        return state, 0
    mapped = fn(state)
    renamed = len(set(mapped) - set(state))
    return mapped, renamed


def align_to_model(model, state):
    """``state`` under the names ``pretrained:`` would give it without explicit prefixes: the
    model's reference layer names (``pretrained_key``), then the wrapper prefix under which
    most tensors fit (a PaddleSeg file without ppzoo's ``net.``).  Keys outside that prefix
    keep their names, so a strict check still reports them as unexpected."""
    state, _ = _reference_names(model, state)
    own_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    strip, add = _auto_mapping({k: tuple(v.shape) for k, v in state.items()}, own_shapes)
    if not (strip or add):
        return state
    renamed = _rename(list(state), strip, add)
    return {renamed.get(k, k): v for k, v in state.items()}


def resolve_weights_source(source, table=None, logger=None):
    """The local file of a tool's ``--weights`` that is not a local file or folder: a URL,
    a zoo name of the weights table (downloaded and checked as for ``pretrained:``), or an
    archive (the weights file inside it)."""
    src = os.fspath(source)
    if os.path.isfile(os.path.expanduser(src)):
        path = os.path.expanduser(src)
        return weights_in_archive(path) if is_archive(path) else path
    if not _URL.match(src) and (os.sep in src or "/" in src
                                or src.lower().endswith(WEIGHT_SUFFIXES + ARCHIVE_SUFFIXES)):
        raise WeightsError(f"weights file not found: {src}")
    try:
        path, _ = resolve(src, table=table, logger=logger)
    except WeightsError as err:
        msg = str(err)
        raise WeightsError("weights " + msg[len("pretrained "):] if msg.startswith("pretrained ")
                           else msg) from None
    return path


def load_pretrained(model, source, logger=None, strict=False, table=None):
    """Load ``source`` (path, folder, URL, zoo name or mapping) into ``model``.

    Returns a LoadReport and logs it.  Raises WeightsError for a file that is missing,
    corrupt, not a state dict or fits nothing; ConfigError for a malformed mapping.
    """
    spec = parse_spec(source)
    path, entry = resolve(spec, table=table, logger=logger)
    state, renamed = map_to_model(model, read_state_dict(path))
    label = spec["path"]
    # a method's head (``whole_model_weights``: BMN, the event classifier) is meant to be
    # loaded whole: a zoo entry published for it loads strictly, a partial load warns
    whole = bool(getattr(model, "whole_model_weights", False))
    if whole and entry is not None and entry["model"].get("type") == type(model).__name__:
        strict = True
    report = load_state_dict(model, state, source=label, file=path, prefix=spec.get("prefix"),
                             strip_prefix=spec.get("strip_prefix"), exclude=spec["exclude"],
                             strict=bool(spec.get("strict", strict)))
    if renamed:
        report.mapping = ", ".join(p for p in (f"{renamed} publisher names mapped", report.mapping) if p)
    if logger is not None:
        if entry is not None and entry["model"].get("type") != type(model).__name__:
            logger.warning(f"pretrained {label} was published for {entry['model']}, "
                           f"the model is {type(model).__name__}")
        log = logger.warning if whole and not report.ok else logger.info
        log(report.summary() + (f"; {type(model).__name__} is meant to load whole: the "
                                f"missing tensors keep their initial values"
                                if whole and not report.ok else ""))
        for line in report.details():
            log(line)
    return report
