"""Explainers of image classifiers: per-class saliency maps at input resolution.

Every explainer takes a batch ``images`` (B,C,H,W float32, already normalised) and
``targets`` (for each image, the class ids to explain) and returns, for each image, an
array (len(targets[i]), H, W) float32: one map per asked class, in the order asked.
Nothing is computed or stored for classes that were not asked for, so a 1000-class
classifier costs what the asked classes cost.

CAM and Grad-CAM read the activation of a named sub-layer (``layer``; dotted paths such as
``net.layer4`` or ``features.3``) through a forward hook while the model runs its own
forward, so any head on top (GAP + linear, GeM, flatten + linear) is the model's own.  CAM
also needs the linear head after global average pooling (``classifier``).  Known zoo
classifiers have their layers filled in (``DEFAULT_LAYERS``).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..core.errors import ConfigError
from ..core.registry import Registry

EXPLAINERS = Registry("explainers")

# (layer, classifier) of the zoo's classifiers, by model class name
DEFAULT_LAYERS = {
    "SmallCNN": ("features", "classifier"),
    "ResNet": ("net.layer4", "net.fc"),
    "MobileNetV2": ("net.features", "net.classifier.1"),
    "MobileNetV3": ("net.lastconv", None),  # an MLP head: CAM does not apply, Grad-CAM does
}


def sublayer(model, path):
    """``model``'s sub-layer at a dotted path (attribute names or Sequential indices)."""
    layer = model
    for part in str(path).split("."):
        sub = getattr(layer, part, None)
        if sub is None and part in getattr(layer, "_sub_layers", {}):
            sub = layer._sub_layers[part]
        if sub is None:
            raise ConfigError(f"the classifier {type(model).__name__} has no sub-layer {path!r} "
                              f"({part!r} not found in {type(layer).__name__}); set layer:/classifier:")
        layer = sub
    return layer


def upsample(maps, hw):
    """(N,h,w) -> (N,H,W) bilinear, align_corners=False (as Grad-CAM's reference code)."""
    maps = np.asarray(maps, np.float32)
    if maps.shape[-2:] == tuple(hw):
        return maps
    t = paddle.to_tensor(maps[:, None])
    return F.interpolate(t, size=list(hw), mode="bilinear", align_corners=False)[:, 0].numpy()


class Explainer:
    def __init__(self, model, num_classes=None, layer=None, classifier=None, batch_size=32, features=None):
        self.model = model
        self.num_classes = int(num_classes or getattr(model, "num_classes"))
        dl, dc = DEFAULT_LAYERS.get(type(model).__name__, ("features", "classifier"))
        self.layer_name = layer or features or dl
        self.classifier_name = classifier or dc
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"{type(self).__name__}.batch_size must be >= 1, got {batch_size}")

    def __call__(self, images, targets):
        self.model.eval()
        images = np.asarray(images, dtype=np.float32)
        if len(targets) != len(images):
            raise ConfigError(f"{type(self).__name__}: {len(images)} images but {len(targets)} target lists")
        targets = [[int(c) for c in t] for t in targets]
        for t in targets:
            for c in t:
                if not 0 <= c < self.num_classes:
                    raise ConfigError(f"{type(self).__name__}: class {c} outside 0..{self.num_classes - 1}")
        out = [np.zeros((len(t),) + images.shape[2:], np.float32) for t in targets]
        self.explain(images, targets, out)
        return out

    def explain(self, images, targets, out):
        raise NotImplementedError

    def _forward_with_activation(self, x):
        """The model's own forward; returns (logits, activation of ``layer``)."""
        store = {}
        layer = sublayer(self.model, self.layer_name)

        def hook(_layer, _inputs, output):
            store["a"] = output[0] if isinstance(output, (list, tuple)) else output
        handle = layer.register_forward_post_hook(hook)
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if "a" not in store:
            raise ConfigError(f"sub-layer {self.layer_name!r} of {type(self.model).__name__} did not run in forward")
        return logits, store["a"]


@EXPLAINERS.register()
class CAM(Explainer):
    """Class activation maps (Zhou et al. 2016): M_c = sum_k w_{k,c} A_k, the linear head's
    weights applied at every position of the activation A of ``layer`` (which must feed the
    head through global average pooling), bilinearly upsampled; ``relu`` (default true)
    keeps the positive evidence."""

    def __init__(self, model, relu=True, **kw):
        super().__init__(model, **kw)
        self.relu = bool(relu)

    def explain(self, images, targets, out):
        if not self.classifier_name:
            raise ConfigError(f"CAM needs a linear head right after global pooling; {type(self.model).__name__}'s "
                              "head is not one (use GradCAM, or name it with classifier:)")
        head = sublayer(self.model, self.classifier_name)
        w = getattr(head, "weight", None)
        if w is None or len(w.shape) != 2:
            raise ConfigError(f"CAM needs a linear head at {self.classifier_name!r}")
        for s in range(0, len(images), self.batch_size):
            with paddle.no_grad():
                _, a = self._forward_with_activation(paddle.to_tensor(images[s:s + self.batch_size]))
                if a.shape[1] != w.shape[0]:
                    raise ConfigError(f"CAM: {self.layer_name!r} has {a.shape[1]} channels, the head "
                                      f"{self.classifier_name!r} takes {w.shape[0]}")
                a = a.numpy()
            w_np = w.numpy()
            for j in range(len(a)):
                cls = targets[s + j]
                if cls:
                    cam = np.einsum("khw,kc->chw", a[j], w_np[:, cls])
                    cam = upsample(cam, images.shape[2:])
                    out[s + j][:] = np.maximum(cam, 0) if self.relu else cam


@EXPLAINERS.register()
class GradCAM(Explainer):
    """Grad-CAM (Selvaraju et al. 2017): alpha_k^c = spatial mean of d y_c / d A_k for the
    activation A of ``layer`` in the model's own forward; map = ReLU(sum_k alpha_k^c A_k),
    bilinearly upsampled.  One forward per batch; one backward per class asked for in it."""

    def explain(self, images, targets, out):
        for s in range(0, len(images), self.batch_size):
            x = paddle.to_tensor(images[s:s + self.batch_size])
            x.stop_gradient = False
            tg = targets[s:s + len(x)]
            classes = sorted({c for t in tg for c in t})
            if not classes:
                continue
            logits, a = self._forward_with_activation(x)
            a_np = a.numpy()
            for n, c in enumerate(classes):
                rows = [j for j, t in enumerate(tg) if c in t]
                # images are independent in eval mode: the gradient of the summed logit is
                # each image's own gradient
                y = logits[rows, c].sum() if len(rows) > 1 else logits[rows[0], c]
                (g,) = paddle.grad(y, a, retain_graph=n < len(classes) - 1)
                alpha = g.numpy().mean(axis=(2, 3))  # (B, K)
                for j in rows:
                    cam = np.maximum(np.einsum("k,khw->hw", alpha[j], a_np[j]), 0)
                    out[s + j][tg[j].index(c)] = upsample(cam[None], images.shape[2:])[0]


@EXPLAINERS.register()
class SmoothGrad(Explainer):
    """SmoothGrad (Smilkov et al. 2017): the raw gradient d y_c / d x averaged over
    ``num_samples`` copies x + N(0, sigma^2), sigma = ``noise`` * (max(x) - min(x)); the
    map is the magnitude of that average (``magnitude: abs``, default, or ``square``),
    reduced over colour channels by ``channel_reduce`` (``max``, default, or ``sum``).
    The noisy copies of an image run as batches of ``batch_size``; one backward per class."""

    def __init__(self, model, num_samples=50, noise=0.15, seed=0, magnitude="abs", channel_reduce="max", **kw):
        super().__init__(model, **kw)
        if magnitude not in ("abs", "square"):
            raise ConfigError(f"SmoothGrad.magnitude must be abs or square, got {magnitude!r}")
        if channel_reduce not in ("max", "sum"):
            raise ConfigError(f"SmoothGrad.channel_reduce must be max or sum, got {channel_reduce!r}")
        self.num_samples, self.noise, self.seed = int(num_samples), float(noise), int(seed)
        self.magnitude, self.channel_reduce = magnitude, channel_reduce

    def explain(self, images, targets, out):
        rng = np.random.default_rng(self.seed)
        for i, cls in enumerate(targets):
            if not cls:
                continue
            img = images[i]
            sigma = self.noise * (img.max() - img.min())
            grad_sum = np.zeros((len(cls),) + img.shape, np.float64)
            for s in range(0, self.num_samples, self.batch_size):
                n = min(self.batch_size, self.num_samples - s)
                xs = img[None] + rng.normal(0, sigma, (n,) + img.shape).astype(np.float32)
                x = paddle.to_tensor(xs)
                x.stop_gradient = False
                logits = self.model(x)
                for k, c in enumerate(cls):
                    (g,) = paddle.grad(logits[:, c].sum(), x, retain_graph=k < len(cls) - 1)
                    grad_sum[k] += g.numpy().sum(0)
            mean = grad_sum / self.num_samples
            mag = np.abs(mean) if self.magnitude == "abs" else mean ** 2
            out[i][:] = mag.max(1) if self.channel_reduce == "max" else mag.sum(1)


def _quickshift(hwc01, kernel_size=4, max_dist=200, ratio=0.2, seed=0):
    from skimage.segmentation import quickshift
    return quickshift(hwc01, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio, rng=seed)


@EXPLAINERS.register()
class LIME(Explainer):
    """LIME (Ribeiro et al. 2016) as lime_image runs it by default: quickshift superpixels
    (kernel_size 4, max_dist 200, ratio 0.2), ``num_samples`` 1000 random on/off patterns
    (the first all on), switched-off superpixels filled with their own mean colour
    (``hide: mean``), cosine distance to the all-on pattern, kernel sqrt(exp(-d^2/w^2))
    with w = ``kernel_width`` 0.25, and a weighted ridge regression (alpha 1, with
    intercept) of the class probability (softmax, ``target: prob``) on the pattern; a
    superpixel's coefficient is its saliency (``positive_only``: negative ones set to 0).

    Options beyond lime_image: ``segmentation: slic`` (``num_segments``, ``compactness``),
    ``hide: zero`` / ``image_mean``, ``target: logit`` or ``sigmoid`` (multi-label heads),
    ``kernel: exp`` (without the square root), ``distance: fraction_off``."""

    def __init__(self, model, num_samples=1000, segmentation="quickshift", kernel_size=4, max_dist=200,
                 ratio=0.2, num_segments=30, compactness=1.0, kernel_width=0.25, kernel="sqrt_exp",
                 distance="cosine", hide="mean", target="prob", alpha=1.0, positive_only=True, seed=0,
                 batch_size=32, **kw):
        super().__init__(model, batch_size=batch_size, **kw)
        for name, val, allowed in (("segmentation", segmentation, ("quickshift", "slic")),
                                   ("kernel", kernel, ("sqrt_exp", "exp")),
                                   ("distance", distance, ("cosine", "fraction_off")),
                                   ("hide", hide, ("mean", "zero", "image_mean")),
                                   ("target", target, ("prob", "logit", "sigmoid"))):
            if val not in allowed:
                raise ConfigError(f"LIME.{name} must be one of {allowed}, got {val!r}")
        self.segmentation, self.kernel, self.distance, self.hide, self.target = segmentation, kernel, distance, hide, target
        self.qs = dict(kernel_size=kernel_size, max_dist=max_dist, ratio=ratio)
        self.num_segments, self.compactness = int(num_segments), float(compactness)
        self.num_samples, self.kernel_width = int(num_samples), float(kernel_width)
        self.alpha, self.positive_only, self.seed = float(alpha), bool(positive_only), int(seed)

    def segments(self, img_chw):
        """Superpixels of one (C,H,W) image.  quickshift segments the image exactly as
        given (lime_image passes ``explain_instance``'s image to quickshift unchanged: its
        colour distances, hence ``max_dist``, are in that image's units); slic, an
        extension, runs on the image min-max stretched to [0, 1] so ``compactness`` keeps
        one scale whatever the normalisation."""
        hwc = np.transpose(img_chw, (1, 2, 0))
        if self.segmentation == "quickshift":
            if hwc.shape[2] != 3:
                raise ConfigError("LIME.segmentation quickshift needs 3-channel images; use slic")
            return _quickshift(np.ascontiguousarray(hwc), seed=self.seed, **self.qs)
        hwc = hwc.astype(np.float64)
        hwc = (hwc - hwc.min()) / (hwc.max() - hwc.min() + 1e-8)
        from skimage.segmentation import slic
        return slic(hwc, n_segments=self.num_segments, compactness=self.compactness, start_label=0,
                    convert2lab=False, channel_axis=-1 if hwc.shape[2] > 1 else None)

    def sample_weights(self, z):
        if self.distance == "cosine":
            from sklearn.metrics import pairwise_distances
            d = pairwise_distances(z, np.ones((1, z.shape[1])), metric="cosine").ravel()
        else:
            d = 1 - z.mean(1)
        k = np.exp(-(d ** 2) / self.kernel_width ** 2)
        return np.sqrt(k) if self.kernel == "sqrt_exp" else k

    def fit(self, img, cls, seg=None, rng=None):
        """One image: (segments, patterns z, weights, scores (N, len(cls)), coefs (len(cls), S))."""
        from sklearn.linear_model import Ridge
        rng = np.random.default_rng(self.seed) if rng is None else rng
        seg = self.segments(img) if seg is None else seg
        n = int(seg.max()) + 1
        z = rng.integers(0, 2, (self.num_samples, n)).astype(np.float64)
        z[0] = 1
        if self.hide == "mean":
            fill = np.empty_like(img)
            cnt = np.bincount(seg.ravel(), minlength=n)
            for ch in range(img.shape[0]):
                fill[ch] = (np.bincount(seg.ravel(), img[ch].ravel(), minlength=n) / np.maximum(cnt, 1))[seg]
        elif self.hide == "image_mean":
            fill = np.broadcast_to(img.mean(axis=(1, 2), keepdims=True), img.shape)
        else:
            fill = np.zeros_like(img)
        scores = []
        with paddle.no_grad():
            for s in range(0, len(z), self.batch_size):
                on = z[s:s + self.batch_size][:, seg][:, None].astype(np.float32)  # (b,1,H,W)
                xs = img[None] * on + fill[None] * (1 - on)
                y = self.model(paddle.to_tensor(xs.astype(np.float32)))
                y = F.softmax(y, -1) if self.target == "prob" else F.sigmoid(y) if self.target == "sigmoid" else y
                scores.append(y.numpy()[:, cls])
        scores = np.concatenate(scores).astype(np.float64)
        w = self.sample_weights(z)
        coefs = np.stack([Ridge(alpha=self.alpha, fit_intercept=True).fit(z, scores[:, k], sample_weight=w).coef_
                          for k in range(len(cls))])
        return seg, z, w, scores, coefs

    def explain(self, images, targets, out):
        rng = np.random.default_rng(self.seed)
        for i, cls in enumerate(targets):
            if not cls:
                continue
            seg, _, _, _, coefs = self.fit(images[i], cls, rng=rng)
            maps = coefs[:, seg]
            out[i][:] = np.maximum(maps, 0) if self.positive_only else maps


def build_explainer(cfg, model, num_classes=None):
    cfg = dict(cfg)
    cls = EXPLAINERS.get(cfg.pop("type"))
    return cls(model, num_classes=num_classes, **cfg)
