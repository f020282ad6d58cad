"""Skeleton recognition: FSD-10 arrays, window padding, graphs, ST-GCN learning, 2s-AGCN,
PaddleVideo ST-GCN weight names."""
import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.core import DataError, WeightsError
from ppzoo.core.builder import MODELS
from ppzoo.video.datasets import SkeletonDataset
from ppzoo.video.graph import BODY25_EDGES, Graph, hop_distance, normalize_columns
from ppzoo.video.skeleton import AutoPadding, JointToBone, SkeletonNorm
from ppzoo.video.weights import load_paddlevideo_weights

MOVING_JOINT = {0: (4, 1), 1: (7, 1), 2: (11, 0)}  # class -> (joint, axis it oscillates on)


def make_fsd10(path_prefix, n, t_max=48, seed=0):
    """FSD-10-shaped arrays (N, 3, T, 25, 1): a jittered pose where one limb joint moves;
    the limb is the class.  Valid lengths vary and some sequences fill the whole array."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(123).uniform(-1, 1, size=(2, 25))  # one body for all splits
    data = np.zeros((n, 3, t_max, 25, 1), np.float32)
    labels = np.arange(n) % 3
    for i, c in enumerate(labels):
        t = t_max if i % 4 == 0 else int(rng.integers(t_max // 2, t_max))
        phase = rng.uniform(0, 2 * np.pi)
        xy = base[:, None, :] + rng.normal(0, 0.05, size=(2, t, 25)) + rng.normal(0, 0.3, size=(2, 1, 1))
        joint, axis = MOVING_JOINT[int(c)]
        xy[axis, :, joint] += 0.8 * np.sin(np.arange(t) * 0.5 + phase)
        data[i, :2, :t, :, 0] = xy
        data[i, 2, :t, :, 0] = 0.9
    np.save(f"{path_prefix}_data.npy", data)
    np.save(f"{path_prefix}_label.npy", labels.astype(np.int64))
    return f"{path_prefix}_data.npy", f"{path_prefix}_label.npy"


def test_autopadding_full_short_and_long_sequences():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(3, 20, 25, 1)).astype("float32")  # fills the whole array
    out = AutoPadding(20)({"data": full.copy()}, rng)["data"]
    np.testing.assert_array_equal(out, full)
    out = AutoPadding(30)({"data": full.copy()}, rng)["data"]
    np.testing.assert_array_equal(out[:, :20], full)
    assert not out[:, 20:].any()
    short = np.zeros((3, 40, 25, 1), "float32")
    short[:, :10] = full[:, :10]
    out = AutoPadding(16, random_pad=True)({"data": short}, np.random.default_rng(3))["data"]
    start = int(np.flatnonzero(np.abs(out).sum(axis=(0, 2, 3)))[0])
    np.testing.assert_array_equal(out[:, start:start + 10], full[:, :10])
    out = AutoPadding(5)({"data": full.copy()}, rng)["data"]  # longer: even resampling
    np.testing.assert_array_equal(out, full[:, [0, 5, 10, 14, 19]])
    out = AutoPadding(5, random_crop=True)({"data": full.copy()}, rng)["data"]
    s = [i for i in range(16) if np.array_equal(out, full[:, i:i + 5])]
    assert len(s) == 1


def test_skeleton_norm_and_bones():
    data = np.random.default_rng(1).normal(size=(3, 6, 25, 1)).astype("float32")
    out = SkeletonNorm(axis=2, center_joint=8)({"data": data.copy()}, None)["data"]
    assert out.shape == (2, 6, 25, 1) and not out[:, :, 8].any()
    np.testing.assert_allclose(out[:, :, 3], data[:2, :, 3] - data[:2, :, 8], rtol=1e-6)
    bone = JointToBone("fsd10")({"data": data.copy()}, None)["data"]
    np.testing.assert_allclose(bone[:, :, 4], data[:, :, 4] - data[:, :, 3], rtol=1e-6)
    assert not bone[:, :, 0].any()  # the root joint has no parent


@pytest.mark.parametrize("layout", ["fsd10", "ntu-rgb+d"])
def test_graph_spatial_partition(layout):
    g = Graph(layout, "spatial")
    assert g.A.shape == (3, 25, 25)
    hop = hop_distance(25, g.edges, 1)
    assert (hop[np.isfinite(hop)] <= 1).all() and np.isfinite(hop).sum() == 25 + 2 * len(g.edges)
    # the three subsets partition the normalised 1-hop neighbourhood
    adj = (hop <= 1).astype(float)
    np.testing.assert_allclose(g.A.sum(axis=0), normalize_columns(adj), atol=1e-6)
    assert np.all((g.A > 0).sum(axis=0) <= 1)
    assert np.allclose(np.diag(g.A[0]), np.diag(normalize_columns(adj)))  # root = the joint itself


def test_fsd10_dataset_and_errors(tmp_path):
    d, lab = make_fsd10(str(tmp_path / "train"), 6)
    ds = SkeletonDataset(d, lab, transforms=[{"type": "AutoPadding", "window_size": 32}])
    s = ds[0]
    assert s["data"].shape == (3, 32, 25, 1) and s["label"] == 0
    np.save(tmp_path / "bad_label.npy", np.zeros(5, np.int64))
    with pytest.raises(DataError, match="5 labels for 6"):
        SkeletonDataset(d, str(tmp_path / "bad_label.npy"))
    np.save(tmp_path / "bad_data.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(DataError, match="N x C x T x V x M"):
        SkeletonDataset(str(tmp_path / "bad_data.npy"))
    assert "label" not in SkeletonDataset(d)[0]  # unlabeled test split


def _cfg(tmp_path, backbone):
    tr = make_fsd10(str(tmp_path / "train"), 60, seed=0)
    va = make_fsd10(str(tmp_path / "val"), 30, seed=1)
    tf = [{"type": "AutoPadding", "window_size": 32}, {"type": "SkeletonNorm", "center_joint": 8}]
    return {
        "name": "skel", "seed": 0,
        "model": {"type": "RecognizerGCN", "backbone": dict(backbone, in_channels=2, layout="fsd10"),
                  "head": {"type": "STGCNHead", "num_classes": 3, "in_channels": 32}},
        "loss": {"type": "CrossEntropyLoss"},
        "train_dataset": {"type": "SkeletonDataset", "file_path": tr[0], "label_path": tr[1],
                          "transforms": tf, "class_names": ["right_arm", "left_arm", "right_leg"]},
        "val_dataset": {"type": "SkeletonDataset", "file_path": va[0], "label_path": va[1],
                        "transforms": tf, "class_names": ["right_arm", "left_arm", "right_leg"]},
        "metrics": [{"type": "TopKAccuracy", "topk": [1, 2]}],
        "optimizer": {"type": "Adam", "learning_rate": 0.01},
        "train": {"epochs": 10, "batch_size": 15, "input_keys": ["data"], "log_interval": 50},
        "eval": {"batch_size": 30, "best_metric": "top1"},
    }


def test_tiny_stgcn_learns_which_limb_moves(tmp_path):
    cfg = _cfg(tmp_path, {"type": "STGCN", "channels": [16, 32], "strides": [1, 2]})
    cfg["train"]["epochs"] = 14
    trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "run")).train()
    res = trainer.evaluate()
    assert res["top1"] >= 0.9, res
    assert res["top2"] >= res["top1"]


def test_agcn_learns_and_adapts_its_graph(tmp_path):
    cfg = _cfg(tmp_path, {"type": "AGCN2s", "channels": [16, 32], "strides": [1, 2]})
    cfg["train"]["epochs"] = 6
    trainer = ppzoo.build_trainer(cfg, work_dir=str(tmp_path / "run")).train()
    assert trainer.evaluate()["top1"] >= 0.8
    pa = trainer.model.backbone.blocks[0].gcn.PA.numpy()
    assert np.abs(pa - 1e-6).max() > 1e-4  # the learned graph B moved away from its init


def _to_paddlevideo_stgcn(state):
    """Renames a ppzoo ST-GCN state dict the way PaddleVideo's STGCN/STGCNHead name it."""
    tcn = {"bn1": "tcn.0", "tconv": "tcn.2", "bn2": "tcn.3", "res_conv": "residual.0",
           "res_bn": "residual.1", "gcn": "gcn.conv"}
    out = {}
    for k, v in state.items():
        v = v.numpy()
        parts = k.split(".")
        if parts[1] == "blocks":
            k = f"backbone.st_gcn_networks.{parts[2]}.{tcn[parts[3]]}." + ".".join(parts[4:])
        elif k == "head.fc.weight":
            k, v = "head.fcn.weight", v.T[:, :, None, None]
        elif k == "head.fc.bias":
            k = "head.fcn.bias"
        out[k] = v
    return out


def test_paddlevideo_stgcn_weights_load():
    spec = {"type": "RecognizerGCN",
            "backbone": {"type": "STGCN", "in_channels": 2, "channels": [8, 16, 16], "strides": [1, 2, 1]},
            "head": {"type": "STGCNHead", "num_classes": 30, "in_channels": 16}}
    paddle.seed(0)
    src = MODELS.build(dict(spec))
    for p in src.parameters():  # make every parameter distinct from a fresh model's
        p.set_value(paddle.randn(p.shape) * 0.1 + (1.0 if p.name.endswith("w_0") else 0.0))
    pv = _to_paddlevideo_stgcn(src.state_dict())
    assert "backbone.st_gcn_networks.1.residual.1._variance" in pv and pv["head.fcn.weight"].ndim == 4
    dst = MODELS.build(dict(spec))
    load_paddlevideo_weights(dst, pv)
    src.eval(), dst.eval()
    x = paddle.randn([2, 2, 20, 25, 1])
    np.testing.assert_allclose(src(x).numpy(), dst(x).numpy(), rtol=1e-5, atol=1e-5)
    pv["backbone.st_gcn_networks.9.gcn.conv.weight"] = np.zeros((3, 3))
    with pytest.raises(WeightsError, match="blocks.9.gcn.weight"):
        load_paddlevideo_weights(dst, pv)


from _crafted import RunsCode  # noqa: E402


def test_skeleton_labels_read_every_format_and_never_run_code(tmp_path):
    import pickle

    from ppzoo.core.errors import DataError
    from ppzoo.video.datasets import read_skeleton_labels
    names, labels = ["a", "b", "c"], [3, 0, 7]
    np.save(tmp_path / "ids.npy", np.array(labels))
    pair = np.empty(2, dtype=object)
    pair[0], pair[1] = names, labels
    np.save(tmp_path / "pair.npy", pair, allow_pickle=True)
    (tmp_path / "pair.pkl").write_bytes(pickle.dumps((names, np.array(labels))))
    for f in ("ids.npy", "pair.npy", "pair.pkl"):
        np.testing.assert_array_equal(read_skeleton_labels(str(tmp_path / f)), labels)
    marker = tmp_path / "ran"
    crafted = np.empty(2, dtype=object)
    crafted[0], crafted[1] = RunsCode(str(marker)), labels
    np.save(tmp_path / "bad.npy", crafted, allow_pickle=True)
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps((RunsCode(str(marker)), labels)))
    for f in ("bad.npy", "bad.pkl"):
        with pytest.raises(DataError, match=rf"{f}: refused to load \S*open"):
            read_skeleton_labels(str(tmp_path / f))
    assert not marker.exists()
    (tmp_path / "cut.npy").write_bytes((tmp_path / "pair.npy").read_bytes()[:90])
    with pytest.raises(DataError, match=r"cannot read skeleton label file .*cut\.npy"):
        read_skeleton_labels(str(tmp_path / "cut.npy"))
