"""PSSL: explainers find the region a classifier looks at, consensus, released format,
and the resumable generation tool."""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import pytest
from PIL import Image

import ppzoo  # noqa: F401
from ppzoo.core.errors import ConfigError, DataError
from ppzoo.pssl.consensus import Consensus, aggregate, normalise
from ppzoo.pssl.explainers import EXPLAINERS, build_explainer
from ppzoo.pssl.released import read_released_label, scan_released

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RegionMask(nn.Layer):
    def __init__(self, hw, box):
        super().__init__()
        m = np.zeros((1, 1) + hw, np.float32)
        m[..., box[0]:box[1], box[2]:box[3]] = 1
        self.m = paddle.to_tensor(m)

    def forward(self, x):
        return x * self.m


class RegionClassifier(nn.Layer):
    """Logits depend only on the pixels inside ``box``: the right explanation is known."""

    def __init__(self, hw=(32, 32), box=(0, 16, 0, 16)):
        super().__init__()
        conv = nn.Conv2D(3, 4, 1)
        conv.weight.set_value(np.abs(np.random.default_rng(0).normal(size=(4, 3, 1, 1))).astype("float32") + 0.1)
        conv.bias.set_value(np.zeros(4, "float32"))
        self.features = nn.Sequential(RegionMask(hw, box), conv)
        self.classifier = nn.Linear(4, 2)
        w = np.ones((4, 2), "float32")
        w[:, 1] = -1
        self.classifier.weight.set_value(w)
        self.classifier.bias.set_value(np.zeros(2, "float32"))
        self.num_classes = 2

    def forward(self, x):
        return self.classifier(self.features(x).mean(axis=[2, 3]))


@pytest.mark.parametrize("name,kw", [("CAM", {}), ("GradCAM", {}), ("SmoothGrad", {"num_samples": 4}),
                                     ("LIME", {"num_samples": 100, "num_segments": 16, "segmentation": "slic",
                                               "hide": "image_mean", "target": "logit"})])
def test_explainer_concentrates_on_the_region_the_logit_depends_on(name, kw):
    paddle.seed(0)
    model = RegionClassifier()
    x = np.random.default_rng(1).uniform(0, 0.3, (2, 3, 32, 32)).astype("float32")
    x[:, :, 4:12, 4:12] += 0.6  # an object inside the region the logit reads
    x[:, :, 20:28, 20:28] += 0.6  # and an equally salient one the logit ignores
    sal = build_explainer(dict(type=name, **kw), model)(x, [[0], [0]])
    assert len(sal) == 2 and all(m.shape == (1, 32, 32) for m in sal)  # only the asked class
    for i in range(2):
        s = sal[i][0]
        inside = s[:16, :16].sum() / max(s.sum(), 1e-12)
        assert s.sum() > 0
        assert inside > (0.8 if name == "LIME" else 0.95), (name, inside)


def test_explainer_registry_and_missing_attribute():
    assert {"CAM", "GradCAM", "SmoothGrad", "LIME"} <= set(EXPLAINERS.keys())
    model = nn.Sequential(nn.Conv2D(3, 2, 1))
    model.num_classes = 2
    with pytest.raises(ConfigError, match="no sub-layer .classifier"):
        build_explainer({"type": "CAM"}, model)(np.zeros((1, 3, 8, 8), "float32"), [[0]])
    with pytest.raises(ConfigError, match="head.7"):
        build_explainer({"type": "GradCAM", "layer": "head.7"}, model)(np.zeros((1, 3, 8, 8), "float32"), [[0]])


def test_normalise_and_aggregate():
    s = np.random.default_rng(0).normal(size=(3, 2, 5, 6)).astype("float32")
    for how in ("minmax", "rank", "max"):
        n = normalise(np.abs(s), how)
        assert n.max() <= 1 + 1e-6 and n.min() >= 0
    assert np.allclose(normalise(s, "minmax").reshape(3, 2, -1).max(-1), 1)
    assert np.allclose(aggregate(np.stack([np.zeros(4), np.ones(4)]), "mean"), 0.5)
    with pytest.raises(ConfigError, match="normalise"):
        normalise(s, "zscore")


def _two_object_maps():
    """Class 0 on the left block, class 2 on the right block, nothing elsewhere."""
    m = np.zeros((3, 10, 20), np.float32)
    m[0, 2:8, 1:8] = 1.0
    m[2, 2:8, 12:19] = 1.0
    m[0, 2:8, 8:9] = 0.3  # a weak fringe: ignored between the thresholds
    return m


def test_consensus_several_classes_background_ignore_confidence():
    a = _two_object_maps()
    b = a.copy()
    b[2] = 0
    b[2, 2:8, 12:15] = 1  # the second member sees less of class 2
    con = Consensus(3, background=3, ignore_index=255, fg_threshold=0.5, bg_threshold=0.2)
    lab, conf, cons = con(np.stack([a, a, b])[:, [0, 2]], present=[0, 2])
    assert set(np.unique(lab)) == {0, 2, 3, 255}
    assert (lab[2:8, 1:8] == 0).all() and (lab[0] == 3).all()
    assert (lab[2:8, 8] == 255).all()
    assert (lab[2:8, 12:15] == 2).all() and (conf[2:8, 12:15] == 1).all()
    # member b disagrees on the right part of class 2: confidence 2/3 there
    assert np.allclose(conf[2:8, 16:19], 2 / 3)
    # an absent class is never labelled even if its map is strong
    lab2, _, _ = con(np.stack([a])[:, [0]], present=[0])
    assert not (lab2 == 2).any()


def test_consensus_top_fraction_and_bad_config():
    a = _two_object_maps() + np.linspace(0, 0.01, 200).reshape(10, 20)
    con = Consensus(3, background=3, rule="top_fraction", fg_fraction=0.2, bg_fraction=0.5)
    lab, _, _ = con(a[None][:, [0, 2]], present=[0, 2])
    frac = np.mean(np.isin(lab, [0, 2]))
    assert 0.15 <= frac <= 0.4 and (lab == 3).any()
    with pytest.raises(ConfigError, match="rule"):
        Consensus(3, rule="otsu")
    with pytest.raises(ConfigError, match="bg_threshold"):
        Consensus(3, fg_threshold=0.2, bg_threshold=0.5)


def _released_fixture(root):
    """A PSSL release as PaddleSeg lays it out; the synsets list a class with no folder
    (n00000002) so a reader scanning folders would shift the ids, and a label holds values
    other than 0/1 (PaddleSeg maps them to background)."""
    pssl, inet = root / "pssl", root / "imagenet"
    (pssl / "imagenet_lsvrc_2015_synsets.txt").parent.mkdir(parents=True)
    (pssl / "imagenet_lsvrc_2015_synsets.txt").write_text("n00000001\nn00000002\nn00000003\n")
    lines = []
    rng = np.random.default_rng(0)
    for wnid, shape in (("n00000001", (6, 8)), ("n00000003", (5, 7))):
        (pssl / "train" / wnid).mkdir(parents=True)
        (inet / "train" / wnid).mkdir(parents=True)
        name = f"{wnid}_42.JPEG"
        m = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=shape)
        np.savez(pssl / "train" / wnid / (name + "_eiseg.npz"), m)
        Image.fromarray(rng.integers(0, 255, shape + (3,)).astype(np.uint8)).save(inet / "train" / wnid / name, "JPEG")
        lines.append(f"train/{wnid}/{name}_eiseg.npz")
    (pssl / "train.txt").write_text("\n".join(lines) + "\n")
    return pssl, inet


def _paddleseg_labels(pssl, inet):
    """What PaddleSeg's own PSSLDataset returns (no transforms): (image CHW shape, label)."""
    pytest.importorskip("paddleseg")
    from paddleseg.datasets import PSSLDataset
    ds = PSSLDataset(transforms=[], imagenet_root=str(inet), pssl_root=str(pssl))
    return [(ds[i]["img"].shape, np.asarray(ds[i]["label"])) for i in range(len(ds.file_list))]


def test_released_reader_follows_paddleseg(tmp_path):
    pssl, inet = _released_fixture(tmp_path)
    items = scan_released(str(pssl), str(inet))
    assert [i[2] for i in items] == [0, 2]  # ids from the synsets file, not the folders
    raw = np.load(items[1][1])["arr_0"]
    lab = read_released_label(items[1][1], items[1][2])
    assert lab.dtype == np.int64 and set(np.unique(lab)) == {2, 1000}
    assert (lab[raw == 1] == 2).all() and (lab[raw != 1] == 1000).all()  # 0, 2, 255 -> background
    from ppzoo.core.builder import DATASETS
    ds = DATASETS.build({"type": "PSSLReleased", "pssl_root": str(pssl), "imagenet_root": str(inet)})
    theirs = _paddleseg_labels(pssl, inet)
    assert len(ds) == len(theirs) == 2 and ds.num_classes == 1001
    for i, (shape, their_label) in enumerate(theirs):
        mine = ds[i]["mask"][..., 0]
        assert mine.shape == their_label.shape == shape[1:]
        assert np.array_equal(mine, their_label)
    with pytest.raises(DataError, match="not found"):
        read_released_label(str(tmp_path / "nope.npz"), 0)
    with pytest.raises(DataError, match="train.txt"):
        scan_released(str(inet), str(inet))
    (pssl / "train.txt").write_text("train/n00000009/n00000009_1.JPEG_eiseg.npz\n")
    with pytest.raises(DataError, match="n00000009"):
        scan_released(str(pssl), str(inet))


def _tiny_seg_data(root, n=4):
    os.makedirs(root / "img", exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        img = rng.integers(0, 60, (24, 32, 3)).astype(np.uint8)
        mask = np.zeros((24, 32), np.uint8)
        img[4:14, 4:14, 0] = 230
        mask[4:14, 4:14] = 1
        Image.fromarray(img).save(root / "img" / f"{i}.png")
        Image.fromarray(mask).save(root / "img" / f"{i}_m.png")
        lines.append(f"img/{i}.png img/{i}_m.png")
    (root / "list.txt").write_text("\n".join(lines) + "\n")


def _gen_config(tmp_path):
    _tiny_seg_data(tmp_path)
    cfg = f"""
dataset:
  type: ImageLevelLabels
  dataset:
    type: SegFileList
    root: {tmp_path}
    file_list: list.txt
    num_classes: 2
    transforms: [{{type: Normalize}}, {{type: ToCHW}}]
classifiers:
  - model: {{type: SmallCNN, num_classes: 2, width: 4, depth: 2}}
explainers: [{{type: CAM}}, {{type: SmoothGrad, num_samples: 2}}, {{type: LIME, num_samples: 16, num_segments: 8}}]
consensus: {{background: 2, ignore_index: 255, fg_threshold: 0.5, bg_threshold: 0.2}}
confidence: true
output_dir: {tmp_path}/out
"""
    p = tmp_path / "gen.yml"
    p.write_text(cfg)
    return p


def _run_tool(args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pssl_generate.py")] + args,
                          capture_output=True, text=True, cwd=ROOT)


def _run_in_process(args):
    sys.path.insert(0, ROOT)
    from tools.pssl_generate import main
    return main(args)


def test_generation_tool_writes_labels_and_resumes(tmp_path):
    p = _gen_config(tmp_path)
    r = _run_in_process(["-c", str(p)])
    assert (r["generated"], r["skipped"]) == (4, 0)
    out = tmp_path / "out"
    lines = (out / "train_list.txt").read_text().split("\n")
    assert len([x for x in lines if x]) == 4
    lab = np.asarray(Image.open(out / "labels" / "0.png"))
    assert lab.shape == (24, 32) and set(np.unique(lab)) <= {0, 1, 2, 255}
    assert (out / "quality.json").exists()
    # an interrupted run: one label gone, a stray temporary left behind
    os.remove(out / "labels" / "2.png")
    (out / "labels" / "3.png.tmp.png").write_bytes(b"partial")
    r = _run_in_process(["-c", str(p)])
    assert (r["generated"], r["skipped"]) == (1, 3)
    assert not (out / "labels" / "2.png.tmp.png").exists()
    assert (out / "labels" / "2.png").exists()
    # the file list feeds the pseudo-label dataset (label + confidence)
    from ppzoo.core.builder import DATASETS
    ds = DATASETS.build({"type": "SegFileList", "root": ".", "file_list": str(out / "train_list.txt"),
                         "num_classes": 3, "transforms": [{"type": "Normalize"}, {"type": "ToCHW"}]})
    s = ds[0]
    assert s["mask"].shape == s["confidence"].shape == (24, 32)
    assert 0 <= s["confidence"].min() and s["confidence"].max() <= 1


def test_generation_tool_bad_config_is_one_line(tmp_path):
    p = _gen_config(tmp_path)
    p.write_text(p.read_text().replace("type: CAM", "type: CAMM"))
    r = _run_tool(["-c", str(p)])
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "CAM" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_image_level_labels_describe_the_crop_not_the_frame(tmp_path):
    """The CamVid classifier config trains on random crops: each crop's label must be the
    classes present in that crop (here the left half is class 2, the right half class 5)."""
    from ppzoo.pssl.datasets import ImageLevelLabels
    from ppzoo.segmentation.datasets import CamVid
    for d in ("train", "trainannot"):
        (tmp_path / d).mkdir()
    mask = np.full((20, 40), 2, np.uint8)
    mask[:, 20:] = 5
    Image.fromarray(mask).save(tmp_path / "trainannot" / "f.png")
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "train" / "f.png")
    frame = ImageLevelLabels(CamVid(root=str(tmp_path), split="train"))
    assert list(np.flatnonzero(frame[0]["label"])) == [2, 5]
    crops = ImageLevelLabels(CamVid(root=str(tmp_path), split="train",
                                    transforms=[{"type": "RandomCrop", "size": [20, 10]}]), min_fraction=0.03)
    seen = set()
    for epoch in range(30):
        crops.set_epoch(epoch)
        s = crops[0]
        present = sorted(set(np.unique(np.asarray(s["mask"]))) & {2, 5})
        assert list(np.flatnonzero(s["label"])) == present
        seen.add(tuple(present))
    assert {(2,), (5,)} <= seen  # crops inside one half carry one class only
