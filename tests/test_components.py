import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.core import DATASETS, LOSSES, METRICS, MODELS, TRANSFORMS, ConfigError, DataError
from ppzoo.transforms import Compose


@pytest.mark.parametrize("cfg,shape", [
    ({"type": "SmallCNN", "num_classes": 4, "in_channels": 1, "width": 4}, [2, 1, 16, 16]),
    ({"type": "ResNet", "depth": 18, "num_classes": 5, "in_channels": 1}, [2, 1, 32, 32]),
    ({"type": "MobileNetV2", "num_classes": 3, "scale": 0.25}, [2, 3, 32, 32]),
    ({"type": "MobileNetV3", "size": "small", "num_classes": 3, "scale": 0.5}, [2, 3, 32, 32]),
])
def test_classifiers_build_and_run(cfg, shape):
    model = MODELS.build(cfg)
    model.eval()
    out = model(paddle.randn(shape))
    assert out.shape == [shape[0], cfg["num_classes"]]


def test_resnet_accepts_paddle_vision_names():
    model = MODELS.build({"type": "ResNet", "depth": 18, "num_classes": 10})
    plain = paddle.vision.models.resnet18(num_classes=10).state_dict()
    missing, unexpected = model.set_state_dict(plain)
    assert not missing and not unexpected
    np.testing.assert_array_equal(model.net.fc.weight.numpy(), plain["fc.weight"].numpy())


def test_geometric_transforms_move_the_mask_with_the_image():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    mask = img[:, :, 0].copy()
    t = Compose([{"type": "RandomHorizontalFlip", "prob": 1.0},
                 {"type": "RandomCrop", "size": [3, 4]}, {"type": "ToCHW"}])
    out = t({"image": img.copy(), "mask": mask.copy()}, np.random.default_rng(0))
    assert out["image"].shape == (3, 3, 4) and out["mask"].shape == (3, 4)
    np.testing.assert_array_equal(out["image"][0].astype(np.int64), out["mask"])
    r = TRANSFORMS.build({"type": "Resize", "size": [8, 12]})({"image": img, "mask": mask}, None)
    assert r["image"].shape == (8, 12, 3) and r["mask"].shape == (8, 12)
    assert set(np.unique(r["mask"])) <= set(np.unique(mask))  # nearest: no new label values
    labels = np.random.default_rng(0).integers(0, 300, (4, 6)).astype(np.int64)  # not uint8
    r = TRANSFORMS.build({"type": "Resize", "size": [8, 12]})({"image": img, "mask": labels}, None)
    assert r["mask"].dtype == np.int64 and set(np.unique(r["mask"])) <= set(np.unique(labels))


def test_augmentation_depends_only_on_seed_epoch_and_index():
    cfg = {"type": "DigitsDataset", "split": "train",
           "transforms": [{"type": "RandomCrop", "size": 8, "padding": 2}, {"type": "ToCHW"}]}
    a, b = DATASETS.build(cfg), DATASETS.build(cfg)
    np.testing.assert_array_equal(a[5]["image"], b[5]["image"])
    a.set_epoch(1)
    assert any(not np.array_equal(a[i]["image"], b[i]["image"]) for i in range(20))


def test_digits_split_is_stratified_and_disjoint():
    tr = DATASETS.build({"type": "DigitsDataset", "split": "train"})
    va = DATASETS.build({"type": "DigitsDataset", "split": "val"})
    assert len(tr) + len(va) == 1797
    assert np.bincount(va.labels).min() >= 30
    assert tr[0]["image"].shape == (8, 8, 1) and tr[0]["image"].dtype == np.uint8
    with pytest.raises(DataError, match="split"):
        DATASETS.build({"type": "DigitsDataset", "split": "test"})


def test_image_folder(tmp_path):
    from PIL import Image
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((5, 5, 3), i * 50, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = DATASETS.build({"type": "ImageFolder", "root": str(tmp_path)})
    assert ds.class_names == ["cat", "dog"] and len(ds) == 4 and int(ds[3]["label"]) == 1
    with pytest.raises(DataError, match="not found"):
        DATASETS.build({"type": "ImageFolder", "root": str(tmp_path / "nope")})


def test_cross_entropy_label_smoothing_and_ignore():
    logits = paddle.to_tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    label = paddle.to_tensor([0, 2])
    plain = LOSSES.build({"type": "CrossEntropyLoss"})(logits, label)
    smooth = LOSSES.build({"type": "CrossEntropyLoss", "label_smoothing": 0.0 + 1e-12})(logits, label)
    np.testing.assert_allclose(float(plain), float(smooth), rtol=1e-5)
    logp = paddle.nn.functional.log_softmax(logits, axis=1).numpy()
    eps = 0.1
    expect = -np.mean([(1 - eps) * logp[i, l] + eps / 3 * logp[i].sum() for i, l in enumerate([0, 2])])
    got = LOSSES.build({"type": "CrossEntropyLoss", "label_smoothing": eps})(logits, label)
    np.testing.assert_allclose(float(got), expect, rtol=1e-5)
    ign = LOSSES.build({"type": "CrossEntropyLoss", "ignore_index": 2})(logits, label)
    np.testing.assert_allclose(float(ign), -logp[0, 0], rtol=1e-5)


def test_topk_and_report():
    out = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    label = np.array([1, 0, 0, 1])
    m = METRICS.build({"type": "TopKAccuracy", "topk": [1, 2]})
    m.update(out, label)
    assert m.accumulate() == {"top1": 0.5, "top2": 1.0}
    r = METRICS.build({"type": "ClassificationReport", "num_classes": 3})
    r.update(out, label)
    res = r.accumulate()
    # class 0: P=1/2 R=1/2; class 1: P=1 R=1/2; class 2 has no support
    assert abs(res["macro_f1"] - (0.5 + 2 / 3) / 2) < 1e-9
    assert "precision" in res["report"]


def test_model_config_errors():
    with pytest.raises(ConfigError, match="ResNet.depth"):
        MODELS.build({"type": "ResNet", "depth": 19})
