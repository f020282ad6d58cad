"""What benchmark scripts share: the machine description and writing a result page."""
import datetime
import os
import platform
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from ppzoo.engine.cpu import tune_cpu  # noqa: E402

CPU_SETTINGS = tune_cpu()  # every core, MKL's AVX2 path on AMD: benchmarks measure a tuned CPU


def _load_average():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


#: the 1-min load average when the script started (this module is imported first), so a
#: page written at the end of a long run still says what the machine was doing at its start
START_LOAD = _load_average()


def cpu_model():
    """The CPU's model name (lscpu), or what the platform module knows."""
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine():
    import paddle
    return (f"{cpu_model()}, {os.cpu_count()} cores visible, Python {platform.python_version()}, "
            f"Paddle {paddle.__version__} ({paddle.get_device()}), CPU settings {CPU_SETTINGS}, "
            f"1-min load average at start {START_LOAD:.1f}, at the end {_load_average():.1f}")


def write_page(path, title, command, body):
    today = datetime.date.today().isoformat()
    text = (f"# {title}\n\n- Command: `{command}`\n- Machine: {machine()}\n- Date: {today}\n\n{body}\n")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


def write_page_and_runs(path, title, command, body, runs):
    """:func:`write_page`, and each run's record as one JSON line beside the page
    (``<page>_runs.jsonl``), so a reader can recompute every number the page shows."""
    import json
    write_page(path, title, command, body)
    with open(os.path.splitext(path)[0] + "_runs.jsonl", "w", encoding="utf-8") as f:
        for r in runs:
            f.write(json.dumps(r) + "\n")


def last_record(work_dir, mode="val", at_iter=None):
    """The last ``mode`` record ("val" or "train") of a run's ``metrics.jsonl``, or None where
    there is none (or, with ``at_iter``, where the last one is not at that iteration: the run
    did not finish).  A finished run's records are its results: nothing is evaluated twice."""
    import json
    path = os.path.join(work_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        recs = [r for r in map(json.loads, f) if r.get("mode") == mode]
    if not recs or (at_iter is not None and recs[-1]["iter"] != at_iter):
        return None
    return recs[-1]


def calibrate_bn(model, x):
    """Give BatchNorm running statistics from data, as training would.

    With freshly initialised statistics (mean 0, var 1) deep nets' logits shrink to
    ~1e-7, which makes output comparisons meaningless; one train-mode pass over ``x``
    with momentum 0 sets every layer's statistics to those of that batch.
    """
    import paddle
    bns = [m for m in model.sublayers() if isinstance(m, paddle.nn.layer.norm._BatchNormBase)]
    saved = [m._momentum for m in bns]
    for m in bns:
        m._momentum = 0.0
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(x))
    for m, mom in zip(bns, saved):
        m._momentum = mom
    model.eval()
