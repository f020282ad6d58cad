"""Segmentation transforms against PaddleSeg 2.8's own (installed as ``paddleseg``) on a real
CamVid frame: deterministic steps to the last bit, random steps with the same draws fed to
both (PaddleSeg's global ``np.random``/``random`` calls scripted, ppzoo's ``rng`` scripted
with the same values), and the presets that name PaddleSeg-trained weights run side by side
with PaddleSeg's pipeline of the same recipe."""
import inspect
import os
import random

import numpy as np
import pytest

import ppzoo  # noqa: F401
from ppzoo.segmentation.datasets import data_root

CAMVID = os.path.join(data_root(), "camvid")
FRAME = os.path.join(CAMVID, "train", "0001TP_006690.png")
LABEL = os.path.join(CAMVID, "trainannot", "0001TP_006690.png")
needs_camvid = pytest.mark.skipif(not os.path.isfile(FRAME), reason=f"CamVid not found at {CAMVID} (set PPZOO_DATA)")
pst = pytest.importorskip("paddleseg.transforms")


class Script:
    """The same draws for both: ``uniform``, ``integers`` and ``random`` values are popped in
    call order, ``permutation`` returns the scripted order.  PaddleSeg's module-level calls
    (np.random.uniform/randint/shuffle, random.random/shuffle) are patched to pop from a
    second copy."""

    def __init__(self, uniform=(), integers=(), rand=(), perm=None):
        self.u, self.i, self.r = list(uniform), list(integers), list(rand)
        self.perm = perm

    def copy(self):
        return Script(self.u, self.i, self.r, self.perm)

    # ppzoo's rng
    def uniform(self, lo=0.0, hi=1.0):
        return self.u.pop(0)

    def integers(self, lo, hi):
        v = self.i.pop(0)
        assert lo <= v < hi, (v, lo, hi)
        return v

    def random(self):
        return self.r.pop(0)

    def permutation(self, n):
        return np.array(self.perm if self.perm is not None else range(n))

    def patch_paddleseg(self, monkeypatch):
        s = self.copy()
        monkeypatch.setattr(np.random, "uniform", lambda lo=0.0, hi=1.0, *a: s.u.pop(0))
        monkeypatch.setattr(np.random, "randint", lambda lo, hi=None, *a: s.integers(lo, hi))
        monkeypatch.setattr(random, "random", lambda: s.r.pop(0))
        monkeypatch.setattr(random, "shuffle", lambda x: x.__setitem__(slice(None), [x[k] for k in s.permutation(len(x))]))
        return s


def _paddleseg(transforms, label=True):
    from PIL import Image
    # as int32 (PaddleSeg reads CamVid's PNG as uint8, where cv2 would clip a padding of 1001)
    lab = np.asarray(Image.open(LABEL)).astype(np.int32)
    data = {"img": FRAME, "label": lab, "gt_fields": ["label"]} if label else {"img": FRAME}
    out = pst.Compose(transforms)(data)
    img = out["img"].transpose(1, 2, 0)
    lab = out.get("label")
    if lab is not None:
        lab = lab.astype(np.int64)
        lab[lab == 11] = 255  # CamVid's void: ppzoo's reader maps it to the ignore value on loading
    return img, lab


def _ppzoo(transforms, rng):
    from ppzoo.core.builder import DATASETS
    ds = DATASETS.build({"type": "CamVid", "split": "train", "limit": 1, "cache": False})
    sample = ds.load(0)
    assert os.path.basename(ds.items[0][0]) == os.path.basename(FRAME)
    from ppzoo.transforms import Compose
    out = Compose(transforms)(sample, rng)
    return out["image"], out["mask"][..., 0].astype(np.int64)


def _same(a, b, img_atol=0.0):
    (ia, la), (ib, lb) = a, b
    assert ia.shape == ib.shape, (ia.shape, ib.shape)
    np.testing.assert_allclose(ia, ib, rtol=0, atol=img_atol)
    if lb is not None:
        np.testing.assert_array_equal(la, lb)


@needs_camvid
def test_resize_by_short_and_step_scaling_equal_paddlesegs_cv2_resizes():
    """ResizeByShort 256 and a scale step on PaddleSeg's float image: the same cv2
    INTER_LINEAR / INTER_NEAREST arrays (PIL's filter changes 1.6% of the labels)."""
    from ppzoo.segmentation.transforms import ImageAsFloat, ResizeByShort, ResizeStepScaling
    want = _paddleseg([pst.ResizeByShort(256), pst.ResizeStepScaling(0.75, 0.75)])
    got = _ppzoo([ImageAsFloat(), ResizeByShort(256), ResizeStepScaling(0.75, 0.75)], Script())
    _same(got, want)
    pil = _ppzoo([ImageAsFloat(), ResizeByShort(256, backend="pil")], Script())
    cv = _paddleseg([pst.ResizeByShort(256)])
    assert (pil[1] != cv[1]).mean() > 0.005 and np.abs(pil[0] - cv[0]).mean() > 0.1  # the backend matters


@needs_camvid
def test_the_whole_pssl_chain_with_the_same_draws_equals_paddlesegs(monkeypatch):
    """PaddleSeg's PSSL pre-training chain (ResizeByShort 256, ResizeStepScaling 0.5-2,
    RandomPaddingCrop 256 padded with 127.5 / 1001, flip, RandomDistort 0.2 with its default
    hue +-18, Normalize 0.5/0.5) with every random draw the same: the same arrays."""
    from ppzoo.transforms import Compose
    cfg = [{"type": "ImageAsFloat"}, {"type": "ResizeByShort", "short_size": 256},
           {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0},
           {"type": "RandomPaddingCrop", "crop_size": [256, 256], "label_padding_value": 1001},
           {"type": "RandomHorizontalFlip"},
           {"type": "RandomDistort", "brightness_range": 0.2, "contrast_range": 0.2, "saturation_range": 0.2},
           {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}]
    ref = [pst.ResizeByShort(256), pst.ResizeStepScaling(0.5, 2.0, 0),
           pst.RandomPaddingCrop([256, 256], label_padding_value=1001), pst.RandomHorizontalFlip(),
           pst.RandomDistort(brightness_range=0.2, contrast_range=0.2, saturation_range=0.2), pst.Normalize()]
    # scale 0.62 makes the frame 159x212: padded to 256 on both sides (127.5 and 1001 visible)
    # coins: brightness, contrast, saturation, sharpness (prob 0), hue, in the order [4, 0, 2, 3, 1]
    for scale, coins, flip in [(0.62, [0.1, 11.0, 0.3, 1.15, 0.2, 0.85, 0.4, 0.3, 1.1], 0.2),
                               (1.7, [0.9, 0.9, 0.4, 0.9, 0.2, 0.9], 0.7)]:
        draws = [scale] + [c for c in coins]
        # the hue coin comes first (shift 11.0), then brightness 1.15, saturation 0.85,
        # sharpness's coin (never applied), contrast 1.1; the second frame applies saturation only
        s = Script(uniform=draws, integers=[0, 0] if scale < 1 else [37, 101], rand=[flip], perm=[4, 0, 2, 3, 1])
        s.patch_paddleseg(monkeypatch)
        want = _paddleseg(ref)
        monkeypatch.undo()
        got = _ppzoo(Compose(cfg).transforms, s)
        assert not s.u and not s.i and not s.r  # every draw was used
        _same(got, want, img_atol=1e-6)
        if scale < 1:
            assert (got[1][159:] == 1001).all()  # the padding is in the compared window


def test_random_distort_hue_equals_paddlesegs_hue():
    """The hue shift alone (PaddleSeg's functional.hue through PIL's HSV), with wrap-around."""
    from paddleseg.transforms import functional as psf
    from PIL import Image
    from ppzoo.segmentation.transforms import _hue
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3)).astype(np.uint8)
    for delta in (-17.6, -3.2, 0.4, 9.9, 17.95):
        want = np.asarray(psf.hue(Image.fromarray(img), delta, delta))
        np.testing.assert_array_equal(np.asarray(_hue(Image.fromarray(img), delta)), want)


def test_defaults_are_paddlesegs():
    """The PaddleSeg-named transforms take PaddleSeg's arguments with PaddleSeg's defaults
    (RandomDistort's hue +-18 at probability 0.5 included)."""
    from ppzoo.segmentation import transforms as T
    for name in ("ResizeByShort", "ResizeStepScaling", "RandomPaddingCrop", "RandomDistort"):
        ours = {k: v.default for k, v in inspect.signature(getattr(T, name)).parameters.items() if k != "backend"}
        theirs = {k: v.default for k, v in inspect.signature(getattr(pst, name)).parameters.items()}
        theirs = {k: v for k, v in theirs.items() if k in ours or k not in ("category_max_ratio", "ignore_index",
                                                                             "loop_times")}
        assert ours == theirs, name


def test_step_scaling_draws_paddlesegs_steps():
    """scale_step_size > 0: the factors PaddleSeg draws from (``linspace(min, max,
    int((max - min) / step + 1))``), also where the step does not divide the range."""
    from ppzoo.segmentation.transforms import ResizeStepScaling
    img = np.zeros((40, 40, 3), np.float32)
    for lo, hi, step in [(0.5, 2.5, 0.25), (0.5, 2.0, 0.1), (0.125, 1.5, 0.125)]:
        np.random.seed(0)
        theirs = {pst.ResizeStepScaling(lo, hi, step)({"img": img, "trans_info": []})["img"].shape[0]
                  for _ in range(400)}
        rng = np.random.default_rng(0)
        ours = {ResizeStepScaling(lo, hi, step)({"image": img}, rng)["image"].shape[0] for _ in range(400)}
        assert ours == theirs, (lo, hi, step)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# PaddleSeg's CamVid recipe (configs/pp_liteseg/pp_liteseg_stdc1_camvid_960x720_10k.yml), the crop
# at ppzoo's 480x360 frame size
PADDLESEG_CAMVID_TRAIN = lambda: [pst.ResizeStepScaling(0.5, 2.5, 0.25), pst.RandomPaddingCrop([480, 360]),  # noqa: E731
                                  pst.RandomHorizontalFlip(),
                                  pst.RandomDistort(brightness_range=0.5, contrast_range=0.5, saturation_range=0.5),
                                  pst.Normalize()]


def _config_transforms(name, split):
    from ppzoo.core import load_config
    from ppzoo.transforms import Compose
    cfg = load_config(os.path.join(ROOT, "configs", name))
    return Compose(cfg[f"{split}_dataset"]["transforms"]).transforms[:-1]  # without ToCHW


@needs_camvid
@pytest.mark.parametrize("model", ["deeplabv3_r50", "pspnet_r50", "ocrnet_hrnetw18"])
def test_camvid_presets_of_paddleseg_backbones_run_paddlesegs_camvid_pipeline(model, monkeypatch):
    """The big-model CamVid presets start from PaddleSeg's ImageNet backbones: their train and
    val transforms give PaddleSeg's CamVid recipe's arrays for the same draws (scale step
    index 4 = 1.5 and a crop offset; index 2 = 1.0, the frame itself, no crop drawn; 0.5
    padded), evaluation on the whole frame."""
    for pick, scale_draws, ints in [(4, [0.2, 1.07, 0.9, 0.9, 0.9, 0.3, 7.0], [5, 60]),
                                    (2, [0.9, 0.9, 0.4, 1.3, 0.9, 0.9], []),
                                    (0, [0.9, 0.9, 0.9, 0.9, 0.9], [0, 0])]:
        s = Script(uniform=scale_draws, integers=[pick] + ints, rand=[0.3], perm=[0, 1, 2, 3, 4])
        ps = s.patch_paddleseg(monkeypatch)
        monkeypatch.setattr(np.random, "shuffle", lambda x: x.__setitem__(slice(None), x[pick:pick + 1] + x))
        ps.i.pop(0)  # PaddleSeg shuffles the steps instead of drawing an index
        want = _paddleseg(PADDLESEG_CAMVID_TRAIN())
        monkeypatch.undo()
        got = _ppzoo(_config_transforms(f"segmentation/{model}_camvid.yml", "train"), s)
        _same(got, want, img_atol=1e-6)
    _same(_ppzoo(_config_transforms(f"segmentation/{model}_camvid.yml", "val"), Script()),
          _paddleseg([pst.Normalize()]), img_atol=1e-6)


@needs_camvid
def test_pssl_pretraining_preset_runs_paddlesegs_pssl_pipeline(monkeypatch):
    """configs/pssl/_base_/imagenet_pssl.yml (every *_pssl.yml) with the same draws as
    PaddleSeg's configs/pssl/*_pssl.yml transforms: the same arrays."""
    ref = [pst.ResizeByShort(256), pst.ResizeStepScaling(0.5, 2.0, 0),
           pst.RandomPaddingCrop([256, 256], label_padding_value=1001), pst.RandomHorizontalFlip(),
           pst.RandomDistort(brightness_range=0.2, contrast_range=0.2, saturation_range=0.2), pst.Normalize()]
    s = Script(uniform=[1.3, 0.1, 0.95, 0.9, 0.9, 0.9, 0.1, -12.5], integers=[40, 3], rand=[0.9], perm=[1, 0, 2, 3, 4])
    s.patch_paddleseg(monkeypatch)
    want = _paddleseg(ref)
    monkeypatch.undo()
    _same(_ppzoo(_config_transforms("pssl/_base_/imagenet_pssl.yml", "train"), s), want, img_atol=1e-6)


def test_segmentation_configs_state_their_normalisation():
    """No segmentation or PSSL config relies on Normalize's default (ImageNet's; PaddleSeg's
    is 0.5/0.5): each states mean and std."""
    from ppzoo.core import load_config
    seen = 0
    for sub in ("segmentation", "pssl"):
        for f in sorted(os.listdir(os.path.join(ROOT, "configs", sub))):
            if not f.endswith(".yml"):
                continue
            cfg = load_config(os.path.join(ROOT, "configs", sub, f))
            for split in ("train_dataset", "val_dataset"):
                for t in ((cfg.get(split) or {}).get("transforms") or []):
                    if t.get("type") == "Normalize":
                        seen += 1
                        assert "mean" in t and "std" in t, (f, split)
    assert seen > 10


def test_evaluation_scores_on_the_labels_own_size(tmp_path):
    """An image resized with ``mask: false``: the logits are restored to the label's size as
    PaddleSeg's reverse_transform restores them (bilinear) and scored on the full mask."""
    import paddle
    from PIL import Image
    from paddleseg.core.infer import reverse_transform
    import ppzoo as pz
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        img = rng.integers(0, 255, (20, 28, 3)).astype(np.uint8)
        mask = (rng.uniform(size=(20, 28)) < 0.5).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / f"{i}_m.png")
        lines.append(f"{i}.png {i}_m.png")
    (tmp_path / "l.txt").write_text("\n".join(lines))
    val = {"type": "SegFileList", "root": str(tmp_path), "file_list": "l.txt", "num_classes": 2,
           "transforms": [{"type": "Resize", "size": [9, 12], "mask": False}, {"type": "Normalize"}, {"type": "ToCHW"}]}
    cfg = {"name": "t", "seed": 0, "trainer": {"type": "SegTrainer"},
           "model": {"type": "SmallSegNet", "num_classes": 2, "width": 4, "depth": 2},
           "loss": {"type": "SegCrossEntropyLoss"}, "train_dataset": val, "val_dataset": val,
           "metrics": [{"type": "MeanIoU", "num_classes": 2}], "optimizer": {"type": "Adam", "learning_rate": 0.01},
           "train": {"iters": 1, "batch_size": 2, "label_key": "mask"}, "eval": {"batch_size": 2},
           "output_dir": str(tmp_path / "out")}
    t = pz.build_trainer(cfg, build_train=False)
    got = t.evaluate()["mIoU"]
    conf = np.zeros((2, 2), np.int64)
    t.model.eval()
    with paddle.no_grad():
        for i in range(4):
            s = t.val_dataset[i]
            assert s["image"].shape == (3, 9, 12) and s["mask"].shape == (20, 28)
            logit = t.model(paddle.to_tensor(s["image"][None]))
            pred = reverse_transform(logit, [("resize", (20, 28))], mode="bilinear").numpy().argmax(1)[0]
            np.add.at(conf, (s["mask"].ravel(), pred.ravel()), 1)
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))
    assert got == pytest.approx(float(np.nanmean(iou)), abs=1e-9)


def test_camvid_smallseg_scores_on_the_480x360_masks():
    from ppzoo.core import load_config
    cfg = load_config(os.path.join(ROOT, "configs", "segmentation", "camvid_smallseg.yml"))
    assert cfg["val_dataset"]["transforms"][0] == {"type": "Resize", "size": [90, 120], "mask": False}


RELEASE_PIPELINES = {
    # config: (PaddleSeg's train transforms, its val transforms), from its configs of the release
    "segmentation/stdc2_seg_voc12aug_pssl.yml": (
        lambda: [pst.ResizeStepScaling(0.5, 2.0, 0.25), pst.RandomPaddingCrop([512, 512]), pst.RandomHorizontalFlip(),
                 pst.RandomDistort(brightness_range=0.4, contrast_range=0.4, saturation_range=0.4), pst.Normalize()],
        lambda: [pst.Padding(target_size=[512, 512]), pst.Normalize()]),
    "segmentation/pp_liteseg_stdc2_cityscapes_pssl.yml": (
        lambda: [pst.ResizeStepScaling(0.5, 2.0, 0.25), pst.RandomPaddingCrop([1024, 512]), pst.RandomHorizontalFlip(),
                 pst.RandomDistort(brightness_range=0.5, contrast_range=0.5, saturation_range=0.5), pst.Normalize()],
        lambda: [pst.Normalize()]),
    "segmentation/pp_liteseg_stdc2_camvid_pssl.yml": (PADDLESEG_CAMVID_TRAIN, lambda: [pst.Normalize()]),
    "segmentation/stdc2_seg_camvid_pssl.yml": (PADDLESEG_CAMVID_TRAIN, lambda: [pst.Normalize()]),
}


@needs_camvid
@pytest.mark.parametrize("config", sorted(RELEASE_PIPELINES))
def test_presets_of_the_pssl_releases_run_paddlesegs_pipelines(config, monkeypatch):
    """Train (smallest scale step: the frame is padded to the crop; distortions drawn) and
    val transforms of each downstream preset of the PSSL releases, beside PaddleSeg's of the
    same recipe on a CamVid frame: the same arrays."""
    train_ref, val_ref = RELEASE_PIPELINES[config]
    s = Script(uniform=[0.2, 3.0, 0.3, 0.8, 0.9, 0.9, 0.2, 1.2], integers=[0, 0, 0], rand=[0.1], perm=[4, 2, 3, 0, 1])
    ps = s.patch_paddleseg(monkeypatch)
    monkeypatch.setattr(np.random, "shuffle", lambda x: None)  # PaddleSeg's scale steps: the first, 0.5
    ps.i.pop(0)
    want = _paddleseg(train_ref())
    monkeypatch.undo()
    got = _ppzoo(_config_transforms(config, "train"), s)
    assert not s.u and not s.i and not s.r
    _same(got, want, img_atol=1e-6)
    _same(_ppzoo(_config_transforms(config, "val"), np.random.default_rng(0)), _paddleseg(val_ref()), img_atol=1e-6)
