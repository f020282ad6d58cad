"""``--check``: what a run of a config would need, found out before the run starts.

A run that fails at its data or weights after minutes of building wastes the time; this
validates the config as the trainer does, resolves every data path (``ppzoo.core.paths``)
and every weights source without downloading, builds the model (no ``pretrained`` init)
and, where nothing is missing, the datasets the tool reads.  It writes nothing: no run
folder, no hub cache, no dataset cache on disk.

Each need is classified:

- ``download``: a weights source the run would fetch (a zoo name or URL not in the hub
  cache; the size where the table gives one);
- ``step``: a path under ``output/`` that an earlier step of a pipeline writes (a
  classifier, pseudo labels, a pre-trained model, a teacher export);
- ``missing``: a data file or folder found nowhere (a dataset to download or prepare).

``download`` does not stop a run; ``step`` and ``missing`` do (:meth:`CheckReport.problems`).
"""
import os
import re
from dataclasses import dataclass, field

from ..core import paths
from ..core.builder import DATASETS, TRAINERS
from ..core.errors import ConfigError, DataError, PPZooError, WeightsError

#: the config keys of a dataset that name a file or folder (ppzoo.core.paths resolves them)
DATA_KEYS = ("root", "path", "file_path", "label_path", "data_prefix", "list_file", "annotations",
             "feature_dir", "pssl_root", "imagenet_root", "query_file")
#: keys whose value is a weights source (a path, URL, zoo name or ``{path|url|name: ...}``)
WEIGHTS_KEYS = ("pretrained", "backbone_pretrained")
DATASET_SECTIONS = ("train_dataset", "val_dataset", "test_dataset", "dataset")
_URL = re.compile(r"^(https?|file)://", re.I)
_STEP = re.compile(r"^(\./)?output/")


@dataclass
class Need:
    kind: str      # download | step | missing
    key: str       # where in the config
    value: str     # what the config says
    detail: str    # resolved path, URL and size, ...

    def __str__(self):
        return f"{self.kind}: {self.key} = {self.value} ({self.detail})"


@dataclass
class CheckReport:
    config: str
    tool: str
    needs: list = field(default_factory=list)
    data: list = field(default_factory=list)        # (key, resolved path)
    params: int = None
    model: str = ""
    datasets: dict = field(default_factory=dict)    # section -> number of samples
    weights: str = None                             # --weights file
    writes: str = None                              # the folder or file the tool would write
    writes_note: str = ""

    def of_kind(self, kind):
        return [n for n in self.needs if n.kind == kind]

    def problems(self):
        """What stops the run: an earlier step not run, data not there."""
        return self.of_kind("step") + self.of_kind("missing")

    def lines(self):
        out = [f"config: {self.config} ({self.tool})"]
        out += [f"data: {k} -> {p}" for k, p in self.data]
        out += [f"dataset: {k}: {n} samples" for k, n in self.datasets.items()]
        if self.model:
            out.append(f"model: {self.model}, {self.params:,} parameters")
        if self.weights:
            out.append(f"weights: {self.weights} (fits the model)")
        out += [f"would download: {n.key} = {n.value} ({n.detail})" for n in self.of_kind("download")]
        out += [f"needs an earlier step: {n.key} = {n.value} ({n.detail})" for n in self.of_kind("step")]
        out += [f"missing: {n.key} = {n.value} ({n.detail})" for n in self.of_kind("missing")]
        if self.writes:
            out.append(f"would write: {self.writes}" + (f" ({self.writes_note})" if self.writes_note else ""))
        return out


def _walk(node, path=""):
    """``(dotted key, key, value, parent)`` for every mapping entry under ``node``."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else str(k)
            yield p, k, v, node
            yield from _walk(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def _is_dataset(node):
    return isinstance(node, dict) and isinstance(node.get("type"), str) and node["type"] in DATASETS


def data_needs(cfg, sections=DATASET_SECTIONS):
    """``(found, needs)``: every data path of the datasets in ``sections``, resolved."""
    found, needs = [], []
    for section in sections:
        top = cfg.get(section)
        if not _is_dataset(top):
            continue
        for key, k, v, parent in [(section, None, top, None)] + list(_walk(top, section)):
            if not _is_dataset(v):
                continue
            for dk in DATA_KEYS:
                value = v.get(dk)
                if not isinstance(value, str) or not value:
                    continue
                where = f"{key}.{dk}"
                resolved = paths.resolve_data_path(value)
                if os.path.exists(resolved):
                    found.append((where, resolved))
                elif _STEP.match(value):
                    needs.append(Need("step", where, value, "written by an earlier step, found nowhere"))
                else:
                    needs.append(Need("missing", where, value,
                                      f"looked in {', '.join(paths.candidates(value))}"))
    return found, needs


def _size(entry):
    for k in ("size", "size_mb", "bytes"):
        if entry and entry.get(k):
            return f"{entry[k]} {'MB' if k == 'size_mb' else 'bytes' if k == 'bytes' else ''}".strip()
    return "size not in the table"


def weights_need(key, source, model=None):
    """A Need for one weights source, or None when it is a local file that exists.

    Nothing is downloaded: a zoo name is looked up in the table and its URL in the cache."""
    from ..hub.download import cache_path
    from ..hub.load import parse_spec
    from ..hub.table import lookup, table_path
    if key.endswith("backbone_pretrained") and source == "imagenet":
        from ..segmentation.models import imagenet_weights
        source = imagenet_weights(model) or source
    if isinstance(source, str) and (source.startswith("pkg://") or _is_text_model(model)):
        from ..nlp.pretrained import resolve_path
        if resolve_path(source) is None:  # a pkg:// or local folder; a WeightsError names what is missing
            return Need("download", key, source, "a PaddleNLP model, fetched by PaddleNLP, size unknown")
        return None
    spec = parse_spec(source, where=key)
    src = os.path.expanduser(spec["path"])
    if _URL.match(src):
        cached = os.path.isfile(cache_path(src, spec.get("sha256"), spec.get("md5")))
        return None if cached else Need("download", key, src, "URL, size unknown until fetched")
    if os.path.exists(src):
        return None
    if os.sep in src or "/" in src or os.path.splitext(src)[1]:
        if _STEP.match(src):
            return Need("step", key, src, "written by an earlier step, not found")
        raise WeightsError(f"{key}: weights file not found: {src}")
    entry = lookup(src)
    if os.path.isfile(cache_path(entry["url"], entry.get("sha256"), entry.get("md5"))):
        return None
    return Need("download", key, src, f"{entry['url']}, {_size(entry)}; table {table_path()}")


def _is_text_model(model):
    """Whether ``model`` (a config mapping) is a transformer whose ``pretrained`` PaddleNLP reads."""
    from ..core.builder import MODELS
    kind = (model or {}).get("type")
    return isinstance(kind, str) and kind in MODELS and MODELS.get(kind).__module__.startswith("ppzoo.nlp")


def weights_needs(cfg):
    """Every weights source the config names (top level and inside the model)."""
    needs = []
    items = [("pretrained", "pretrained", cfg.get("pretrained"), cfg)] + [
        (f"model.{p}", k, v, parent) for p, k, v, parent in _walk(cfg.get("model") or {})]
    for where, k, v, parent in items:
        if k in WEIGHTS_KEYS and v:
            need = weights_need(where, v, parent)
            if need:
                needs.append(need)
    return needs


def step_needs(cfg, skip=("model", "pretrained") + DATASET_SECTIONS):
    """Other ``output/...`` paths a config reads (a classifier's weights, a teacher export);
    their readers take them relative to the working directory, as the run will."""
    needs = []
    for section, node in cfg.items():
        if section in skip or section == "output_dir":
            continue
        for where, k, v, _ in [(section, section, node, None)] + list(_walk(node, section)):
            if (isinstance(v, str) and _STEP.match(v) and k not in ("output_dir", "save_dir")
                    and not os.path.exists(v)):
                needs.append(Need("step", where, v, "written by an earlier step, found nowhere"))
    return needs


def count_parameters(model):
    return int(sum(int(p.size) for p in model.parameters()))


def check_config(cfg, tool="train", weights=None, save_dir=None, resume=False, overwrite=False,
                 output=None, build=True):
    """The :class:`CheckReport` of ``cfg`` for ``tool`` (train, eval or export); raises the
    config's first error (ConfigError, WeightsError) as the run would, before building."""
    import paddle
    from .export import load_weights, read_weights
    from .trainer import without_pretrained
    from ..core.builder import build_model
    from ..core.registry import check_arguments

    source = cfg.get("_file_", "<config>")
    report = CheckReport(source, tool)
    if tool not in ("train", "eval", "export"):
        raise ConfigError(f"--check: unknown tool {tool!r}")
    generator = "model" not in cfg and "classifiers" in cfg  # tools/pssl_generate.py's config
    if not generator:
        tcfg = dict(cfg.get("trainer") or {"type": "Trainer"})
        cls = TRAINERS.get(tcfg.pop("type", "Trainer"))
        if "model" not in cfg:
            raise ConfigError(f"{source}: the config has no 'model' section")
        cls.check_config(cfg)
        check_arguments(cls.__init__, dict(tcfg), "trainer", cls.__name__, require=False)

    # export reads a val sample only where the config gives no export.input_spec
    spec = any((cfg.get("export") or {}).get(k) is not None for k in ("input_spec", "default_input_spec"))
    if tool == "eval" and not cfg.get("val_dataset"):
        raise ConfigError(f"{source}: the config has no 'val_dataset' to evaluate on")
    sections = {"train": ("train_dataset", "val_dataset", "test_dataset", "dataset"),
                "eval": ("val_dataset",), "export": () if spec else ("val_dataset",)}[tool]
    report.data, needs = data_needs(cfg, sections)
    report.needs += needs
    state = None
    if weights and not os.path.exists(os.path.expanduser(str(weights))):
        need = weights_need("--weights", str(weights))  # a zoo name or URL: nothing downloaded
        if need:
            report.needs.append(need)
            weights = None
    if weights:
        state = read_weights(weights)  # a WeightsError before anything is built
        report.weights = state[0]
    else:
        report.needs += weights_needs(cfg)
    report.needs += step_needs(cfg)

    if (build or weights) and not generator:  # ``build=False``: the needs only
        with paddle.utils.unique_name.guard():
            model = build_model(without_pretrained(cfg)["model"])
        report.model = type(model).__name__
        report.params = count_parameters(model)
    if weights:
        load_weights(model, weights, state=state)  # every key and shape checked

    if build and not report.problems():
        for section in sections:
            if _is_dataset(cfg.get(section)):
                ds = DATASETS.build(cfg[section], key_path=section)
                report.datasets[section] = len(ds)

    if tool == "train" and not generator:
        name = cfg.get("name") or os.path.splitext(os.path.basename(source))[0]
        report.writes = os.path.abspath(save_dir or os.path.join(cfg.get("output_dir", "output"), name))
        report.writes_note = _folder_note(report.writes, resume, overwrite)
    elif tool == "export":
        report.writes = os.path.abspath(save_dir) if save_dir else None
    elif output:
        report.writes = os.path.abspath(output)
    return report


def _folder_note(folder, resume, overwrite):
    from . import rundir
    entries = rundir.run_entries(folder) if os.path.isdir(folder) else []
    if resume:
        if not os.path.isdir(os.path.join(folder, "latest")) and not os.path.isdir(
                os.path.join(folder, "latest.old")):
            raise PPZooError(f"--resume: {folder} holds no checkpoint (latest/)")
        return "continues the run in it from latest/"
    if not entries:
        return "a new run"
    if overwrite:
        return f"holds a run ({', '.join(entries[:3])}); it would be moved aside to <folder>.old-<time>"
    raise PPZooError(f"run folder {folder} is not empty ({', '.join(entries[:5])}); pass --resume or "
                     f"--overwrite, or choose another --save-dir")


def run_check(cfg, tool, **kwargs):
    """``--check`` of a tool: print the report; a need that stops the run is a DataError."""
    report = check_config(cfg, tool, **kwargs)
    for line in report.lines():
        print(line)
    problems = report.problems()
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more above)" if len(problems) > 1 else ""
        what = "needs an earlier step" if first.kind == "step" else "data not found"
        raise DataError(f"{source_name(cfg)}: {what}: {first.key} = {first.value}{more}")
    print("check passed: nothing written")
    return report


def source_name(cfg):
    return cfg.get("_file_", "<config>")
