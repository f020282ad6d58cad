"""The command-line tools end to end: train -> eval -> export -> infer, and their errors."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CFG = os.path.join(ROOT, "configs", "quickstart", "digits.yml")
TINY = ["model.width=8", "train.iters=40", "train.eval_interval=20", "train.log_interval=20"]


def tool(name, *args, check=True):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.strip()]


class _Done:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def tool_inprocess(name, *args, capsys):
    """Run a tool's ``main`` in this process (saves a Python start); same exit codes."""
    import importlib.util
    path = os.path.join(ROOT, "tools", name)
    spec = importlib.util.spec_from_file_location(f"_tool_{name[:-3]}", path)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        capsys.readouterr()
        try:
            mod.main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code
    finally:
        sys.path.remove(os.path.join(ROOT, "tools"))
    out = capsys.readouterr()
    return _Done(code, out.out, out.err)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny digits run trained by tools/train.py, exported by tools/export.py."""
    base = tmp_path_factory.mktemp("tools")
    tool("train.py", "-c", CFG, "--save-dir", base / "run", "--opts", *TINY)
    tool("export.py", "-c", CFG, "--weights", base / "run" / "best", "--save-dir",
         base / "inference", "--opts", "model.width=8")
    tool("make_digit_images.py", "--out-dir", base / "png", "--num", 12)
    return base


def _dygraph_top1(weights, files):
    """Top-1 of the dygraph model for PNG files, preprocessed the way the config says."""
    import ppzoo  # noqa: F401  (registers the components)
    from ppzoo.core import build_model, load_config
    from ppzoo.engine.export import load_weights
    from ppzoo.transforms import Compose, read_image
    cfg = load_config(CFG, ["model.width=8"])
    model = build_model(cfg["model"])
    load_weights(model, str(weights))
    model.eval()
    tf = Compose(cfg["val_dataset"]["transforms"])
    x = np.stack([tf({"image": read_image(f, "L")})["image"] for f in files])
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy().argmax(1).tolist()


def test_eval_prints_and_writes_the_metrics_of_best(run, tmp_path):
    out = tmp_path / "eval.json"
    proc = tool("eval.py", "-c", CFG, "--weights", run / "run" / "best", "--output", out,
                "--opts", "model.width=8")
    res = json.loads(out.read_text())
    assert set(res["metrics"]) == {"top1", "top5", "macro_f1", "report"}
    assert res["num_samples"] == 359
    assert f"top1: {res['metrics']['top1']:.4f}" in proc.stdout
    assert "precision recall" in proc.stdout and "support" in proc.stdout
    # the evaluation reproduces what training measured when it saved best/
    recs = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(r["top1"] for r in recs if r["mode"] == "val")
    assert res["metrics"]["top1"] == pytest.approx(best, abs=1e-9)


def test_infer_folder_matches_dygraph(run, tmp_path):
    out = tmp_path / "pred.jsonl"
    proc = tool("infer.py", "--model-dir", run / "inference", "--input", run / "png",
                "--batch-size", 5, "--topk", 2, "--output", out)
    files = sorted(str(run / "png" / f) for f in os.listdir(run / "png"))
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["file"] for r in recs] == files
    assert all(len(r["labels"]) == 2 for r in recs)
    printed = [line for line in proc.stdout.splitlines() if line.startswith(str(run / "png"))]
    assert len(printed) == len(files)
    assert [r["class_ids"][0] for r in recs] == _dygraph_top1(run / "run" / "best", files)
    # one file alone gives the same answer as inside the batch
    single = tool("infer.py", "--model-dir", run / "inference", "--input", files[3])
    assert single.stdout.startswith(f"{files[3]}: {recs[3]['labels'][0]} ")


def test_errors_are_one_line_with_exit_code_2(run, tmp_path, capsys):
    proc = tool("eval.py", "-c", CFG, "--weights", tmp_path / "missing.pdparams", check=False)
    assert proc.returncode == 2
    assert error_lines(proc) == [f"error: weights file not found: {tmp_path / 'missing.pdparams'}"]

    # weights of another width
    proc = tool_inprocess("eval.py", "-c", CFG, "--weights", run / "run" / "best", capsys=capsys)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert "shape mismatch" in proc.stderr
    assert "file [8, 1, 3, 3] vs model [16, 1, 3, 3]" in proc.stderr

    bad = tmp_path / "png"
    bad.mkdir()
    for f in sorted(os.listdir(run / "png"))[:3]:
        (bad / f).write_bytes((run / "png" / f).read_bytes())
    (bad / "0001_label9.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    proc = tool_inprocess("infer.py", "--model-dir", run / "inference", "--input", bad,
                          "--output", out, capsys=capsys)
    assert proc.returncode == 2
    assert len(error_lines(proc)) == 1 and "0001_label9.png" in proc.stderr
    assert not out.exists()

    proc = tool_inprocess("infer.py", "--model-dir", tmp_path / "nothing", "--input", bad,
                          capsys=capsys)
    assert proc.returncode == 2 and error_lines(proc) == [
        f"error: model dir not found: {tmp_path / 'nothing'}"]

    # exporting over a folder that is not an export is refused, the folder untouched
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    proc = tool_inprocess("export.py", "-c", CFG, "--weights", run / "run" / "best",
                          "--save-dir", tmp_path / "mine", "--opts", "model.width=8", capsys=capsys)
    assert proc.returncode == 2 and "not an export" in proc.stderr
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_os_errors_are_one_line_naming_the_path_and_leave_no_temp_files(run, tmp_path, capsys):
    # eval --output onto a folder: refused before the evaluation, no <dir>.tmp left
    (tmp_path / "results").mkdir()
    proc = tool_inprocess("eval.py", "-c", CFG, "--weights", run / "run" / "best", "--output",
                          tmp_path / "results", "--opts", "model.width=8", capsys=capsys)
    assert proc.returncode == 2 and error_lines(proc) == [
        f"error: --output {tmp_path / 'results'} is a folder; name a .json file"]
    assert sorted(os.listdir(tmp_path)) == ["results"]
    # export and train to a path that cannot be made (a file stands where a folder should be)
    (tmp_path / "file").write_text("x")
    proc = tool_inprocess("export.py", "-c", CFG, "--weights", run / "run" / "best", "--save-dir",
                          tmp_path / "file" / "inference", "--opts", "model.width=8", capsys=capsys)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert "Not a directory" in proc.stderr and str(tmp_path / "file") in proc.stderr
    proc = tool_inprocess("train.py", "-c", CFG, "--save-dir", tmp_path / "file" / "run",
                          "--opts", *TINY, capsys=capsys)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert "Not a directory" in proc.stderr and str(tmp_path / "file") in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["file", "results"]
    # infer with a truncated model.pdiparams
    broken = tmp_path / "inference"
    broken.mkdir()
    for f in os.listdir(run / "inference"):
        (broken / f).write_bytes((run / "inference" / f).read_bytes())
    data = (broken / "model.pdiparams").read_bytes()
    (broken / "model.pdiparams").write_bytes(data[: len(data) // 2])
    proc = tool_inprocess("infer.py", "--model-dir", broken, "--input", run / "png", capsys=capsys)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert f"error: {broken}: the exported model cannot be loaded" in proc.stderr


def test_train_into_a_finished_run_is_refused_unless_resume_or_overwrite(run, tmp_path, capsys):
    work = tmp_path / "run"
    os.makedirs(work)
    for name in ("config.yml", "metrics.jsonl"):
        (work / name).write_bytes((run / "run" / name).read_bytes())
    proc = tool_inprocess("train.py", "-c", CFG, "--save-dir", work, "--opts", *TINY, capsys=capsys)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert "is not empty" in proc.stderr and "--overwrite" in proc.stderr
    assert (work / "metrics.jsonl").read_bytes() == (run / "run" / "metrics.jsonl").read_bytes()
    proc = tool_inprocess("train.py", "-c", CFG, "--save-dir", work, "--resume", "--opts", *TINY,
                          capsys=capsys)
    assert proc.returncode == 2 and "no checkpoint to resume from" in proc.stderr
    proc = tool_inprocess("train.py", "-c", CFG, "--save-dir", work, "--overwrite", "--opts",
                          "model.width=4", "train.iters=2", capsys=capsys)
    assert proc.returncode == 0, proc.stderr
    assert [p.name.startswith("run.old-") for p in tmp_path.iterdir()].count(True) == 1
