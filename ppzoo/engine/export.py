"""Export a trained model for Paddle Inference: ``model.json`` + ``model.pdiparams`` + ``deploy.yml``.

The input spec is derived from one sample of the val dataset and ``train.input_keys``
(batch dimension free); ``export.input_spec`` in the config overrides it.  ``deploy.yml``
carries what ``tools/infer.py`` needs to go from a file to a result without the config:
the task, the inputs, the val transforms, the label names, how to read a file and the
postprocess options.

Models whose training ``forward`` is not what should be deployed (auxiliary heads, a
loss computed inside, a softmax wanted at the end) define either

- ``export_model(self) -> paddle.nn.Layer``: the layer to trace instead of the model, or
- ``export_forward(self, *inputs)``: used in place of ``forward`` when tracing.

The ``export`` config section (all optional)::

    export:
      task: classification          # an INFER_TASKS name (predictor.py)
      input_spec:                   # default: derived from a val sample
        - {name: image, shape: [null, 3, 224, 224], dtype: float32}
      default_input_spec: [...]     # used only where no val sample can be read (no data)
      transforms: [...]             # default: val_dataset.transforms
      label_names: [...]            # default: the val dataset's class_names
      reader: {mode: RGB}           # merged over the task's defaults
      postprocess: {topk: 5}        # merged over the task's defaults
      verify_atol: 1.0e-4           # exported vs dygraph check on the sample (null: skip)
"""
import contextlib
import copy
import os
import shutil

import numpy as np
import paddle
import yaml

from ..core.config import check_keys
from ..core.errors import ConfigError, WeightsError
from . import checkpoint as ckpt
from .predictor import DEPLOY_FILE, INFER_TASKS, MODEL_FILE, PARAMS_FILE, Predictor

EXPORT_KEYS = {"task", "input_spec", "default_input_spec", "transforms", "label_names", "reader", "postprocess",
               "verify_atol"}


# --------------------------------------------------------------------------- weights
def resolve_weights(path):
    """``path`` is a checkpoint folder holding ``model.pdparams``, or whatever
    ``pretrained:`` accepts: a ``.pdparams``/``.safetensors`` file, an archive, a URL or a
    zoo name of the weights table."""
    if os.path.isdir(path):
        found = ckpt.resolve_checkpoint_dir(path)
        if found is None and os.path.isfile(os.path.join(path, "model.pdparams")):
            found = path
        if found is None and os.path.isfile(os.path.join(path, "model.safetensors")):
            return os.path.join(path, "model.safetensors")  # a folder pretrained: accepts
        if found is None:
            raise WeightsError(f"weights folder {path} holds no model.pdparams")
        return os.path.join(found, "model.pdparams")
    from ..hub.load import resolve_weights_source
    return resolve_weights_source(path)  # a file, archive, URL or zoo name, as for pretrained:


def read_weights(path):
    """``(file, state dict)`` of ``--weights``: read before the model and data are built, so
    a missing or unreadable file fails in a second, not after minutes of building."""
    from ..hub import read_state_dict
    file = resolve_weights(path)
    return file, read_state_dict(file)


def load_weights(model, path, state=None):
    """Load ``path`` into ``model`` strictly: every parameter present with its exact shape.

    Evaluation and export must run the weights that were trained, so a missing,
    unexpected or mis-shaped key is an error here, reported in one line with the first
    offenders.  Reading (``.pdparams`` or ``.safetensors``) and loading are the hub's.
    ``state``: what :func:`read_weights` returned for ``path`` (not read again).
    Returns the file loaded.
    """
    from ..hub import load_state_dict
    from ..hub.load import align_to_model, map_to_model
    file, state = state if state is not None else read_weights(path)
    state, _ = map_to_model(model, state)  # a publisher's names, as pretrained: maps them
    state = align_to_model(model, state)   # ... and its prefixes (PaddleSeg's files lack net.)
    problems = state_fit_problems(model, state)
    if problems:
        raise WeightsError(f"weights {file} do not fit the model "
                           f"({type(model).__name__}): {'; '.join(problems)}")
    load_state_dict(model, state, source=file, file=file, strict=True)
    return file


def state_fit_problems(model, state):
    """What keeps ``state`` from loading into ``model`` exactly (lines; empty if it fits)."""
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [(k, list(state[k].shape), own[k]) for k in own
             if k in state and list(state[k].shape) != own[k]]
    problems = []
    if wrong:
        k, got, want = wrong[0]
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {k}: file {got} vs model {want}")
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    return problems


# --------------------------------------------------------------------------- spec
def _dtype_name(dtype):
    return str(np.dtype(dtype))


def derive_input_spec(sample, input_keys, source="<config>"):
    """One ``{name, shape, dtype}`` per input key, batch dimension ``None``."""
    specs = []
    for k in input_keys:
        if k not in sample:
            raise ConfigError(f"{source}: train.input_keys names {k!r} but a val sample holds "
                              f"{sorted(sample)}")
        arr = np.asarray(sample[k])
        specs.append({"name": k, "shape": [None] + list(arr.shape), "dtype": _dtype_name(arr.dtype)})
    return specs


def _check_spec(spec, source):
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{source}: export.input_spec must be a list of {{name, shape, dtype}}")
    out = []
    for i, s in enumerate(spec):
        if not isinstance(s, dict) or "shape" not in s or "name" not in s:
            raise ConfigError(f"{source}: export.input_spec[{i}] needs 'name' and 'shape', got {s!r}")
        shape = [None if d is None or int(d) < 0 else int(d) for d in s["shape"]]
        try:
            dtype = _dtype_name(s.get("dtype", "float32"))
        except TypeError:
            raise ConfigError(f"{source}: export.input_spec[{i}].dtype {s.get('dtype')!r} "
                              f"is not a dtype") from None
        out.append({"name": str(s["name"]), "shape": shape, "dtype": dtype})
    return out


@contextlib.contextmanager
def traced(model):
    """The layer to trace, restored afterwards (``paddle.jit.to_static`` replaces ``forward``).

    ``export_model()`` gives another layer; ``export_forward`` is traced in place of
    ``forward`` by giving the model, for the duration, a subclass whose ``forward`` it is.
    """
    was_training = model.training
    model.eval()
    target = model.export_model() if hasattr(model, "export_model") else model
    target.eval()
    cls = type(target)
    had_forward = "forward" in target.__dict__
    if hasattr(target, "export_forward") and not hasattr(model, "export_model"):
        target.__class__ = type(cls.__name__, (cls,), {"forward": cls.export_forward,
                                                       "__module__": cls.__module__})
    try:
        yield target
    finally:
        target.__class__ = cls
        if not had_forward:
            target.__dict__.pop("forward", None)
        if was_training:
            model.train()


def _flatten(out):
    if isinstance(out, paddle.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten(o)]
    raise ConfigError(f"the exported forward returned {type(out).__name__}; "
                      f"expected tensors (a tensor, a list/tuple or a dict of them)")


# --------------------------------------------------------------------------- export
def _prepare_save_dir(save_dir):
    """An existing export is replaced; any other non-empty folder is refused."""
    if os.path.exists(save_dir):
        if not os.path.isdir(save_dir):
            raise ConfigError(f"--save-dir {save_dir} exists and is a file")
        if os.listdir(save_dir) and not os.path.isfile(os.path.join(save_dir, DEPLOY_FILE)):
            raise ConfigError(f"--save-dir {save_dir} is a non-empty folder that is not an "
                              f"export (no {DEPLOY_FILE}); choose another folder or empty it")


def export_model(model, cfg, save_dir, dataset=None, input_keys=None, logger=None, extra=None):
    """Export ``model`` (weights loaded) into ``save_dir``; returns the deploy dict.

    Written to ``<save_dir>.tmp-<pid>`` and renamed, so a failure leaves no half folder
    and a previous export in ``save_dir`` stays until the new one is complete.
    """
    source = cfg.get("_file_", "<config>")
    ecfg = dict(cfg.get("export") or {})
    check_keys(ecfg, EXPORT_KEYS, "export.", source)
    input_keys = list(input_keys or (cfg.get("train") or {}).get("input_keys", ["image"]))
    _prepare_save_dir(save_dir)

    task_name = ecfg.get("task", "classification")
    try:
        task_cls = INFER_TASKS.get(task_name)
    except ConfigError as err:
        raise ConfigError(f"{source}: export.task: {err}") from None

    sample = None
    if dataset is not None and len(dataset) > 0:
        sample = dataset[0]
    if ecfg.get("input_spec") is not None:
        specs = _check_spec(ecfg["input_spec"], source)
    elif sample is not None:
        specs = derive_input_spec(sample, input_keys, source)
    elif ecfg.get("default_input_spec") is not None:
        specs = _check_spec(ecfg["default_input_spec"], source)
    else:
        raise ConfigError(f"{source}: export needs a val_dataset to derive the input spec, "
                          f"or export.input_spec")

    if "transforms" in ecfg:
        transforms = ecfg["transforms"]
    else:
        transforms = (cfg.get("val_dataset") or {}).get("transforms") or []
    label_names = ecfg.get("label_names")
    if label_names is None and dataset is not None and getattr(dataset, "class_names", None):
        label_names = [str(n) for n in dataset.class_names]

    raw = dataset.load(0) if sample is not None and hasattr(dataset, "load") else None
    fields = task_cls.deploy_fields(cfg, dataset, raw) or {}
    reader = dict(fields.get("reader") or {}, **(ecfg.get("reader") or {}))
    post = dict(fields.get("postprocess") or {}, **(ecfg.get("postprocess") or {}))

    input_spec = [paddle.static.InputSpec(list(s["shape"]), s["dtype"], name=s["name"])
                  for s in specs]

    deploy = {
        "task": task_name,
        "model": (cfg.get("model") or {}).get("type"),
        "model_file": MODEL_FILE,
        "params_file": PARAMS_FILE,
        "inputs": [{"name": s["name"], "shape": [-1 if d is None else d for d in s["shape"]],
                    "dtype": s["dtype"]} for s in specs],
        "transforms": copy.deepcopy(transforms),
        "label_names": label_names,
        "reader": reader,
        "postprocess": post,
    }
    for k, v in fields.items():
        if k not in ("reader", "postprocess"):
            deploy.setdefault(k, v)
    deploy.update(extra or {})

    save_dir = os.path.abspath(save_dir)
    tmp = f"{save_dir.rstrip(os.sep)}.tmp-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        with traced(model) as target:
            try:
                static = paddle.jit.to_static(target, input_spec=input_spec, full_graph=True)
                paddle.jit.save(static, os.path.join(tmp, "model"))
            except ConfigError:
                raise
            except Exception as err:
                last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
                raise ConfigError(f"{source}: paddle.jit could not trace {type(target).__name__} "
                                  f"with inputs {deploy['inputs']}: {type(err).__name__}: {last}"
                                  ) from err
        with open(os.path.join(tmp, DEPLOY_FILE), "w", encoding="utf-8") as f:
            yaml.safe_dump(deploy, f, sort_keys=False, allow_unicode=True)
        atol = ecfg.get("verify_atol", 1e-4)
        batch = _sample_batch(sample, specs)
        if atol is not None and batch is not None:
            with traced(model) as target:
                diff = verify_export(target, tmp, batch, float(atol))
            if logger:
                logger.info(f"exported model matches dygraph on a val sample (max abs diff {diff:.2e})")
        _swap_into_place(tmp, save_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return deploy


def _sample_batch(sample, specs):
    """A batch of one to check the export on: the val sample where it fits the input spec,
    else seeded random values of the spec's shape (free dims taken from the sample).
    None when a free dimension has no size to take."""
    rng = np.random.default_rng(0)
    batch = []
    for s in specs:
        arr = np.asarray(sample[s["name"]]) if sample is not None and s["name"] in sample else None
        dims = s["shape"][1:]
        if arr is not None and arr.ndim == len(dims):
            shape = [a if d is None else d for d, a in zip(dims, arr.shape)]
        else:
            arr, shape = None, dims
        if any(d is None for d in shape):
            return None
        if arr is not None and list(arr.shape) == shape:
            batch.append(arr[None].astype(s["dtype"]))
        elif np.issubdtype(np.dtype(s["dtype"]), np.floating):
            batch.append(rng.normal(size=[1] + shape).astype(s["dtype"]))
        else:
            batch.append(np.zeros([1] + shape, s["dtype"]))
    return batch


def _current_device():
    """``cpu`` or ``gpu:N``: where dygraph runs now (``train.device`` / paddle.set_device)."""
    from .device import on_gpu
    return paddle.get_device() if on_gpu() else "cpu"


@paddle.no_grad()
def verify_export(target, model_dir, inputs, atol):
    """Run the exported folder and the dygraph layer on ``inputs``; raise if they differ."""
    try:
        out = target(*[paddle.to_tensor(x) for x in inputs])
    except Exception as err:
        last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        raise ConfigError(f"inputs of shapes {[list(x.shape) for x in inputs]} do not fit "
                          f"{type(target).__name__} (check export.input_spec): "
                          f"{type(err).__name__}: {last}") from None
    ref = [t.numpy() for t in _flatten(out)]
    # the predictor runs where the dygraph model ran: on the CPU without oneDNN it uses
    # dygraph's own kernels, on a GPU without IR fusions the same CUDA kernels, so any
    # difference is a tracing problem, not another device's float32 summation order
    got = Predictor(model_dir, device=_current_device(), use_mkldnn=False,
                    ir_optim=not _current_device().startswith("gpu")).run(inputs)
    if len(ref) != len(got):
        raise ConfigError(f"the exported model has {len(got)} outputs, dygraph {len(ref)}")
    diff = 0.0
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            raise ConfigError(f"exported output shape {list(g.shape)} differs from dygraph "
                              f"{list(r.shape)}")
        if r.size:
            diff = max(diff, float(np.abs(r.astype(np.float64) - g.astype(np.float64)).max()))
        scale = max(1.0, float(np.abs(r).max())) if r.size else 1.0
        if r.size and diff > atol * scale:
            raise ConfigError(f"the exported model's output differs from dygraph by {diff:.3g} "
                              f"(> export.verify_atol {atol:g} x {scale:.3g}); the forward may "
                              f"branch on tensor values in a way tracing cannot follow")
    return diff


def _swap_into_place(tmp, save_dir):
    old = None
    if os.path.exists(save_dir):
        old = f"{save_dir.rstrip(os.sep)}.old-{os.getpid()}"
        os.replace(save_dir, old)
    os.replace(tmp, save_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def build_for_weights(cfg, val_data=True):
    """The trainer (model, metrics, val data, no training data) that ``--weights`` will fill;
    ``val_data=False`` builds no dataset at all (export needs only the model).

    ``pretrained:`` is dropped, also inside the model (e.g. a backbone's ImageNet weights):
    the weights file replaces every parameter, so fetching pretrained weights first would
    only cost time (or a download).
    """
    from .trainer import build_trainer, without_pretrained
    cfg = without_pretrained(cfg)
    if not val_data:
        cfg["val_dataset"] = None
    return build_trainer(cfg, build_train=False)


class DatasetConfig:
    """A val dataset whose files are absent, as export sees it: no samples, the class names,
    ``fps`` and ``max_len`` its config gives (what the tasks' ``deploy_fields`` read)."""

    def __init__(self, dcfg):
        self.cfg = dict(dcfg or {})
        self.fps = self.cfg.get("fps")
        self.max_len = self.cfg.get("max_len", 300)
        self.class_names = self._class_names(self.cfg.get("class_names"), self.cfg.get("num_classes"))

    @staticmethod
    def _class_names(spec, num_classes):
        if isinstance(spec, (list, tuple)):
            return [str(c) for c in spec]
        if isinstance(spec, str):
            from ..localization.classes import PRESETS as LOC
            from ..video.classes import PRESETS as VIDEO
            for presets in (VIDEO, LOC):
                if spec in presets:
                    return [str(c) for c in presets[spec]]
        return [str(i) for i in range(int(num_classes))] if num_classes else None

    def __len__(self):
        return 0


def export_dataset(cfg, logger=None):
    """The val dataset for export: built where its files are there (a sample gives the input
    spec and the check), else a :class:`DatasetConfig`, so export needs only the model when
    the config gives ``export.input_spec`` or ``export.default_input_spec`` (the spec of a
    val sample, for exports without data).  None without a ``val_dataset``."""
    from ..core.builder import DATASETS
    from ..core.errors import DataError
    dcfg = cfg.get("val_dataset")
    if not dcfg:
        return None
    try:
        return DATASETS.build(dcfg, key_path="val_dataset")
    except DataError as err:
        ecfg = cfg.get("export") or {}
        if ecfg.get("input_spec") is None and ecfg.get("default_input_spec") is None:
            raise ConfigError(f"{cfg.get('_file_', '<config>')}: export takes the input spec from a "
                              f"val sample, and the val data cannot be read ({err}); give "
                              f"export.default_input_spec to export without data") from None
        if logger:
            logger.info(f"val data not read ({err}): exporting with the config's input spec")
        return DatasetConfig(dcfg)


def export_from_config(cfg, weights, save_dir, logger=None):
    """Build the trainer's model and val data from ``cfg``, load ``weights``, export.

    A trainer whose ``model`` holds more than is deployed (a distillation trainer's
    teacher and student) defines ``model_for_export()`` returning the layer to export.
    """
    state = read_weights(weights)  # a missing or unreadable file fails before the build
    trainer = build_for_weights(cfg, val_data=False)
    file = load_weights(trainer.model, weights, state=state)
    model = trainer.model_for_export() if hasattr(trainer, "model_for_export") else trainer.model
    dataset = export_dataset(cfg, logger or trainer.logger)
    with paddle.utils.unique_name.guard(trainer._names):
        return export_model(model, cfg, save_dir, dataset=dataset,
                            input_keys=trainer.input_keys, logger=logger or trainer.logger,
                            extra={"weights": os.path.abspath(file),
                                   "config": cfg.get("_file_")})
