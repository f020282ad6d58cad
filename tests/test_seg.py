"""Segmentation: weighted CE, mIoU, the seg trainer, CamVid, the paper's models, and
fine-tuning from a whole-model checkpoint that drops the head."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppzoo
from ppzoo.core.builder import DATASETS, MODELS
from ppzoo.segmentation.datasets import data_root
from ppzoo.segmentation.losses import SegCrossEntropyLoss
from ppzoo.segmentation.metrics import MeanIoU

CAMVID = os.path.join(data_root(), "camvid")


def test_weighted_ce_matches_manual_and_ignores():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    label = rng.integers(0, 3, (2, 4, 5))
    label[0, 0] = 255
    conf = rng.uniform(size=(2, 4, 5)).astype("float32")
    loss = SegCrossEntropyLoss(num_classes=3, background_index=2, background_weight=0.1)
    got = float(loss(paddle.to_tensor(logits), paddle.to_tensor(label), paddle.to_tensor(conf)))
    logp = F.log_softmax(paddle.to_tensor(logits), axis=1).numpy()
    w = np.array([1.0, 1.0, 0.1])
    num = den = 0.0
    for b in range(2):
        for i in range(4):
            for j in range(5):
                c = label[b, i, j]
                if c == 255:
                    continue
                pw = w[c] * conf[b, i, j]
                num += -logp[b, c, i, j] * pw
                den += pw
    assert abs(got - num / den) < 1e-5
    # a list of logits (OCRNet, PSPNet aux) is weighted 1, 0.4
    two = float(loss([paddle.to_tensor(logits)] * 2, paddle.to_tensor(label), paddle.to_tensor(conf)))
    assert abs(two - 1.4 * got) < 1e-5


def test_miou_per_class():
    m = MeanIoU(3, class_names=["a", "b", "c"])
    pred = np.array([[0, 0, 1, 1]])
    lab = np.array([[0, 1, 1, 255]])
    m.update(pred, lab)
    r = m.accumulate()
    assert r["IoU/a"] == pytest.approx(0.5) and r["IoU/b"] == pytest.approx(0.5) and r["IoU/c"] is None
    assert r["mIoU"] == pytest.approx(0.5)
    assert "| b | 0.5000 |" in m.table()


def _tiny_cfg(tmp_path, **over):
    from PIL import Image
    os.makedirs(tmp_path / "d", exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):
        img = rng.integers(0, 50, (16, 16, 3)).astype(np.uint8)
        mask = np.zeros((16, 16), np.uint8)
        r0 = rng.integers(0, 8)
        img[r0:r0 + 8, :, 1] = 220
        mask[r0:r0 + 8] = 1
        Image.fromarray(img).save(tmp_path / "d" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "d" / f"{i}_m.png")
        lines.append(f"d/{i}.png d/{i}_m.png")
    (tmp_path / "list.txt").write_text("\n".join(lines))
    ds = {"type": "SegFileList", "root": str(tmp_path), "file_list": "list.txt", "num_classes": 2,
          "transforms": [{"type": "Normalize"}, {"type": "ToCHW"}]}
    cfg = {"name": "tiny", "seed": 0, "trainer": {"type": "SegTrainer"},
           "model": {"type": "SmallSegNet", "num_classes": 2, "width": 4, "depth": 2},
           "loss": {"type": "SegCrossEntropyLoss"}, "train_dataset": ds, "val_dataset": ds,
           "metrics": [{"type": "MeanIoU", "num_classes": 2}],
           "optimizer": {"type": "Adam", "learning_rate": 0.01},
           "train": {"iters": 40, "batch_size": 4, "label_key": "mask", "log_interval": 100},
           "eval": {"best_metric": "mIoU"}, "output_dir": str(tmp_path / "out")}
    cfg.update(over)
    return cfg


def test_seg_trainer_learns_and_finetune_reports_dropped_head(tmp_path):
    t = ppzoo.build_trainer(_tiny_cfg(tmp_path))
    before = t.evaluate()["mIoU"]
    t.train()
    after = t.evaluate()["mIoU"]
    assert after > 0.8 and after > before
    # whole-model pre-training with 3 classes, then fine-tuning with 2: the head is dropped
    pre = ppzoo.build_trainer(_tiny_cfg(tmp_path, name="pre", model={"type": "SmallSegNet", "num_classes": 3,
                                                                    "width": 4, "depth": 2},
                                        metrics=[], val_dataset=None,
                                        train={"iters": 1, "batch_size": 4, "label_key": "mask"}))
    pre.train()
    from ppzoo.hub import load_pretrained
    m = MODELS.build({"type": "SmallSegNet", "num_classes": 2, "width": 4, "depth": 2})
    rep = load_pretrained(m, str(tmp_path / "out" / "pre" / "latest" / "model.pdparams"))
    assert [k[0] for k in rep.skipped] == ["head.3.weight", "head.3.bias"]
    assert "head.3.weight" in str(rep)
    np.testing.assert_allclose(m.features[0].weight.numpy(), pre.model.features[0].weight.numpy())


@pytest.mark.skipif(not os.path.isdir(CAMVID), reason=f"CamVid not found at {CAMVID} (set PPZOO_DATA)")
def test_camvid_layout_and_void():
    ds = DATASETS.build({"type": "CamVid", "split": "val"})
    assert len(ds) == 101 and ds.num_classes == 11
    s = ds.load(0)
    vals = set(np.unique(s["mask"]).tolist())
    assert vals <= set(range(11)) | {255} and 11 not in vals
    sub = DATASETS.build({"type": "CamVid", "split": "train", "subset_fraction": 0.1})
    assert len(sub) == 37


def test_export_and_infer_writes_colour_masks(tmp_path):
    from PIL import Image
    from ppzoo.engine.export import export_from_config
    from ppzoo.engine.predictor import run_inference
    cfg = _tiny_cfg(tmp_path, train={"iters": 30, "batch_size": 4, "label_key": "mask", "log_interval": 100},
                    export={"task": "segmentation"})
    t = ppzoo.build_trainer(cfg)
    t.train()
    expected = t.evaluate()
    w = str(tmp_path / "out" / "tiny" / "latest" / "model.pdparams")
    export_from_config(cfg, w, str(tmp_path / "inference"))
    res = run_inference(str(tmp_path / "inference"), str(tmp_path / "d" / "0.png"),
                        output=str(tmp_path / "pred"), echo=None)
    # oneDNN in Paddle 3.3 CPU cannot run the bilinear interpolate op of a PIR program
    color = np.asarray(Image.open(tmp_path / "pred" / res[0]["color"]))
    mask = np.asarray(Image.open(tmp_path / "pred" / res[0]["mask"]))
    assert color.shape == (16, 16, 3) and mask.shape == (16, 16)
    true = np.asarray(Image.open(tmp_path / "d" / "0_m.png"))
    if expected["mIoU"] > 0.9:  # the exported model predicts what the trained one does
        assert (mask == true).mean() > 0.9
    with paddle.no_grad():
        t.model.eval()
        s = t.val_dataset[0]
        dy = t.model(paddle.to_tensor(s["image"][None])).numpy().argmax(1)[0]
    assert (dy == mask).mean() > 0.99


def test_confidence_moves_with_the_mask(tmp_path):
    from PIL import Image
    mask = np.zeros((6, 8), np.uint8)
    mask[:, :3] = 1
    conf = np.zeros((6, 8), np.uint8)
    conf[:, :3] = 255
    conf[:, 3:] = 51
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    Image.fromarray(conf).save(tmp_path / "c.png")
    (tmp_path / "l.txt").write_text("i.png m.png c.png\n")
    ds = DATASETS.build({"type": "SegFileList", "root": str(tmp_path), "file_list": "l.txt", "num_classes": 2,
                         "transforms": [{"type": "RandomHorizontalFlip", "prob": 1.0},
                                        {"type": "Resize", "size": [12, 16]}, {"type": "ToCHW"}]})
    s = ds[0]
    assert s["mask"].shape == s["confidence"].shape == (12, 16)
    assert (s["mask"][:, -6:] == 1).all() and (s["mask"][:, :-6] == 0).all()
    np.testing.assert_allclose(s["confidence"][s["mask"] == 1], 1.0)
    np.testing.assert_allclose(s["confidence"][s["mask"] == 0], 0.2)


def test_paddleseg_style_augmentations():
    from ppzoo.segmentation.transforms import RandomDistort, RandomPaddingCrop, ResizeStepScaling
    from ppzoo.core.errors import ConfigError
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (20, 16, 3)).astype(np.uint8)
    mask = np.zeros((20, 16, 1), np.int32)
    mask[:10] = 7
    scales = set()
    for _ in range(20):
        s = ResizeStepScaling(0.5, 2.0, 0)({"image": img.copy(), "mask": mask.copy()}, rng)
        f = s["image"].shape[0] / 20
        assert 0.45 <= f <= 2.05 and s["mask"].shape[:2] == s["image"].shape[:2]
        assert set(np.unique(s["mask"])) <= {0, 7}  # nearest neighbour for labels
        scales.add(round(f, 2))
    assert len(scales) > 5  # a continuous range when scale_step_size is 0
    # crop_size is (width, height) as in PaddleSeg; smaller images are padded bottom/right
    s = RandomPaddingCrop([30, 24], label_padding_value=1001)({"image": img.copy(), "mask": mask.copy()}, rng)
    assert s["image"].shape == (24, 30, 3) and s["mask"].shape == (24, 30, 1)
    assert (s["mask"][20:] == 1001).all() and (s["mask"][:, 16:] == 1001).all()
    assert (s["image"][20:] == 128).all()
    d = RandomDistort(0.2, 1.0, 0.2, 1.0, 0.2, 1.0)
    out = d({"image": img.copy()}, np.random.default_rng(1))["image"]
    assert out.dtype == np.uint8 and out.shape == img.shape and not np.array_equal(out, img)
    assert np.array_equal(out, d({"image": img.copy()}, np.random.default_rng(1))["image"])  # seeded
    with pytest.raises(ConfigError, match="before Normalize"):
        d({"image": img.astype(np.float32) / 127.5 - 1}, rng)  # a normalised image
