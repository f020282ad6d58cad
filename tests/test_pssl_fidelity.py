"""PSSL explainers against independent definitions where an earlier check could not fail:
LIME's superpixels against scikit-image's quickshift with lime_image's defaults on the same
image, SmoothGrad computed by hand with the same noise draws, and where CAM and Grad-CAM
apply their ReLU relative to upsampling."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppzoo  # noqa: F401
from ppzoo.pssl.explainers import build_explainer


class _Stub(nn.Layer):
    num_classes = 2


def _normalised_blocks(seed, hw=48):
    """A seeded 3x3 grid of colour blocks with noise, normalised with CIFAR's mean and std:
    values well outside [0, 1], as the images the explainers receive."""
    rng = np.random.default_rng(seed)
    cells = rng.uniform(0, 1, (3, 3, 3))
    rgb = np.kron(cells, np.ones((hw // 3 + 1, hw // 3 + 1, 1)))[:hw, :hw]
    rgb = np.clip(rgb + rng.normal(0, 0.03, rgb.shape), 0, 1)
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    return ((rgb - mean) / std).astype("float32")  # HWC


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lime_quickshift_segments_the_image_it_is_given(seed):
    """lime_image's default segmentation_fn is quickshift(kernel_size=4, max_dist=200,
    ratio=0.2) applied to explain_instance's image unchanged; ppzoo's superpixels equal it."""
    from skimage.segmentation import quickshift
    hwc = _normalised_blocks(seed)
    want = quickshift(hwc, kernel_size=4, max_dist=200, ratio=0.2, rng=0)
    got = build_explainer({"type": "LIME", "seed": 0}, _Stub()).segments(np.transpose(hwc, (2, 0, 1)))
    assert want.max() >= 1  # more than one superpixel: the comparison has something to match
    np.testing.assert_array_equal(got, want)


class Cubic(nn.Layer):
    """y_c = sum(w_c * x^3) / 3: d y_c / d x = w_c * x^2, so the noise average of the
    gradient is w_c * (x^2 + sigma^2): it shows both whether noise is added and its size."""

    def __init__(self, shape=(3, 6, 6), num_classes=2):
        super().__init__()
        self.w = paddle.to_tensor(np.random.default_rng(7).normal(size=(num_classes,) + shape).astype("float32"))
        self.num_classes = num_classes

    def forward(self, x):
        return (x[:, None] ** 3 * self.w[None]).sum(axis=[2, 3, 4]) / 3


@pytest.mark.parametrize("magnitude,channel_reduce", [("abs", "max"), ("square", "sum")])
def test_smoothgrad_equals_a_hand_computation_with_the_same_noise(magnitude, channel_reduce):
    """SmoothGrad by hand: the same seeded normal draws, scaled by sigma = noise * (max x -
    min x), the analytic gradient averaged, its magnitude reduced over channels.  The image
    spans 4, so an absolute sigma (noise itself) or no noise gives another map."""
    model = Cubic()
    x = np.random.default_rng(8).uniform(-1, 3, (1, 3, 6, 6)).astype("float32")
    n, noise, bs = 12, 0.2, 5
    got = build_explainer({"type": "SmoothGrad", "num_samples": n, "noise": noise, "batch_size": bs, "seed": 3,
                           "magnitude": magnitude, "channel_reduce": channel_reduce}, model)(x, [[1, 0]])[0]
    w = model.w.numpy()

    def by_hand(sigma):
        rng = np.random.default_rng(3)
        eps = np.concatenate([rng.normal(0, sigma, (min(bs, n - s),) + x.shape[1:]).astype("float32")
                              for s in range(0, n, bs)])
        xs = x[0][None] + eps
        maps = []
        for c in (1, 0):
            g = (w[c][None] * xs.astype(np.float64) ** 2).mean(0)
            mag = np.abs(g) if magnitude == "abs" else g ** 2
            maps.append(mag.max(0) if channel_reduce == "max" else mag.sum(0))
        return np.stack(maps)

    want = by_hand(noise * (x.max() - x.min()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    # the variants an earlier test let through are far from it
    for wrong in (by_hand(noise), by_hand(0.0)):
        assert np.abs(wrong - want).max() > 0.1 * np.abs(want).max()


class StrideTwo(nn.Layer):
    """A stride-2 conv with mixed-sign weights (``features``, 8x8 -> 4x4), then GAP and a
    linear head (``classifier``): bilinear upsampling blends positive and negative cells, so
    ReLU before and after upsampling give different maps."""

    def __init__(self, num_classes=2):
        super().__init__()
        rng = np.random.default_rng(11)
        conv = nn.Conv2D(3, 4, 3, stride=2, padding=1)
        conv.weight.set_value(rng.normal(size=(4, 3, 3, 3)).astype("float32"))
        conv.bias.set_value(rng.normal(size=4).astype("float32"))
        self.features = conv
        self.classifier = nn.Linear(4, num_classes)
        self.classifier.weight.set_value(rng.normal(size=(4, num_classes)).astype("float32"))
        self.num_classes = num_classes

    def forward(self, x):
        return self.classifier(self.features(x).mean(axis=[2, 3]))


def _bilinear(m, hw):
    """Bilinear upsampling with align_corners false, written out: output pixel i reads
    source coordinate (i + 0.5) * h / H - 0.5, clamped at the borders."""
    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        t = src - lo
        mat = np.zeros((n_out, n_in))
        mat[np.arange(n_out), lo] += 1 - t
        mat[np.arange(n_out), hi] += t
        return mat
    return axis(m.shape[0], hw[0]) @ m @ axis(m.shape[1], hw[1]).T


def test_cam_applies_relu_after_upsampling_gradcam_before():
    """CAM (Zhou et al.) upsamples the class map and then keeps its positive part; Grad-CAM
    (Selvaraju et al.) applies ReLU to the coarse map and upsamples that.  With a stride-2
    layer the two orders differ; each explainer follows its own."""
    model = StrideTwo()
    x = np.random.default_rng(12).normal(0.2, 1.0, (1, 3, 8, 8)).astype("float32")
    a = model.features(paddle.to_tensor(x)).numpy()[0]  # (4, 4, 4)
    w = model.classifier.weight.numpy()
    cam = build_explainer({"type": "CAM"}, model)(x, [[0, 1]])[0]
    gradcam = build_explainer({"type": "GradCAM"}, model)(x, [[0, 1]])[0]
    for k, c in enumerate((0, 1)):
        raw = np.einsum("khw,k->hw", a, w[:, c])  # the coarse class map
        after = np.maximum(_bilinear(raw, (8, 8)), 0)
        before = _bilinear(np.maximum(raw, 0), (8, 8))
        assert np.abs(after - before).max() > 0.05 * np.abs(before).max()  # the orders differ here
        np.testing.assert_allclose(cam[k], after, rtol=1e-4, atol=1e-5)
        # Grad-CAM's alpha for a GAP + linear head is w / (number of cells)
        np.testing.assert_allclose(gradcam[k], before / raw.size, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("frac,bg_t", [(0.5, None), (0.6, None), (0.5, 0.25)])
def test_consensus_vote_is_the_members_majority_pixel_by_pixel(frac, bg_t):
    """rule: vote: each member's own threshold label (min-max normalised map, strongest
    present class when >= fg_threshold), then the class with at least ``frac`` of the
    votes; computed here pixel by pixel with plain loops."""
    from ppzoo.pssl.consensus import Consensus
    rng = np.random.default_rng(7)
    maps = rng.random((5, 3, 6, 7)).astype(np.float32) ** 2
    present, bg, ign, t = [4, 1, 9], 11, 255, 0.45
    con = Consensus(11, background=bg, ignore_index=ign, rule="vote", fg_threshold=t,
                    bg_threshold=bg_t, vote_fraction=frac)
    lab, agree, _ = con(maps, present)
    lo_t = t if bg_t is None else bg_t
    for y in range(6):
        for x in range(7):
            votes = {}
            for m in maps:
                v = [(m[k, y, x] - m[k].min()) / (m[k].max() - m[k].min()) for k in range(3)]
                k = int(np.argmax(v))
                own = present[k] if v[k] >= t else (bg if v[k] < lo_t else ign)
                votes[own] = votes.get(own, 0) + 1
            fg = {c: n for c, n in votes.items() if c in present}
            best = max(present, key=lambda c: (fg.get(c, 0), -present.index(c)))
            if fg.get(best, 0) >= frac * 5:
                want = best
            elif bg_t is None or votes.get(bg, 0) >= frac * 5:
                want = bg
            else:
                want = ign
            assert lab[y, x] == want, (y, x, votes)
    assert set(np.unique(lab)) - {bg, ign} <= set(present)
