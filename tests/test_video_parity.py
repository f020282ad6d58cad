"""Side-by-side checks against PaddleVideo's module definitions.

The reference networks below are small builders written from the structure of
PaddleVideo's own modules (paddlevideo/modeling/backbones/{resnet_tsm, resnet_tweaks_tsm,
stgcn, agcn}.py and heads): same layer names, shapes and forward order.  A reference
model with random weights is saved under PaddleVideo's names, loaded strictly into the
ppzoo model built from the matching config, and both must give the same outputs.
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppzoo  # noqa: F401 - registers the components
from ppzoo.core import WeightsError
from ppzoo.core.builder import MODELS
from ppzoo.video.graph import Graph
from ppzoo.video.weights import load_paddlevideo_weights

# ------------------------------------------------------------------ reference: graphs

# PaddleVideo's fsd10 edge list, as (child, parent) pairs, and its NTU list (1-based)
PV_FSD10_EDGES = [(1, 8), (0, 1), (15, 0), (17, 15), (16, 0), (18, 16), (5, 1), (6, 5), (7, 6),
                  (2, 1), (3, 2), (4, 3), (9, 8), (10, 9), (11, 10), (24, 11), (22, 11),
                  (23, 22), (12, 8), (13, 12), (14, 13), (21, 14), (19, 14), (20, 19)]
PV_NTU_EDGES = [(a - 1, b - 1) for a, b in [
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]]
PV_LAYOUTS = {"fsd10": (PV_FSD10_EDGES, 8), "ntu-rgb+d": (PV_NTU_EDGES, 20)}


def reference_spatial_graph(layout):
    """ST-GCN's spatial partition written from its definition: 1-hop neighbourhood with
    self-loops, column-normalised (A D^-1), split into root / closer-to-centre /
    farther-from-centre by hop distance to the layout's centre joint.  As in ST-GCN and
    PaddleVideo, distances are only computed up to max_hop = 1 (farther joints are at
    infinity, and two joints at infinity count as equally far)."""
    edges, center = PV_LAYOUTS[layout]
    v = 25
    adj = np.eye(v)
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1
    # hop distance by breadth-first search (not matrix powers, as the implementation)
    dist = np.full(v, np.inf)
    dist[center], frontier = 0, [center]
    while frontier:
        nxt = []
        for a in frontier:
            for b in np.flatnonzero(adj[a]):
                if dist[b] == np.inf:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        frontier = nxt
    dist[dist > 1] = np.inf
    norm = adj / adj.sum(axis=0, keepdims=True)
    root, close, far = (np.zeros((v, v)) for _ in range(3))
    for j in range(v):
        for i in range(v):
            if not adj[j, i]:
                continue
            if i == j or dist[j] == dist[i]:
                root[j, i] = norm[j, i]
            elif dist[j] > dist[i]:
                close[j, i] = norm[j, i]
            else:
                far[j, i] = norm[j, i]
    # hop 0 gives the diagonal, hop 1 root (same distance) + closer, then farther
    diag = np.diag(np.diag(norm))
    return np.stack([diag, root - diag + close, far]).astype("float32")


@pytest.mark.parametrize("layout", ["fsd10", "ntu-rgb+d"])
def test_graph_equals_paddlevideo_definition(layout):
    np.testing.assert_allclose(Graph(layout, "spatial").A, reference_spatial_graph(layout), atol=1e-7)


# ------------------------------------------------------------------ reference: ST-GCN


class RefSTGCNBlock(nn.Layer):
    def __init__(self, cin, cout, A_k, stride=1, residual=True):
        super().__init__()
        self.k = A_k
        self.gcn = nn.Layer()
        self.gcn.conv = nn.Conv2D(cin, cout * A_k, 1)
        self.tcn = nn.Sequential(nn.BatchNorm2D(cout), nn.ReLU(),
                                 nn.Conv2D(cout, cout, (9, 1), (stride, 1), (4, 0)),
                                 nn.BatchNorm2D(cout), nn.Dropout(0.0))
        self.mode = "none" if not residual else ("id" if cin == cout and stride == 1 else "conv")
        if self.mode == "conv":
            self.residual = nn.Sequential(nn.Conv2D(cin, cout, 1, stride=(stride, 1)), nn.BatchNorm2D(cout))

    def forward(self, x, A):
        res = 0 if self.mode == "none" else (x if self.mode == "id" else self.residual(x))
        y = self.gcn.conv(x)
        n, kc, t, v = y.shape
        y = y.reshape([n, self.k, kc // self.k, t, v])
        y = paddle.einsum("nkctv,kvw->nctw", y, A)
        return F.relu(self.tcn(y) + res)


class RefSTGCN(nn.Layer):
    """PaddleVideo's RecognizerGCN(STGCN, STGCNHead) structure and names."""

    def __init__(self, layout, in_channels, num_classes):
        super().__init__()
        A = reference_spatial_graph(layout)
        self.backbone = nn.Layer()
        bb = self.backbone
        bb.register_buffer("A", paddle.to_tensor(A))
        bb.data_bn = nn.BatchNorm1D(in_channels * 25)
        spec = [(in_channels, 64, 1, False), (64, 64, 1, True), (64, 64, 1, True), (64, 64, 1, True),
                (64, 128, 2, True), (128, 128, 1, True), (128, 128, 1, True), (128, 256, 2, True),
                (256, 256, 1, True), (256, 256, 1, True)]
        bb.st_gcn_networks = nn.LayerList([RefSTGCNBlock(a, b, 3, s, r) for a, b, s, r in spec])
        bb.edge_importance = nn.ParameterList(
            [bb.create_parameter(A.shape, default_initializer=nn.initializer.Constant(1.0)) for _ in spec])
        self.head = nn.Layer()
        self.head.fcn = nn.Conv2D(256, num_classes, 1)

    def forward(self, x):
        bb = self.backbone
        n, c, t, v, m = x.shape
        x = x.transpose([0, 4, 3, 1, 2]).reshape([n * m, v * c, t])
        x = bb.data_bn(x).reshape([n, m, v, c, t]).transpose([0, 1, 3, 4, 2]).reshape([n * m, c, t, v])
        for blk, imp in zip(bb.st_gcn_networks, bb.edge_importance):
            x = blk(x, bb.A * imp)
        x = F.adaptive_avg_pool2d(x, 1)
        x = x.reshape([n, m, x.shape[1], 1, 1]).mean(axis=1)
        return self.head.fcn(x).reshape([n, -1])


def randomize(model, seed):
    """Distinct, well-scaled values in every parameter and BN statistic."""
    rng = np.random.default_rng(seed)
    for name, p in model.state_dict().items():
        shape = p.shape
        if name.endswith("_variance"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_mean") or name.endswith("bias"):
            v = rng.normal(0, 0.1, shape)
        elif len(shape) == 1:  # BN scale
            v = rng.uniform(0.2, 0.6, shape)
        elif name.endswith(".A"):
            continue
        elif "edge_importance" in name:
            v = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            v = rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        p.set_value(v.astype(str(p.numpy().dtype)))
    return model


def pv_state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def assert_outputs_close(a, b):
    a, b = a.numpy(), b.numpy()
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(a).max()), (np.abs(a - b).max(), np.abs(a).max())


@pytest.mark.parametrize("layout,cin,m", [("fsd10", 2, 1), ("ntu-rgb+d", 3, 2)])
def test_stgcn_matches_paddlevideo(layout, cin, m):
    paddle.seed(0)
    ref = randomize(RefSTGCN(layout, cin, 30), seed=1)
    ours = MODELS.build({"type": "RecognizerGCN", "pretrained_strict": True,
                         "backbone": {"type": "STGCN", "in_channels": cin, "layout": layout},
                         "head": {"type": "STGCNHead", "num_classes": 30, "in_channels": 256}})
    state = pv_state(ref)
    assert "backbone.A" in state
    mapped_names = set(load_paddlevideo_weights.__globals__["map_paddlevideo_names"](state))
    assert mapped_names == set(ours.state_dict())  # same tensors, one for one
    load_paddlevideo_weights(ours, state, strict=True)
    ref.eval(), ours.eval()
    x = paddle.to_tensor(np.random.default_rng(2).normal(size=(2, cin, 24, 25, m)).astype("float32"))
    assert_outputs_close(ref(x), ours(x))


def test_graph_buffer_never_loaded(tmp_path):
    """A checkpoint carrying another graph (NTU weights for an FSD-10 model, or a file made
    with another centre) leaves the model's own graph in place on every load path."""
    spec = {"type": "RecognizerGCN",
            "backbone": {"type": "STGCN", "in_channels": 2, "layout": "fsd10", "channels": [8, 16],
                         "strides": [1, 2]},
            "head": {"type": "STGCNHead", "num_classes": 4, "in_channels": 16}}
    model = MODELS.build(dict(spec))
    own_graph = model.backbone.A.numpy().copy()
    other = MODELS.build({**spec, "backbone": dict(spec["backbone"], layout="ntu-rgb+d")})
    state = {k: v.numpy() for k, v in other.state_dict().items()}
    assert not np.allclose(state["backbone.A"], own_graph)
    load_paddlevideo_weights(model, state)  # pretrained path
    np.testing.assert_array_equal(model.backbone.A.numpy(), own_graph)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})  # resume / --weights
    np.testing.assert_array_equal(model.backbone.A.numpy(), own_graph)
    path = str(tmp_path / "ntu.pdparams")
    paddle.save(other.state_dict(), path)
    from ppzoo.engine.export import load_weights
    load_weights(model, path)
    np.testing.assert_array_equal(model.backbone.A.numpy(), own_graph)
    built = MODELS.build({**spec, "pretrained": path, "pretrained_strict": True})  # config path
    np.testing.assert_array_equal(built.backbone.A.numpy(), own_graph)
    # the parameters themselves were loaded
    np.testing.assert_array_equal(built.head.fc.weight.numpy(), other.head.fc.weight.numpy())


def test_pretrained_strict_and_loud_summary(tmp_path, caplog):
    spec = {"type": "RecognizerGCN",
            "backbone": {"type": "STGCN", "in_channels": 2, "channels": [8, 16], "strides": [1, 2]},
            "head": {"type": "STGCNHead", "num_classes": 4, "in_channels": 16}}
    src = MODELS.build(dict(spec, head=dict(spec["head"], num_classes=7)))
    path = str(tmp_path / "w.pdparams")
    paddle.save(src.state_dict(), path)
    with pytest.raises(WeightsError, match="head.fc.weight"):
        MODELS.build({**spec, "pretrained": path, "pretrained_strict": True})
    import logging
    with caplog.at_level(logging.WARNING, logger="ppzoo"):
        MODELS.build({**spec, "pretrained": path})
    text = caplog.text
    assert "PARTIAL" in text and "2 of the file skipped" in text and "head.fc.bias" in text


# ------------------------------------------------------------------ reference: TSM / PP-TSM


class RefConvBN(nn.Layer):
    def __init__(self, cin, cout, k, stride=1, act=None, tweak=False):
        super().__init__()
        self.tweak, self.act = tweak, act
        self._conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, bias_attr=False)
        self._batch_norm = nn.BatchNorm2D(cout)

    def forward(self, x):
        if self.tweak:
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
        y = self._batch_norm(self._conv(x))
        return getattr(F, self.act)(y) if self.act else y


class RefBottleneck(nn.Layer):
    def __init__(self, cin, w, stride, shortcut, num_seg, act, vd, first):
        super().__init__()
        self.num_seg, self.act, self.shortcut = num_seg, act, shortcut
        self.conv0 = RefConvBN(cin, w, 1, act=act)
        self.conv1 = RefConvBN(w, w, 3, stride, act=act)
        self.conv2 = RefConvBN(w, w * 4, 1)
        if not shortcut:
            if vd:  # ResNetTweaksTSM: pooled stride-1 1x1, no pooling in the very first block
                self.short = RefConvBN(cin, w * 4, 1, 1, tweak=not first)
            else:
                self.short = RefConvBN(cin, w * 4, 1, stride)

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(F.temporal_shift(x, self.num_seg, 1.0 / self.num_seg))))
        return getattr(F, self.act)(y + (x if self.shortcut else self.short(x)))


class RefBasic(nn.Layer):
    def __init__(self, cin, w, stride, shortcut, num_seg, act):
        super().__init__()
        self.num_seg, self.act, self.shortcut = num_seg, act, shortcut
        self.conv0 = RefConvBN(cin, w, 3, stride, act=act)
        self.conv1 = RefConvBN(w, w, 3)
        if not shortcut:
            self.short = RefConvBN(cin, w, 1, stride)  # no pooling, also in PP-TSM

    def forward(self, x):
        y = self.conv1(self.conv0(F.temporal_shift(x, self.num_seg, 1.0 / self.num_seg)))
        return getattr(F, self.act)(y + (x if self.shortcut else self.short(x)))


class RefResNetTSM(nn.Layer):
    """PaddleVideo's ResNetTSM (vd=False, relu, stem ``conv``, blocks ``res<s><letter>``) and
    ResNetTweaksTSM (vd=True, leaky_relu, stems ``conv1_{1,2,3}``, bottlenecks ``bb_<s>_<i>``,
    basic blocks ``res<s><letter>``); the first block of every stage has a projection."""

    def __init__(self, depth, vd, num_seg):
        super().__init__()
        act = "leaky_relu" if vd else "relu"
        stages = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        if vd:
            self.conv1_1 = RefConvBN(3, 32, 3, 2, act)
            self.conv1_2 = RefConvBN(32, 32, 3, 1, act)
            self.conv1_3 = RefConvBN(32, 64, 3, 1, act)
            self.stem = [self.conv1_1, self.conv1_2, self.conv1_3]
        else:
            self.conv = RefConvBN(3, 64, 7, 2, act)
            self.stem = [self.conv]
        self.blocks, cin = [], 64
        for s, n in enumerate(stages):
            w = 64 * 2 ** s
            for i in range(n):
                stride = 2 if i == 0 and s > 0 else 1
                if depth >= 50:
                    if depth == 101 and s == 2:
                        name = "res4a" if i == 0 else f"res4b{i}"
                    else:
                        name = f"res{s + 2}{chr(97 + i)}"
                    if vd:
                        name = f"bb_{s}_{i}"
                    blk = RefBottleneck(cin, w, stride, i > 0, num_seg, act, vd, first=s == i == 0)
                    cin = w * 4
                else:
                    name = f"res{s + 2}{chr(97 + i)}"
                    blk = RefBasic(cin, w, stride, i > 0, num_seg, act)
                    cin = w
                self.blocks.append(self.add_sublayer(name, blk))
        self.out_channels = cin

    def forward(self, x):
        for layer in self.stem:
            x = layer(x)
        x = F.max_pool2d(x, 3, 2, 1)
        for blk in self.blocks:
            x = blk(x)
        return x


class RefRecognizer2D(nn.Layer):
    """Recognizer2D + TSMHead/ppTSMHead: pool, (dropout), fc per segment, segment mean."""

    def __init__(self, depth, vd, num_seg, num_classes):
        super().__init__()
        self.num_seg = num_seg
        self.backbone = RefResNetTSM(depth, vd, num_seg)
        self.head = nn.Layer()
        self.head.fc = nn.Linear(self.backbone.out_channels, num_classes)

    def forward(self, x):
        x = x.reshape([-1] + list(x.shape[2:]))
        f = F.adaptive_avg_pool2d(self.backbone(x), 1).flatten(1)
        return self.head.fc(f).reshape([-1, self.num_seg, self.head.fc.weight.shape[1]]).mean(axis=1)


@pytest.mark.parametrize("vd", [False, True], ids=["tsm", "pptsm"])
@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_tsm_backbones_match_paddlevideo(depth, vd):
    num_seg = 4
    paddle.seed(0)
    ref = randomize(RefRecognizer2D(depth, vd, num_seg, 5), seed=depth)
    backbone = {"type": "ResNetTSM", "depth": depth, "num_seg": num_seg, "shift": True}
    if vd:
        backbone.update(vd=True, act="leaky_relu")
    ours = MODELS.build({"type": "Recognizer2D", "backbone": backbone,
                         "head": {"type": "ppTSMHead" if vd else "TSMHead", "num_classes": 5,
                                  "in_channels": ref.backbone.out_channels, "num_seg": num_seg}})
    state = pv_state(ref)
    mapped = load_paddlevideo_weights.__globals__["map_paddlevideo_names"](state)
    own = ours.state_dict()
    assert set(mapped) == set(own)
    assert all(tuple(mapped[k].shape) == tuple(own[k].shape) for k in own)
    load_paddlevideo_weights(ours, state, strict=True)
    ref.eval(), ours.eval()
    x = paddle.to_tensor(np.random.default_rng(3).normal(size=(1, num_seg, 3, 32, 32)).astype("float32"))
    assert_outputs_close(ref(x), ours(x))


# ------------------------------------------------------------------ reference: FSD-10 AGCN


class RefAGCNGCN(nn.Layer):
    def __init__(self, cin, cout, v=25):
        super().__init__()
        self.conv1 = nn.Conv2D(cin, 3 * cout, 1)
        self.conv2 = nn.Conv2D(v * 3, v, 1)

    def forward(self, x):  # PaddleVideo's order of reshapes and transposes
        x = self.conv1(x)
        n, c, t, v = x.shape
        x = x.reshape([n, c // 3, 3, t, v]).transpose([0, 1, 2, 4, 3]).reshape([n, c // 3, 3 * v, t])
        x = self.conv2(x.transpose([0, 2, 1, 3]))
        return x.transpose([0, 2, 3, 1])


class RefAGCNBlock(nn.Layer):
    def __init__(self, cin, cout, stride=1, residual=True):
        super().__init__()
        self.residual = residual
        self.bn_res = nn.BatchNorm2D(cout)
        self.conv_res = nn.Conv2D(cin, cout, 1, stride=(stride, 1))
        self.gcn = RefAGCNGCN(cin, cout)
        self.tcn = nn.Sequential(nn.BatchNorm2D(cout), nn.ReLU(),
                                 nn.Conv2D(cout, cout, (9, 1), stride=(stride, 1), padding=(4, 0)),
                                 nn.BatchNorm2D(cout))

    def forward(self, x):
        y = self.bn_res(self.conv_res(x)) if self.residual else None
        x = self.tcn(self.gcn(x))
        return F.relu(x + y if self.residual else x)


class RefAGCN(nn.Layer):
    """PaddleVideo's RecognizerGCN(AGCN, STGCNHead) for FSD-10: 206 tensors."""

    def __init__(self, num_classes=30):
        super().__init__()
        self.backbone = nn.Layer()
        self.backbone.data_bn = nn.BatchNorm1D(50)  # built, never applied
        spec = [(2, 64, 1, False), (64, 64, 1, True), (64, 64, 1, True), (64, 64, 1, True),
                (64, 128, 2, True), (128, 128, 1, True), (128, 128, 1, True), (128, 256, 2, True),
                (256, 256, 1, True), (256, 256, 1, True)]
        self.backbone.agcn = nn.Sequential(*[RefAGCNBlock(a, b, s, r) for a, b, s, r in spec])
        self.head = nn.Layer()
        self.head.fcn = nn.Conv2D(256, num_classes, 1)

    def forward(self, x):
        n, c, t, v, m = x.shape
        x = self.backbone.agcn(x.transpose([0, 4, 1, 2, 3]).reshape([n * m, c, t, v]))
        x = F.adaptive_avg_pool2d(x, 1)
        x = x.reshape([n, m, x.shape[1], 1, 1]).mean(axis=1)
        return self.head.fcn(x).reshape([n, -1])


def test_fsd10_agcn_matches_paddlevideo(tmp_path):
    paddle.seed(0)
    ref = randomize(RefAGCN(), seed=5)
    state = pv_state(ref)
    assert len(state) == 206
    path = str(tmp_path / "AGCN_fsd.pdparams")
    paddle.save(ref.state_dict(), path)
    cfg = ppzoo.core.load_config("configs/skeleton/agcn_fsd10.yml")
    spec = dict(cfg["model"], pretrained=path, pretrained_strict=True)
    ours = MODELS.build(spec)  # strict: all 206 tensors, nothing left out
    ref.eval(), ours.eval()
    x = paddle.to_tensor(np.random.default_rng(6).normal(size=(2, 2, 40, 25, 1)).astype("float32"))
    assert_outputs_close(ref(x), ours(x))
    # the 2s-AGCN keeps its own name and does not take this file
    with pytest.raises(WeightsError):
        MODELS.build(dict(spec, backbone={"type": "AGCN2s", "in_channels": 2, "layout": "fsd10"}))


def test_two_stream_fusion_equals_bone_pipeline():
    from ppzoo.video.skeleton import JointToBone
    paddle.seed(0)
    stream = {"type": "RecognizerGCN",
              "backbone": {"type": "AGCN2s", "in_channels": 2, "channels": [8], "strides": [1]},
              "head": {"type": "STGCNHead", "num_classes": 3, "in_channels": 8}}
    fusion = MODELS.build({"type": "SkeletonFusion", "weights": [1.0, 0.5],
                           "streams": [{"input": "joint", "model": stream}, {"input": "bone", "model": stream}]})
    fusion.eval()
    data = np.random.default_rng(7).normal(size=(2, 2, 12, 25, 1)).astype("float32")
    bone = np.stack([JointToBone("fsd10")({"data": d.copy()}, None)["data"] for d in data])
    joint_p = F.softmax(fusion.streams[0](paddle.to_tensor(data)), -1).numpy()
    bone_p = F.softmax(fusion.streams[1](paddle.to_tensor(bone)), -1).numpy()
    np.testing.assert_allclose(fusion(paddle.to_tensor(data)).numpy(), joint_p + 0.5 * bone_p, atol=1e-5)


# ------------------------------------------------------------------ ImageNet initialisation


def _vision_features(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_backbone_from_paddle_vision_imagenet_file(tmp_path, caplog):
    import logging
    from paddle.vision.models import resnet18, resnet50
    paddle.seed(0)
    net = randomize(resnet50(pretrained=False), seed=11)
    path = str(tmp_path / "resnet50.pdparams")
    paddle.save(net.state_dict(), path)
    bb = MODELS.build({"type": "Recognizer2D",
                       "backbone": {"type": "ResNetTSM", "depth": 50, "shift": False, "num_seg": 1,
                                    "pretrained": path, "pretrained_strict": True},
                       "head": {"type": "TSNHead", "num_classes": 3, "in_channels": 2048, "num_seg": 1}}).backbone
    net.eval(), bb.eval()
    x = paddle.to_tensor(np.random.default_rng(12).normal(size=(2, 3, 64, 64)).astype("float32"))
    assert_outputs_close(_vision_features(net, x), bb(x))
    # ResNet-18: paddle.vision has no projection in the first block, PaddleVideo's layout has:
    # strict refuses, otherwise a loud partial load
    small = str(tmp_path / "resnet18.pdparams")
    paddle.save(resnet18(pretrained=False).state_dict(), small)
    spec = {"type": "ResNetTSM", "depth": 18, "shift": False, "num_seg": 1, "pretrained": small}
    from ppzoo.core.builder import BACKBONES
    with pytest.raises(WeightsError, match="stages.0.0.short"):
        BACKBONES.build(dict(spec, pretrained_strict=True))
    with caplog.at_level(logging.WARNING, logger="ppzoo"):
        BACKBONES.build(dict(spec))
    assert "PARTIAL" in caplog.text and "stages.0.0.short" in caplog.text


def test_backbone_from_paddlevideo_imagenet_file_and_backbone_only_file(tmp_path):
    """PaddleVideo's ResNet50_vd_ssld_v2 ImageNet file holds ResNetTweaksTSM's names without a
    prefix plus the ImageNet classifier; it fits PP-TSM's backbone entirely, and the same file
    given as the recognizer's ``pretrained`` loads into its backbone."""
    paddle.seed(0)
    ref = randomize(RefResNetTSM(50, vd=True, num_seg=4), seed=13)
    state = pv_state(ref)
    state["out.weight"], state["out.bias"] = np.zeros((2048, 1000), "float32"), np.zeros(1000, "float32")
    path = str(tmp_path / "ResNet50_vd_ssld_v2_pretrained.pdparams")
    paddle.save(state, path)
    backbone = {"type": "ResNetTSM", "depth": 50, "num_seg": 4, "vd": True, "act": "leaky_relu"}
    head = {"type": "ppTSMHead", "num_classes": 3, "in_channels": 2048, "num_seg": 4}
    a = MODELS.build({"type": "Recognizer2D", "head": head,
                      "backbone": dict(backbone, pretrained=path, pretrained_strict=True)})
    b = MODELS.build({"type": "Recognizer2D", "head": head, "backbone": backbone, "pretrained": path})
    ref.eval(), a.eval(), b.eval()
    x = paddle.to_tensor(np.random.default_rng(14).normal(size=(4, 3, 32, 32)).astype("float32"))
    assert_outputs_close(ref(x), a.backbone(x))
    assert_outputs_close(ref(x), b.backbone(x))


def test_weights_table_video_entries_load_strictly_into_their_configs(tmp_path):
    """Each PaddleVideo entry of the weights table, as a file built here with PaddleVideo's
    names and shapes, loads strictly into the config the table names."""
    import os
    from ppzoo import hub
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    table = hub.load_table(hub.DEFAULT_TABLE)
    entries = {k: e for k, e in table.items() if "PaddleVideo" in e["source"]}
    assert {"pptsm_k400_uniform", "tsm_k400", "tsn_k400", "stgcn_fsd10", "agcn_fsd10",
            "paddlevideo_resnet50_vd_ssld_v2_imagenet"} <= set(entries)
    done = {}
    for name, e in entries.items():
        cfg_file = e["model"].get("config")
        if cfg_file is None:
            continue
        if cfg_file in done:
            continue
        cfg = ppzoo.core.load_config(os.path.join(root, cfg_file))
        model_cfg = dict(cfg["model"])  # the entry's checkpoint replaces the ImageNet init
        bb = model_cfg["backbone"] = {k: v for k, v in cfg["model"]["backbone"].items()
                                      if k not in ("pretrained", "pretrained_strict")}
        ncls = model_cfg["head"]["num_classes"]
        if bb["type"] == "ResNetTSM":
            ref = RefRecognizer2D(bb["depth"], bool(bb.get("vd")), bb["num_seg"], ncls)
        elif bb["type"] == "STGCN":
            ref = RefSTGCN(bb.get("layout", "fsd10"), bb["in_channels"], ncls)
        else:
            ref = RefAGCN(ncls)
        path = str(tmp_path / f"{name}.pdparams")
        paddle.save(ref.state_dict(), path)
        MODELS.build(dict(model_cfg, pretrained=path, pretrained_strict=True))
        done[cfg_file] = name
    assert len(done) == 7, done  # pptsm_r50(_dense), tsm, tsn, stgcn_fsd10, stgcn_ntu, agcn_fsd10
    # the video presets start from PaddleVideo's ImageNet backbones, strictly
    for f, want in [("pptsm_r50", "paddlevideo_resnet50_vd_ssld_v2_imagenet"),
                    ("pptsm_football", "paddlevideo_resnet50_vd_ssld_v2_imagenet"),
                    ("tsm_r50", "paddlevideo_resnet50_imagenet"), ("tsn_r50", "paddlevideo_resnet50_imagenet")]:
        bb = ppzoo.core.load_config(os.path.join(root, "configs", "video", f + ".yml"))["model"]["backbone"]
        assert bb["pretrained"] == want and bb["pretrained_strict"] is True and want in table
