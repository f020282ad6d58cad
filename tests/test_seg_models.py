"""The paper's models (PaddleSeg PSPNet-R50, DeepLabV3-R50, OCRNet-HRNetW18) build in
ppzoo and run a training step; apart from test_seg.py because ResNet-50s are slow on a CPU."""
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.core.builder import MODELS
from ppzoo.segmentation.losses import SegCrossEntropyLoss


@pytest.mark.parametrize("name,backbone", [("PSPNet", "ResNet50_vd"), ("DeepLabV3", "ResNet50_vd"),
                                           ("OCRNet", "HRNet_W18")])
def test_paper_models_train_step(name, backbone):
    paddle.seed(0)
    m = MODELS.build({"type": name, "num_classes": 3, "backbone": backbone})
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
