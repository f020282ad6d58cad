"""``--weights`` of tools/eval.py and tools/export.py takes what ``pretrained:`` takes:
PaddleVideo-named files (ST-GCN's ``st_gcn_networks``/``tcn.N``, the 1x1-conv ``head.fcn``),
archives and zoo names, loaded strictly (every tensor of the file maps to one parameter,
every parameter is filled).  The files are built here by reference networks written with
PaddleVideo's layer names (tests/test_video_parity.py), never downloaded."""
import hashlib
import os
import tarfile

import numpy as np
import paddle
import yaml

import ppzoo  # noqa: F401 - registers the components
from ppzoo.core.builder import MODELS
from test_tools import ROOT, tool_inprocess
from test_video_parity import RefAGCN, RefSTGCN, randomize

STGCN_CFG = os.path.join(ROOT, "configs", "skeleton", "stgcn_fsd10.yml")
AGCN_CFG = os.path.join(ROOT, "configs", "skeleton", "agcn_fsd10.yml")


def _skeletons(tmp_path, n=3, t=60):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(n, 3, t, 25, 1)).astype("float32")
    np.save(tmp_path / "val_data.npy", data)
    np.save(tmp_path / "val_label.npy", np.arange(n) % 30)
    return data


def _data_opts(tmp_path, labels=True):
    return [f"val_dataset.file_path={tmp_path / 'val_data.npy'}",
            f"val_dataset.label_path={tmp_path / 'val_label.npy' if labels else 'null'}",
            f"train_dataset.file_path={tmp_path / 'val_data.npy'}",
            f"train_dataset.label_path={tmp_path / 'val_label.npy'}", "eval.batch_size=4"]


def _reference_logits(ref, cfg_file, tmp_path, opts):
    """The reference network's logits on the config's own val pipeline."""
    cfg = ppzoo.core.load_config(cfg_file, opts)
    ds = ppzoo.core.builder.DATASETS.build(cfg["val_dataset"])
    x = paddle.to_tensor(np.stack([ds[i]["data"] for i in range(len(ds))]))
    ref.eval()
    return ref(x).numpy()


def _paddlevideo_stgcn(tmp_path, seed=1):
    paddle.seed(0)
    ref = randomize(RefSTGCN("fsd10", 2, 30), seed=seed)
    path = str(tmp_path / "STGCN_fsd.pdparams")
    paddle.save(ref.state_dict(), path)
    return ref, path


def test_eval_weights_take_paddlevideo_stgcn_names_and_write_submission(tmp_path, capsys):
    _skeletons(tmp_path)
    ref, path = _paddlevideo_stgcn(tmp_path)
    state = paddle.load(path)
    assert any(".st_gcn_networks." in k for k in state) and state["head.fcn.weight"].ndim == 4
    opts = _data_opts(tmp_path)
    out = tmp_path / "metrics.json"
    done = tool_inprocess("eval.py", "-c", STGCN_CFG, "--weights", path, "--output", out,
                          "--opts", *opts, capsys=capsys)
    assert done.returncode == 0, done.stderr
    # the documented FSD-10 submission command, with PaddleVideo's file
    sub = tmp_path / "submission.csv"
    done = tool_inprocess("eval.py", "-c", STGCN_CFG, "--weights", path, "--output", sub,
                          "--opts", *_data_opts(tmp_path, labels=False), capsys=capsys)
    assert done.returncode == 0, done.stderr
    want = _reference_logits(ref, STGCN_CFG, tmp_path, opts).argmax(1)
    rows = sub.read_text().split()
    assert rows[0] == "sample_index,predict_category"
    assert [int(r.split(",")[1]) for r in rows[1:]] == list(want)


def test_weights_stay_strict_after_the_mapping(tmp_path, capsys):
    _skeletons(tmp_path)
    _, path = _paddlevideo_stgcn(tmp_path)
    state = {k: v.numpy() for k, v in paddle.load(path).items()}
    extra = dict(state, **{"backbone.st_gcn_networks.10.tcn.2.weight": np.zeros((4, 4), "float32")})
    paddle.save(extra, str(tmp_path / "extra.pdparams"))
    done = tool_inprocess("eval.py", "-c", STGCN_CFG, "--weights", tmp_path / "extra.pdparams",
                          "--opts", *_data_opts(tmp_path), capsys=capsys)
    assert done.returncode == 2 and "1 unexpected key(s), e.g. backbone.blocks.10.tconv.weight" in done.stderr
    short = {k: v for k, v in state.items() if k != "backbone.st_gcn_networks.3.tcn.3._mean"}
    paddle.save(short, str(tmp_path / "short.pdparams"))
    done = tool_inprocess("eval.py", "-c", STGCN_CFG, "--weights", tmp_path / "short.pdparams",
                          "--opts", *_data_opts(tmp_path), capsys=capsys)
    assert done.returncode == 2 and "1 missing key(s), e.g. backbone.blocks.3.bn2._mean" in done.stderr
    # a head for other classes is a shape error, not a partial load
    wide = dict(state, **{"head.fcn.weight": np.zeros((31, 256, 1, 1), "float32"),
                          "head.fcn.bias": np.zeros(31, "float32")})
    paddle.save(wide, str(tmp_path / "wide.pdparams"))
    done = tool_inprocess("eval.py", "-c", STGCN_CFG, "--weights", tmp_path / "wide.pdparams",
                          "--opts", *_data_opts(tmp_path), capsys=capsys)
    assert done.returncode == 2 and "shape mismatch" in done.stderr and "head.fc." in done.stderr


def test_export_weights_take_paddlevideo_agcn_archive_and_zoo_name(tmp_path, capsys, monkeypatch):
    """AGCN's ``head.fcn`` (PaddleVideo) is ppzoo's ``head.fc``; the file inside a
    ``.tar.gz`` and as a zoo name of a weights table load like the file itself."""
    _skeletons(tmp_path)
    monkeypatch.setenv("PPZOO_HOME", str(tmp_path / "home"))
    paddle.seed(0)
    ref = randomize(RefAGCN(30), seed=5)
    path = str(tmp_path / "AGCN_fsd.pdparams")
    paddle.save(ref.state_dict(), path)
    assert "head.fcn.weight" in paddle.load(path)
    archive = tmp_path / "AGCN_fsd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname="AGCN_fsd/AGCN_fsd.pdparams")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    table = tmp_path / "table.yml"
    table.write_text(yaml.safe_dump({"my_agcn_fsd10": {
        "url": f"file://{path}", "sha256": digest, "source": "test", "licence": "test",
        "model": {"type": "RecognizerGCN", "config": "configs/skeleton/agcn_fsd10.yml"}}}))
    monkeypatch.setenv("PPZOO_WEIGHTS_TABLE", str(table))
    opts = _data_opts(tmp_path)
    want = _reference_logits(ref, AGCN_CFG, tmp_path, opts)
    from ppzoo.engine.predictor import Predictor
    for i, source in enumerate([archive]):  # the plain file: eval below and the ST-GCN tests
        save = tmp_path / f"inference{i}"
        done = tool_inprocess("export.py", "-c", AGCN_CFG, "--weights", source, "--save-dir", save,
                              "--opts", *opts, capsys=capsys)
        assert done.returncode == 0, (source, done.stderr)
        cfg = ppzoo.core.load_config(AGCN_CFG, opts)
        ds = ppzoo.core.builder.DATASETS.build(cfg["val_dataset"])
        x = np.stack([ds[k]["data"] for k in range(len(ds))])
        got = Predictor(str(save), use_mkldnn=False).run([x])[0]
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max()), source
    # eval takes them as well
    done = tool_inprocess("eval.py", "-c", AGCN_CFG, "--weights", "my_agcn_fsd10", "--opts", *opts,
                          capsys=capsys)
    assert done.returncode == 0, done.stderr
    done = tool_inprocess("eval.py", "-c", AGCN_CFG, "--weights", "my_agcn_fsd1", "--opts", *opts,
                          capsys=capsys)
    assert done.returncode == 2 and done.stderr.startswith("error: weights 'my_agcn_fsd1' is not a file")


def test_pretrained_and_weights_map_the_same_way(tmp_path):
    """The top-level ``pretrained:`` (``ppzoo.hub.load_pretrained``) maps PaddleVideo's
    names as the model's own ``pretrained`` and ``--weights`` do."""
    from ppzoo import hub
    from ppzoo.engine.export import load_weights
    ref, path = _paddlevideo_stgcn(tmp_path)
    cfg = ppzoo.core.load_config(STGCN_CFG)
    a, b = MODELS.build(dict(cfg["model"])), MODELS.build(dict(cfg["model"]))
    report = hub.load_pretrained(a, path, strict=True)
    assert report.ok and "publisher names mapped" in report.mapping
    load_weights(b, path)
    x = paddle.to_tensor(np.random.default_rng(3).normal(size=(2, 2, 30, 25, 1)).astype("float32"))
    ref.eval(), a.eval(), b.eval()
    np.testing.assert_allclose(a(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-4)


def test_check_reports_a_zoo_name_download_instead_of_fetching_it(tmp_path, capsys, monkeypatch):
    """``--check --weights <zoo name>`` names the download it would make and makes none."""
    _skeletons(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("PPZOO_HOME", str(home))
    table = tmp_path / "table.yml"
    table.write_text(yaml.safe_dump({"far_agcn": {
        "url": "http://127.0.0.1:9/AGCN_fsd.pdparams", "sha256": "0" * 64, "source": "test",
        "licence": "test", "model": {"type": "RecognizerGCN"}}}))
    monkeypatch.setenv("PPZOO_WEIGHTS_TABLE", str(table))
    done = tool_inprocess("eval.py", "-c", AGCN_CFG, "--weights", "far_agcn", "--check",
                          "--opts", *_data_opts(tmp_path), capsys=capsys)
    assert done.returncode == 0, done.stderr
    assert "far_agcn" in done.stdout and "127.0.0.1:9" in done.stdout
    assert not home.exists()


def test_weights_folder_of_safetensors_as_pretrained_takes_it(tmp_path, capsys):
    """A folder holding model.safetensors (no model.pdparams) loads as ``--weights`` as it
    does as ``pretrained:``, names mapped from PaddleVideo's."""
    from safetensors.numpy import save_file
    _skeletons(tmp_path)
    _, path = _paddlevideo_stgcn(tmp_path)
    folder = tmp_path / "released"
    folder.mkdir()
    save_file({k: np.ascontiguousarray(v.numpy()) for k, v in paddle.load(path).items()},
              str(folder / "model.safetensors"))
    done = tool_inprocess("eval.py", "-c", STGCN_CFG, "--weights", folder, "--opts", *_data_opts(tmp_path),
                          capsys=capsys)
    assert done.returncode == 0, done.stderr
    assert f"weights: {folder / 'model.safetensors'}" in done.stdout


def test_fusion_weights_map_each_streams_paddlevideo_names(tmp_path):
    """A fused two-stream file whose streams carry PaddleVideo's names (``streams.<i>.``
    + ST-GCN's ``st_gcn_networks``/``head.fcn``) loads strictly as ``--weights``."""
    from ppzoo.engine.export import load_weights
    paddle.seed(0)
    refs = [randomize(RefSTGCN("fsd10", 2, 30), seed=s) for s in (7, 8)]
    state = {f"streams.{i}.{k}": v for i, r in enumerate(refs) for k, v in r.state_dict().items()}
    path = str(tmp_path / "fused.pdparams")
    paddle.save(state, path)
    stream = {"type": "RecognizerGCN", "backbone": {"type": "STGCN", "in_channels": 2, "layout": "fsd10"},
              "head": {"type": "STGCNHead", "num_classes": 30, "in_channels": 256}}
    fused = MODELS.build({"type": "SkeletonFusion", "streams": [{"input": "joint", "model": dict(stream)},
                                                                 {"input": "joint", "model": dict(stream)}]})
    load_weights(fused, path)
    fused.eval()
    x = paddle.to_tensor(np.random.default_rng(9).normal(size=(2, 2, 30, 25, 1)).astype("float32"))
    for r in refs:
        r.eval()
    want = sum(paddle.nn.functional.softmax(r(x), axis=-1).numpy() for r in refs)
    np.testing.assert_allclose(fused(x).numpy(), want, rtol=1e-4, atol=1e-5)
