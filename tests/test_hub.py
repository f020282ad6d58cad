"""Pretrained weights: downloads from a real HTTP server on loopback (some of whose
responses are truncated, corrupted or failing), the cache, the weights table, and
loading with a report.  Nothing here reaches the internet."""
import collections
import hashlib
import http.server
import os
import pickle
import threading

import numpy as np
import paddle
import paddle.nn as nn
import pytest
import yaml

import ppzoo
from ppzoo import hub
from ppzoo.core.errors import ConfigError, WeightsError
from ppzoo.models.classification.cnn import SmallCNN

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class _Handler(http.server.BaseHTTPRequestHandler):
    """/files/X serves X; /truncate/X sends half of X under the full Content-Length;
    /flaky/X does so only the first time; /corrupt/X flips a byte; /status/N answers
    HTTP N."""
    folder = None
    counts = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.counts[self.path] += 1
        _, kind, rest = self.path.split("?")[0].split("/", 2)
        if kind == "status":
            self.send_error(int(rest))
            return
        path = os.path.join(self.folder, rest)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        body = data
        if kind == "truncate" or (kind == "flaky" and self.counts[self.path] == 1):
            body = data[: len(data) // 2]
        elif kind == "corrupt":
            body = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    counts = collections.Counter()
    handler = type("H", (_Handler,), {"folder": str(folder), "counts": counts})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield collections.namedtuple("Server", "base folder counts")(base, folder, counts)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty PPZOO_HOME per test."""
    h = tmp_path / "ppzoo_home"
    monkeypatch.setenv("PPZOO_HOME", str(h))
    monkeypatch.setenv("PPZOO_DOWNLOAD_RETRIES", "2")
    monkeypatch.delenv("PPZOO_WEIGHTS_TABLE", raising=False)
    return h


def cache_files(home):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(home) for f in fs)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def small_cnn(seed, **kw):
    paddle.seed(seed)
    kw.setdefault("width", 8)
    kw.setdefault("in_channels", 1)
    return SmallCNN(**kw)


def publish(server, name, model):
    """Save ``model``'s state dict where the server serves it; returns (sha256, state)."""
    path = os.path.join(server.folder, name)
    paddle.save(model.state_dict(), path)
    return sha256(path), {k: v.numpy() for k, v in model.state_dict().items()}


def assert_loaded(model, state, keys):
    own = model.state_dict()
    for k in keys:
        np.testing.assert_array_equal(own[k].numpy(), state[k])


# ---------------------------------------------------------------- downloads and cache
def test_download_verifies_and_second_call_hits_cache(server, home):
    digest, state = publish(server, "a.pdparams", small_cnn(1))
    url = f"{server.base}/files/a.pdparams"
    path = hub.download(url, sha256=digest, backoff=0)
    assert path.startswith(str(home)) and sha256(path) == digest
    assert server.counts["/files/a.pdparams"] == 1
    assert hub.download(url, sha256=digest, backoff=0) == path
    model = small_cnn(2)
    report = hub.load_pretrained(model, f"{url}#sha256={digest}")
    assert server.counts["/files/a.pdparams"] == 1          # both served from the cache
    assert report.ok and len(report.loaded) == len(state)
    assert_loaded(model, state, state)
    assert cache_files(home) == [path]                      # no temp file left behind


def test_sha256_mismatch_raises_and_caches_nothing(server, home):
    publish(server, "b.pdparams", small_cnn(1))
    url = f"{server.base}/files/b.pdparams"
    with pytest.raises(WeightsError, match="sha256 mismatch") as err:
        hub.download(url, sha256="0" * 64, backoff=0)
    assert url in str(err.value)
    assert server.counts["/files/b.pdparams"] == 1          # another file: not retried
    assert cache_files(home) == [] and not os.listdir(home / "weights")


def test_corrupted_body_fails_its_hash(server, home):
    digest, _ = publish(server, "c.pdparams", small_cnn(1))
    url = f"{server.base}/corrupt/c.pdparams"
    with pytest.raises(WeightsError, match="mismatch"):
        hub.download(url, sha256=digest, backoff=0)
    assert cache_files(home) == []


def test_truncated_body_is_retried_then_fails_with_empty_cache(server, home):
    digest, _ = publish(server, "d.pdparams", small_cnn(1))
    url = f"{server.base}/truncate/d.pdparams"
    with pytest.raises(WeightsError, match="after 2 attempt") as err:
        hub.download(url, sha256=digest, backoff=0)
    assert url in str(err.value) and "Content-Length" in str(err.value)
    assert server.counts["/truncate/d.pdparams"] == 2        # bounded retries
    assert cache_files(home) == []
    # with no hash to check, the short body is still caught by its length
    with pytest.raises(WeightsError, match="Content-Length"):
        hub.download(url, retries=1)
    assert cache_files(home) == []


def test_a_dropped_first_attempt_is_retried(server, home):
    digest, _ = publish(server, "f.pdparams", small_cnn(1))
    path = hub.download(f"{server.base}/flaky/f.pdparams", sha256=digest, backoff=0)
    assert server.counts["/flaky/f.pdparams"] == 2 and sha256(path) == digest
    assert cache_files(home) == [path]


def test_concurrent_downloads_of_one_url(server, home):
    """Two processes (ranks) may download the same file at once: each writes its own
    temp file and the renames are atomic, so both get a verified file."""
    digest, _ = publish(server, "g.pdparams", small_cnn(1))
    url = f"{server.base}/files/g.pdparams"
    results, errors = [], []

    def fetch():
        try:
            results.append(hub.download(url, sha256=digest, backoff=0, progress=False))
        except Exception as err:  # noqa: BLE001
            errors.append(err)
    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert len(results) == 3 and sha256(results[0]) == digest
    assert cache_files(home) == results[:1]                 # no temp file left behind


def test_temp_file_of_a_killed_download_is_cleared(server, home):
    digest, _ = publish(server, "h.pdparams", small_cnn(1))
    url = f"{server.base}/files/h.pdparams"
    folder = os.path.dirname(hub.cache_path(url, sha256=digest))
    os.makedirs(folder)
    stale, live = os.path.join(folder, ".part-old"), os.path.join(folder, ".part-live")
    for p in (stale, live):
        open(p, "wb").close()
    os.utime(stale, (0, 0))
    path = hub.download(url, sha256=digest)
    assert cache_files(home) == sorted([path, live])          # a fresh one may be in use


def test_http_errors(server, home, tmp_path):
    with pytest.raises(WeightsError, match="No such file"):
        hub.download((tmp_path / "absent.pdparams").as_uri(), backoff=0)
    with pytest.raises(WeightsError, match="HTTP 404"):
        hub.download(f"{server.base}/files/nothing.pdparams", backoff=0)
    assert server.counts["/files/nothing.pdparams"] == 1     # 404 is not retried
    with pytest.raises(WeightsError, match="HTTP 503"):
        hub.download(f"{server.base}/status/503", backoff=0)
    assert server.counts["/status/503"] == 2
    assert cache_files(home) == []


def test_cached_file_damaged_on_disk_is_fetched_again(server, home):
    digest, _ = publish(server, "e.pdparams", small_cnn(1))
    for url, kw in ((f"{server.base}/files/e.pdparams", {"sha256": digest}),
                    (f"{server.base}/files/e.pdparams?nohash", {})):
        n0 = server.counts[url[len(server.base):]]
        path = hub.download(url, backoff=0, **kw)
        if not kw:   # a hash-less URL records the sha256 of its first download
            with open(path + ".sha256") as f:
                assert f.read().split()[0] == digest
        with open(path, "r+b") as f:
            f.seek(50)
            f.write(b"\x00\x01\x02")
        assert hub.download(url, backoff=0, **kw) == path
        assert sha256(path) == digest
        assert server.counts[url[len(server.base):]] == n0 + 2


def test_file_url_and_folder(tmp_path, home):
    model = small_cnn(3)
    ckpt = tmp_path / "run" / "best"
    ckpt.mkdir(parents=True)
    paddle.save(model.state_dict(), str(ckpt / "model.pdparams"))
    target = small_cnn(4)
    assert hub.load_pretrained(target, str(ckpt)).ok                    # checkpoint folder
    assert hub.load_pretrained(small_cnn(5), (ckpt / "model.pdparams").as_uri()).ok
    assert len(cache_files(home)) == 2                                  # file + its record
    with pytest.raises(WeightsError, match="holds no model.pdparams"):
        hub.load_pretrained(target, str(tmp_path / "run"))
    with pytest.raises(WeightsError, match="not found"):
        hub.load_pretrained(target, str(tmp_path / "nope.pdparams"))


def test_weights_inside_archives(server, home, tmp_path):
    import tarfile
    import zipfile
    model = small_cnn(5)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    inner = tmp_path / "pack" / "resnet_tiny"
    inner.mkdir(parents=True)
    paddle.save(model.state_dict(), str(inner / "model.pdparams"))
    (inner / "README").write_text("weights")
    archive = os.path.join(server.folder, "tiny.tar.gz")
    with tarfile.open(archive, "w:gz") as t:
        t.add(str(inner), arcname="resnet_tiny")
    url = f"{server.base}/files/tiny.tar.gz#sha256={sha256(archive)}"
    target = small_cnn(6)
    report = hub.load_pretrained(target, url)
    assert report.ok and report.file.endswith(os.path.join("resnet_tiny", "model.pdparams"))
    assert_loaded(target, state, state)
    assert hub.load_pretrained(small_cnn(7), url).file == report.file     # unpacked once
    # members that would land outside the folder are refused, nothing is left behind
    evil = str(tmp_path / "evil.tar")
    with tarfile.open(evil, "w") as t:
        t.add(str(inner / "model.pdparams"), arcname="../model.pdparams")
    before = cache_files(home)
    with pytest.raises(WeightsError, match="outside its folder"):
        hub.load_pretrained(target, evil)
    assert cache_files(home) == before
    # two weights files and no model.pdparams: the error lists them
    two = str(tmp_path / "two.zip")
    with zipfile.ZipFile(two, "w") as z:
        z.write(str(inner / "model.pdparams"), "a.pdparams")
        z.write(str(inner / "model.pdparams"), "b.pdparams")
    with pytest.raises(WeightsError, match="a.pdparams, b.pdparams"):
        hub.load_pretrained(target, two)


# ---------------------------------------------------------------- the weights table
def write_table(tmp_path, entries):
    path = tmp_path / "table.yml"
    path.write_text(yaml.safe_dump(entries))
    return str(path)


def test_zoo_name_resolves_through_the_table(server, home, tmp_path, monkeypatch):
    digest, state = publish(server, "zoo.pdparams", small_cnn(7))
    entry = {"url": f"{server.base}/files/zoo.pdparams", "sha256": digest,
             "model": {"type": "SmallCNN", "width": 8}, "source": "test", "licence": "test"}
    monkeypatch.setenv("PPZOO_WEIGHTS_TABLE", write_table(tmp_path, {"tiny_cnn": entry}))
    model = small_cnn(8)
    report = hub.load_pretrained(model, "tiny_cnn")
    assert report.ok
    assert_loaded(model, state, state)
    assert server.counts["/files/zoo.pdparams"] == 1
    # weights published for another architecture load where they fit, with a warning
    import logging
    records = []
    logger = logging.getLogger("ppzoo.test_hub")
    logger.setLevel(logging.INFO)
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        report = hub.load_pretrained(_Seg(), "tiny_cnn", logger=logger)
    finally:
        logger.removeHandler(handler)
    assert report.mapping == "added 'backbone.'"
    messages = [r.getMessage() for r in records]
    assert any("was published for" in m and r.levelno == logging.WARNING
               for m, r in zip(messages, records))
    assert any(m.startswith("pretrained tiny_cnn: loaded") for m in messages)
    with pytest.raises(WeightsError, match="did you mean tiny_cnn"):
        hub.load_pretrained(model, "tiny_cn")
    # a wrong hash in the table is caught at download
    bad = dict(entry, url=f"{server.base}/files/zoo.pdparams?v2", sha256="f" * 64)
    with pytest.raises(WeightsError, match="mismatch"):
        hub.load_pretrained(model, "bad", table=write_table(tmp_path, {"bad": bad}))


def test_malformed_table_entries_name_the_entry(tmp_path):
    base = {"url": "https://x/y.pdparams", "model": {"type": "ResNet"}, "source": "s", "licence": "l"}
    cases = [({**base}, "exactly one of sha256 or md5"),
             ({**base, "md5": "a" * 32}, "hash_note"),
             ({**base, "sha256": "xyz"}, "64 hex digits"),
             ({**base, "sha256": "a" * 64, "licens": "x"}, "did you mean 'licence'"),
             ({**base, "sha256": "a" * 64, "url": "ftp://x"}, "url must be")]
    for entry, msg in cases:
        with pytest.raises(ConfigError, match=msg) as err:
            hub.load_table(write_table(tmp_path, {"broken": entry}))
        assert "broken" in str(err.value)


def test_shipped_table_and_docs_list_every_entry():
    from ppzoo.hub.__main__ import markdown_table
    table = hub.load_table(hub.DEFAULT_TABLE)
    assert {"resnet18_imagenet", "resnet50_imagenet", "mobilenet_v2_imagenet"} <= set(table)
    for name, e in table.items():
        assert e["url"].startswith("https://"), name
        ppzoo.core.builder.MODELS.get(e["model"]["type"])    # fits a registered model
    # the md5s are paddle.vision's own, copied from the installed package
    from paddle.vision.models import resnet
    assert table["resnet50_imagenet"]["md5"] == resnet.model_urls["resnet50"][1]
    with open(os.path.join(ROOT, "docs", "weights.md"), encoding="utf-8") as f:
        assert markdown_table(table) in f.read(), \
            "docs/weights.md is stale: paste `python -m ppzoo.hub list --markdown`"


def test_cli_list_and_download(server, home, tmp_path, capsys):
    from ppzoo.hub.__main__ import main
    digest, _ = publish(server, "cli.pdparams", small_cnn(9))
    table = write_table(tmp_path, {"cli_cnn": {
        "url": f"{server.base}/files/cli.pdparams", "sha256": digest,
        "model": {"type": "SmallCNN"}, "source": "t", "licence": "t"}})
    assert main(["--table", table, "list"]) == 0
    assert "cli_cnn" in capsys.readouterr().out
    assert main(["--table", table, "download", "cli_cnn"]) == 0
    assert str(home) in capsys.readouterr().out
    assert main(["--table", table, "download", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: pretrained 'nope'")


# ---------------------------------------------------------------- loading
def test_report_missing_unexpected_and_shape_mismatch(tmp_path):
    src = small_cnn(1, num_classes=10, depth=2)
    state = {k: v.numpy() for k, v in src.state_dict().items()}
    state["extra.weight"] = np.ones(3, "float32")
    path = str(tmp_path / "w.pdparams")
    paddle.save(state, path)
    # depth 3: a new block (missing) and a wider head (shape mismatch)
    model = small_cnn(2, num_classes=4, depth=3)
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    report = hub.load_pretrained(model, path)
    skipped = {k: (a, b) for k, a, b in report.skipped}
    assert skipped == {"classifier.weight": ((16, 10), (32, 4)), "classifier.bias": ((10,), (4,))}
    assert report.unexpected == ["extra.weight"]
    new_block = [k for k in before if k.startswith("features.") and k not in state]
    assert new_block and set(report.missing) == set(new_block) | {"classifier.weight", "classifier.bias"}
    loaded = [k for k in state if k.startswith("features.")]
    assert sorted(report.loaded) == sorted(loaded)
    assert_loaded(model, state, loaded)
    for k in report.missing:                                  # left as initialised
        np.testing.assert_array_equal(model.state_dict()[k].numpy(), before[k])
    text = str(report)
    assert "classifier.weight [16, 10] -> [32, 4]" in text and "extra.weight" in text

    # strict: the same differences are an error, and nothing is loaded
    model = small_cnn(2, num_classes=4, depth=3)
    with pytest.raises(WeightsError, match="strict"):
        hub.load_pretrained(model, path, strict=True)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_not_a_state_dict_names_the_file(tmp_path):
    model = small_cnn(1)
    junk = tmp_path / "junk.pdparams"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(WeightsError, match="junk.pdparams is not a Paddle state dict"):
        hub.load_pretrained(model, str(junk))
    listed = tmp_path / "list.pdparams"
    with open(listed, "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(WeightsError, match="list.pdparams is not a Paddle state dict"):
        hub.load_pretrained(model, str(listed))
    other = tmp_path / "other.pdparams"
    paddle.save(nn.Linear(3, 3).state_dict(), str(other))
    with pytest.raises(WeightsError, match="no tensor of .*fits the model"):
        hub.load_pretrained(model, str(other))


class _Seg(nn.Layer):
    """A backbone + head, as a segmentation model loads a classifier's backbone."""

    def __init__(self):
        super().__init__()
        self.backbone = small_cnn(11)
        self.head = nn.Conv2D(16, 3, 1)


def test_mapping_form_prefix_and_exclude(tmp_path):
    src = small_cnn(1)
    state = {k: v.numpy() for k, v in src.state_dict().items()}
    path = str(tmp_path / "cls.pdparams")
    paddle.save(src.state_dict(), path)
    seg = _Seg()
    report = hub.load_pretrained(seg, {"path": path, "prefix": "backbone.",
                                       "exclude": ["classifier.*"]})
    assert sorted(report.excluded) == ["classifier.bias", "classifier.weight"]
    assert not report.unexpected and not report.skipped
    assert set(report.missing) == {"backbone.classifier.weight", "backbone.classifier.bias",
                                   "head.weight", "head.bias"}
    for k in state:
        if k.startswith("features."):
            np.testing.assert_array_equal(seg.state_dict()["backbone." + k].numpy(), state[k])
    # the other way round: take the backbone out of a segmentation checkpoint
    seg_path = str(tmp_path / "seg.pdparams")
    paddle.save(seg.state_dict(), seg_path)
    cls = small_cnn(12)
    report = hub.load_pretrained(cls, {"path": seg_path, "strip_prefix": "backbone."})
    assert report.ok and "2 file keys outside 'backbone.' ignored" in report.mapping
    # without prefixes the loader finds the `backbone.` mapping itself
    report = hub.load_pretrained(_Seg(), path)
    assert report.mapping == "added 'backbone.'" and len(report.loaded) == len(state)
    with pytest.raises(ConfigError, match="did you mean 'prefix'"):
        hub.load_pretrained(cls, {"path": path, "prefx": "backbone."})
    with pytest.raises(ConfigError, match="exactly one of path, url or name"):
        hub.load_pretrained(cls, {"prefix": "backbone."})


def test_paddle_vision_names_load_into_ppzoo_wrappers(tmp_path):
    """paddle.vision publishes unprefixed names; ppzoo's wrappers hold them under net."""
    from paddle.vision.models import MobileNetV2 as VisionMobileNetV2
    paddle.seed(0)
    src = VisionMobileNetV2(scale=0.25, num_classes=10)
    path = str(tmp_path / "mbv2.pdparams")
    paddle.save(src.state_dict(), path)
    state = {k: v.numpy() for k, v in src.state_dict().items()}
    model = ppzoo.core.builder.build_model({"type": "MobileNetV2", "scale": 0.25, "num_classes": 4})
    report = hub.load_pretrained(model, path)
    assert report.mapping == "added 'net.'"
    assert {k for k, _, _ in report.skipped} == {"net.classifier.1.weight", "net.classifier.1.bias"}
    assert not report.unexpected and len(report.loaded) == len(state) - 2
    np.testing.assert_array_equal(model.state_dict()["net.features.0.0.weight"].numpy(),
                                  state["features.0.0.weight"])


def test_safetensors_file(tmp_path):
    from safetensors.numpy import save_file
    src = small_cnn(1)
    state = {k: v.numpy() for k, v in src.state_dict().items()}
    path = str(tmp_path / "w.safetensors")
    save_file({k: v.astype("float64") for k, v in state.items()}, path)   # cast on load
    model = small_cnn(2)
    assert hub.load_pretrained(model, path).ok
    assert_loaded(model, state, state)
    assert all(str(v.dtype) == "paddle.float32" for v in model.state_dict().values())


# ---------------------------------------------------------------- through the Trainer
def test_trainer_loads_pretrained_from_url(server, home, digits_cfg, tmp_path):
    digest, state = publish(server, "digits.pdparams", small_cnn(21, num_classes=10, width=8))
    cfg = dict(digits_cfg)
    cfg["pretrained"] = f"{server.base}/files/digits.pdparams#sha256={digest}"
    cfg["train"] = dict(cfg["train"], epochs=1)
    trainer = ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run"))
    assert_loaded(trainer.model, state, state)               # weights came from the server
    trainer.train()
    assert server.counts["/files/digits.pdparams"] == 1
    with open(tmp_path / "run" / "train.log", encoding="utf-8") as f:
        log = f.read()
    assert f"loaded {len(state)} tensors, 0 missing" in log


def test_a_wrong_hash_never_removes_the_verified_file(server, home):
    digest, _ = publish(server, "w.pdparams", small_cnn(1))
    url = f"{server.base}/files/w.pdparams"
    good = hub.download(url, sha256=digest, backoff=0)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        hub.download(url, sha256="0" * 64, backoff=0)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        hub.load_pretrained(small_cnn(2), f"{url}#sha256={'1' * 64}")
    assert cache_files(home) == [good] and sha256(good) == digest
    n = server.counts["/files/w.pdparams"]
    assert hub.download(url, sha256=digest, backoff=0) == good       # still served from the cache
    assert server.counts["/files/w.pdparams"] == n
    assert hub.cache_path(url, sha256=digest) == good != hub.cache_path(url)
    assert hub.cache_path(f"{url}#sha256={digest}") == good


def test_cached_weights_are_readable_by_others_as_the_umask_allows(server, home):
    digest, _ = publish(server, "m.pdparams", small_cnn(1))
    old = os.umask(0o022)
    try:
        path = hub.download(f"{server.base}/files/m.pdparams", sha256=digest, backoff=0)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
