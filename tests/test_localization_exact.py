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
