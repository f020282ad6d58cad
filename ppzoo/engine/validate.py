"""Types and ranges of the engine's own config keys, checked before anything is built.

Every wrong value gets one line naming the key and the value; all of them are reported
together in one ConfigError.  Components' own arguments are checked by the registry
(against their annotations and defaults) when they are built.
"""
import numbers
import warnings

from ..core.errors import ConfigError


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) or (
        isinstance(v, float) and v.is_integer())


def _is_num(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _int(lo):
    def check(v):
        if not _is_int(v) or v < lo:
            return "an integer" + (" >= 0" if lo == 0 else " > 0" if lo == 1 else f" >= {lo}")
    return check


def _num(lo=None, strict=False):
    def check(v):
        if not _is_num(v) or (lo is not None and (v <= lo if strict else v < lo)):
            return "a number" + ("" if lo is None else f" {'>' if strict else '>='} {lo}")
    return check


def _bool(v):
    if not isinstance(v, bool):
        return "true or false"


def _str(v):
    if not isinstance(v, str) or not v:
        return "a non-empty string"


def _choice(*options):
    def check(v):
        if v not in options:
            return "one of " + ", ".join(repr(o) for o in options)
    return check


def _optional(check):
    def inner(v):
        if v is None or v is False:
            return None
        return check(v)
    return inner


def _list_of_str(v):
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
        return "a non-empty list of names"


def _mapping(v):
    if not isinstance(v, dict):
        return "a mapping"


def _device(v):
    """``train.device``: cpu, gpu or gpu:N (where it runs; see ppzoo/engine/device.py)."""
    import re
    if not isinstance(v, str) or not re.match(r"^(cpu|gpu(:\d+)?)$", v):
        return "cpu, gpu or gpu:N"


def _section(v):
    if not isinstance(v, dict) or "type" not in v:
        return "a mapping with a 'type'"


def _list_of_sections(v):
    if not isinstance(v, list) or not all(isinstance(x, dict) and "type" in x for x in v):
        return "a list of mappings with a 'type'"


def _bad_samples(v):
    """``train.bad_samples``: ``{skip: true/false, max_fraction: 0..1}``."""
    if not isinstance(v, dict):
        return "a mapping {skip: true/false, max_fraction: a number in [0, 1]}"
    unknown = sorted(set(v) - {"skip", "max_fraction"})
    if unknown:
        return f"only the keys skip and max_fraction (not {', '.join(map(str, unknown))})"
    if "skip" in v and not isinstance(v["skip"], bool):
        return "skip: true or false"
    f = v.get("max_fraction", 0.01)
    if not _is_num(f) or not 0 <= f <= 1:
        return "max_fraction: a number in [0, 1]"


TOP = {"seed": _int(0), "name": _str, "output_dir": _str, "model": _section,
       "loss": _optional(_section), "train_dataset": _optional(_section),
       "val_dataset": _optional(_section), "test_dataset": _optional(_section),
       "metrics": _optional(_list_of_sections), "optimizer": _section,
       "lr_scheduler": _optional(_mapping), "train": _optional(_mapping),
       "eval": _optional(_mapping), "export": _optional(_mapping),
       "hooks": _optional(_list_of_sections), "trainer": _optional(_mapping)}
TRAIN = {"epochs": _int(1), "iters": _int(1), "batch_size": _int(1), "num_workers": _int(0),
         "log_interval": _int(1), "eval_interval": _int(1), "checkpoint_interval": _int(1),
         "grad_clip": _optional(_num(0, strict=True)), "amp": _bool,
         "amp_level": _choice("O0", "O1", "O2"), "early_stop": _optional(_mapping),
         "visualdl": _bool, "input_keys": _list_of_str, "label_key": _str, "drop_last": _bool,
         "shuffle": _bool, "bad_samples": _optional(_bad_samples),
         "device": _optional(_device)}
EVAL = {"batch_size": _int(1), "best_metric": _optional(_str), "mode": _choice("max", "min"),
        "num_workers": _int(0)}
OPTIMIZER = {"learning_rate": _num(0)}
LR_SCHEDULER = {"warmup_iters": _int(0), "warmup_start_lr": _num(0)}
EARLY_STOP = {"patience": _int(1), "min_delta": _num(0)}


def _check(section, schema, prefix, problems):
    for key, check in schema.items():
        if isinstance(section, dict) and key in section:
            value = section[key]
            want = check(value)
            if want:
                problems.append(f"{prefix}{key}={value!r}: expected {want}")


def validate_config(cfg, source="<config>", training=True):
    """Raise one ConfigError listing every engine key whose value has a wrong type or range."""
    problems = []
    _check(cfg, TOP, "", problems)
    for name, schema in (("train", TRAIN), ("eval", EVAL), ("optimizer", OPTIMIZER),
                         ("lr_scheduler", LR_SCHEDULER)):
        sec = cfg.get(name)
        if isinstance(sec, dict):
            _check(sec, schema, f"{name}.", problems)
    es = (cfg.get("train") or {}).get("early_stop") if isinstance(cfg.get("train"), dict) else None
    if isinstance(es, dict):
        _check(es, EARLY_STOP, "train.early_stop.", problems)
    if problems:
        raise ConfigError(f"{source}: " + ("\n".join(problems) if len(problems) == 1 else
                                           "wrong values:\n  " + "\n  ".join(problems)))


def metric_names(metrics):
    """The result names the metrics report (what ``eval.best_metric`` may name), or None
    when a metric cannot tell before it has seen data."""
    import numpy as np
    names = []
    for m in metrics:
        if hasattr(m, "names"):
            names.extend(m.names() if callable(m.names) else m.names)
            continue
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                m.reset()
                names.extend(m.accumulate())
                m.reset()
        except Exception:  # noqa: BLE001  (a metric that needs data to name its results)
            return None
    return names


def check_best_metric(eval_cfg, metrics, source="<config>"):
    key = eval_cfg.get("best_metric")
    if not key or not metrics:
        return
    names = metric_names(metrics)
    if names is not None and key not in names:
        import difflib
        close = difflib.get_close_matches(str(key), [str(n) for n in names], n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{source}: eval.best_metric={key!r} is not among the metrics' "
                          f"results {sorted(map(str, names))}{hint}")
