"""Paddle Inference predictor for exported models, and the inference tasks that use it.

An exported folder (``tools/export.py``) holds ``model.json`` + ``model.pdiparams`` and a
``deploy.yml`` naming a *task*.  :class:`Predictor` runs batches of NumPy arrays through
the model; a task turns input files into those arrays and the raw outputs into results.

Adding a task (segmentation, video, skeleton, ...): subclass :class:`InferTask` in your
own package, register it with ``@INFER_TASKS.register()`` and set ``export.task: <name>``
in the config.  The interface is small:

``extensions``
    file name endings (lower case) taken from a folder given as ``--input``.
``deploy_fields(cfg, dataset, sample) -> dict`` (classmethod, export time)
    task-specific ``deploy.yml`` fields (how to read a file, postprocess options) from
    the config, the val dataset and its first sample as ``load`` returns it (before
    transforms; either may be None); ``export.reader`` / ``export.postprocess`` of the
    config are merged on top.
``list_inputs(path) -> list[str]`` (optional)
    the inputs under ``--input``, default its files; a task whose files hold many records
    (text: one per line) returns one name per record, e.g. ``reviews.tsv:3``.
``read(path) -> dict``
    one input (a file, or a name ``list_inputs`` returned) as a sample dict, the same form the dataset's ``load`` returns
    (raise ``DataError`` naming the file when it cannot be read).
``preprocess(sample) -> dict``
    default: the val transforms saved in ``deploy.yml``.
``collate(samples) -> list[np.ndarray]``
    one batch array per model input, in the order of ``deploy.yml``'s ``inputs``;
    default: stacks ``sample[name]`` for each.
``postprocess(outputs, samples) -> list[dict]``
    the predictor's raw outputs (one array per model output, batch first) to one
    JSON-serialisable result per sample.
``format(result) -> str``
    the line ``tools/infer.py`` prints.
``save(result, path, out_dir)``
    optional: write files for a result (e.g. a colour mask) under ``out_dir``.

Tasks are looked up by the ``task`` key of ``deploy.yml``, so ``tools/infer.py`` needs
nothing but the exported folder and the installed ppzoo package.
"""
import json
import os
import re
import shutil

import numpy as np
import yaml

from ..core.errors import ConfigError, DataError, WeightsError
from ..core.registry import Registry

INFER_TASKS = Registry("infer_tasks")

MODEL_FILE = "model.json"
PARAMS_FILE = "model.pdiparams"
DEPLOY_FILE = "deploy.yml"


def load_deploy(model_dir):
    """Read and check ``deploy.yml`` of an exported folder."""
    path = os.path.join(model_dir, DEPLOY_FILE)
    if not os.path.isdir(model_dir):
        raise ConfigError(f"model dir not found: {model_dir}")
    if not os.path.isfile(path):
        raise ConfigError(f"{model_dir} has no {DEPLOY_FILE}; export a model with tools/export.py")
    try:
        with open(path, encoding="utf-8") as f:
            deploy = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(deploy, dict):
        raise ConfigError(f"{path}: expected a mapping")
    for key in ("task", "inputs"):
        if key not in deploy:
            raise ConfigError(f"{path}: missing key {key!r}")
    for f in (deploy.get("model_file", MODEL_FILE), deploy.get("params_file", PARAMS_FILE)):
        if not os.path.isfile(os.path.join(model_dir, f)):
            raise WeightsError(f"{model_dir}: exported model file {f} is missing")
    return deploy


#: Paddle Inference 3.3's PIR passes for the CPU with oneDNN, in its order (as its log
#: prints them; two names it prints but does not register are left out).  Used only for
#: an export whose ``deploy.yml`` lists ``onednn_skip_passes``: Paddle runs either its own
#: list or a custom one, so skipping one pass means naming all the others.
ONEDNN_PASSES = (
    "add_shadow_output_after_dead_parameter_pass", "delete_quant_dequant_linear_op_pass",
    "delete_weight_dequant_linear_op_pass", "depthwise_conv_onednn_pass",
    "squeeze_transpose_onednn_fuse_pass", "conv2d_bn_onednn_fuse_pass",
    "conv2d_bias_bn_onednn_fuse_pass", "conv2d_bias_fuse_pass", "conv2d_transpose_bn_fuse_pass",
    "conv2d_transpose_bias_bn_fuse_pass", "conv2d_transpose_bias_fuse_pass",
    "conv3d_bias_fuse_pass", "conv_elementwise_add_onednn_fuse_pass",
    "conv_activation_mkldnn_fuse_pass", "matmul_scale_fuse_pass", "scale_matmul_fuse_pass",
    "reshape_transpose_matmul_fuse_pass", "matmul_transpose_reshape_fuse_pass",
    "matmul_add_act_fuse_pass", "matmul_reshape_add_fuse_pass", "fc_onednn_enable_pass",
    "matmul_elementwise_add_fuse_pass", "matmul_activation_fuse_pass",
    "matmul_add_act_fuse_pass", "fc_onednn_enable_pass", "fc_activation_fuse_pass",
    "self_attention_fuse_pass", "batch_norm_act_fuse_pass", "softplus_activation_fuse_pass",
    "shuffle_channel_detect_pass", "elementwise_act_onednn_fuse_pass",
    "operator_scale_onednn_fuse_pass", "operator_unsqueeze_onednn_fuse_pass",
    "operator_reshape_onednn_fuse_pass", "onednn_placement_pass",
    "transfer_layout_pass", "common_subexpression_elimination_pass", "constant_folding_pass",
    "dead_code_elimination_pass", "replace_fetch_with_shadow_output_pass", "inplace_pass")
#: The passes Paddle 3.3 adds after ``onednn_placement_pass`` for bfloat16.
BF16_PASSES = ("cpu_bfloat16_placement_pass", "cpu_bfloat16_pass",
               "cpu_bfloat16_type_placement_pass", "cpu_special_ops_bf16_pass",
               "cpu_bf16_quantize_squash_pass")
#: Inference precisions: ``bf16`` is oneDNN's bfloat16 on the CPU (AVX-512 BF16 / AMX).
PRECISIONS = ("fp32", "bf16")


def onednn_passes(skip=(), bf16=False):
    """:data:`ONEDNN_PASSES` without ``skip``, with :data:`BF16_PASSES` for bfloat16."""
    out = []
    for name in ONEDNN_PASSES:
        if name not in skip:
            out.append(name)
        if name == "onednn_placement_pass" and bf16:
            out.extend(BF16_PASSES)
    return out


class Predictor:
    """Runs an exported model with Paddle Inference.

    ``device`` is ``cpu`` or ``gpu``/``gpu:N`` (default: gpu when Paddle has CUDA).
    ``cpu_threads`` sets the math library threads (Paddle's default is 1).
    ``use_mkldnn`` keeps oneDNN on for the CPU (Paddle's default): 3-13x faster than the
    dygraph forward on MobileNetV2, but its kernels sum in another order, so outputs differ
    by ~1e-5 relative (docs/benchmarks/export.md); without it they equal dygraph's (bit for
    bit with one thread).  Memory optimisation is deliberately not enabled: on the CPU
    build it breaks ``create_predictor`` for ``.json`` (PIR) models.
    ``precision``: ``fp32`` (default) or ``bf16`` (oneDNN bfloat16 on a CPU that has it:
    faster, about 3 significant digits; docs/benchmarks/localization_latency.md).  An
    export's ``deploy.yml`` may list ``onednn_skip_passes``, oneDNN passes Paddle must not
    run on its graph (see :data:`ONEDNN_PASSES`).
    """

    def __init__(self, model_dir, device=None, cpu_threads=None, use_mkldnn=True, ir_optim=True,
                 precision="fp32"):
        import paddle
        from paddle import inference

        self.model_dir = model_dir
        self.deploy = load_deploy(model_dir)
        if device is None:
            device = "gpu" if paddle.is_compiled_with_cuda() else "cpu"
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "bf16" and not (device == "cpu" and use_mkldnn):
            raise ConfigError(f"precision bf16 is oneDNN's bfloat16 on the CPU; device {device!r}"
                              f"{'' if use_mkldnn else ' without oneDNN'} has no bf16 path here")
        if precision == "bf16" and not paddle.base.core.supports_bfloat16():
            raise ConfigError("precision bf16 needs a CPU with AVX-512 BF16 (or AMX); this one "
                              "has none: use fp32")
        self.precision = precision
        if not (device == "cpu" or device.startswith("gpu")):
            raise ConfigError(f"device must be cpu, gpu or gpu:N, got {device!r}")
        self.device = device
        skip = list(self.deploy.get("onednn_skip_passes") or []) if use_mkldnn else []
        self.predictor = None
        while self.predictor is None:
            config = self._config(device, cpu_threads, use_mkldnn, ir_optim, precision, skip)
            try:
                self.predictor = inference.create_predictor(config)
            except Exception as err:  # noqa: BLE001  (Paddle raises bare RuntimeError/ValueError)
                # a Paddle other than 3.3 may lack a pass of the list: run without it
                m = re.search(r"Pass (\w+) has not been registered", str(err))
                if skip and m and m.group(1) in ONEDNN_PASSES + BF16_PASSES and \
                        m.group(1) not in skip:
                    skip.append(m.group(1))
                    continue
                lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
                detail = next((ln for ln in reversed(lines) if not ln.startswith("[")), "") or \
                    (lines[-1] if lines else "")
                raise WeightsError(f"{model_dir}: the exported model cannot be loaded "
                                   f"({type(err).__name__}: {detail[:300]}); export it "
                                   f"again") from None
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()
        self.input_specs = {i["name"]: i for i in self.deploy["inputs"]}

    def _config(self, device, cpu_threads, use_mkldnn, ir_optim, precision, skip):
        import paddle
        from paddle import inference
        model_dir = self.model_dir
        config = inference.Config(os.path.join(model_dir, self.deploy.get("model_file", MODEL_FILE)),
                                  os.path.join(model_dir, self.deploy.get("params_file", PARAMS_FILE)))
        if device.startswith("gpu"):
            if not paddle.is_compiled_with_cuda():
                raise ConfigError(f"device {device!r} asked for, but this Paddle build has no "
                                  f"CUDA; use --device cpu")
            dev_id = int(device.split(":")[1]) if ":" in device else 0
            config.enable_use_gpu(256, dev_id)
        elif device == "cpu":
            config.disable_gpu()
            if cpu_threads:
                config.set_cpu_math_library_num_threads(int(cpu_threads))
            if not use_mkldnn:
                config.disable_mkldnn()
            elif skip:   # Paddle runs its own pass list or a custom one, nothing between
                config.enable_custom_passes(onednn_passes(skip, bf16=precision == "bf16"), True)
            if use_mkldnn and precision == "bf16":
                config.enable_mkldnn_bfloat16()
        config.switch_ir_optim(bool(ir_optim))
        config.disable_glog_info()
        return config

    def run(self, inputs):
        """``inputs``: a list of arrays in ``input_names`` order, or a dict by name.

        Returns one array per model output (batch first).
        """
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise DataError(f"the model needs inputs {self.input_names}, missing {missing}")
            inputs = [inputs[n] for n in self.input_names]
        if len(inputs) != len(self.input_names):
            raise DataError(f"the model takes {len(self.input_names)} inputs {self.input_names}, "
                            f"got {len(inputs)}")
        for name, arr in zip(self.input_names, inputs):
            arr = np.ascontiguousarray(arr)
            spec = self.input_specs.get(name)
            if spec is not None:
                self._check(name, arr, spec)
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(arr.shape))
            handle.copy_from_cpu(arr)
        self.predictor.run()
        return [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]

    @staticmethod
    def _check(name, arr, spec):
        shape = spec.get("shape")
        ok = shape is None or (arr.ndim == len(shape) and all(
            s is None or s < 0 or s == a for s, a in zip(shape, arr.shape)))
        if not ok:
            raise DataError(f"input {name!r} has shape {list(arr.shape)}; the exported model "
                            f"expects {shape} (-1 = any)")
        if spec.get("dtype") and str(arr.dtype) != spec["dtype"]:
            raise DataError(f"input {name!r} has dtype {arr.dtype}; the exported model "
                            f"expects {spec['dtype']}")


class InferTask:
    """Base of inference tasks; see the module docstring for the interface."""

    extensions = ()
    #: False where Paddle's oneDNN CPU path cannot run the task's exported ops
    #: (e.g. bilinear resize in segmentation heads on Paddle 3.3); the predictor then
    #: runs without oneDNN whatever the caller asked.
    onednn_supported = True

    def __init__(self, deploy, **options):
        from ..transforms import Compose
        self.deploy = deploy
        self.input_names = [i["name"] for i in deploy["inputs"]]
        self.reader = dict(deploy.get("reader") or {})
        self.post = dict(deploy.get("postprocess") or {})
        self.post.update({k: v for k, v in options.items() if v is not None})
        self.label_names = deploy.get("label_names")
        self.transforms = Compose(deploy.get("transforms") or [])

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        return {}

    def list_inputs(self, path):
        """The inputs under ``path``: one per file (tasks whose files hold several samples
        return one entry per sample)."""
        return list_inputs(path, self.extensions)

    def read(self, path):
        raise NotImplementedError

    def preprocess(self, sample):
        return self.transforms(sample, np.random.default_rng(0))

    def collate(self, samples):
        out = []
        for name in self.input_names:
            try:
                out.append(np.stack([np.asarray(s[name]) for s in samples]))
            except KeyError:
                raise DataError(f"the model input {name!r} is not in the preprocessed sample "
                                f"(keys: {sorted(samples[0])})") from None
        return out

    def postprocess(self, outputs, samples):
        raise NotImplementedError

    def format(self, result):
        return json.dumps(result)

    def save(self, result, path, out_dir):
        pass

    def label_name(self, i):
        """The label name of class ``i`` from ``deploy.yml``, else the id as text."""
        if self.label_names and 0 <= i < len(self.label_names):
            return str(self.label_names[i])
        return str(int(i))


def _softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


@INFER_TASKS.register(name="classification")
class ClassificationTask(InferTask):
    """An image file -> the top-k labels with softmax scores.

    ``reader.mode`` is the PIL mode the image is converted to (``RGB`` or ``L``);
    ``postprocess.topk`` the number of labels; ``postprocess.softmax: false`` for models
    whose exported output is already a probability.
    """

    extensions = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        mode = getattr(dataset, "mode", None)
        if mode is None and sample is not None and sample.get("image") is not None:
            img = np.asarray(sample["image"])
            mode = "L" if img.ndim == 2 or img.shape[-1] == 1 else "RGB"
        return {"reader": {"mode": mode or "RGB"}, "postprocess": {"topk": 5, "softmax": True}}

    def read(self, path):
        from ..transforms import read_image
        return {"image": read_image(path, self.reader.get("mode", "RGB"))}

    def postprocess(self, outputs, samples):
        logits = np.asarray(outputs[0], dtype=np.float64)
        if logits.ndim != 2:
            raise DataError(f"classification expects outputs of shape [batch, classes], got "
                            f"{list(logits.shape)}")
        probs = _softmax(logits) if self.post.get("softmax", True) else logits
        k = max(1, min(int(self.post.get("topk", 5)), probs.shape[1]))
        results = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:k]
            results.append({"class_ids": [int(i) for i in order],
                            "labels": [self.label_name(i) for i in order],
                            "scores": [round(float(row[i]), 6) for i in order]})
        return results

    def format(self, result):
        pairs = ", ".join(f"{lab} ({s:.4f})" for lab, s in zip(result["labels"], result["scores"]))
        return f"{result['file']}: {pairs}"


def build_task(deploy, **options):
    return INFER_TASKS.get(deploy["task"])(deploy, **options)


def list_inputs(path, extensions):
    """A file, or the sorted files of a folder whose names end with ``extensions``."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(tuple(extensions)) and
                       os.path.isfile(os.path.join(path, f)))
        if not files:
            raise DataError(f"{path} holds no input files ({', '.join(extensions)})")
        return files
    raise DataError(f"input not found: {path}")


def run_inference(model_dir, input_path, batch_size=8, output=None, echo=print,
                  device=None, cpu_threads=None, use_mkldnn=True, **task_options):
    """Predict every input file; returns the results (dicts with ``file``).

    ``output`` is a ``.json``/``.jsonl`` file (JSON lines) or a folder (``results.jsonl``
    plus whatever the task saves).  Everything is written to a staging folder first and
    moved into place only when every input succeeded, so an unreadable file leaves no
    partial output.
    """
    task_cls = INFER_TASKS.get(load_deploy(model_dir)["task"])
    use_mkldnn = use_mkldnn and task_cls.onednn_supported
    predictor = Predictor(model_dir, device=device, cpu_threads=cpu_threads, use_mkldnn=use_mkldnn)
    task = build_task(predictor.deploy, **task_options)
    files = task.list_inputs(input_path)
    batch_size = max(1, int(batch_size))
    if output:
        is_file = output.lower().endswith((".json", ".jsonl"))
        out_dir = os.path.dirname(os.path.abspath(output)) if is_file else os.path.abspath(output)
        created = not os.path.isdir(out_dir)
        stage = os.path.join(out_dir, f".infer-tmp-{os.getpid()}")
        os.makedirs(stage, exist_ok=True)
    results, ok = [], False
    try:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            samples = []
            for f in chunk:
                sample = task.read(f)
                try:
                    sample = task.preprocess(sample)
                except DataError:
                    raise
                except Exception as err:  # a transform failing on this file's content
                    raise DataError(f"cannot preprocess {f}: {err}") from None
                samples.append(sample)
            where = ", ".join(chunk) if len(chunk) <= 2 else f"{chunk[0]} ... {chunk[-1]}"
            try:
                arrays = task.collate(samples)
            except ValueError as err:  # e.g. images of different sizes and no Resize
                raise DataError(f"cannot batch {where}: {err} (use --batch-size 1, or a "
                                f"resizing transform in export.transforms)") from None
            try:
                outputs = predictor.run(dict(zip(task.input_names, arrays)))
            except DataError as err:
                raise DataError(f"{where}: {err}") from None
            for f, res in zip(chunk, task.postprocess(outputs, samples)):
                res = dict({"file": f}, **res)
                results.append(res)
                if echo:
                    echo(task.format(res))
                if output:
                    task.save(res, f, stage)
        if output:
            name = os.path.basename(output) if is_file else "results.jsonl"
            with open(os.path.join(stage, name), "w", encoding="utf-8") as fh:
                for res in results:
                    fh.write(json.dumps(res) + "\n")
            for root, _, fnames in os.walk(stage):
                rel = os.path.relpath(root, stage)
                os.makedirs(os.path.join(out_dir, rel), exist_ok=True)
                for fn in fnames:
                    os.replace(os.path.join(root, fn), os.path.join(out_dir, rel, fn))
        ok = True
    finally:
        if output:
            shutil.rmtree(stage, ignore_errors=True)
            if created and not ok and not os.listdir(out_dir):
                os.rmdir(out_dir)
    return results
