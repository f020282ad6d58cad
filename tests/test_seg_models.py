"""The paper's models (PaddleSeg PSPNet-R50, DeepLabV3-R50, OCRNet-HRNetW18) build in
ppzoo and run a training step; apart from test_seg.py because ResNet-50s are slow on a CPU."""
import os

import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.core import load_config
from ppzoo.core.builder import MODELS
from ppzoo.segmentation.losses import SegCrossEntropyLoss


CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "segmentation")


@pytest.mark.parametrize("config", ["pspnet_r50_camvid", "deeplabv3_r50_camvid", "ocrnet_hrnetw18_camvid"])
def test_paper_models_train_step(config):
    """Each paper config's model, with its classes cut to 3, takes a training step."""
    paddle.seed(0)
    cfg = load_config(os.path.join(CONFIGS, f"{config}.yml"), ["model.num_classes=3", "model.backbone_pretrained=null"])
    m = MODELS.build(cfg["model"], key_path="model")
    loss_fn = SegCrossEntropyLoss()
    opt = paddle.optimizer.SGD(0.01, parameters=m.parameters())
    x = paddle.randn([1, 3, 32, 32])
    y = paddle.randint(0, 3, [1, 32, 32])
    m.train()
    outs = m(x)
    assert isinstance(outs, list) and outs[0].shape[1] == 3
    loss = loss_fn(outs, y)
    loss.backward()
    opt.step()
    m.eval()
    with paddle.no_grad():
        assert m(x).shape == [1, 3, 32, 32]


@pytest.mark.parametrize("config", ["pspnet_r50_pssl", "deeplabv3_r50_pssl", "ocrnet_hrnetw18_pssl"])
def test_paper_pssl_configs_follow_paddlesegs_recipe(config, tmp_path, monkeypatch):
    """ImageNet backbone by default (resolved through the hub, not downloaded here), the
    backbone at 0.1x the learning rate, PaddleSeg's PSSL augmentation on released labels."""
    import numpy as np
    from PIL import Image
    from ppzoo.core.builder import DATASETS, build_optimizer
    import ppzoo.hub.load as hub_load
    from ppzoo.segmentation.models import BACKBONE_IMAGENET
    path = os.path.join(os.path.dirname(CONFIGS), "pssl", f"{config}.yml")
    cfg = load_config(path)
    assert cfg["model"]["backbone_pretrained"] == "imagenet" and cfg["model"]["num_classes"] == 1001
    seen = []
    monkeypatch.setattr(hub_load, "load_pretrained", lambda net, src, **kw: seen.append(src))
    m = MODELS.build(cfg["model"], key_path="model")
    assert seen == [BACKBONE_IMAGENET[cfg["model"]["backbone"]]]
    named = list(m.named_parameters())
    opt = build_optimizer(cfg["optimizer"], named, 0.01)
    backbone = {id(p) for n, p in named if n.startswith("net.backbone.")}
    groups = opt._param_groups
    mults = {g["learning_rate"]: {id(p) for p in g["params"]} for g in groups}
    assert mults[0.1] == backbone and backbone and len(named) > len(backbone)
    # the released-format pipeline: one image + label through the config's transforms
    (tmp_path / "p" / "train" / "n01").mkdir(parents=True)
    (tmp_path / "i" / "train" / "n01").mkdir(parents=True)
    Image.fromarray(np.zeros((120, 90, 3), np.uint8)).save(tmp_path / "i" / "train" / "n01" / "n01_1.JPEG", "JPEG")
    np.savez(tmp_path / "p" / "train" / "n01" / "n01_1.JPEG_eiseg.npz", np.ones((120, 90), np.uint8))
    (tmp_path / "p" / "train.txt").write_text("train/n01/n01_1.JPEG_eiseg.npz\n")
    (tmp_path / "p" / "imagenet_lsvrc_2015_synsets.txt").write_text("n00\nn01\n")
    ds = DATASETS.build(dict(cfg["train_dataset"], pssl_root=str(tmp_path / "p"), imagenet_root=str(tmp_path / "i")))
    s = ds[0]
    assert s["image"].shape == (3, 256, 256) and s["mask"].shape[:2] == (256, 256)
    assert set(np.unique(s["mask"])) <= {1, 1001}  # class 1 (from the synsets), padding ignored


def test_deeplabv3_multi_grid_matches_paddleseg():
    """DeepLabV3-R50 carries PaddleSeg's R50 DeepLabV3 multi-grid (1, 2, 4): with the same
    weights its logits equal those of PaddleSeg's own module built as its configs build it
    (ResNet50_vd, output_stride 8, multi_grid [1, 2, 4]); 4/4/4 dilations give other logits."""
    import numpy as np
    from paddleseg.models import DeepLabV3 as PSDeepLabV3
    from paddleseg.models.backbones import ResNet50_vd

    def paddleseg_net(grid):
        return PSDeepLabV3(3, ResNet50_vd(output_stride=8, multi_grid=grid), backbone_indices=(3,),
                           aspp_ratios=(1, 12, 24, 36), aspp_out_channels=256)

    paddle.seed(0)
    ours = MODELS.build({"type": "DeepLabV3", "num_classes": 3, "backbone": "ResNet50_vd"}, key_path="model")
    state = ours.net.state_dict()
    x = paddle.to_tensor(np.random.RandomState(0).randn(1, 3, 64, 64).astype("float32"))
    outs = {}
    for grid in [(1, 2, 4), (1, 1, 1)]:
        ref = paddleseg_net(grid)
        ref.set_state_dict(state)
        ref.eval()
        with paddle.no_grad():
            outs[grid] = ref(x)[0].numpy()
    ours.eval()
    with paddle.no_grad():
        got = ours(x).numpy()
    scale = np.abs(outs[(1, 2, 4)]).max()
    np.testing.assert_allclose(got, outs[(1, 2, 4)], rtol=0, atol=1e-5 * scale)
    assert np.abs(got - outs[(1, 1, 1)]).max() > 1e-2 * scale  # the grid is visible at this size


def test_deeplabv3_multi_grid_rejects_bad_values():
    """A malformed grid, or one on a backbone without stages to dilate, is a one-line ConfigError."""
    from ppzoo.core.errors import ConfigError
    with pytest.raises(ConfigError, match="model.multi_grid"):
        MODELS.build({"type": "DeepLabV3", "num_classes": 3, "multi_grid": [1, 2]}, key_path="model")
    with pytest.raises(ConfigError, match="model.multi_grid"):
        MODELS.build({"type": "DeepLabV3", "num_classes": 3, "backbone": "HRNet_W18", "multi_grid": [1, 2, 4]},
                     key_path="model")


@pytest.mark.parametrize("model", ["pspnet_r50", "deeplabv3_r50", "ocrnet_hrnetw18"])
def test_pssl_configs_carry_both_paddleseg_schedules(model):
    """``*_pssl.yml`` follow PaddleSeg's STDC PSSL configs (SGD momentum, weight decay 4e-5,
    lr 0.01 held: StepDecay whose step lies beyond the run); ``*_pssl_poly.yml`` its PP-LiteSeg
    PSSL configs (weight decay 5e-4, PolynomialDecay power 0.9 to 0 over the run); the rest
    is the same recipe.  The learning rate is checked against the written-out formula."""
    from ppzoo.core.builder import build_lr_scheduler
    pssl = os.path.join(os.path.dirname(CONFIGS), "pssl")
    step = load_config(os.path.join(pssl, f"{model}_pssl.yml"))
    poly = load_config(os.path.join(pssl, f"{model}_pssl_poly.yml"))
    assert step["optimizer"]["weight_decay"] == 4.0e-5 and poly["optimizer"]["weight_decay"] == 5.0e-4
    iters = step["train"]["iters"]
    assert iters == poly["train"]["iters"] == 133450
    for cfg, want in ((step, lambda i: 0.01), (poly, lambda i: 0.01 * (1 - i / iters) ** 0.9)):
        assert cfg["optimizer"]["learning_rate"] == 0.01 and cfg["optimizer"]["momentum"] == 0.9
        sched = build_lr_scheduler(cfg["lr_scheduler"], cfg["optimizer"]["learning_rate"], iters)
        for i in (0, 1, iters // 4, iters // 2, iters - 1, iters):
            if callable(sched):
                sched.step(i)  # the schedule's value after i optimizer steps
            lr = float(sched() if callable(sched) else sched)
            assert abs(lr - want(i)) < 1e-9, (cfg["name"], i, lr, want(i))
    same = {k for k in step if k not in ("name", "optimizer", "lr_scheduler", "_file_")}
    assert {k: step[k] for k in same} == {k: poly[k] for k in same}
    assert {k: v for k, v in step["optimizer"].items() if k != "weight_decay"} == \
        {k: v for k, v in poly["optimizer"].items() if k != "weight_decay"}
