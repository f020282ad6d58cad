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
    cfg = load_config(os.path.join(CONFIGS, f"{config}.yml"), ["model.num_classes=3"])
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
