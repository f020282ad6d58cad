"""PaddleSeg's STDC2-Seg and PP-LiteSeg-B in ppzoo: the same outputs as PaddleSeg's own modules
with the same weights, the weights-table entries of PaddleSeg's PSSL releases loading strictly
from files built here with PaddleSeg's names and shapes (nothing is downloaded), the PSSL
pre-training configs on PaddleSeg's two schedules, and PaddleSeg's loss composition."""
import os

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.core import load_config
from ppzoo.core.builder import LOSSES, MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("paddleseg")


def _paddleseg_module(model_type, num_classes):
    from paddleseg.models import PPLiteSeg, STDCSeg
    from paddleseg.models.backbones import STDC2
    paddle.seed(1)
    return (STDCSeg if model_type == "STDCSeg" else PPLiteSeg)(num_classes, STDC2())


def _without_init(model_cfg):
    return {k: v for k, v in model_cfg.items() if k != "backbone_pretrained"}


def _x(seed=0, hw=64):
    return paddle.to_tensor(np.random.default_rng(seed).normal(size=(1, 3, hw, hw)).astype("float32"))


@pytest.mark.parametrize("model_type", ["STDCSeg", "PPLiteSeg"])
def test_outputs_equal_paddlesegs_modules(model_type):
    """Same weights, same input: ppzoo's model gives PaddleSeg's logits (train: every logit;
    eval: the main one)."""
    ref = _paddleseg_module(model_type, 5)
    ours = MODELS.build({"type": model_type, "num_classes": 5, "backbone": "STDC2"})
    ours.net.set_state_dict(ref.state_dict())
    x = _x()
    ref.train(), ours.train()
    want, got = ref(x), ours(x)
    assert len(got) == len(want) == (4 if model_type == "STDCSeg" else 3)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    ref.eval(), ours.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(ours(x).numpy(), ref(x)[0].numpy(), rtol=1e-5, atol=1e-5)


PSSL_ENTRIES = ["stdc2_pssl_imagenet", "pp_liteseg_stdc2_pssl_imagenet", "stdc2_seg_voc12aug_pssl",
                "pp_liteseg_stdc2_cityscapes_pssl"]


@pytest.mark.parametrize("name", PSSL_ENTRIES)
def test_pssl_release_entries_load_strictly_into_their_configs(name, tmp_path):
    """Each released file, as PaddleSeg's module of the entry's config writes it (no prefix,
    its classes), loads strictly into the config's model and then gives PaddleSeg's logits."""
    from ppzoo import hub
    from ppzoo.hub import load_pretrained
    e = hub.load_table(hub.DEFAULT_TABLE)[name]
    assert "no hash published" in e["hash_note"] and e["url"].startswith("https://paddleseg.bj.bcebos.com/dygraph/pssl/")
    cfg = load_config(os.path.join(ROOT, e["model"]["config"]))
    assert cfg["model"]["type"] == e["model"]["type"]
    ref = _paddleseg_module(cfg["model"]["type"], cfg["model"]["num_classes"])
    path = str(tmp_path / "model.pdparams")
    paddle.save(ref.state_dict(), path)
    ours = MODELS.build(_without_init(cfg["model"]), key_path="model")
    rep = load_pretrained(ours, path, strict=True)
    assert not rep.missing and not rep.unexpected and not rep.skipped
    ref.eval(), ours.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(ours(_x(3)).numpy(), ref(_x(3))[0].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,model_type", [("stdc2_imagenet_paddleseg", "STDCSeg"),
                                             ("pp_stdc2_imagenet_paddleseg", "PPLiteSeg")])
def test_imagenet_stdc2_entries_load_strictly_into_the_backbone(name, model_type, tmp_path, monkeypatch):
    """``backbone_pretrained: imagenet`` of each model resolves to PaddleSeg's file its configs
    name (STDCNet2 for STDC-Seg, PP_STDCNet2 for PP-LiteSeg); a file with PaddleSeg's STDC2
    names and shapes loads strictly into that backbone."""
    from paddleseg.models.backbones import STDC2
    from ppzoo import hub
    import ppzoo.hub.load as hub_load
    e = hub.load_table(hub.DEFAULT_TABLE)[name]
    assert e["model"]["type"] == model_type and "no hash published" in e["hash_note"]
    seen = []
    monkeypatch.setattr(hub_load, "load_pretrained", lambda net, src, **kw: seen.append(src))
    m = MODELS.build({"type": model_type, "num_classes": 3, "backbone": "STDC2", "backbone_pretrained": "imagenet"})
    assert seen == [name]
    monkeypatch.undo()
    paddle.seed(2)
    path = str(tmp_path / "stdc2.pdparams")
    paddle.save(STDC2().state_dict(), path)
    backbone = m.net.cp.backbone if model_type == "STDCSeg" else m.net.backbone
    rep = hub.load_pretrained(backbone, path, strict=True)
    assert not rep.missing and not rep.unexpected


@pytest.mark.parametrize("config,model_type,backbone_prefix,schedule", [
    ("stdc2_seg_pssl", "STDCSeg", "net.cp.backbone.", "step"),
    ("pp_liteseg_stdc2_pssl", "PPLiteSeg", "net.backbone.", "poly")])
def test_pssl_pretraining_configs_follow_paddlesegs(config, model_type, backbone_prefix, schedule, monkeypatch):
    """PaddleSeg's configs/pssl/<config>.yml: the model on STDC2 from its ImageNet file, the
    backbone at 0.1x the learning rate, its own schedule (STDC: lr 0.01 held, weight decay
    4e-5; PP-LiteSeg: poly 0.9 to 0, 5e-4), three logits weighted 1, 1, 1."""
    import ppzoo.hub.load as hub_load
    from ppzoo.core.builder import build_lr_scheduler, build_optimizer
    from ppzoo.segmentation.models import STDC_IMAGENET
    cfg = load_config(os.path.join(ROOT, "configs", "pssl", f"{config}.yml"))
    assert cfg["model"]["type"] == model_type and cfg["model"]["num_classes"] == 1001
    seen = []
    monkeypatch.setattr(hub_load, "load_pretrained", lambda net, src, **kw: seen.append(src))
    m = MODELS.build(cfg["model"], key_path="model")
    assert seen == [STDC_IMAGENET[model_type]["STDC2"]]
    named = list(m.named_parameters())
    opt = build_optimizer(cfg["optimizer"], named, 0.01)
    backbone = {id(p) for n, p in named if n.startswith(backbone_prefix)}
    mults = {g["learning_rate"]: {id(p) for p in g["params"]} for g in opt._param_groups}
    assert backbone and mults[0.1] == backbone and len(named) > len(backbone)
    iters = cfg["train"]["iters"]
    assert iters == 133450 and cfg["train"]["batch_size"] == 12
    wd, want = (4.0e-5, lambda i: 0.01) if schedule == "step" else (5.0e-4, lambda i: 0.01 * (1 - i / iters) ** 0.9)
    assert cfg["optimizer"]["weight_decay"] == wd and cfg["optimizer"]["momentum"] == 0.9
    sched = build_lr_scheduler(cfg["lr_scheduler"], cfg["optimizer"]["learning_rate"], iters)
    for i in (0, iters // 3, iters - 1):
        if callable(sched):
            sched.step(i)
        assert abs(float(sched() if callable(sched) else sched) - want(i)) < 1e-9
    # three logits, each weighted 1 (PaddleSeg's coef [1, 1, 1]), background 0.1
    m.train()
    outs = m(_x(hw=32))
    assert len(outs) == 3
    loss = LOSSES.build(cfg["loss"])
    label = paddle.to_tensor(np.random.default_rng(4).choice([0, 5, 1000, 1001], (1, 32, 32)))
    want_loss = sum(float(loss.single(o, label)) for o in outs)
    assert float(loss(outs, label)) == pytest.approx(want_loss, rel=1e-5)
    assert float(loss.weights(1001)[1000]) == pytest.approx(0.1)


def _ohem_numpy(logit, label, thresh=0.7, min_kept=100, ignore=255):
    """OHEM as PaddleSeg defines it, in numpy: true-class probabilities of the valid pixels;
    with more than min_kept of them, keep p < max(thresh, the min_kept-th smallest p)."""
    z = logit - logit.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    lab = label.reshape(-1)
    valid = lab != ignore
    lp = np.moveaxis(logp, 1, -1).reshape(-1, logit.shape[1])[np.arange(lab.size), np.where(valid, lab, 0)]
    p = np.where(valid, np.exp(lp), np.inf)
    kept = valid.copy()
    if min_kept < valid.sum():
        t = max(thresh, np.sort(p)[min_kept - 1])
        kept &= p < t
    return (-lp * kept).mean() / (kept.mean() + 1e-5)


def test_paddleseg_losses_equal_paddlesegs_loss_computation():
    """STDC-Seg's downstream loss (three OHEM losses + the detail loss, coef 1 each): each
    OHEM term equals OHEM written out in numpy (PaddleSeg 2.8's own class fails on Paddle 3),
    the detail term is PaddleSeg's DetailAggregateLoss, summed as PaddleSeg's loss_computation."""
    from paddleseg.core.train import loss_computation
    from paddleseg.models import losses as L
    cfg = {"type": "PaddleSegLosses", "coef": [1, 1, 1, 1],
           "types": [{"type": "OhemCrossEntropyLoss", "min_kept": 100}] * 3 + [{"type": "DetailAggregateLoss"}]}
    ours = LOSSES.build(cfg)
    ref = _paddleseg_module("STDCSeg", 4)
    ref.train()
    logits = ref(_x(5))
    label = paddle.to_tensor(np.random.default_rng(6).choice([0, 1, 2, 3, 255], (1, 64, 64)).astype("int64"))
    ohem = [_ohem_numpy(lo.numpy().astype(np.float64), label.numpy()) for lo in logits[:3]]
    assert ohem[0] != pytest.approx(float(paddle.nn.functional.cross_entropy(
        logits[0], label.unsqueeze(1), ignore_index=255, axis=1)), rel=1e-3)  # mining changes the value
    ref_detail = L.DetailAggregateLoss()  # its fuse kernel is a randomly initialised parameter: use ours
    ref_detail.fuse_kernel.set_value(ours.losses[3].fuse_kernel)
    detail = float(loss_computation(logits[3:], label, None, {"types": [ref_detail], "coef": [1]})[0])
    assert float(ours(logits, label)) == pytest.approx(sum(ohem) + detail, rel=1e-4)
    with pytest.raises(ppzoo.core.errors.ConfigError, match="3 losses for the 4 logits"):
        LOSSES.build(dict(cfg, types=cfg["types"][:3], coef=[1, 1, 1]))(logits, label)


@pytest.mark.parametrize("config", ["stdc2_seg_voc12aug_pssl", "pp_liteseg_stdc2_cityscapes_pssl",
                                    "stdc2_seg_camvid_pssl", "pp_liteseg_stdc2_camvid_pssl"])
def test_downstream_configs_start_from_the_released_files(config):
    """Each downstream config starts from the released PSSL pre-training of its model and
    runs PaddleSeg's pipeline (images as float, cv2 resizes, Normalize 0.5/0.5)."""
    from ppzoo import hub
    cfg = load_config(os.path.join(ROOT, "configs", "segmentation", f"{config}.yml"))
    table = hub.load_table(hub.DEFAULT_TABLE)
    want = "stdc2_pssl_imagenet" if cfg["model"]["type"] == "STDCSeg" else "pp_liteseg_stdc2_pssl_imagenet"
    assert cfg["pretrained"] == want and want in table
    for split in ("train_dataset", "val_dataset"):
        ts = cfg[split]["transforms"]
        assert ts[0] == {"type": "ImageAsFloat"} and ts[-2]["mean"] == [0.5] * 3 and ts[-2]["std"] == [0.5] * 3
        assert all(t.get("backend", "cv2") == "cv2" for t in ts)
    assert len(cfg["loss"]["types"]) == (4 if cfg["model"]["type"] == "STDCSeg" else 3)


@pytest.mark.parametrize("name", ["stdc2_seg_voc12aug_pssl", "pp_liteseg_stdc2_cityscapes_pssl"])
def test_released_downstream_files_load_as_weights_of_the_tools(name, tmp_path):
    """``--weights`` of eval/export takes a PaddleSeg-named file as ``pretrained:`` does
    (no ``net.`` prefix), strictly: one extra tensor in the file is an error."""
    from ppzoo import hub
    from ppzoo.core.errors import WeightsError
    from ppzoo.engine.export import load_weights
    e = hub.load_table(hub.DEFAULT_TABLE)[name]
    cfg = load_config(os.path.join(ROOT, e["model"]["config"]))
    ref = _paddleseg_module(cfg["model"]["type"], cfg["model"]["num_classes"])
    path = str(tmp_path / "model.pdparams")
    paddle.save(ref.state_dict(), path)
    ours = MODELS.build(_without_init(cfg["model"]), key_path="model")
    assert load_weights(ours, path) == path
    ref.eval(), ours.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(ours(_x(4)).numpy(), ref(_x(4))[0].numpy(), rtol=1e-5, atol=1e-5)
    extra = dict(ref.state_dict(), stray=paddle.zeros([2]))
    paddle.save(extra, path)
    with pytest.raises(WeightsError, match="1 unexpected key"):
        load_weights(MODELS.build(_without_init(cfg["model"]), key_path="model"), path)
