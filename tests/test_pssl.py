"""PSSL: explainers find the region a classifier looks at, consensus, released format,
and the resumable generation tool."""
import json
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
consensus: {{background: 2, ignore_index: 255, fg_threshold: 0.5}}
variants: {{band: {{consensus: {{bg_threshold: 0.2}}, confidence: true}}}}
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
    assert lab.shape == (24, 32) and set(np.unique(lab)) <= {0, 1, 2}  # paper: no ignore band
    band = np.asarray(Image.open(out / "variants" / "band" / "labels" / "0.png"))
    assert set(np.unique(band)) <= {0, 1, 2, 255} and ((band == lab) | (band == 255)).all()
    assert all(len(x.split()) == 2 for x in lines if x)  # no confidence column
    q = json.loads((out / "quality.json").read_text())["quality"]
    assert {"ensemble", "band", "SmallCNN0/CAM"} <= set(q) and q["ensemble"]["labelled"] == 1.0
    # an interrupted run: one label gone, a stray temporary left behind
    os.remove(out / "labels" / "2.png")
    (out / "labels" / "3.png.tmp.png").write_bytes(b"partial")
    r = _run_in_process(["-c", str(p)])
    assert (r["generated"], r["skipped"]) == (1, 3)
    assert not (out / "labels" / "2.png.tmp.png").exists()
    assert (out / "labels" / "2.png").exists()
    # the file list feeds the pseudo-label dataset (label + confidence)
    from ppzoo.core.builder import DATASETS
    ds = DATASETS.build({"type": "SegFileList", "root": ".", "file_list": str(out / "variants" / "band" / "train_list.txt"),
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


# ---- explainers against their definitions, computed independently ---------------------

class MixedNet(nn.Layer):
    """A tiny conv net with mixed-sign weights: ``trunk.1`` is a tanh activation (negative
    values occur), the head is GAP + linear (``gap``) or flatten + linear (``flat``, where
    Grad-CAM and CAM differ)."""

    def __init__(self, head="flat", hw=8, pool=False, num_classes=3, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        conv = nn.Conv2D(3, 4, 3, padding=1)
        conv.weight.set_value(rng.normal(size=(4, 3, 3, 3)).astype("float32"))
        conv.bias.set_value(rng.normal(size=4).astype("float32") * 0.5)
        self.trunk = nn.Sequential(conv, nn.Tanh(), nn.MaxPool2D(2) if pool else nn.Identity())
        s = hw // 2 if pool else hw
        self.head_type = head
        self.fc = nn.Linear(4 if head == "gap" else 4 * s * s, num_classes)
        self.fc.weight.set_value(rng.normal(size=self.fc.weight.shape).astype("float32"))
        self.num_classes = num_classes
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        a = self.trunk(x)
        return self.fc(a.mean(axis=[2, 3]) if self.head_type == "gap" else a.flatten(1))


def _images(n=2, hw=8, seed=1):
    return np.random.default_rng(seed).normal(0.3, 1.0, (n, 3, hw, hw)).astype("float32")  # no zero background


def _activation(model, x, layer="trunk.1"):
    a = model.trunk[0](paddle.to_tensor(x))
    a = model.trunk[1](a)
    return a.numpy()


def test_gradcam_matches_its_definition_through_the_models_own_head():
    model, x = MixedNet("flat"), _images()
    targets = [[0, 2], [1]]
    maps = build_explainer({"type": "GradCAM", "layer": "trunk.1"}, model)(x, targets)
    assert model.calls == 1  # one trunk pass for every class of the batch
    a = _activation(model, x)
    w = model.fc.weight.numpy().reshape(4, 8, 8, 3)  # d y_c / d A = the flatten head's weights
    for i, cls in enumerate(targets):
        for k, c in enumerate(cls):
            alpha = w[..., c].mean(axis=(1, 2))  # spatially averaged gradient per channel
            want = np.maximum(np.einsum("k,khw->hw", alpha, a[i]), 0)
            assert (np.einsum("k,khw->hw", alpha, a[i]) < 0).any()  # the ReLU matters here
            np.testing.assert_allclose(maps[i][k], want, rtol=1e-4, atol=1e-5)


def test_gradcam_upsamples_bilinearly_from_a_coarser_layer():
    from skimage.transform import resize
    model, x = MixedNet("flat", pool=True), _images(1)
    maps = build_explainer({"type": "GradCAM", "layer": "trunk.2"}, model)(x, [[1]])
    a = model.trunk(paddle.to_tensor(x)).numpy()[0]
    alpha = model.fc.weight.numpy().reshape(4, 4, 4, 3)[..., 1].mean(axis=(1, 2))
    coarse = np.maximum(np.einsum("k,khw->hw", alpha, a), 0)
    want = resize(coarse, (8, 8), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(maps[0][0], want, rtol=1e-4, atol=1e-5)


def test_cam_matches_its_definition():
    model, x = MixedNet("gap"), _images()
    maps = build_explainer({"type": "CAM", "layer": "trunk.1", "classifier": "fc"}, model)(x, [[0, 1], [2]])
    a, w = _activation(model, x), model.fc.weight.numpy()
    for i, cls in enumerate([[0, 1], [2]]):
        for k, c in enumerate(cls):
            raw = np.einsum("khw,k->hw", a[i], w[:, c])
            assert (raw < 0).any() and (raw > 0).any()
            np.testing.assert_allclose(maps[i][k], np.maximum(raw, 0), rtol=1e-4, atol=1e-5)


class Quadratic(nn.Layer):
    """y_c = 0.5 * sum(w_c * x^2): d y_c / d x = w_c * x, mixed-sign w."""

    def __init__(self, shape=(3, 8, 8), num_classes=2):
        super().__init__()
        self.w = paddle.to_tensor(np.random.default_rng(3).normal(size=(num_classes,) + shape).astype("float32"))
        self.num_classes = num_classes

    def forward(self, x):
        return 0.5 * (x[:, None] ** 2 * self.w[None]).sum(axis=[2, 3, 4])


@pytest.mark.parametrize("magnitude", ["abs", "square"])
def test_smoothgrad_averages_raw_gradients(magnitude):
    model = Quadratic()
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 8, 8)).astype("float32")
    n, noise = 256, 0.1
    sal = build_explainer({"type": "SmoothGrad", "num_samples": n, "noise": noise, "batch_size": 100,
                           "magnitude": magnitude}, model)(x, [[0, 1]])[0]
    sigma = noise * (x.max() - x.min())
    w = model.w.numpy()
    for c in range(2):
        # the mean of w*(x + e) over the noise is w*x; its standard error is |w| sigma / sqrt(n)
        mean = w[c] * x[0]
        want = np.abs(mean) if magnitude == "abs" else mean ** 2
        tol = 5 * np.abs(w[c]).max() * sigma / np.sqrt(n)
        tol = tol if magnitude == "abs" else tol * 2 * np.abs(mean).max() + tol ** 2
        assert np.abs(sal[c] - want.max(0)).max() < tol, (c, np.abs(sal[c] - want.max(0)).max(), tol)


class SuperpixelLinear(nn.Layer):
    """y_c = b_c + sum_k a_{c,k} * mean of channel 0 over superpixel k: linear in the on/off
    pattern when switched-off superpixels are filled with zeros."""

    def __init__(self, seg, num_classes=2):
        super().__init__()
        n = int(seg.max()) + 1
        onehot = np.stack([(seg == k) / (seg == k).sum() for k in range(n)]).astype("float32")
        self.onehot = paddle.to_tensor(onehot)
        self.a = np.random.default_rng(5).normal(size=(num_classes, n)).astype("float32")
        self.b = np.array([0.3, -0.2], "float32")
        self.num_classes = num_classes

    def forward(self, x):
        means = (x[:, 0][:, None] * self.onehot[None]).sum(axis=[2, 3])  # (B, S)
        return paddle.matmul(means, paddle.to_tensor(self.a).T) + paddle.to_tensor(self.b)


def test_lime_fits_lime_images_weighted_ridge():
    seg = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 4, 0), 4, 1)  # 6 superpixels on 8x12
    model = SuperpixelLinear(seg)
    img = np.random.default_rng(6).normal(0, 0.2, (3, 8, 12)).astype("float32")
    img[0] = 1.0
    lime = build_explainer({"type": "LIME", "num_samples": 300, "hide": "zero", "target": "logit"}, model)
    _, z, w, y, coefs = lime.fit(img, [0, 1], seg=seg)
    assert z.shape == (300, 6) and (z[0] == 1).all()
    np.testing.assert_allclose(y, z @ model.a.T + model.b, rtol=1e-4, atol=1e-4)  # the model is linear in z
    # lime_image: cosine distance to the all-on pattern, kernel sqrt(exp(-d^2 / 0.25^2))
    d = 1 - z.sum(1) / (np.sqrt(z.sum(1)) * np.sqrt(6) + 1e-12)
    want_w = np.sqrt(np.exp(-d ** 2 / 0.25 ** 2))
    np.testing.assert_allclose(w, want_w, rtol=1e-6, atol=1e-9)
    # weighted ridge with intercept and alpha 1, solved in closed form
    for k in range(2):
        zm, ym = (w[:, None] * z).sum(0) / w.sum(), (w * y[:, k]).sum() / w.sum()
        zc, yc = z - zm, y[:, k] - ym
        beta = np.linalg.solve(zc.T @ (w[:, None] * zc) + 1.0 * np.eye(6), zc.T @ (w * yc))
        np.testing.assert_allclose(coefs[k], beta, rtol=1e-5, atol=1e-6)
    # with almost no shrinkage the fit recovers the model's own coefficients
    lime0 = build_explainer({"type": "LIME", "num_samples": 300, "hide": "zero", "target": "logit",
                             "alpha": 1e-8}, model)
    np.testing.assert_allclose(lime0.fit(img, [0, 1], seg=seg)[-1], model.a, rtol=1e-3, atol=1e-3)


def test_lime_defaults_are_lime_images():
    lime = build_explainer({"type": "LIME"}, MixedNet())
    assert (lime.num_samples, lime.kernel_width, lime.kernel, lime.distance, lime.alpha) == (1000, 0.25, "sqrt_exp", "cosine", 1.0)
    assert (lime.segmentation, lime.qs, lime.hide, lime.target) == \
        ("quickshift", {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}, "mean", "prob")


def test_explainers_reach_the_zoos_classifiers_by_their_layer_names():
    from ppzoo.core.builder import MODELS
    paddle.seed(0)
    x = _images(1, 32)
    for cfg in ({"type": "ResNet", "depth": 18, "num_classes": 5}, {"type": "MobileNetV2", "num_classes": 5, "scale": 0.35},
                {"type": "MobileNetV3", "num_classes": 5, "scale": 0.35}):
        model = MODELS.build(cfg)
        names = ("CAM", "GradCAM") if cfg["type"] != "MobileNetV3" else ("GradCAM",)
        for name in names:
            m = build_explainer({"type": name}, model)(x, [[1, 3]])[0]
            assert m.shape == (2, 32, 32) and np.isfinite(m).all() and m.min() >= 0, (cfg["type"], name)
    with pytest.raises(ConfigError, match="GradCAM"):
        build_explainer({"type": "CAM"}, model)(x, [[1]])  # MobileNetV3's head is an MLP


# ---- consensus, loss, size check -------------------------------------------------------

def test_paper_consensus_is_binary_without_an_ignore_band():
    con = Consensus(3, background=3, fg_threshold=0.5)
    assert not con.has_ignore_band
    lab, _, _ = con(_two_object_maps()[None][:, [0, 2]], present=[0, 2])
    assert set(np.unique(lab)) <= {0, 2, 3}


def _old_weighted_ce(logits, label, weights, ignore, conf=None):
    """The formula the loss had before (log-softmax over channels), in numpy."""
    lp = logits - logits.max(1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
    ok = label != ignore
    safe = np.where(ok, label, 0)
    nll = -np.take_along_axis(lp, safe[:, None], 1)[:, 0]
    pw = ok * (weights[safe] if weights is not None else 1.0) * (1.0 if conf is None else conf)
    return (nll * pw).sum() / pw.sum()


def test_fused_seg_loss_equals_the_weighted_formula_and_is_fast():
    import time
    from ppzoo.core.builder import LOSSES
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, 4)).astype("float32")
    y = rng.integers(0, 7, (2, 5, 4))
    y[y == 6] = 255
    conf = rng.uniform(size=(2, 5, 4)).astype("float32")
    w = np.ones(6)
    w[5] = 0.1
    loss = LOSSES.build({"type": "SegCrossEntropyLoss", "ignore_index": 255, "background_index": 5,
                         "background_weight": 0.1})  # no num_classes: taken from the logits
    got = float(loss.single(paddle.to_tensor(x), paddle.to_tensor(y), paddle.to_tensor(conf)))
    assert abs(got - _old_weighted_ce(x, y, w, 255, conf)) < 1e-5
    plain = LOSSES.build({"type": "SegCrossEntropyLoss"})
    assert abs(float(plain.single(paddle.to_tensor(x), paddle.to_tensor(y))) - _old_weighted_ce(x, y, None, 255)) < 1e-5
    with pytest.raises(ConfigError, match="background_index"):
        LOSSES.build({"type": "SegCrossEntropyLoss", "background_weight": 0.1})
    with pytest.raises(DataError, match="outside"):
        plain.single(paddle.to_tensor(x), paddle.to_tensor(np.full((2, 5, 4), 7)))
    # PSSL's 1001 classes (1000 + background 0.1), 2x64x64: forward + backward
    big = LOSSES.build({"type": "SegCrossEntropyLoss", "num_classes": 1001, "ignore_index": 1001,
                        "background_index": 1000, "background_weight": 0.1})
    paddle.seed(0)
    logits = paddle.randn([2, 1001, 64, 64])
    logits.stop_gradient = False
    lab = paddle.randint(0, 1002, [2, 64, 64])
    t = time.perf_counter()
    big([logits], lab).backward()
    assert time.perf_counter() - t < 30.0  # about 0.2 s on 2 idle cores; the log-softmax form took minutes


def test_seg_file_list_refuses_a_label_of_another_size(tmp_path):
    from ppzoo.segmentation.datasets import SegFileList
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "a_m.png")
    (tmp_path / "list.txt").write_text("a.png a_m.png\n")
    ds = SegFileList(str(tmp_path), "list.txt", num_classes=2)
    with pytest.raises(DataError, match=r"a\.png is 32x24 but its mask .*a_m\.png is 16x12"):
        ds[0]


# ---- generation over an ImageNet-layout folder with a committee ------------------------

def _imagenet_folder(root):
    """train/<wnid>/<wnid>_<n>.JPEG of varied sizes, a bright square as the object; the
    synsets list three classes, one without images."""
    rng = np.random.default_rng(0)
    wnids = ["n01000001", "n01000002", "n01000003"]
    (root / "synsets.txt").write_text("\n".join(wnids) + "\n")
    for wnid in (wnids[0], wnids[2]):
        (root / "train" / wnid).mkdir(parents=True)
        for j, (h, w) in enumerate(((30, 40), (36, 28))):
            img = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
            img[5:20, 5:20] = 230
            Image.fromarray(img).save(root / "train" / wnid / f"{wnid}_{j}.JPEG", "JPEG")
    return wnids


def test_generation_over_an_imagenet_folder_writes_both_formats(tmp_path):
    from ppzoo.core.builder import DATASETS, MODELS
    wnids = _imagenet_folder(tmp_path)
    paddle.seed(0)
    resnet = MODELS.build({"type": "ResNet", "depth": 18, "num_classes": 3})
    paddle.save(resnet.state_dict(), str(tmp_path / "resnet.pdparams"))
    cfg = f"""
dataset:
  type: ImageNetFolder
  root: {tmp_path}
  synsets_file: synsets.txt
  transforms: [{{type: Resize, size: [32, 32]}}, {{type: Normalize}}, {{type: ToCHW}}]
classifiers:
  - model: {{type: ResNet, depth: 18, num_classes: 3}}
    weights: {tmp_path}/resnet.pdparams
  - model: {{type: SmallCNN, num_classes: 3, width: 4, depth: 2}}
explainers:
  - {{type: CAM}}
  - {{type: GradCAM}}
  - {{type: SmoothGrad, num_samples: 3}}
  - {{type: LIME, num_samples: 12, segmentation: slic, num_segments: 6}}
consensus: {{background: 3, ignore_index: 255, fg_threshold: 0.5}}
present: labels
batch_size: 2
formats: [png, released]
output_dir: {tmp_path}/out
"""
    p = tmp_path / "gen.yml"
    p.write_text(cfg)
    r = _run_in_process(["-c", str(p)])
    assert (r["generated"], r["skipped"]) == (4, 0)
    out = tmp_path / "out"
    ds = DATASETS.build({"type": "ImageNetFolder", "root": str(tmp_path), "synsets_file": "synsets.txt"})
    assert [it[1] for it in ds.items] == [0, 0, 2, 2]  # integer labels from the synsets file
    # PNG labels at each image's own size, listed for SegFileList
    seg = DATASETS.build({"type": "SegFileList", "root": ".", "file_list": str(out / "train_list.txt"),
                          "num_classes": 4})
    for i in range(4):
        s = seg[i]
        assert s["mask"].shape[:2] == s["image"].shape[:2]
        assert set(np.unique(s["mask"])) <= {ds.items[i][1], 3}
    # the released format, read by ppzoo and by PaddleSeg alike
    rel = out / "pssl"
    assert (rel / "train.txt").read_text().split() == [
        f"train/{w}/{w}_{j}.JPEG_eiseg.npz" for w in (wnids[0], wnids[2]) for j in (0, 1)]
    assert (rel / "imagenet_lsvrc_2015_synsets.txt").read_text().split() == wnids
    mine = DATASETS.build({"type": "PSSLReleased", "pssl_root": str(rel), "imagenet_root": str(tmp_path)})
    for i in range(4):
        png = np.asarray(seg[i]["mask"])[..., 0]
        m = mine[i]["mask"][..., 0]
        assert np.array_equal(m == ds.items[i][1], png == ds.items[i][1])
    theirs = _paddleseg_labels(rel, tmp_path)
    for i, (_, lab) in enumerate(theirs):
        assert np.array_equal(lab, mine[i]["mask"][..., 0])
    # top predictions of the committee instead of the label
    r = _run_in_process(["-c", str(p), "-o", "present=top_k", "top_k=2", f"output_dir={tmp_path}/out2",
                         "formats=[png]"])
    assert r["generated"] == 4
