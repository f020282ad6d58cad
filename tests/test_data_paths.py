"""One data-path rule for every dataset (ppzoo/core/paths.py, docs/config.md#data-paths):
a config's relative data path is looked up under $PPZOO_DATA, then the working directory,
then the repository, so a config reads the same data from any folder."""
import glob
import json
import os
import re

import numpy as np
import yaml

import ppzoo  # noqa: F401  (registers every component)
from ppzoo.core import load_config, paths
from ppzoo.core.builder import DATASETS
from ppzoo.core.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f for f in glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True)
                 if "_base_" not in os.path.relpath(f, ROOT).split(os.sep)[1:-1]
                 and not os.path.basename(f).startswith("_base"))
SECTIONS = ("train_dataset", "val_dataset", "test_dataset", "dataset")


def _layout(tmp_path, monkeypatch, rel):
    """``rel`` created in a data root, a working directory and a repository (each marked)."""
    places = {}
    for name in ("data", "cwd", "repo"):
        p = tmp_path / name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(name)
        places[name] = p
    monkeypatch.setenv("PPZOO_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(paths, "REPO_ROOT", str(tmp_path / "repo"))
    return places


def test_the_data_root_wins_then_the_working_directory_then_the_repository(tmp_path, monkeypatch):
    places = _layout(tmp_path, monkeypatch, "set/a.txt")
    assert paths.resolve_data_path("set/a.txt") == str(places["data"])
    places["data"].unlink()
    assert paths.resolve_data_path("set/a.txt") == str(places["cwd"])
    places["cwd"].unlink()
    assert paths.resolve_data_path("set/a.txt") == str(places["repo"])
    places["repo"].unlink()  # found nowhere: named under the data root, for the error
    assert paths.resolve_data_path("set/a.txt") == str(tmp_path / "data" / "set" / "a.txt")
    assert paths.resolve_data_path(str(places["cwd"])) == str(places["cwd"])  # absolute: as given
    assert paths.resolve_data_path(None) is None


def test_an_unset_or_empty_data_root_is_the_shared_folder_beside_the_repository(monkeypatch):
    default = os.path.abspath(os.path.join(paths.REPO_ROOT, "..", "shared", "data"))
    monkeypatch.delenv("PPZOO_DATA", raising=False)
    assert paths.data_root() == default
    monkeypatch.setenv("PPZOO_DATA", "")
    assert paths.data_root() == default


def _image_folder(root):
    from PIL import Image
    for cls in ("a", "b"):
        os.makedirs(os.path.join(root, cls))
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(os.path.join(root, cls, "0.png"))


def test_every_kind_of_dataset_resolves_through_the_data_root(tmp_path, monkeypatch):
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("PPZOO_DATA", str(data))
    monkeypatch.chdir(work)
    monkeypatch.setattr(paths, "REPO_ROOT", str(tmp_path / "repo"))
    _image_folder(str(data / "imgs"))
    (data / "imgs" / "list.txt").write_text("a/0.png 0\nb/0.png 1\n")
    (data / "glue").mkdir()
    (data / "glue" / "t.tsv").write_text("sentence\tlabel\nhello there\t1\n")
    tok = tmp_path / "tok"  # a local vocab folder: the tokenizer is read lazily, never here
    tok.mkdir()
    (tok / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    (data / "ltr").mkdir()
    (data / "ltr" / "r.train").write_text("1 1:0.5\n0 1:0.1\n")
    (data / "ltr" / "r.train.query").write_text("2\n")
    (data / "skel").mkdir()
    np.save(data / "skel" / "x.npy", np.zeros((2, 2, 8, 25, 1), np.float32))
    np.save(data / "skel" / "y.npy", np.array([0, 1]))
    (data / "clips").mkdir()
    (data / "clips" / "v.mp4").write_bytes(b"")
    (data / "v.list").write_text("v.mp4 0\n")
    from PIL import Image
    (data / "seg").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(data / "seg" / "i.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(data / "seg" / "m.png")
    (data / "seg" / "l.txt").write_text("i.png m.png\n")
    built = {
        "ImageFolder": {"root": "imgs"},
        "ImageList": {"list_file": "imgs/list.txt"},
        "GlueTSV": {"path": "glue/t.tsv", "text_a": "sentence", "label": "label", "labels": ["0", "1"],
                    "tokenizer": str(tok)},
        "LTRDataset": {"path": "ltr/r.train"},
        "SkeletonDataset": {"file_path": "skel/x.npy", "label_path": "skel/y.npy"},
        "VideoDataset": {"file_path": "v.list", "data_prefix": "clips"},
        "SegFileList": {"root": "seg", "file_list": "l.txt", "num_classes": 2},
    }
    for kind, args in built.items():
        try:
            ds = DATASETS.build(dict(args, type=kind))
        except DataError as err:
            raise AssertionError(f"{kind}: {err}") from None
        assert len(ds) >= 1, kind


def _datasets(cfg):
    for key in SECTIONS:
        node = cfg.get(key)
        if isinstance(node, dict) and node.get("type") in DATASETS:
            yield key, node


#: configs whose datasets cannot be built here, and why (asserted exactly below)
from _config_needs import MISSING_DATA  # noqa: E402

NEEDS_EARLIER_STEP = {"pssl/camvid_pretrain.yml", "pssl/camvid_pretrain_ext.yml"}
ABSENT_HERE = MISSING_DATA  # configs whose data is not in the shared data folder


def test_every_configs_datasets_build_from_another_working_directory(tmp_path, monkeypatch, data_root):
    """From an empty folder (not the repository), every config's datasets build, except those
    whose data is not in the shared data or that read an earlier step's output."""
    monkeypatch.chdir(tmp_path)
    # the data root as the run would find it (env or <repo>/../shared/data), fixed before the
    # repository is hidden: the default is relative to the repository
    monkeypatch.setenv("PPZOO_DATA", paths.data_root())
    monkeypatch.setattr(paths, "REPO_ROOT", str(tmp_path / "no_repo"))
    built, skipped = {}, {}
    for path in CONFIGS:
        name = os.path.relpath(path, os.path.join(ROOT, "configs"))
        for key, node in _datasets(load_config(path)):
            k = json.dumps(node, sort_keys=True, default=str)
            try:
                if k not in built:
                    built[k] = len(DATASETS.build(node, key_path=key))
            except DataError as err:
                skipped[name] = str(err)
    step = {n for n, e in skipped.items() if re.search(r"[/ ]output/", e)}
    assert step == NEEDS_EARLIER_STEP, skipped
    assert set(skipped) - step == ABSENT_HERE, skipped
    assert built and min(built.values()) > 0
    assert os.listdir(tmp_path) == []


def test_no_config_or_documented_command_names_a_machine_relative_data_path():
    """``../shared/data`` (or any ``../``) in a data path works from one folder only."""
    bad = []
    for path in glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for n, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"(^|[\s:\[{,'\"])\.\./", code) and "_base_" not in code:
                bad.append(f"{path}:{n}: {line.strip()}")
        yaml.safe_load(text)
    for path in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "benchmarks", "*.py")) + [os.path.join(ROOT, "README.md")]:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if re.search(r"\.\./shared/data/\w", line) or '"..", "shared"' in line:
                    bad.append(f"{path}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
