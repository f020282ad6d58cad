"""Localization definitions checked against independent re-derivations of PaddleVideo's
(GetVideoLabel, ANETproposal's AR-AN, FootballAction's proposal generation) written
here with scalar loops in the references' own order of operations."""
import math

import numpy as np
import pytest

from ppzoo.localization.bmn import bmn_targets


# ------------------------------------------------------------------ GetVideoLabel
def _ref_video_label(segments, T):
    """GetMatchMap + GetVideoLabel, one scalar at a time (tscale == dscale)."""
    tgap = 1.0 / T
    gts = [(max(min(1, s), 0), max(min(1, e), 0)) for s, e in segments]

    def ioa(amin, amax, bmin, bmax):
        inter = max(min(amax, bmax) - max(amin, bmin), 0.0)
        return inter / (amax - amin)

    def iou(amin, amax, bmin, bmax):
        inter = max(min(amax, bmax) - max(amin, bmin), 0.0)
        return inter / (amax - amin - inter + bmax - bmin)

    iou_map = np.zeros((T, T))
    for jdx in range(1, T + 1):              # duration index d = jdx - 1
        for idx in range(T):                 # start t
            xmin = tgap * idx
            xmax = xmin + tgap * jdx
            iou_map[jdx - 1, idx] = max(iou(xmin, xmax, s, e) for s, e in gts)
    small = 3 * tgap
    start, end = np.zeros(T), np.zeros(T)
    for j in range(T):
        amin, amax = tgap * j, tgap * (j + 1)
        start[j] = max(ioa(amin, amax, s - small / 2, s + small / 2) for s, _ in gts)
        end[j] = max(ioa(amin, amax, e - small / 2, e + small / 2) for _, e in gts)
    return iou_map.astype(np.float32), start.astype(np.float32), end.astype(np.float32)


@pytest.mark.parametrize("T", [7, 16, 100])
def test_bmn_targets_equal_get_video_label_on_random_and_on_grid_segments(T):
    rng = np.random.default_rng(T)
    cases = []
    for _ in range(6):                                   # random segments
        k = int(rng.integers(1, 4))
        a = rng.uniform(-0.1, 1.0, k)
        cases.append([(x, min(1.1, x + rng.uniform(0.01, 0.5))) for x in a])
    for _ in range(6):                                   # on the grid: float ties matter
        k = int(rng.integers(1, 4))
        a = rng.integers(0, T - 1, k)
        cases.append([(i / T, (i + int(rng.integers(1, T - i + 1))) / T) for i in a])
    cases.append([(0.0, 1.0)])
    cases.append([(1.0 / T * 2, 1.0 / T * 5)])
    for segs in cases:
        want = _ref_video_label(segs, T)
        got = bmn_targets(segs, T, T)
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g, w)


def test_bmn_targets_start_anchors_are_t_to_t_plus_one():
    # start 0.25 in a window of 4: region [-0.125, 0.625]; anchors [t/4, (t+1)/4]
    _, start, end = bmn_targets([(0.25, 0.75)], 4, 4)
    np.testing.assert_allclose(start, [1, 1, 0.5, 0], atol=1e-7)
    # end 0.75: region [0.375, 1.125]
    np.testing.assert_allclose(end, [0, 0.5, 1, 1], atol=1e-7)


def test_bmn_targets_with_fewer_durations_keep_the_first_rows():
    segs = [(0.1, 0.37), (0.5, 0.92)]
    full = bmn_targets(segs, 12, 12)[0]
    np.testing.assert_array_equal(bmn_targets(segs, 12, 5)[0], full[:5])
    assert not bmn_targets([], 6, 6)[1].any()


# ------------------------------------------------------------------ ANETproposal AR-AN
def _ref_anet_ar_an(videos, max_avg=100, thresholds=np.linspace(0.5, 0.95, 10)):
    """ActivityNet's proposal evaluation re-derived with pandas tables, as its script
    builds them from the ground-truth and proposal files.  ``videos``: name ->
    (gts (G, 2), proposals (K, 3))."""
    import pandas as pd

    gt = pd.DataFrame([(v, s, e) for v, (g, _) in videos.items() for s, e in g],
                      columns=["video-id", "t-start", "t-end"])
    pr = pd.DataFrame([(v, s, e, c) for v, (_, p) in videos.items() for s, e, c in p],
                      columns=["video-id", "t-start", "t-end", "score"])
    vids = gt["video-id"].unique()
    ratio = max_avg * float(len(vids)) / pr.shape[0]
    by_gt, by_pr = gt.groupby("video-id"), pr.groupby("video-id")
    scores, total = [], 0
    for v in vids:
        g = by_gt.get_group(v)[["t-start", "t-end"]].values
        if v not in by_pr.groups:
            scores.append(np.zeros((len(g), 1)))
            continue
        grp = by_pr.get_group(v)
        p = grp[["t-start", "t-end"]].values[grp["score"].argsort()[::-1], :]
        n = min(int(p.shape[0] * ratio), p.shape[0])
        total += n
        p = p[:n]
        tiou = np.empty((len(g), n))
        for j in range(n):
            for i in range(len(g)):
                inter = max(min(p[j, 1], g[i, 1]) - max(p[j, 0], g[i, 0]), 0)
                tiou[i, j] = inter / ((g[i, 1] - g[i, 0]) + (p[j, 1] - p[j, 0]) - inter)
        scores.append(tiou)
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(len(vids)) / total)
    recall = np.empty((len(thresholds), 100))
    for r, thr in enumerate(thresholds):
        matches = np.zeros(100)
        for sc in scores:
            for j, frac in enumerate(pcn):
                k = min(int(sc.shape[1] * frac), sc.shape[1])
                matches[j] += sum(1 for row in sc[:, :k] >= thr if row.any())
        recall[r] = matches / sum(len(sc) for sc in scores)
    avg = recall.mean(0)
    an = pcn * (float(total) / len(vids))
    auc = sum((an[i + 1] - an[i]) * (avg[i + 1] + avg[i]) / 2 for i in range(99)) / an[-1]
    return avg, auc


def _random_videos(rng, n_videos, k_range, with_empty=True):
    videos = {}
    for v in range(n_videos):
        dur = 100.0
        g = rng.uniform(0, dur, (int(rng.integers(1, 4)), 2))
        g.sort(axis=1)
        k = int(rng.integers(*k_range))
        a = rng.uniform(0, dur, (k, 2))
        a.sort(axis=1)
        # some proposals near a ground truth so every threshold sees hits
        near = g[rng.integers(0, len(g), k)] + rng.normal(0, 3, (k, 2))
        pick = rng.random(k) < 0.5
        a[pick] = np.sort(near[pick], axis=1)
        p = np.concatenate([a, rng.random((k, 1))], 1)
        videos[f"v{v}"] = (g, p)
    if with_empty:
        videos["no_gt"] = (np.zeros((0, 2)), np.array([[1.0, 5.0, 0.5]] * 7))
    return videos


@pytest.mark.parametrize("k_range", [(20, 101), (100, 101), (150, 300), (1, 12)])
def test_average_recall_equals_anet_proposal_for_any_proposal_count(k_range):
    from ppzoo.localization.metrics import average_recall
    rng = np.random.default_rng(k_range[0])
    videos = _random_videos(rng, 12, k_range)
    want_ar, want_auc = _ref_anet_ar_an(videos)
    ar, auc = average_recall([p for _, p in videos.values()], [g for g, _ in videos.values()])
    np.testing.assert_allclose(ar, want_ar, rtol=0, atol=1e-12)
    assert auc == pytest.approx(want_auc, abs=1e-12)


def test_average_recall_auc_is_the_trapezoid_not_the_mean():
    from ppzoo.localization.metrics import average_recall
    # one video, one gt, the exact hit ranked 3rd of 100: AR = 0 for AN 1-2, 1 after
    props = np.array([[50.0, 60.0, 0.01]] * 100)
    props[:2] = [[0.0, 1.0, 0.9], [2.0, 3.0, 0.8]]
    props[2] = [10.0, 20.0, 0.7]
    ar, auc = average_recall([props], [np.array([[10.0, 20.0]])])
    np.testing.assert_array_equal(ar[:2], 0)
    np.testing.assert_array_equal(ar[2:], 1)
    # trapezoid over AN 1..100: (0.5 + 97) / 100; the mean would be 98 / 100
    assert auc == pytest.approx(97.5 / 100)


def test_proposal_ar_metric_reports_on_the_an_grid():
    from ppzoo.localization.metrics import ProposalAR
    m = ProposalAR(max_an=40)             # the curve's points: AN = 0.4, 0.8, ..., 40
    m.props, m.gts = [np.array([[0.1, 0.2, 0.9]])], [np.array([[0.1, 0.2]])]
    out = m.accumulate()
    assert set(out) == {"AR@10", "AUC"}   # AN 1 and 5 are not on that grid


# ------------------------------------------------------------------ FootballAction proposals
def _ref_football_props(bm, ps, pe, fps=5, nms_thresh=0.7, score_thresh=0.03,
                        min_window=5, max_window=200):
    """FootballAction's BMN inference after the windows are averaged: generate_props,
    then process_proposal (length and score floors, base_nms), scalar loops."""
    def choose(sc):
        hi = sc > max(sc) * 0.5
        mid = np.array([0.0] + list(sc) + [0.0])
        front = np.array([0.0, 0.0] + list(sc))
        back = np.array(list(sc) + [0.0, 0.0])
        return (hi | ((mid > front) & (mid > back))[1:-1]).astype("float32")

    L = bm.shape[-1]
    conf = bm[0] * bm[1]
    sm, em = choose(ps), choose(pe)
    sm[0] = 1.0
    em[-1] = 1.0
    raw = []
    for d in range(min_window, max_window):
        for t in range(L):
            if t + d < L and sm[t] == 1 and em[t + d] == 1:
                raw.append([t, t + d, ps[t] * pe[t + d] * conf[d, t]])
    box = [[float(a), float(b), float(c)] for a, b, c in raw
           if not (float(b) - float(a) < fps or float(c) < score_thresh)]
    if not box:
        return np.zeros((0, 3))
    t1, t2 = np.array([x[0] for x in box]), np.array([x[1] for x in box])
    dur = t2 - t1
    order = np.array([x[2] for x in box]).argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        inter = np.minimum(t2[i], t2[order[1:]]) - np.maximum(t1[i], t1[order[1:]])
        iou = inter / (dur[i] + dur[order[1:]] - inter).astype(float)
        order = order[np.where(iou <= nms_thresh)[0] + 1]
    return np.array([box[i] for i in keep])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inference_proposals_equal_football_action(seed):
    from ppzoo.localization.infer import BMN_POST, bmn_postprocess
    rng = np.random.default_rng(seed)
    L, D = 90, 40
    bm = rng.random((2, D, L)) ** 0.5
    ps, pe = rng.random(L), rng.random(L)
    want = _ref_football_props(bm, ps, pe, max_window=D)     # FootballAction: D = 200
    got = bmn_postprocess(dict(BMN_POST))(bm, ps, pe)
    assert len(want) > 5
    np.testing.assert_array_equal(got, want)


def test_score_fusion_end_offset():
    from ppzoo.localization.postprocess import ScoreFusion
    bm = np.ones((2, 4, 6))
    s = np.array([1, 0, 0, 0, 0, 0.0])
    e = np.array([0, 0, 0, 1, 0, 0.0])
    # start 0, end candidate 3 (and the last step): d = 3 or 5 (d < D = 4 keeps 3)
    np.testing.assert_array_equal(ScoreFusion(end_offset=1)(bm, s, e)[:, :2], [[0, 4]])
    np.testing.assert_array_equal(ScoreFusion(end_offset=0)(bm, s, e)[:, :2], [[0, 3]])
    assert not len(ScoreFusion(end_offset=0, min_len=4)(bm, s, e))
    assert len(ScoreFusion(end_offset=1, min_len=4)(bm, s, e)) == 1


# ------------------------------------------------------------------ event classifier weights
def _reference_head(feature_dims, num_classes, fc_dims):
    """PaddleVideo's ActionAttentionLstmHead re-derived (its layer names, masked
    exp-softmax attention, fc-BN-ReLU-dropout twice, fc3 softmax / fc4 sigmoid) inside a
    ``head`` attribute, as its RecognizerAction checkpoints name it.  The fc widths,
    8192 and 4096 there, are small here."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class Head(nn.Layer):
        def __init__(self):
            super().__init__()
            for i, d in enumerate(feature_dims):
                self.add_sublayer(f"bi_lstm{i}", nn.LSTM(d, d, direction="bidirectional"))
                self.add_sublayer(f"att_fc{i}", nn.Linear(2 * d, 1))
            self.fc1 = nn.Linear(2 * sum(feature_dims), fc_dims[0])
            self.bn1 = nn.BatchNorm(fc_dims[0])
            self.fc2 = nn.Linear(fc_dims[0], fc_dims[1])
            self.bn2 = nn.BatchNorm(fc_dims[1])
            self.fc3 = nn.Linear(fc_dims[1], num_classes)
            self.fc4 = nn.Linear(fc_dims[1], 1)

        def forward(self, inputs):
            outs = []
            for i, (x, length, mask) in enumerate(inputs):
                out, _ = getattr(self, f"bi_lstm{i}")(x, sequence_length=length)
                e = paddle.exp(getattr(self, f"att_fc{i}")(out))
                m = paddle.mean(mask, axis=2).unsqueeze(2)
                w = e * paddle.pow(paddle.sum(e * m, axis=1), -1).unsqueeze(2)
                outs.append(paddle.sum(out * w * m, axis=1))
            y = F.relu(self.bn1(self.fc1(paddle.concat(outs, axis=1))))
            y = F.relu(self.bn2(self.fc2(y)))
            return F.softmax(self.fc3(y)), F.sigmoid(self.fc4(y))

    class Recognizer(nn.Layer):
        def __init__(self):
            super().__init__()
            self.head = Head()

    return Recognizer()


def _randomise(layer, seed):
    import paddle
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.set_value(rng.normal(0, 0.3, p.shape).astype("float32"))
    for name, b in layer.named_buffers():
        if name.endswith("_variance"):
            b.set_value(rng.uniform(0.5, 2.0, b.shape).astype("float32"))
        elif name.endswith("_mean"):
            b.set_value(rng.normal(0, 0.1, b.shape).astype("float32"))
    return paddle


def test_paddlevideo_event_classifier_weights_load_strictly_and_agree(tmp_path):
    import logging

    from ppzoo.hub.load import load_pretrained
    from ppzoo.localization.attention_lstm import AttentionLSTM
    dims, C, fc = (6, 4), 5, (16, 12)
    ref = _reference_head(dims, C, fc)
    paddle = _randomise(ref, 0)
    path = str(tmp_path / "lstm_football.pdparams")
    paddle.save(ref.state_dict(), path)
    model = AttentionLSTM(feature_dim=dims[0], audio_dim=dims[1], num_classes=C, fc_dims=fc)
    logger = logging.getLogger("test_pv_lstm")
    report = load_pretrained(model, path, logger=logger, strict=True)
    assert len(report.loaded) == len(model.state_dict()) == 52 and report.ok
    ref.eval()
    model.eval()
    rng = np.random.default_rng(1)
    N, L, La = 4, 9, 3
    rgb = rng.normal(size=(N, L, dims[0])).astype("float32")
    aud = rng.normal(size=(N, La, dims[1])).astype("float32")
    lens, alens = np.array([9, 4, 1, 7]), np.array([3, 1, 2, 3])
    m = (np.arange(L)[None] < lens[:, None]).astype("float32")
    am = (np.arange(La)[None] < alens[:, None]).astype("float32")
    rgb *= m[..., None]                                  # padding is zeros, as the reader's
    aud *= am[..., None]
    t = paddle.to_tensor
    want_p, want_iou = ref.head([(t(rgb), t(lens), t(np.repeat(m[..., None], dims[0], 2))),
                                 (t(aud), t(alens), t(np.repeat(am[..., None], dims[1], 2)))])
    got_p, got_iou = model.export_forward(t(rgb), t(m), t(aud), t(am))
    np.testing.assert_allclose(got_p.numpy(), want_p.numpy(), atol=1e-6)
    np.testing.assert_allclose(got_iou.numpy(), want_iou.numpy().reshape(-1), atol=1e-6)


def test_a_partial_load_of_a_method_head_warns(tmp_path, caplog):
    import logging

    import paddle

    from ppzoo.hub.load import load_pretrained
    from ppzoo.localization.attention_lstm import AttentionLSTM
    src = AttentionLSTM(feature_dim=6, num_classes=3, fc_dims=(8, 8))
    path = str(tmp_path / "part.pdparams")
    paddle.save({k: v for k, v in src.state_dict().items() if k.startswith("fc")}, path)
    logger = logging.getLogger("test_partial_head")
    with caplog.at_level(logging.INFO, logger="test_partial_head"):
        report = load_pretrained(AttentionLSTM(feature_dim=6, num_classes=3, fc_dims=(8, 8)),
                                 path, logger=logger)
    assert report.missing
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and "missing" in warned[0].getMessage(), caplog.text


def test_football_presets_are_paddlevideo_two_stream_and_an_image_only_variant():
    import os

    from ppzoo.core.builder import build_model
    from ppzoo.core.config import load_config
    root = os.path.join(os.path.dirname(__file__), "..", "configs", "localization")
    cfg = load_config(os.path.join(root, "lstm_football.yml"))
    assert cfg["model"]["fc_dims"] == [8192, 4096]
    small = dict(cfg["model"], fc_dims=[8, 8])          # the LSTMs at full size, fcs small
    shapes = {k: list(v.shape) for k, v in build_model(small).state_dict().items()}
    # PaddleVideo lstm_football.yaml: feature_dims [2048, 1024], hidden = feature size
    assert shapes["lstms.0.weight_ih_l0"] == [8192, 2048]
    assert shapes["lstms.1.weight_ih_l0"] == [4096, 1024]
    assert shapes["fc1.weight"] == [2 * (2048 + 1024), 8] and shapes["fc_cls.weight"] == [8, 8]
    assert cfg["train"]["input_keys"] == ["feature", "mask", "audio", "audio_mask"]
    img = load_config(os.path.join(root, "lstm_football_image.yml"))
    shapes = {k: list(v.shape) for k, v in
              build_model(dict(img["model"], fc_dims=[8, 8])).state_dict().items()}
    assert shapes["lstms.0.weight_ih_l0"] == [8192, 2048] and "lstms.1.weight_ih_l0" not in shapes


# ------------------------------------------------------------------ variable-length proposals
def _tiny_lstm(seed=0, audio_dim=None):
    import paddle

    from ppzoo.localization.attention_lstm import AttentionLSTM
    paddle.seed(seed)
    m = AttentionLSTM(feature_dim=6, num_classes=4, lstm_size=5, fc_dims=(8, 8),
                      audio_dim=audio_dim, audio_lstm_size=3 if audio_dim else None)
    m.eval()
    return m


def test_padding_to_the_batch_longest_gives_the_max_len_outputs():
    import paddle

    from ppzoo.localization.datasets import pad_sequences
    model = _tiny_lstm()
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 6)).astype("float32") for n in (3, 11, 1, 7)]
    short, m_short = pad_sequences(seqs)
    long, m_long = pad_sequences(seqs, 300)
    assert short.shape == (4, 11, 6) and long.shape == (4, 300, 6)
    t = paddle.to_tensor
    with paddle.no_grad():
        a = model.export_forward(t(short), t(m_short))
        b = model.export_forward(t(long), t(m_long))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6)


def test_proposal_dataset_batches_pad_to_their_longest(tmp_path):
    import json

    from ppzoo.localization.datasets import ProposalDataset
    feats = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    np.save(tmp_path / "m.npy", feats)
    lab = tmp_path / "l.json"
    lab.write_text(json.dumps({"database": {"m": {"duration": 40, "annotations": [
        {"segment": [2.0, 4.0], "label": 1}, {"segment": [10.0, 13.0], "label": 2}]}}}))
    ds = ProposalDataset(str(lab), str(tmp_path), fps=5, max_len=300, per_event=2,
                         background_per_video=2)
    samples = [ds.load(i) for i in range(len(ds))]
    lens = [len(s["feature"]) for s in samples]
    assert all(s["mask"].sum() == len(s["feature"]) for s in samples) and max(lens) < 300
    batch = ds.collate_fn(samples)
    assert batch["feature"].shape == (len(samples), max(lens), 6)
    np.testing.assert_array_equal(batch["mask"].sum(1), lens)
    assert batch["target"].shape == (len(samples), 2)


def test_classify_proposals_in_length_buckets_keeps_the_order():
    import paddle

    from ppzoo.localization.datasets import proposal_features
    from ppzoo.localization.infer import classify_proposals
    model = _tiny_lstm(1, audio_dim=3)
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(400, 6)).astype("float32")
    audio = rng.normal(size=(80, 3)).astype("float32")
    props = np.array([[3.0, 9.0, 0.5], [0.0, 1.0, 0.2], [20.0, 70.0, 0.9], [5.2, 5.4, 0.1],
                      [30.0, 41.0, 0.3]])
    shapes = []

    def run(*x):
        shapes.append(x[0].shape)
        with paddle.no_grad():
            p, u = model.export_forward(*[paddle.to_tensor(a) for a in x])
        return p.numpy(), u.numpy()

    probs, ious = classify_proposals(run, feats, props, 5, 300, batch_size=2, audio=audio,
                                     audio_fps=1.0)
    assert [s[1] for s in shapes] == [5, 55, 250]             # lengths 1, 2 | 30, 55 | 250
    for k, (s, e, _) in enumerate(props):                     # each alone, padded to max_len
        f, m = proposal_features(feats, s, e, 5, 300)
        a, am = proposal_features(audio, s, e, 1.0, 60)
        p, u = run(f[None], m[None], a[None], am[None])
        np.testing.assert_allclose(probs[k], p[0], atol=1e-6)
        assert ious[k] == pytest.approx(float(u[0]), abs=1e-6)


def test_the_exported_classifier_takes_any_proposal_length(tmp_path):
    import paddle

    from ppzoo.engine.export import export_model
    from ppzoo.engine.predictor import Predictor
    model = _tiny_lstm(3)
    cfg = {"model": {"type": "AttentionLSTM"}, "export": {
        "task": "event_classification",
        "input_spec": [{"name": "feature", "shape": [None, None, 6], "dtype": "float32"},
                       {"name": "mask", "shape": [None, None], "dtype": "float32"}]}}
    save = str(tmp_path / "exp")
    export_model(model, cfg, save, dataset=None, input_keys=["feature", "mask"])
    pred = Predictor(save, device="cpu", use_mkldnn=False)
    rng = np.random.default_rng(4)
    for L in (1, 7, 40):
        x = rng.normal(size=(3, L, 6)).astype("float32")
        m = np.zeros((3, L), "float32")
        for i, n in enumerate((L, max(1, L // 2), 1)):
            m[i, :n] = 1
            x[i, n:] = 0
        with paddle.no_grad():
            want = model.export_forward(paddle.to_tensor(x), paddle.to_tensor(m))
        got = pred.run([x, m])
        np.testing.assert_allclose(got[0], want[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(np.ravel(got[1]), want[1].numpy().ravel(), atol=1e-5)


def test_a_weights_table_entry_for_a_method_head_loads_strictly(tmp_path, monkeypatch):
    import hashlib

    import paddle
    import yaml

    from ppzoo.core.errors import WeightsError
    from ppzoo.hub.load import load_pretrained
    from ppzoo.localization.attention_lstm import AttentionLSTM
    monkeypatch.setenv("PPZOO_HOME", str(tmp_path / "home"))
    src = AttentionLSTM(feature_dim=6, num_classes=3, fc_dims=(8, 8))
    path = tmp_path / "head.pdparams"
    paddle.save({k: v for k, v in src.state_dict().items() if not k.startswith("fc_iou")},
                str(path))
    entry = {"url": path.as_uri(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "model": {"type": "AttentionLSTM"}, "source": "test", "licence": "test"}
    table = tmp_path / "table.yml"
    table.write_text(yaml.safe_dump({"head": entry}))
    with pytest.raises(WeightsError, match="strict.*fc_iou"):
        load_pretrained(AttentionLSTM(feature_dim=6, num_classes=3, fc_dims=(8, 8)), "head",
                        table=str(table))
    # the same file named by path is a partial load (with a warning), not an error
    assert load_pretrained(AttentionLSTM(feature_dim=6, num_classes=3, fc_dims=(8, 8)),
                           str(path)).missing == ["fc_iou.weight", "fc_iou.bias"]


def test_the_two_stream_export_classifies_proposals_of_a_football_pkl(tmp_path):
    import json
    import pickle

    from ppzoo.engine.export import export_model
    from ppzoo.engine.predictor import run_inference
    model = _tiny_lstm(5, audio_dim=3)
    cfg = {"model": {"type": "AttentionLSTM"}, "export": {
        "task": "event_classification", "reader": {"fps": 5.0, "audio_fps": 1.0},
        "postprocess": {"score_thresh": 0.0, "iou_thresh": 0.0},
        "input_spec": [{"name": "feature", "shape": [None, None, 6], "dtype": "float32"},
                       {"name": "mask", "shape": [None, None], "dtype": "float32"},
                       {"name": "audio", "shape": [None, None, 3], "dtype": "float32"},
                       {"name": "audio_mask", "shape": [None, None], "dtype": "float32"}]}}
    save = str(tmp_path / "exp")
    export_model(model, cfg, save, dataset=None,
                 input_keys=["feature", "mask", "audio", "audio_mask"])
    rng = np.random.default_rng(6)
    feats = {"image_feature": rng.normal(size=(300, 6)).astype("float32"),
             "audio_feature": rng.normal(size=(60, 3)).astype("float32")}
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump(feats, f)
    props = [[2.0, 8.0, 0.9], [20.0, 21.0, 0.5], [30.0, 50.0, 0.4]]
    (tmp_path / "p.json").write_text(json.dumps({"features": str(tmp_path / "m.pkl"), "fps": 5,
                                                 "proposals": props}))
    out = run_inference(save, str(tmp_path / "p.json"), echo=lambda *a: None)
    assert out[0]["events"]
    from ppzoo.localization.infer import classify_proposals
    import paddle

    def run(*x):
        with paddle.no_grad():
            p, u = model.export_forward(*[paddle.to_tensor(a) for a in x])
        return p.numpy(), u.numpy()
    probs, ious = classify_proposals(run, feats["image_feature"], np.array(props), 5, 300,
                                     audio=feats["audio_feature"], audio_fps=1.0)
    for ev in out[0]["events"]:
        k = [p[0] for p in props].index(ev["start"])
        assert ev["iou"] == pytest.approx(float(ious[k]), abs=1e-5)
        assert ev["score"] == pytest.approx(float(probs[k].max()), abs=1e-5)
