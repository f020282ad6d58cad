"""Weights and state files never run code, archives unpack safely, configs refuse aliases.

Crafted ``.pdparams`` files whose pickles call ``eval`` / ``os.system`` to write a marker
file are fed through every way weights are read; the marker must never appear and the
error must be one line naming the file and the refused global.  Nothing here reaches the
internet (the HTTP server is test_hub's, on loopback).
"""
import collections
import io
import os
import pickle
import re
import stat
import sys
import tarfile
import time
import zipfile

import numpy as np
import yaml
import paddle
import paddle.nn as nn
import pytest

import ppzoo
from ppzoo import hub
from ppzoo.core import safeload
from ppzoo.core.errors import ConfigError, WeightsError
from ppzoo.engine import checkpoint as ckpt
from test_hub import home, server, sha256, small_cnn  # noqa: F401  (fixtures)
from test_tools import tool_inprocess as run_tool_inprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CFG = os.path.join(ROOT, "configs", "quickstart", "digits.yml")


# ---------------------------------------------------------------- crafted files
class _EvalPayload:
    """Unpickles to the real array, writing ``marker`` on the way (via builtins.eval)."""

    def __init__(self, marker, array):
        self.marker, self.array = marker, array

    def __reduce__(self):
        code = (f"(open({self.marker!r}, 'w').write('ran'), "
                f"__import__('numpy').array({self.array.tolist()!r}, dtype={str(self.array.dtype)!r}))[1]")
        return eval, (code,)


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo ran > {self.marker}",)


def craft(path, marker, kind="eval", model=None):
    """A real state dict of ``model`` whose last entry runs code when unpickled.

    With ``eval`` the entry unpickles to the right array, so a plain load reports every
    tensor loaded; with ``system`` it is os.system's return code."""
    model = model or small_cnn(1)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    last = list(state)[-1]
    evil = dict(state)
    evil[last] = _EvalPayload(str(marker), state[last]) if kind == "eval" else _SystemPayload(str(marker))
    with open(path, "wb") as f:
        pickle.dump(evil, f, protocol=4)
    return state


REFUSED = {"eval": "builtins.eval", "system": f"{os.system.__module__}.system"}


def assert_refused(err, path, kind, marker):
    msg = str(err.value)
    assert not os.path.exists(marker), "the crafted file ran code"
    assert "\n" not in msg, msg
    assert os.path.basename(str(path)) in msg and REFUSED[kind] in msg, msg


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "MARKER"


@pytest.mark.parametrize("kind", ["eval", "system"])
def test_crafted_pdparams_local_path_and_file_url(tmp_path, home, marker, kind):  # noqa: F811
    path = tmp_path / "evil.pdparams"
    craft(path, marker, kind)
    for source in (str(path), path.as_uri(), {"path": str(path), "strict": True}):
        with pytest.raises(WeightsError) as err:
            hub.load_pretrained(small_cnn(2), source)
        assert_refused(err, path, kind, marker)
    with pytest.raises(WeightsError) as err:
        hub.read_state_dict(str(path))
    assert_refused(err, path, kind, marker)


def test_crafted_pdparams_over_http_with_and_without_a_correct_hash(server, home, marker, monkeypatch):  # noqa: F811
    path = os.path.join(server.folder, "evil.pdparams")
    craft(path, marker)
    url = f"{server.base}/files/evil.pdparams"
    with pytest.raises(WeightsError) as err:                 # the hash is right: still refused
        hub.load_pretrained(small_cnn(2), f"{url}#sha256={sha256(path)}")
    assert_refused(err, "evil.pdparams", "eval", marker)
    with pytest.raises(WeightsError) as err:
        hub.load_pretrained(small_cnn(2), {"url": url, "sha256": sha256(path), "prefix": ""})
    assert_refused(err, "evil.pdparams", "eval", marker)
    # no hash: refused before anything is downloaded, unless the user opts out
    n = server.counts["/files/evil.pdparams"]
    with pytest.raises(WeightsError, match="needs its hash") as err:
        hub.load_pretrained(small_cnn(2), url)
    assert "\n" not in str(err.value) and url in str(err.value)
    assert server.counts["/files/evil.pdparams"] == n
    for source, env in (({"url": url, "allow_unhashed": True}, None), (url, "1")):
        if env:
            monkeypatch.setenv("PPZOO_ALLOW_UNHASHED_URLS", env)
        with pytest.raises(WeightsError) as err:
            hub.load_pretrained(small_cnn(2), source)
        assert_refused(err, "evil.pdparams", "eval", marker)


def test_an_unhashed_url_is_refused_but_table_names_and_opt_outs_load(server, home, tmp_path, monkeypatch):  # noqa: F811
    model = small_cnn(3)
    path = os.path.join(server.folder, "fine.pdparams")
    paddle.save(model.state_dict(), path)
    url = f"{server.base}/files/fine.pdparams"
    with pytest.raises(WeightsError, match="needs its hash"):
        hub.load_pretrained(small_cnn(2), url)
    with pytest.raises(ConfigError, match="allow_unhashed must be true or false"):
        hub.load_pretrained(small_cnn(2), {"url": url, "allow_unhashed": "yes"})
    assert hub.load_pretrained(small_cnn(2), {"url": url, "allow_unhashed": True}).ok
    monkeypatch.setenv("PPZOO_ALLOW_UNHASHED_URLS", "1")
    assert hub.load_pretrained(small_cnn(2), url).ok
    monkeypatch.delenv("PPZOO_ALLOW_UNHASHED_URLS")
    # a table entry without a published hash (hash_note) still resolves by name
    import yaml
    table = tmp_path / "t.yml"
    table.write_text(yaml.safe_dump({"nohash": {
        "url": url + "?t", "hash_note": "none published", "model": {"type": "SmallCNN"},
        "source": "t", "licence": "t"}}))
    assert hub.load_pretrained(small_cnn(2), "nohash", table=str(table)).ok


def test_crafted_table_entry_is_refused(server, home, tmp_path, marker):  # noqa: F811
    import yaml
    path = os.path.join(server.folder, "evil_zoo.pdparams")
    craft(path, marker)
    table = tmp_path / "t.yml"
    table.write_text(yaml.safe_dump({"evil": {
        "url": f"{server.base}/files/evil_zoo.pdparams", "sha256": sha256(path),
        "model": {"type": "SmallCNN"}, "source": "t", "licence": "t"}}))
    with pytest.raises(WeightsError) as err:
        hub.load_pretrained(small_cnn(2), "evil", table=str(table))
    assert_refused(err, "evil_zoo.pdparams", "eval", marker)


def tool_inprocess(name, *args, capsys):
    """A tool's ``main`` in this process; returns (exit code, stderr lines)."""
    done = run_tool_inprocess(name, *args, capsys=capsys)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


def test_crafted_weights_through_the_tools(server, home, tmp_path, marker, capsys):  # noqa: F811
    """tools/eval.py --weights (file and checkpoint folder) and tools/train.py
    --opts pretrained=URL: exit 2 with one line, and the marker is never written."""
    from ppzoo.models.classification.cnn import SmallCNN
    paddle.seed(0)
    digits = SmallCNN(in_channels=1, num_classes=10, width=8)
    folder = tmp_path / "best"
    folder.mkdir()
    craft(folder / "model.pdparams", marker, model=digits)
    for weights in (folder / "model.pdparams", folder):
        code, err = tool_inprocess("eval.py", "-c", CFG, "--weights", weights,
                                   "--opts", "model.width=8", capsys=capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
        assert "builtins.eval" in err[0] and "model.pdparams" in err[0] and not marker.exists()
    served = os.path.join(server.folder, "digits_evil.pdparams")
    craft(served, marker, model=digits)
    url = f"{server.base}/files/digits_evil.pdparams#sha256={sha256(served)}"
    code, err = tool_inprocess("train.py", "-c", CFG, "--save-dir", tmp_path / "run",
                               "--opts", "model.width=8", "train.iters=2", f"pretrained={url}",
                               capsys=capsys)
    err = [line for line in err if "%|" not in line]          # the download's progress bar
    assert code == 2 and len(err) == 1 and "builtins.eval" in err[0], err
    assert "digits_evil.pdparams" in err[0] and not marker.exists()


def test_train_resume_refuses_a_crafted_optimizer_state(tmp_path, marker, capsys):
    run = tmp_path / "run"
    code, err = tool_inprocess("train.py", "-c", CFG, "--save-dir", run, "--opts", "model.width=8",
                               "train.iters=2", "train.eval_interval=2", capsys=capsys)
    assert code == 0, err
    with open(run / "latest" / "model.pdopt", "wb") as f:
        pickle.dump({"LR_Scheduler": _SystemPayload(str(marker))}, f, protocol=2)
    code, err = tool_inprocess("train.py", "-c", CFG, "--save-dir", run, "--resume", "--opts",
                               "model.width=8", "train.iters=4", "train.eval_interval=2", capsys=capsys)
    assert code == 2 and len(err) == 1 and f"model.pdopt: refused to load {REFUSED['system']}" in err[0], err
    assert not marker.exists()


def test_resume_refuses_crafted_checkpoint_files(tmp_path, marker):
    """--resume reads latest/model.pdparams and model.pdopt through the same reader."""
    model = small_cnn(1)
    opt = paddle.optimizer.Adam(parameters=model.parameters())
    for name in ("model.pdparams", "model.pdopt"):
        folder = tmp_path / name.replace(".", "_") / "latest"
        ckpt.save_checkpoint(str(folder), model.state_dict(), opt.state_dict(), {"iter": 1})
        ms, os_, st = ckpt.load_checkpoint(str(folder))          # the honest folder loads
        assert set(ms) == set(model.state_dict()) and st == {"iter": 1}
        craft(folder / name, marker, model=model)
        with pytest.raises(WeightsError) as err:
            ckpt.load_checkpoint(str(folder))
        assert_refused(err, name, "eval", marker)


def test_video_loaders_refuse_crafted_files(tmp_path, marker):
    from ppzoo.video import weights as vw
    path = tmp_path / "evil.pdparams"
    craft(path, marker)
    with pytest.raises(WeightsError) as err:
        vw.load_paddlevideo_weights(small_cnn(2), str(path))
    assert_refused(err, path, "eval", marker)
    with pytest.raises(WeightsError) as err:
        vw.load_backbone_pretrained(small_cnn(2), str(path))
    assert_refused(err, path, "eval", marker)


def test_no_plain_unpickling_of_weights_or_state_left():
    """Every weights/state file is read by ppzoo.core.safeload: no paddle.load (a plain
    pickle load) anywhere in the package, the tools or the benchmarks."""
    offenders = []
    for top in ("ppzoo", "tools", "benchmarks"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    p = os.path.join(d, f)
                    with open(p, encoding="utf-8") as fh:
                        for i, line in enumerate(fh, 1):
                            if re.search(r"\bpaddle\.load\(", line.split("#")[0]):
                                offenders.append(f"{os.path.relpath(p, ROOT)}:{i}")
    assert not offenders, offenders


# ---------------------------------------------------------------- what the reader admits
def _equal(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, paddle.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        if not a.name.startswith("generated_tensor"):        # names Paddle made up differ
            assert a.name == b.name
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    else:
        assert a == b and type(a) is type(b), (a, b)


def _saved_states(tmp_path):
    """Files as Paddle 3.3 writes them: model and optimizer states (every optimizer and
    schedule the shipped configs use, plus warm-up and ReduceOnPlateau) under pickle
    protocols 2 and 4, a tensor inside a nested object, OrderedDicts, NumPy scalars."""
    paddle.seed(0)
    model = ppzoo.core.builder.build_model({"type": "MobileNetV2", "scale": 0.25, "num_classes": 4})
    lin = nn.Linear(4, 3)
    x = paddle.randn([5, 4])
    lr = paddle.optimizer.lr
    files = []
    for proto in (2, 4):
        p = str(tmp_path / f"model_{proto}.pdparams")
        paddle.save(model.state_dict(), p, protocol=proto)
        files.append(p)
    cases = [("Momentum", lr.CosineAnnealingDecay(0.1, 10)), ("Adam", lr.MultiStepDecay(0.1, [1, 2])),
             ("AdamW", lr.PolynomialDecay(0.1, 5)), ("RMSProp", lr.ReduceOnPlateau(0.1)),
             ("Momentum", lr.LinearWarmup(lr.CosineAnnealingDecay(0.1, 10), 2, 0.0, 0.1)),
             ("SGD", 0.1)]
    for i, (name, sched) in enumerate(cases):
        opt = getattr(paddle.optimizer, name)(learning_rate=sched, parameters=lin.parameters())
        for _ in range(2):
            loss = lin(x).mean()
            loss.backward()
            opt.step()
            opt.clear_grad()
            if isinstance(sched, lr.ReduceOnPlateau):
                sched.step(float(loss))
            elif not isinstance(sched, float):
                sched.step()
        for proto in (2, 4):
            p = str(tmp_path / f"opt{i}_{name}_{proto}.pdopt")
            paddle.save(opt.state_dict(), p, protocol=proto)
            files.append(p)
    nested = {"server_state": {"c": [paddle.ones([2, 3]), np.float32(1.5)], "t": paddle.to_tensor([1, 2])},
              "client_states": collections.OrderedDict([(0, {"m": np.arange(3.0)})]),
              "sched": {"tiers": [[1, 2]], "name": "x", "on": True, "none": None, "f": 0.25}}
    p = str(tmp_path / "nested.pdstate")
    paddle.save(nested, p)
    files.append(p)
    return files


def test_round_trip_equals_paddle_load_on_real_saved_files(tmp_path):
    files = _saved_states(tmp_path)
    for p in files:
        for return_numpy in (False, True):
            _equal(safeload.load(p, return_numpy=return_numpy), paddle.load(p, return_numpy=return_numpy))


def test_big_tensor_slices_and_name_table_are_joined_as_paddle_does(tmp_path):
    """Protocol 2/3 saves split a tensor over 2**30 bytes into slices listed under
    ``UnpackBigParamInfor@@``; Paddle 2.0 files carry ``StructuredToParameterName@@``.
    Both are plain dicts of arrays, built here as the savers build them (a real big tensor
    would need gigabytes)."""
    w = np.arange(24, dtype="float32")
    sliced = {"small": np.ones(2, "float32"), "big@@.0": w[:10], "big@@.1": w[10:20], "big@@.2": w[20:],
              "UnpackBigParamInfor@@": {"big": {"OriginShape": (4, 6), "slices": ["big@@.0", "big@@.1", "big@@.2"]}}}
    named = {"fc.w": np.ones((2, 2), "float32"), "StructuredToParameterName@@": {"fc.w": "linear_0.w_0"}}
    for i, obj in enumerate((sliced, named)):
        for proto in (2, 4):
            p = str(tmp_path / f"{i}_{proto}.pdparams")
            with open(p, "wb") as f:
                pickle.dump(obj, f, protocol=proto)
            for return_numpy in (False, True):
                got = safeload.load(p, return_numpy=return_numpy)
                _equal(got, paddle.load(p, return_numpy=return_numpy))
    np.testing.assert_array_equal(safeload.load(str(tmp_path / "0_4.pdparams"), True)["big"], w.reshape(4, 6))
    assert safeload.load(str(tmp_path / "1_4.pdparams"))["fc.w"].name == "linear_0.w_0"


def test_dense_tensor_form_loads_other_eval_is_refused(tmp_path, marker):
    """A static-graph DenseTensor is saved as eval('data', {'data': array}); that form is
    answered without eval, any other expression is refused."""
    class _Dense:
        def __reduce__(self):
            return eval, ("data", {"data": np.arange(4.0)})

    class _Other:
        def __reduce__(self):
            return eval, (f"open({str(marker)!r}, 'w').write('x') and 0", {"data": np.arange(4.0)})
    for cls, ok in ((_Dense, True), (_Other, False)):
        p = str(tmp_path / f"{cls.__name__}.pdparams")
        with open(p, "wb") as f:
            pickle.dump({"w": cls()}, f)
        if ok:
            _equal(safeload.load(p, return_numpy=True), paddle.load(p, return_numpy=True))
        else:
            with pytest.raises(WeightsError, match=r"refused to load builtins\.eval"):
                safeload.load(p)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    (getattr, ("", "join")), (os.system, ("true",)), (collections.namedtuple, ("T", "a")),
    (io.BytesIO, (b"x",)), (np.load, ("x.npy",)), (time.sleep, (0,)),
])
def test_any_other_global_is_refused_by_name(tmp_path, payload):
    class _P:
        def __reduce__(self):
            return payload
    p = str(tmp_path / "w.pdparams")
    with open(p, "wb") as f:
        pickle.dump({"w": _P()}, f, protocol=2)
    with pytest.raises(WeightsError) as err:
        safeload.load(p)
    fn = payload[0]
    assert f"refused to load {fn.__module__}.{fn.__qualname__}" in str(err.value)
    assert p in str(err.value) and "\n" not in str(err.value)


def test_safetensors_are_read_wherever_weights_are(tmp_path):
    from safetensors.numpy import save_file
    src = small_cnn(1)
    state = {k: v.numpy() for k, v in src.state_dict().items()}
    folder = tmp_path / "best"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    paddle.save(small_cnn(9).state_dict(), str(folder / "model.pdparams"))
    model = small_cnn(2)
    report = hub.load_pretrained(model, str(folder))          # the folder: safetensors preferred
    assert report.file.endswith("model.safetensors") and report.ok
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
    tensors = safeload.load(str(folder / "model.safetensors"))
    assert all(isinstance(v, paddle.Tensor) for v in tensors.values())
    from ppzoo.video import weights as vw
    assert vw.load_paddlevideo_weights(small_cnn(3), str(folder / "model.safetensors")) == []


# ---------------------------------------------------------------- archives
def _state_bytes(seed=5):
    buf = io.BytesIO()
    paddle.save(small_cnn(seed).state_dict(), buf)
    return buf.getvalue()


def _tar(path, members):
    """``members``: (name, bytes or None for a folder, mode)."""
    with tarfile.open(path, "w:gz") as t:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return str(path)


def _modes(folder):
    out = {folder: os.stat(folder).st_mode}
    for d, ds, fs in os.walk(folder):
        for n in ds + fs:
            out[os.path.join(d, n)] = os.stat(os.path.join(d, n)).st_mode
    return out


def test_archive_members_get_safe_modes_whatever_they_say(tmp_path, home):  # noqa: F811
    """A setuid/setgid/sticky 0o7777 member and a `.` entry with 0777 unpack as 0644 files
    and 0755 folders (less the umask): nothing world-writable, no special bits."""
    archive = _tar(tmp_path / "modes.tar.gz", [
        (".", None, 0o777), ("./sub", None, 0o1777),
        ("./sub/model.pdparams", _state_bytes(), 0o6777), ("./run.sh", b"#!/bin/sh\n", 0o7777)])
    old = os.umask(0o022)
    try:
        report = hub.load_pretrained(small_cnn(2), archive)
    finally:
        os.umask(old)
    assert report.ok
    dest = os.path.dirname(os.path.dirname(report.file))
    modes = _modes(dest)
    assert len(modes) == 5                                  # folder, sub, 2 files, manifest
    for p, m in modes.items():
        assert m & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH) == 0, (p, oct(m))
        assert stat.S_IMODE(m) == (0o755 if stat.S_ISDIR(m) else 0o644), (p, oct(m))


def test_archive_bombs_and_member_floods_are_refused(tmp_path, home, monkeypatch):  # noqa: F811
    weights = _state_bytes()
    bomb = str(tmp_path / "bomb.zip")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.pdparams", weights)
        z.writestr("padding.bin", bytes(40 << 20))           # 40 MB of zeros in ~40 KB
    assert os.path.getsize(bomb) < 100_000
    flood = str(tmp_path / "flood.tar.gz")
    _tar(flood, [("model.pdparams", weights, 0o644)] + [(f"f{i}", b"", 0o644) for i in range(10_000)])
    unpacked = os.path.join(str(home), "weights", "unpacked")
    for archive, msg in ((bomb, "times its"), (flood, "more than 1000 members")):
        with pytest.raises(WeightsError, match=msg) as err:
            hub.load_pretrained(small_cnn(2), archive)
        assert "\n" not in str(err.value) and archive in str(err.value)
        assert os.listdir(unpacked) == []                  # the temp folder is gone
    # a size limit of its own, and each limit can be raised for an archive that is right
    monkeypatch.setenv("PPZOO_ARCHIVE_MAX_RATIO", "10000")
    monkeypatch.setenv("PPZOO_ARCHIVE_MAX_BYTES", str(10 << 20))
    with pytest.raises(WeightsError, match=f"more than {10 << 20} bytes"):
        hub.load_pretrained(small_cnn(2), bomb)
    monkeypatch.setenv("PPZOO_ARCHIVE_MAX_BYTES", str(100 << 20))
    assert hub.load_pretrained(small_cnn(2), bomb).ok
    few = _tar(tmp_path / "few.tar.gz", [("model.pdparams", weights, 0o644)] +
               [(f"f{i}", b"", 0o644) for i in range(10)])
    monkeypatch.setenv("PPZOO_ARCHIVE_MAX_FILES", "5")
    with pytest.raises(WeightsError, match="more than 5 members"):
        hub.load_pretrained(small_cnn(2), few)
    monkeypatch.setenv("PPZOO_ARCHIVE_MAX_FILES", "11")
    assert hub.load_pretrained(small_cnn(2), few).ok
    from ppzoo.hub.archive import archive_limits
    monkeypatch.setenv("PPZOO_ARCHIVE_MAX_FILES", "many")
    with pytest.raises(ConfigError, match="PPZOO_ARCHIVE_MAX_FILES='many'"):
        archive_limits()


def test_links_devices_and_duplicates_are_refused(tmp_path, home):  # noqa: F811
    weights = _state_bytes()
    link = str(tmp_path / "link.tar.gz")
    with tarfile.open(link, "w:gz") as t:
        info = tarfile.TarInfo("model.pdparams")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    dup = _tar(tmp_path / "dup.tar.gz", [("model.pdparams", weights, 0o644),
                                        ("./model.pdparams", weights, 0o644)])
    zlink = str(tmp_path / "link.zip")
    with zipfile.ZipFile(zlink, "w") as z:
        info = zipfile.ZipInfo("model.pdparams")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    for archive, msg in ((link, "is a link or device"), (dup, "appears twice"), (zlink, "is a link or device")):
        with pytest.raises(WeightsError, match=msg):
            hub.load_pretrained(small_cnn(2), archive)


def test_a_file_replaced_in_the_unpacked_cache_is_refused(server, home, tmp_path, marker):  # noqa: F811
    """The archive's hash proves the archive; the manifest written at unpacking proves
    the files unpacked from it, on every use."""
    archive = _tar(os.path.join(server.folder, "cached.tar.gz"),
                   [("net/model.pdparams", _state_bytes(5), 0o644), ("net/README", b"w", 0o644)])
    url = f"{server.base}/files/cached.tar.gz#sha256={sha256(archive)}"
    first = hub.load_pretrained(small_cnn(2), url)
    assert first.ok and hub.load_pretrained(small_cnn(3), url).file == first.file
    dest = os.path.dirname(os.path.dirname(first.file))
    assert os.path.isfile(os.path.join(dest, ".ppzoo-manifest.json"))
    with open(first.file, "rb") as f:
        original = f.read()
    # replaced by another valid state dict: refused, naming the file
    with open(first.file, "wb") as f:
        f.write(_state_bytes(9))
    with pytest.raises(WeightsError, match="was replaced since") as err:
        hub.load_pretrained(small_cnn(2), url)
    assert first.file in str(err.value) and "\n" not in str(err.value)
    # a crafted file put in its place is refused the same way, before it is read
    craft(first.file, marker)
    with pytest.raises(WeightsError, match="was replaced since"):
        hub.load_pretrained(small_cnn(2), url)
    assert not marker.exists()
    # a second weights file added beside it would change which one is taken
    with open(first.file, "wb") as f:
        f.write(original)
    assert hub.load_pretrained(small_cnn(2), url).ok      # restored: accepted again
    with open(os.path.join(os.path.dirname(first.file), "other.pdparams"), "wb") as f:
        f.write(original)
    with pytest.raises(WeightsError, match="other.pdparams was added since"):
        hub.load_pretrained(small_cnn(2), url)
    # a folder unpacked by an older version (no manifest) is unpacked again
    import shutil
    shutil.rmtree(dest)
    os.makedirs(os.path.join(dest, "net"))
    with open(os.path.join(dest, "net", "model.pdparams"), "wb") as f:
        f.write(_state_bytes(9))
    model = small_cnn(6)
    assert hub.load_pretrained(model, url).file == first.file
    state = {k: v.numpy() for k, v in small_cnn(5).state_dict().items()}
    for k, v in model.state_dict().items():                 # the archive's weights, not seed 9's
        np.testing.assert_array_equal(v.numpy(), state[k])


# ---------------------------------------------------------------- configs
def _alias_bomb(levels=7, width=9):
    lines = ["a: &a [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Seven levels of nine aliases (254 bytes) stand for 9**7 values; merging a config
    expanded them one by one (1.5 s and 120 MB before).  Aliases that expand a config past
    100,000 values (or refer to themselves) are refused as soon as the file is read, with
    one line naming the file, the line and the alias; the aliases yaml.dump writes load."""
    from ppzoo.core.config import load_config, yaml_load
    bomb = tmp_path / "bomb.yml"
    bomb.write_text(_alias_bomb())
    assert len(bomb.read_bytes()) < 400
    with pytest.raises(ConfigError) as err:
        load_config(str(bomb))
    msg = str(err.value)
    assert msg.startswith(f"{bomb}: line 6: the YAML alias *e is refused: the config would "
                          "expand to more than 100000 values") and "\n" not in msg
    loop = tmp_path / "loop.yml"
    loop.write_text("model: &m {type: SmallCNN, again: [*m]}\n")
    with pytest.raises(ConfigError, match="line 1: the YAML alias \\*m is refused: it refers to itself"):
        load_config(str(loop))
    # a merge key and a value yaml.dump shares between two keys still load
    merge = tmp_path / "merge.yml"
    merge.write_text("base: &b {lr: 0.1}\ntrain:\n  <<: *b\n")
    assert yaml_load(merge.read_text())["train"] == {"lr": 0.1}
    shared = {"type": "SmallCNN"}
    assert yaml_load(yaml.safe_dump({"model": shared, "teacher": shared})) == \
        {"model": shared, "teacher": shared}
    anchored = tmp_path / "anchored.yml"
    anchored.write_text("model: &m {type: SmallCNN}\n")
    assert load_config(str(anchored))["model"] == {"type": "SmallCNN"}
    # a weights table is read by the same loader
    with pytest.raises(ConfigError, match="alias \\*e is refused"):
        hub.load_table(str(bomb))
    # no shipped config or table uses an alias
    for d, _, files in os.walk(os.path.join(ROOT, "configs")):
        for f in files:
            if f.endswith((".yml", ".yaml")):
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    yaml_load(fh)
    hub.load_table(hub.DEFAULT_TABLE)


def test_protocol_5_array_pickles_load_object_arrays_are_refused(tmp_path, marker):
    """Python's default pickle protocol (5) writes arrays through ``_frombuffer``: a plain
    pickle of arrays (FootballAction's feature ``.pkl``) reads back exactly; the same global
    asked for an object array (whose reading would run code) is refused."""
    feats = {"image_feature": np.random.default_rng(0).normal(size=(7, 5)).astype("float32"),
             "pcm_feature": np.asfortranarray(np.arange(12, dtype="int64").reshape(3, 4))}
    p = str(tmp_path / "video.pkl")
    with open(p, "wb") as f:
        pickle.dump(feats, f, protocol=5)
    got = safeload.unpickle(p)
    for k, v in feats.items():
        np.testing.assert_array_equal(got[k], v)
        assert got[k].dtype == v.dtype

    from numpy.core.numeric import _frombuffer

    class _Obj:
        def __reduce__(self):
            return _frombuffer, (b"\0" * 8, np.dtype(object), (1,), "C")
    p = str(tmp_path / "obj.pkl")
    with open(p, "wb") as f:
        pickle.dump({"x": _Obj()}, f, protocol=5)
    with pytest.raises(WeightsError, match=r"refused to load numpy\.core\.numeric\._frombuffer"):
        safeload.unpickle(p)
    assert not marker.exists()
