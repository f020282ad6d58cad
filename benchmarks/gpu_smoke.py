"""One script that runs every family of the zoo on a device: train, evaluate, export, predict.

    python benchmarks/gpu_smoke.py --device gpu            # shipped model sizes, AMP on
    python benchmarks/gpu_smoke.py --device cpu --tiny     # small models, seconds (the tests run it)

For one representative config of each family (segmentation/PSSL, video, skeleton,
localization, distillation with its teacher, LNSR fine-tuning, federated simulation, active
learning, ranking, continual) it runs a few training steps through the family's own trainer
(AMP where the engine supports it: on a GPU with ``--amp``, the default there), one
evaluation, an export for Paddle Inference, and the exported model against the dygraph model
on the same device and inputs.  It writes one table row per family: the median step time
(device synchronised around each step, first step left out), the peak device memory, the
largest predictor-vs-dygraph difference and pass/fail with the first error line.

Inputs are generated, so no data set or download is needed: families whose configs read the
shared data get seeded random samples of the shapes their configs give (image, clip,
skeleton, feature sequence, token ids, ranking lists); the digits families (distillation,
federated, active, continual) read scikit-learn's bundled digits.  Models start from random
weights (``pretrained`` dropped).  ``--tiny`` shrinks models and inputs so every family
finishes in seconds on a CPU; without it the shipped model sizes run.

What it proves: each family's trainer, evaluation and export run on the device with the
engine's device handling (``train.device``), nothing more.  It measures no accuracy.
"""
import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import ppzoo  # noqa: E402,F401  (registers every component)
from ppzoo.core import load_config  # noqa: E402
from ppzoo.core.builder import DATASETS  # noqa: E402
from ppzoo.engine import trainer as trainer_mod  # noqa: E402
from ppzoo.engine.device import on_gpu, select_device  # noqa: E402
from ppzoo.engine.export import _flatten, export_model, traced  # noqa: E402
from ppzoo.engine.predictor import Predictor  # noqa: E402
from ppzoo.engine.trainer import build_trainer, without_pretrained  # noqa: E402

DOC = os.path.join(ROOT, "docs", "benchmarks", "gpu_smoke.md")
FAMILIES = ("segmentation", "video", "skeleton", "localization", "distill", "lnsr",
            "federated", "active", "ranking", "continual")


# --------------------------------------------------------------------------- generated data
@DATASETS.register()
class SmokeSamples(paddle.io.Dataset):
    """Seeded random samples: ``fields`` maps a name to ``{shape, dtype, high}`` (integers
    drawn below ``high``; floats standard normal, uniform in [0, 1) with ``unit: true``, or
    ``const``)."""

    def __init__(self, fields, num_samples=8, seed=0, class_names=None, fps=None, max_len=None):
        self.fields, self.num_samples, self.seed = dict(fields), int(num_samples), int(seed)
        self.class_names = class_names
        self.fps, self.max_len = fps, max_len

    def __len__(self):
        return self.num_samples

    def __getitem__(self, idx):
        rng = np.random.default_rng(self.seed * 100003 + int(idx))
        out = {}
        for name, f in self.fields.items():
            shape, dtype = list(f.get("shape") or []), f.get("dtype", "float32")
            if "const" in f:
                out[name] = np.full(shape, f["const"], dtype)
            elif np.issubdtype(np.dtype(dtype), np.integer):
                out[name] = rng.integers(0, int(f.get("high", 2)), size=shape).astype(dtype)
            elif f.get("unit"):
                out[name] = rng.random(shape).astype(dtype)
            else:
                out[name] = rng.standard_normal(shape).astype(dtype)
        return out


def _smoke(fields, n, seed, **kw):
    return {"type": "SmokeSamples", "fields": fields, "num_samples": n, "seed": seed, **kw}


def _set_data(cfg, fields, n_train, n_val, **kw):
    cfg["train_dataset"] = _smoke(fields, n_train, 1, **kw)
    cfg["val_dataset"] = _smoke(fields, n_val, 2, **kw)


# --------------------------------------------------------------------------- the families
def _segmentation(cfg_dir, tiny):
    """PSSL's pre-training objective (background-weighted CE over 1000 + 1 classes) on
    PSPNet-R50 (configs/pssl/pspnet_r50_pssl.yml); tiny: the CamVid PSSL stage's SmallSegNet."""
    if tiny:
        cfg = load_config(os.path.join(ROOT, "configs/pssl/camvid_pretrain.yml"))
        size, batch, classes = 32, 4, 12
    else:
        cfg = load_config(os.path.join(ROOT, "configs/pssl/pspnet_r50_pssl.yml"))
        size, batch, classes = 512, 4, int(cfg["model"]["num_classes"])
        cfg["model"]["backbone_pretrained"] = None
    _set_data(cfg, {"image": {"shape": [3, size, size]},
                    "mask": {"shape": [size, size], "dtype": "int64", "high": classes}},
              2 * batch, batch, class_names=[str(i) for i in range(classes)])
    cfg["metrics"] = [{"type": "MeanIoU", "num_classes": classes, "ignore_index": 255}]
    return cfg, batch


def _video(cfg_dir, tiny):
    """PP-TSM R50 on 8 segments (configs/video/pptsm_r50.yml, MixupTrainer)."""
    cfg = load_config(os.path.join(ROOT, "configs/video/pptsm_r50.yml"))
    if tiny:
        cfg["model"]["backbone"].update(depth=18)
        cfg["model"]["head"].update(num_classes=5, in_channels=512)
        size, batch, classes = 32, 2, 5
    else:
        size, batch, classes = 224, 8, int(cfg["model"]["head"]["num_classes"])
    seg = int(cfg["model"]["backbone"]["num_seg"])
    _set_data(cfg, {"video": {"shape": [seg, 3, size, size]},
                    "label": {"shape": [], "dtype": "int64", "high": classes}},
              2 * batch, batch, class_names=[str(i) for i in range(classes)])
    return cfg, batch


def _skeleton(cfg_dir, tiny):
    """ST-GCN on FSD-10's 25-joint 2D skeletons (configs/skeleton/stgcn_fsd10.yml)."""
    cfg = load_config(os.path.join(ROOT, "configs/skeleton/stgcn_fsd10.yml"))
    frames, batch = (16, 2) if tiny else (350, 32)
    classes = int(cfg["model"]["head"]["num_classes"])
    _set_data(cfg, {"data": {"shape": [2, frames, 25, 1]},
                    "label": {"shape": [], "dtype": "int64", "high": classes}},
              2 * batch, batch, class_names=[str(i) for i in range(classes)])
    cfg["export"] = dict(cfg.get("export") or {}, input_spec=[
        {"name": "data", "shape": [None, 2, frames, 25, 1], "dtype": "float32"}])
    cfg["export"].pop("default_input_spec", None)
    return cfg, batch


def _localization(cfg_dir, tiny):
    """BMN on 2048-d feature windows (configs/localization/bmn_football.yml)."""
    cfg = load_config(os.path.join(ROOT, "configs/localization/bmn_football.yml"))
    if tiny:
        dim, t, batch = 32, 16, 2
        cfg["model"].update(feat_dim=dim, tscale=t, dscale=t, num_sample=4, num_sample_perbin=1)
        cfg["loss"].update(tscale=t, dscale=t)
    else:
        dim, t, batch = int(cfg["model"]["feat_dim"]), int(cfg["model"]["tscale"]), 4
    _set_data(cfg, {"feature": {"shape": [dim, t]},
                    "gt_iou_map": {"shape": [t, t], "unit": True},
                    "gt_start": {"shape": [t], "unit": True},
                    "gt_end": {"shape": [t], "unit": True}},
              2 * batch, batch, fps=5)
    cfg["train"]["label_key"] = "gt_iou_map"
    cfg["metrics"] = []                       # proposal AR needs annotated videos
    cfg["val_dataset"] = None                 # so no evaluation; the predictor check reads train data
    cfg["export"] = dict(cfg["export"], input_spec=[
        {"name": "feature", "shape": [None, dim, t], "dtype": "float32"}])
    cfg["export"].pop("default_input_spec", None)
    cfg["export"]["postprocess"] = dict(cfg["export"].get("postprocess") or {}, window_step=t)
    return cfg, batch


def _teacher_dir(cfg_dir, device):
    """A teacher for the distillation run: configs/distill/digits_teacher.yml trained two
    steps and exported (the student's teacher reads an exported model)."""
    cfg = without_pretrained(load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml")))
    cfg["train"] = dict(cfg["train"], iters=2, log_interval=1, eval_interval=2,
                        checkpoint_interval=2, device=device)
    cfg["train"].pop("epochs", None)
    t = build_trainer(cfg, work_dir=os.path.join(cfg_dir, "teacher"), overwrite=True)
    t.train()
    out = os.path.join(cfg_dir, "teacher", "inference")
    export_model(t.model, dict(cfg, export=dict(cfg.get("export") or {}, verify_atol=None)),
                 out, dataset=t.val_dataset)
    return out


def _distill(cfg_dir, tiny, device="cpu", distill_mode=None):
    """EDL-Dist's student with its teacher (configs/distill/digits_edl.yml): the teacher is a
    service of Ray workers (mode edl), or, for the tiny run, runs in the student's process
    (mode online: no Ray start-up, which alone takes longer than the rest on 2 cores)."""
    cfg = load_config(os.path.join(ROOT, "configs/distill/digits_edl.yml"))
    mode = distill_mode or ("online" if tiny else "edl")
    cfg["distill"] = dict(cfg["distill"], mode=mode, teacher_dir=_teacher_dir(cfg_dir, device))
    cfg["distill"].pop("service", None)
    cfg["distill"]["device"] = device         # the teacher's Paddle Inference device
    if mode == "edl":
        cfg["distill"].update(num_workers=1, ray_address=None)
        if device.startswith("gpu"):
            cfg["distill"]["worker_gpus"] = 0.25
    return cfg, int(cfg["train"].get("batch_size", 64))


def _lnsr(cfg_dir, tiny):
    """LNSR fine-tuning of the MiniLM encoder on RTE's sentence pairs (configs/lnsr/rte_lnsr.yml)."""
    cfg = load_config(os.path.join(ROOT, "configs/lnsr/rte_lnsr.yml"))
    seq, batch = (32, 4) if tiny else (128, 16)
    _set_data(cfg, {"input_ids": {"shape": [seq], "dtype": "int64", "high": 1000},
                    "token_type_ids": {"shape": [seq], "dtype": "int64", "high": 1},
                    "label": {"shape": [], "dtype": "int64", "high": 2}},
              2 * batch, batch, class_names=["entailment", "not_entailment"])
    return cfg, batch


def _federated(cfg_dir, tiny):
    """FedAvg simulation on digits (configs/federated/digits_fedavg.yml): one round."""
    cfg = load_config(os.path.join(ROOT, "configs/federated/digits_fedavg.yml"))
    fed = cfg["federated"]
    fed.update(num_clients=4, clients_per_round=2, rounds=1, eval_every=1)
    fed["local"] = dict(fed["local"], steps=3)
    fed["local"].pop("epochs", None)
    return cfg, int(fed["local"].get("batch_size", 16))


def _active(cfg_dir, tiny):
    """Entropy sampling on digits with out-of-distribution classes
    (configs/active/digits_ood_entropy.yml): one query round."""
    cfg = load_config(os.path.join(ROOT, "configs/active/digits_ood_entropy.yml"))
    cfg["active"].update(rounds=1, candidates=200)
    cfg["train"]["iters"] = 3
    return cfg, int(cfg["train"]["batch_size"])


def _ranking(cfg_dir, tiny):
    """The LambdaRank MLP on 300-feature query lists (configs/ranking/mlp_lambdarank.yml)."""
    cfg = load_config(os.path.join(ROOT, "configs/ranking/mlp_lambdarank.yml"))
    docs, batch = (12, 4) if tiny else (64, 32)
    feats = int(cfg["model"]["num_features"])
    _set_data(cfg, {"features": {"shape": [docs, feats], "unit": True},
                    "mask": {"shape": [docs], "dtype": "float32", "unit": True},
                    "label": {"shape": [docs], "dtype": "int64", "high": 5}},
              2 * batch, batch)
    for split in ("train_dataset", "val_dataset"):
        cfg[split]["fields"]["mask"] = {"shape": [docs], "dtype": "float32", "const": 1.0}
    return cfg, batch


def _continual(cfg_dir, tiny):
    """Task-incremental digits, five tasks of two classes (configs/continual/digits_task_il.yml)."""
    cfg = load_config(os.path.join(ROOT, "configs/continual/digits_task_il.yml"))
    cfg["continual"]["epochs"] = 1
    return cfg, int(cfg["train"]["batch_size"])


BUILDERS = {"segmentation": _segmentation, "video": _video, "skeleton": _skeleton,
            "localization": _localization, "distill": _distill, "lnsr": _lnsr,
            "federated": _federated, "active": _active, "ranking": _ranking,
            "continual": _continual}
# trainers with their own outer loop (rounds, tasks): their length is set in the builder
OWN_LOOP = {"federated", "active", "continual"}


# --------------------------------------------------------------------------- measuring
def _sync():
    if on_gpu():
        paddle.device.synchronize()


@contextlib.contextmanager
def _timed_steps(times):
    """Time every ``Trainer.train_step`` (of any trainer, children included), synchronising
    the device before and after, so a step's time is its device time."""
    base = trainer_mod.Trainer.train_step

    def step(self, batch):
        _sync()
        t0 = time.perf_counter()
        base(self, batch)
        _sync()
        times.append(time.perf_counter() - t0)
    trainer_mod.Trainer.train_step = step
    try:
        yield
    finally:
        trainer_mod.Trainer.train_step = base


def _peak_reset():
    if on_gpu():
        reset = getattr(paddle.device.cuda, "reset_max_memory_allocated", None)
        if reset is not None:
            reset()


def _peak_mib():
    if on_gpu():
        return paddle.device.cuda.max_memory_allocated() / 2 ** 20
    return None


def _first_batch(trainer):
    loader = trainer.val_loader if trainer.val_loader is not None else None
    if loader is None:
        dataset = getattr(trainer, "val_dataset", None) or getattr(trainer, "train_dataset")
        loader = trainer._make_eval_loader(dataset)
    for batch in loader:
        return batch
    raise RuntimeError("the val data yielded no batch")


def _predictor_diff(trainer, cfg, save_dir, device):
    """Largest |predictor - dygraph| on one val batch, both on ``device``."""
    batch = _first_batch(trainer)
    keys = list((cfg.get("train") or {}).get("input_keys", ["image"]))
    inputs = [np.asarray(batch[k].numpy() if isinstance(batch[k], paddle.Tensor) else batch[k])
              for k in keys]
    model = trainer.model
    model.eval()
    with paddle.no_grad(), traced(model) as target:
        ref = [t.numpy() for t in _flatten(target(*[paddle.to_tensor(x) for x in inputs]))]
    got = Predictor(save_dir, device=device, use_mkldnn=False).run(inputs)
    if len(ref) != len(got):
        raise RuntimeError(f"predictor gives {len(got)} outputs, dygraph {len(ref)}")
    diff, scale = 0.0, 1.0
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            raise RuntimeError(f"predictor output shape {g.shape} != dygraph {r.shape}")
        if r.size:
            diff = max(diff, float(np.abs(r.astype(np.float64) - g.astype(np.float64)).max()))
            scale = max(scale, float(np.abs(r).max()))
    return diff, scale


def run_family(name, work, device, tiny, amp, steps, distill_mode=None):
    row = {"family": name, "config": "", "step_ms": None, "steps": 0, "peak_mib": None,
           "eval": "", "max_diff": None, "status": "fail", "error": ""}
    fam_dir = os.path.join(work, name)
    times = []
    try:
        select_device(device)
        kwargs = {"device": device, "distill_mode": distill_mode} if name == "distill" else {}
        cfg, batch = BUILDERS[name](fam_dir, tiny, **kwargs)
        row["config"] = os.path.relpath(cfg["_file_"], ROOT)
        cfg = without_pretrained(cfg)
        tc = dict(cfg.get("train") or {})
        tc.update(device=device, amp=bool(amp), num_workers=0, log_interval=1)
        if name not in OWN_LOOP:
            tc.pop("epochs", None)
            tc.update(iters=steps, eval_interval=steps, checkpoint_interval=steps,
                      batch_size=min(int(tc.get("batch_size", batch)), batch))
        cfg["train"] = tc
        cfg["eval"] = dict(cfg.get("eval") or {}, batch_size=batch, num_workers=0)
        if not cfg.get("metrics"):
            cfg["eval"].pop("best_metric", None)
        _peak_reset()
        trainer = build_trainer(cfg, work_dir=os.path.join(fam_dir, "run"), overwrite=True)
        with _timed_steps(times):
            trainer.train()
        row["steps"] = len(times)
        timed = times[1:] or times
        row["step_ms"] = statistics.median(timed) * 1000 if timed else None
        if getattr(trainer, "val_loader", None) is not None and getattr(trainer, "metrics", None):
            results = trainer.evaluate()
            key = next(iter(results), None)
            if key is not None:
                v = results[key]
                row["eval"] = f"{key}={float(v):.3g}" if np.ndim(v) == 0 else key
        else:
            row["eval"] = "by the trainer's loop" if name in OWN_LOOP else "no metrics"
        save_dir = os.path.join(fam_dir, "inference")
        ecfg = dict(cfg.get("export") or {}, verify_atol=None)   # compared below, on the device
        dataset = getattr(trainer, "val_dataset", None) or getattr(trainer, "train_dataset", None)
        export_model(trainer.model, dict(cfg, export=ecfg), save_dir, dataset=dataset)
        row["max_diff"], scale = _predictor_diff(trainer, cfg, save_dir, device)
        row["peak_mib"] = _peak_mib()
        # float32 on both sides: a traced graph differs by summation order only; with
        # cuDNN/TF32 on a GPU allow 1e-2 of the output's scale
        tol = (1e-2 if device.startswith("gpu") else 1e-4) * scale
        row["status"] = "pass" if row["max_diff"] <= tol else "fail"
        if row["status"] == "fail":
            row["error"] = f"predictor differs by {row['max_diff']:.3g} (> {tol:.3g})"
    except Exception as err:  # noqa: BLE001  (one family's failure is a row, not the end)
        lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
        row["error"] = f"{type(err).__name__}: {lines[-1] if lines else ''}"[:300]
        row["traceback"] = traceback.format_exc()
        if times and not row["steps"]:
            row["steps"] = len(times)
    return row


# --------------------------------------------------------------------------- reporting
def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(rows):
    lines = ["| family | config | steps | step ms (median) | peak device MiB | eval | max \\|predictor - dygraph\\| | result |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        result = r["status"] + (f": {r['error']}" if r["error"] else "")
        lines.append(f"| {r['family']} | `{r['config']}` | {r['steps']} | {_fmt(r['step_ms'], '.1f')} | "
                     f"{_fmt(r['peak_mib'], '.0f')} | {r['eval'] or '-'} | {_fmt(r['max_diff'], '.2e')} | "
                     f"{result.replace('|', '/')} |")
    return "\n".join(lines)


def machine(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, Paddle {paddle.__version__}"
    if device.startswith("gpu") and paddle.is_compiled_with_cuda():
        text += f", {paddle.device.cuda.get_device_name()}"
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="gpu", help="cpu, gpu or gpu:N")
    p.add_argument("--tiny", action="store_true", help="small models and inputs (seconds on a CPU)")
    p.add_argument("--steps", type=int, default=3, help="training steps per family (trainers "
                   "with their own loop run one round / task sequence instead)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="mixed precision (auto: on for a GPU; the engine uses it only there)")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    p.add_argument("--distill-mode", choices=("edl", "online"), default=None,
                   help="teacher as a Ray service (edl, the default without --tiny) or in-process")
    p.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--doc", default=None, help=f"write the table into this Markdown page "
                   f"(replacing its section for this device and size), e.g. {os.path.relpath(DOC, ROOT)}")
    args = p.parse_args(argv)
    amp = args.amp == "on" or (args.amp == "auto" and args.device.startswith("gpu"))
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in BUILDERS]
    if unknown:
        p.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    work = args.work_dir or tempfile.mkdtemp(prefix="ppzoo-gpu-smoke-")
    os.makedirs(work, exist_ok=True)
    rows = []
    t0 = time.time()
    try:
        for name in families:
            t1 = time.time()
            row = run_family(name, work, args.device, args.tiny, amp, args.steps, args.distill_mode)
            row["wall_s"] = round(time.time() - t1, 1)
            rows.append(row)
            print(f"{name:13s} {row['status']:4s} {row['wall_s']:6.1f}s {row['error']}", flush=True)
            if row.get("traceback") and row["status"] != "pass":
                print(row["traceback"], file=sys.stderr)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    header = (f"device {args.device}{' --tiny' if args.tiny else ''}, AMP {'on' if amp else 'off'}, "
              f"{args.steps} steps; {machine(args.device)}; "
              f"{datetime.date.today().isoformat()}; {time.time() - t0:.0f} s in all")
    print(header)
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"header": header, "rows": [{k: v for k, v in r.items() if k != "traceback"}
                                                  for r in rows]}, f, indent=1)
    if args.doc:
        write_doc(args.doc, args, header, rows)
    return 0 if all(r["status"] == "pass" for r in rows) else 1


def write_doc(path, args, header, rows):
    """Put the table between this run's markers (one section per device and size)."""
    tag = f"{args.device.split(':')[0]}{'-tiny' if args.tiny else ''}"
    begin, end = f"<!-- gpu-smoke {tag}: begin -->", f"<!-- gpu-smoke {tag}: end -->"
    cmd = "python benchmarks/gpu_smoke.py " + " ".join(sys.argv[1:] if argv_is_cli() else [])
    block = f"{begin}\n`{cmd.strip()}`: {header}\n\n{table(rows)}\n{end}"
    text = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    if begin in text and end in text:
        text = text.split(begin, 1)[0] + block + text.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def argv_is_cli():
    return os.path.basename(sys.argv[0] or "") == "gpu_smoke.py"


if __name__ == "__main__":
    sys.exit(main())
