"""Localization: BMN (mask, targets, losses), proposal post-processing, metrics, the
datasets, training on planted events, AttentionLSTM, export parity."""
import json
import math
import os

import numpy as np
import paddle
import pytest

from ppzoo.core.errors import DataError
from ppzoo.localization.bmn import (BMN, BMNLoss, bm_valid_mask, bmn_targets, interp1d_mask,
                                    pem_cls_loss, pem_reg_loss, tem_loss)
from ppzoo.localization.metrics import EventF1, match_events
from ppzoo.localization.postprocess import (NMS, ScoreFusion, SoftNMS, boundary_peaks,
                                            segment_ioa, segment_iou, stitch_windows,
                                            window_starts)


# ------------------------------------------------------------------ reference builders
def ref_bin_mask(xmin, xmax, T, S, P):
    """BMN's per-proposal sampling, written from the paper/PaddleVideo description:
    S*P evenly spaced points over [xmin, xmax], each split between trunc and ceil
    (math.modf), bins average their P points."""
    step = (xmax - xmin) / (S * P - 1.0)
    pts = [xmin + step * i for i in range(S * P)]
    out = np.zeros((T, S))
    for k in range(S):
        for x in pts[k * P:(k + 1) * P]:
            frac, down = math.modf(x)
            up = math.ceil(x)
            if 0 <= int(down) <= T - 1:
                out[int(down), k] += 1 - frac
            if 0 <= int(up) <= T - 1:
                out[int(up), k] += frac
    return out / P


def ref_mask(T, D, r, S, P):
    m = np.zeros((T, S, D, T))
    for s in range(T):
        for d in range(D):
            if s + d < T:
                L = d + 1.0
                m[:, :, d, s] = ref_bin_mask(s - L * r, s + d + L * r, T, S, P)
    return m.reshape(T, -1)


def test_interp1d_mask_matches_reference_loops():
    for T, D, S, P in [(8, 8, 4, 3), (10, 6, 3, 2)]:
        np.testing.assert_allclose(interp1d_mask(T, D, 0.5, S, P), ref_mask(T, D, 0.5, S, P),
                                   atol=1e-6)


def test_bm_valid_mask():
    np.testing.assert_array_equal(bm_valid_mask(3, 3), [[1, 1, 1], [1, 1, 0], [1, 0, 0]])


def test_bmn_targets_hand_case():
    iou, start, end = bmn_targets([(0.25, 0.75)], 4, 4)
    # proposal (t=1, d=1) is [0.25, 0.75]: IoU 1; (t=0, d=3) is [0, 1]: IoU 0.5
    assert iou[1, 1] == pytest.approx(1.0)
    assert iou[3, 0] == pytest.approx(0.5)
    assert iou[0, 0] == pytest.approx(0.0)  # [0, .25] touches [.25, .75]
    assert iou[0, 1] == pytest.approx(0.5)  # [.25, .5]
    # start region [0.25 - 1.5/4, 0.25 + 1.5/4] = [-0.125, 0.625] over anchors [t/4, (t+1)/4]
    np.testing.assert_allclose(start, [1, 1, 0.5, 0], atol=1e-6)
    # end region [0.375, 1.125]
    np.testing.assert_allclose(end, [0, 0.5, 1, 1], atol=1e-6)


def _np_weighted_logistic(pred, pos, valid):
    n = valid.sum()
    r = n / pos.sum()
    c0, c1 = 0.5 * r / (r - 1), 0.5 * r
    return -(c1 * np.log(pred + 1e-6) * pos + c0 * np.log(1 - pred + 1e-6) * (valid - pos)).sum() / n


def test_tem_loss_hand_computation():
    ps = np.array([[0.9, 0.2, 0.1, 0.3]], np.float32)
    pe = np.array([[0.1, 0.6, 0.7, 0.2]], np.float32)
    gs = np.array([[1.0, 0.6, 0.0, 0.0]], np.float32)
    ge = np.array([[0.0, 0.0, 0.8, 0.2]], np.float32)
    got = float(tem_loss(*(paddle.to_tensor(x) for x in (ps, pe, gs, ge))))
    # start: 2 positives of 4 -> r = 2, c1 = 1, c0 = 1
    want_s = -(np.log(0.9 + 1e-6) + np.log(0.2 + 1e-6) + np.log(0.9 + 1e-6) + np.log(0.7 + 1e-6)) / 4
    # end: 1 positive of 4 -> r = 4, c1 = 2, c0 = 2/3
    want_e = -(2 * np.log(0.7 + 1e-6) + 2 / 3 * (np.log(0.9 + 1e-6) + np.log(0.4 + 1e-6)
                                               + np.log(0.8 + 1e-6))) / 4
    assert got == pytest.approx(want_s + want_e, rel=1e-5)


def test_pem_losses_hand_computation():
    rng = np.random.default_rng(0)
    T = 4
    mask = bm_valid_mask(T, T)
    gt = np.array([[0.95, 0.8, 0.2, 0.1],
                   [0.5, 0.92, 0.1, 0.0],
                   [0.2, 0.1, 0.0, 0.0],
                   [0.0, 0.0, 0.0, 0.0]], np.float32)[None]
    pred = rng.uniform(0.05, 0.95, (1, T, T)).astype(np.float32)
    t = [paddle.to_tensor(x) for x in (pred, gt, mask)]
    # classification: positives IoU > 0.9 inside the mask
    pos = (gt[0] > 0.9) * mask
    neg = (gt[0] <= 0.9) * mask
    assert float(pem_cls_loss(*t)) == pytest.approx(
        _np_weighted_logistic(pred[0], pos, pos + neg), rel=1e-5)
    # regression: 3 high cells (> 0.7), 1 medium, 6 low valid: r_m = 3, r_l = 0.5
    h = (gt[0] > 0.7)
    m = (gt[0] > 0.3) & (gt[0] <= 0.7)
    lo = (gt[0] <= 0.3) & (mask > 0)
    draw = np.random.default_rng(5)
    u_m, u_l = draw.random((T, T)), draw.random((T, T))
    # r_m = 3 > 1 puts weight on every cell, as the reference's rule does
    w = h.astype(float) + ((m * u_m) > 1 - 3.0) + ((lo * u_l) > 1 - h.sum() / lo.sum())
    assert w.max() == 2
    want = 0.5 * (((pred[0] - gt[0]) ** 2) * w).sum() / w.sum()
    got = float(pem_reg_loss(*t, rng=np.random.default_rng(5)))
    assert got == pytest.approx(want, rel=1e-5)


def test_bmn_shapes_and_loss_runs():
    paddle.seed(0)
    model = BMN(feat_dim=8, tscale=12, dscale=10, num_sample=4, num_sample_perbin=2,
                hidden_dim_1d=8, hidden_dim_2d=8, hidden_dim_3d=8)
    bm, s, e = model(paddle.randn([2, 8, 12]))
    assert bm.shape == [2, 2, 10, 12] and s.shape == [2, 12] and e.shape == [2, 12]
    assert "sample_mask" not in model.state_dict()
    iou, gs, ge = bmn_targets([(0.2, 0.5)], 12, 10)
    batch = {"gt_iou_map": paddle.to_tensor(np.stack([iou, iou])),
             "gt_start": paddle.to_tensor(np.stack([gs, gs])),
             "gt_end": paddle.to_tensor(np.stack([ge, ge]))}
    loss, parts = BMNLoss(12, 10)((bm, s, e), batch)
    loss.backward()
    assert np.isfinite(float(loss)) and set(parts) == {"loss", "tem", "pem_reg", "pem_cls"}


# ------------------------------------------------------------------ post-processing
def test_iou_ioa_hand_cases():
    segs = [(0, 10), (5, 15), (20, 30), (2, 4)]
    np.testing.assert_allclose(segment_iou(segs, (0, 10)), [1, 5 / 15, 0, 0.2])
    # IoA: intersection over the reference (ground truth) length
    np.testing.assert_allclose(segment_ioa(segs, (0, 10)), [1, 0.5, 0, 0.2])
    np.testing.assert_allclose(segment_ioa([(0, 100)], (10, 20)), [1.0])


def test_soft_nms_hand_case():
    props = np.array([[0.0, 0.5, 0.9], [0.05, 0.5, 0.8], [0.6, 0.9, 0.7]])
    out = SoftNMS(alpha=0.4, low=0.0, high=0.0)(props)
    # the second overlaps the first with IoU 0.9 -> 0.8 * exp(-0.81 / 0.4); the third is apart
    np.testing.assert_allclose(out[:, 2], [0.9, 0.7, 0.8 * math.exp(-0.81 / 0.4)], rtol=1e-9)
    # width-dependent threshold: low 0.5, high 0.9, width 0.5 -> IoU must exceed 0.7 (0.9 does)
    out = SoftNMS(alpha=0.4, low=0.5, high=0.9)(props)
    assert out[2, 2] == pytest.approx(0.8 * math.exp(-0.81 / 0.4))
    # threshold 0.5 + 0.4 * 0.5 = 0.7 > IoU 0.6: untouched
    props2 = np.array([[0.0, 0.5, 0.9], [0.2, 0.5, 0.8]])
    assert SoftNMS(alpha=0.4, low=0.5, high=0.9)(props2)[1, 2] == pytest.approx(0.8)
    assert len(SoftNMS(top_k=2)(props)) == 2


def test_nms_hand_case():
    props = np.array([[0, 10, 0.9], [1, 10, 0.8], [12, 20, 0.7], [11, 13, 0.6]])
    np.testing.assert_array_equal(NMS(0.5)(props)[:, 2], [0.9, 0.7, 0.6])
    # delta widens boundaries: [10, 22] vs [9, 15] -> IoU 3/13 > 0.2
    np.testing.assert_array_equal(NMS(0.2, delta=2)(props)[:, 2], [0.9, 0.7])


def test_score_fusion_hand_case():
    T = 5
    start = np.array([0.1, 0.9, 0.2, 0.1, 0.05])
    end = np.array([0.1, 0.1, 0.1, 0.8, 0.2])
    bm = np.full((2, T, T), 0.5)
    props = ScoreFusion(first_last_candidates=False)(bm, start, end)
    # starts: peak at 1; ends: peak at 3 (and 4 is not above 0.5 * 0.8)
    np.testing.assert_allclose(props, [[1, 4, 0.9 * 0.8 * 0.25]])
    assert boundary_peaks([0.1, 0.9, 0.2, 0.1, 0.05]).tolist() == [False, True, False, False, False]


def test_windows_and_stitching():
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(3, 4, 4) == [0]
    bms = np.ones((2, 2, 2, 4))
    bms[1] *= 3
    bm, s, e = stitch_windows(bms, np.ones((2, 4)), np.ones((2, 4)), [0, 2], 6)
    np.testing.assert_allclose(bm[0, 0], [1, 1, 2, 2, 3, 3])


# ------------------------------------------------------------------ metrics
def test_event_f1_hand_case():
    gt = [(10, 20, 1), (30, 40, 2), (50, 60, 1)]
    pred = [(12, 20, 1),   # IoA 0.8: hit
            (11, 19, 1),   # IoA 0.8: a second hit of the same event (precision counts it)
            (30, 34, 2),   # IoA 0.4: miss at 0.5
            (50, 60, 2),   # wrong class: miss
            (70, 80, 1)]   # nothing there: miss
    m = EventF1(ioa_thresholds=[0.5, 0.3], per_class=True, class_names=["bg", "a", "b"])
    m.update(pred, gt)
    r = m.accumulate()
    assert r["precision@0.5"] == pytest.approx(2 / 5)
    assert r["recall@0.5"] == pytest.approx(1 / 3)
    assert r["F1@0.5"] == pytest.approx(2 * 0.4 * (1 / 3) / (0.4 + 1 / 3))
    assert r["precision@0.3"] == pytest.approx(3 / 5) and r["recall@0.3"] == pytest.approx(2 / 3)
    assert r["b/recall@0.3"] == pytest.approx(1.0) and r["a/recall@0.5"] == pytest.approx(0.5)
    hit, idx = match_events(pred, gt, 0.5)
    assert hit.tolist() == [True, True, False, False, False] and idx[:2].tolist() == [0, 0]
    # background events are ignored on both sides
    m.reset()
    m.update([(0, 5, 0)], [(0, 5, 0)])
    assert m.accumulate()["F1@0.5"] == 0.0


# ------------------------------------------------------------------ readers and bad input
def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_annotation_formats_read_as_they_are(tmp_path):
    from ppzoo.localization.annotations import read_annotations
    anet = _write(tmp_path / "anet.json", {"database": {"v1": {
        "duration": 100.0, "subset": "validation",
        "annotations": [{"segment": [1.5, 8.0], "label": "corner"}]}}})
    got = read_annotations(anet, class_names=["background", "goal", "corner"])
    assert got == {"v1": {"duration": 100.0, "subset": "validation", "events": [(1.5, 8.0, 2)]}}
    # PaddleVideo's BMN label file: entries at the top level, labels as "3.0"
    pv = _write(tmp_path / "pv.json", {"m_10_50": {"duration_second": 40.0, "subset": "train",
                                                   "annotations": [{"segment": [3.0, 9.0],
                                                                    "label": "3.0"}]}})
    assert read_annotations(pv)["m_10_50"]["events"] == [(3.0, 9.0, 3)]
    fa = _write(tmp_path / "fa.json", {"fps": 5, "gts": [{"url": "a/b/match1.mp4", "total_frames": 5400,
                                                          "actions": [{"label_ids": [4], "label_names": ["x"],
                                                                       "start_id": 100, "end_id": 104}]}]})
    assert read_annotations(fa)["match1"]["events"] == [(100.0, 104.0, 4)]


@pytest.mark.parametrize("bad, match", [
    ({"fps": 5, "gts": [{"url": "m.mp4", "actions": [{"label_ids": [1], "start_id": 9, "end_id": 3}]}]},
     "before start_id"),
    ({"fps": 5, "gts": [{"url": "m.mp4", "actions": [{"label_ids": [9], "start_id": 1, "end_id": 3}]}]},
     "outside 0..7"),
    ({"fps": 5, "gts": [{"url": "m.mp4", "actions": [{"start_id": 1, "end_id": 3}]}]}, "label_ids"),
    ({"database": {"v": {"annotations": [{"segment": [1]}]}}}, "segment"),
])
def test_bad_annotations_name_the_file_and_entry(tmp_path, bad, match):
    from ppzoo.localization.annotations import read_annotations
    path = _write(tmp_path / "bad.json", bad)
    with pytest.raises(DataError, match=match) as err:
        read_annotations(path, class_names="football")
    assert "bad.json" in str(err.value)


def test_window_dataset_and_its_errors(tmp_path):
    from ppzoo.core.errors import ConfigError
    from ppzoo.localization.datasets import BMNWindowDataset, ProposalDataset
    feats = tmp_path / "f"
    feats.mkdir()
    np.save(feats / "m.npy", np.zeros((100, 4), np.float32))
    lab = _write(tmp_path / "l.json", {"fps": 1, "gts": [{"url": "m.mp4", "actions": [
        {"label_ids": [2], "start_id": 12, "end_id": 18}, {"label_ids": [1], "start_id": 45, "end_id": 52}]}]})
    ds = BMNWindowDataset(lab, str(feats), tscale=20, dscale=20, window=20, window_step=10, fps=1)
    # windows [0,20) [10,30) hold the first event whole; [40,60) the second; [30,50) [50,70) cut it
    assert [w0 for _, w0, _ in ds.items] == [0, 10, 40]
    s = ds[1]
    assert s["feature"].shape == (4, 20) and s["gt_iou_map"].shape == (20, 20)
    np.testing.assert_allclose(s["segments"][0], [0.1, 0.4, 2])
    assert (s["segments"][1:] == -1).all()
    with pytest.raises(ConfigError, match="must equal tscale"):
        BMNWindowDataset(lab, str(feats), tscale=20, dscale=20, window=30, fps=1)
    with pytest.raises(DataError, match="no feature file m.npy"):
        BMNWindowDataset(lab, str(tmp_path), tscale=20, dscale=20, window=20, fps=1)
    np.save(feats / "m.npy", np.zeros((100,), np.float32))
    with pytest.raises(DataError, match="m.npy: features must be"):
        ProposalDataset(lab, str(feats), fps=1)


def test_proposal_dataset_with_audio_feeds_a_two_stream_attention_lstm(tmp_path):
    from ppzoo.localization.attention_lstm import AttentionLSTM, AttentionLSTMLoss
    from ppzoo.localization.datasets import ProposalDataset
    (tmp_path / "f").mkdir()
    (tmp_path / "a").mkdir()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f" / "m.npy", rng.normal(size=(200, 6)).astype(np.float32))   # 5 fps
    np.save(tmp_path / "a" / "m.npy", rng.normal(size=(40, 3)).astype(np.float32))    # 1 fps
    lab = _write(tmp_path / "l.json", {"fps": 5, "gts": [{"url": "m.mp4", "actions": [
        {"label_ids": [2], "start_id": 10, "end_id": 16}]}]})
    ds = ProposalDataset(lab, str(tmp_path / "f"), fps=5, max_len=40, audio_dir=str(tmp_path / "a"),
                         per_event=2, background_per_video=2)
    s = ds[0]   # the event itself: 30 image steps, 6 audio steps
    assert s["label"] == 2 and s["iou"] == pytest.approx(1.0)
    assert s["feature"].shape == (30, 6) and s["mask"].sum() == 30    # unpadded
    assert s["audio"].shape == (6, 3) and s["audio_mask"].sum() == 6
    np.testing.assert_array_equal(s["audio"][:6], np.load(tmp_path / "a" / "m.npy")[10:16])
    paddle.seed(0)
    model = AttentionLSTM(feature_dim=6, num_classes=3, lstm_size=4, fc_dims=[8, 8], audio_dim=3)
    batch = {k: paddle.to_tensor(v) for k, v in ds.collate_fn([ds[i] for i in range(4)]).items()
             if k in ("feature", "mask", "audio", "audio_mask", "label", "iou")}
    out = model(batch["feature"], batch["mask"], batch["audio"], batch["audio_mask"])
    loss, _ = AttentionLSTMLoss()(out, batch)
    loss.backward()
    assert out[0].shape == [4, 3] and model.lstms[1].weight_ih_l0.grad is not None


def test_window_dataset_on_activitynet_videos_resamples_to_tscale(tmp_path):
    from ppzoo.localization.datasets import BMNWindowDataset
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "v1.npy", np.arange(50, dtype=np.float32)[:, None].repeat(3, 1))
    np.save(tmp_path / "f" / "v2.npy", np.ones((10, 3), np.float32))
    lab = _write(tmp_path / "anet.json", {"database": {
        "v1": {"duration": 100.0, "subset": "training", "annotations": [{"segment": [20, 60], "label": 1}]},
        "v2": {"duration": 20.0, "subset": "validation", "annotations": [{"segment": [5, 10], "label": 1}]}}})
    ds = BMNWindowDataset(lab, str(tmp_path / "f"), tscale=25, dscale=25, subset="training")
    assert len(ds) == 1
    s = ds[0]
    # 50 steps averaged pairwise onto 25: linear interpolation at the bin centres
    np.testing.assert_allclose(s["feature"][0], np.arange(25) * 2 + 0.5)
    np.testing.assert_allclose(s["segments"][0], [0.2, 0.6, 1])
    assert s["gt_iou_map"][9, 5] == pytest.approx(1.0)   # [5/25, 15/25] = [0.2, 0.6]


def test_select_events_hand_case():
    from ppzoo.localization.infer import select_events
    props = np.array([[10, 20, 0.9], [11, 21, 0.8], [40, 45, 0.5], [60, 70, 0.4], [80, 90, 0.3]])
    probs = np.array([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8], [0.9, 0.1, 0.0],
                      [0.0, 0.05, 0.95], [0.3, 0.7, 0.0]])
    ious = np.array([0.5, 0.7, 0.9, 0.6, 0.05])
    ev = select_events(props, probs, ious, {"score_thresh": 0.5, "iou_thresh": 0.1,
                                            "nms_thresh": 0.01, "nms_delta": 2.0}, ["bg", "a", "b"])
    # #2 is background; #1 (IoU 0.7) suppresses the overlapping #0; #4's IoU is under 0.1
    assert [(e["start"], e["end"], e["label"]) for e in ev] == [(11, 21, "b"), (60, 70, "b")]
    assert ev[0]["score"] == pytest.approx(0.8) and ev[0]["iou"] == pytest.approx(0.7)


from _crafted import RunsCode  # noqa: E402


def test_pkl_features_load_as_arrays_and_never_run_code(tmp_path):
    import pickle

    from ppzoo.core.errors import DataError
    from ppzoo.localization.annotations import read_features
    feats = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"image_feature": feats, "pcm_feature": feats[:, :2]}))
    np.testing.assert_array_equal(read_features(str(good)), feats)
    marker = tmp_path / "ran"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"image_feature": RunsCode(str(marker))}))
    with pytest.raises(DataError, match=r"bad\.pkl: refused to load \S*open"):
        read_features(str(bad))
    assert not marker.exists()
