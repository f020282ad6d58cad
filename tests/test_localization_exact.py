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
