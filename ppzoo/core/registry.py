"""Registries map the `type:` names of YAML configs to classes and build them.

Every kind of component (models, datasets, transforms, losses, ...) has one
registry.  ``build`` is recursive: a dict value with a ``type`` key is built first,
looked up in the same registry and then in every other registry, so a config can
nest a backbone inside a model or a list of transforms inside a dataset.
"""
import difflib
import inspect

from .errors import ConfigError

_ALL_REGISTRIES = {}


class Registry:
    def __init__(self, name):
        if name in _ALL_REGISTRIES:
            raise ValueError(f"a registry named {name!r} already exists")
        self.name = name
        self._modules = {}
        _ALL_REGISTRIES[name] = self

    def __repr__(self):
        return f"Registry({self.name!r}, {len(self._modules)} entries)"

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def keys(self):
        return sorted(self._modules)

    def register(self, obj=None, *, name=None, force=False):
        """Register a class or function under its own name (or ``name``).

        Usable as ``@REG.register()``, ``@REG.register`` or ``REG.register(cls, name=...)``.
        """

        def _do(target):
            key = name or target.__name__
            if key in self._modules and not force and self._modules[key] is not target:
                raise KeyError(f"{key!r} is already registered in the {self.name} registry "
                               f"(by {self._modules[key].__module__}); pass force=True to replace it")
            self._modules[key] = target
            return target

        if obj is not None:
            return _do(obj)
        return _do

    def get(self, key):
        if key not in self._modules:
            raise ConfigError(self._unknown_message(key))
        return self._modules[key]

    def _unknown_message(self, key):
        close = difflib.get_close_matches(str(key), self._modules.keys(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(self.keys()[:30])
        return f"unknown type {key!r} in the {self.name} registry{hint} (known: {known})"

    def build(self, cfg, key_path=None, **default_args):
        """Build ``cfg`` (a dict with ``type``) into an object.

        ``key_path`` is the config key the dict came from; it is used in error messages.
        ``default_args`` fill parameters the config does not set.
        """
        return build_from_cfg(cfg, self, key_path=key_path or self.name, **default_args)


def all_registries():
    return dict(_ALL_REGISTRIES)


def _find_registry_for(type_name, preferred):
    if preferred is not None and type_name in preferred:
        return preferred
    hits = [r for r in _ALL_REGISTRIES.values() if type_name in r]
    if hits:
        return hits[0]
    return preferred


def _build_nested(value, registry, key_path):
    if isinstance(value, dict) and "type" in value:
        return build_from_cfg(value, _find_registry_for(value["type"], registry), key_path=key_path)
    if isinstance(value, list):
        return [_build_nested(v, registry, f"{key_path}[{i}]") for i, v in enumerate(value)]
    return value


def build_from_cfg(cfg, registry, key_path="", **default_args):
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        return cfg  # already an object
    if "type" not in cfg:
        raise ConfigError(f"config key {key_path!r} needs a 'type' naming an entry of the "
                          f"{registry.name} registry, got keys {sorted(cfg)}")
    cfg = dict(cfg)
    type_name = cfg.pop("type")
    try:
        target = registry.get(type_name)
    except ConfigError as err:
        raise ConfigError(f"{key_path}.type: {err}") from None
    lazy = set(getattr(target, "_lazy_keys", ()))
    kwargs = {}
    for k, v in cfg.items():
        kwargs[k] = v if k in lazy else _build_nested(v, registry, f"{key_path}.{k}")
    for k, v in default_args.items():
        kwargs.setdefault(k, v)
    check_arguments(target, kwargs, key_path, type_name)
    return target(**kwargs)


def check_arguments(target, kwargs, key_path, type_name, require=True):
    """Turn a misspelled (or, with ``require``, missing) argument into one clear config error.

    ``require=False`` checks a config section alone, before the builder adds what it passes
    itself (e.g. a trainer's ``num_classes``)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        accepts_any = True
    else:
        accepts_any = False
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not accepts_any:
        for k in kwargs:
            if k not in names:
                close = difflib.get_close_matches(k, names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{key_path}.{k}: {type_name} has no parameter {k!r}{hint} "
                                  f"(parameters: {', '.join(names)})")
    for k, v in kwargs.items():
        if k in params:
            want = _expected_kind(params[k])
            if want and not _fits(v, want):
                raise ConfigError(f"{key_path}.{k}={v!r}: {type_name} expects {_KIND_TEXT[want]}")
    if not require:
        return
    missing = [n for n, p in params.items()
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               and p.default is p.empty and n not in kwargs]
    if missing:
        raise ConfigError(f"{key_path}: {type_name} needs {', '.join(repr(m) for m in missing)} "
                          f"which the config does not set")


_KIND_TEXT = {"bool": "true or false", "int": "an integer", "number": "a number",
              "str": "a string"}
_ANNOTATION_KIND = {bool: "bool", int: "int", float: "number", str: "str",
                    "bool": "bool", "int": "int", "float": "number", "str": "str"}


def _expected_kind(param):
    """What a parameter takes, from its annotation (``int``, ``float``, ``bool``, ``str``,
    exactly) or else from a boolean or numeric default; None when it cannot be told."""
    ann = param.annotation
    if ann is not param.empty:
        try:
            return _ANNOTATION_KIND.get(ann)
        except TypeError:  # an unhashable annotation
            return None
    d = param.default
    if isinstance(d, bool):
        return "bool"
    if isinstance(d, (int, float)):
        return "number"  # an integer default may well take 0.5: only the kind is checked
    return None


def _fits(value, kind):
    if value is None or not isinstance(value, (str, bool, int, float)):
        return True  # None, built objects, lists and mappings are the component's to check
    if value == "auto" and kind in ("int", "number"):
        return True  # a builder fills it in (e.g. an LR schedule's T_max: the run's iterations)
    if kind == "bool":
        return isinstance(value, bool) or value in (0, 1)
    if kind == "int":
        return not isinstance(value, (str, bool)) and float(value).is_integer()
    if kind == "number":
        return not isinstance(value, str)
    return isinstance(value, str)
