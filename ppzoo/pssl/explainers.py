"""Explainers of image classifiers: per-class saliency maps at input resolution.

Every explainer takes a batch ``images`` (B,C,H,W float32, already normalised) and
``targets`` (for each image, the class ids to explain) and returns (B, num_classes, H, W)
float32 with zeros for classes not asked for.  CAM and Grad-CAM need the classifier's
convolutional trunk (attribute ``features``, default) and, for CAM, its linear head
after global average pooling (``classifier``).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..core.errors import ConfigError
from ..core.registry import Registry

EXPLAINERS = Registry("explainers")


def _up(maps, hw):
    t = paddle.to_tensor(maps[:, None].astype("float32"))
    return F.interpolate(t, size=list(hw), mode="bilinear", align_corners=False)[:, 0].numpy()


class Explainer:
    def __init__(self, model, num_classes=None, features="features", classifier="classifier"):
        self.model = model
        self.num_classes = int(num_classes or getattr(model, "num_classes"))
        self.features_name, self.classifier_name = features, classifier

    def _part(self, name):
        part = getattr(self.model, name, None)
        if part is None:
            raise ConfigError(f"{type(self).__name__} needs the classifier attribute {name!r}; "
                              f"{type(self.model).__name__} has none (set features:/classifier:)")
        return part

    def __call__(self, images, targets):
        self.model.eval()
        images = np.asarray(images, dtype=np.float32)
        out = np.zeros((images.shape[0], self.num_classes) + images.shape[2:], np.float32)
        self.explain(images, targets, out)
        return out

    def explain(self, images, targets, out):
        raise NotImplementedError

    def _head_logits(self, feats):
        """Logits from trunk features: global average pooling + the linear head."""
        return self._part(self.classifier_name)(feats.mean(axis=[2, 3]))


@EXPLAINERS.register()
class CAM(Explainer):
    """Class activation maps: the linear head applied at every position of the trunk's
    last feature map (Zhou et al. 2016); valid for GAP + linear classifiers."""

    def explain(self, images, targets, out):
        with paddle.no_grad():
            f = self._part(self.features_name)(paddle.to_tensor(images))
            head = self._part(self.classifier_name)
            w = head.weight  # (C_feat, num_classes) in paddle's Linear
            cam = paddle.einsum("bkhw,kc->bchw", f, w).numpy()
        for i, cls in enumerate(targets):
            for c in cls:
                out[i, c] = np.maximum(_up(cam[i, c][None], images.shape[2:])[0], 0)


@EXPLAINERS.register()
class GradCAM(Explainer):
    """Grad-CAM (Selvaraju et al. 2017): trunk features weighted by the spatial mean of
    the class logit's gradient, ReLU'd; works for any head on top of the trunk."""

    def explain(self, images, targets, out):
        x = paddle.to_tensor(images)
        for i, cls in enumerate(targets):
            for c in cls:
                f = self._part(self.features_name)(x[i:i + 1])
                f.stop_gradient = False
                fd = f.detach()
                fd.stop_gradient = False
                logit = self._head_logits(fd)[0, c]
                (g,) = paddle.grad(logit, fd)
                w = g.mean(axis=[2, 3], keepdim=True)
                cam = F.relu((w * fd).sum(axis=1)).numpy()
                out[i, c] = _up(cam, images.shape[2:])[0]


@EXPLAINERS.register()
class SmoothGrad(Explainer):
    """SmoothGrad (Smilkov et al. 2017): |d logit_c / d input| averaged over noisy copies
    of the image, max over channels."""

    def __init__(self, model, num_samples=8, noise=0.15, seed=0, **kw):
        super().__init__(model, **kw)
        self.num_samples, self.noise, self.seed = int(num_samples), float(noise), int(seed)

    def explain(self, images, targets, out):
        rng = np.random.default_rng(self.seed)
        for i, cls in enumerate(targets):
            if not len(cls):
                continue
            img = images[i]
            sigma = self.noise * (img.max() - img.min() + 1e-8)
            xs = img[None] + rng.normal(0, sigma, (self.num_samples,) + img.shape).astype(np.float32)
            for c in cls:
                x = paddle.to_tensor(xs)
                x.stop_gradient = False
                logit = self.model(x)[:, c].sum()
                (g,) = paddle.grad(logit, x)
                out[i, c] = np.abs(g.numpy()).mean(0).max(0)


@EXPLAINERS.register()
class LIME(Explainer):
    """LIME (Ribeiro et al. 2016): SLIC superpixels (scikit-image) switched off at
    random, a weighted ridge regression (scikit-learn) of the class score on the on/off
    pattern; a superpixel's coefficient is its saliency.  ``target: logit`` (default)
    regresses the logit, which a confident classifier does not saturate; ``prob`` the
    softmax probability of the original LIME; ``sigmoid`` for multi-label heads."""

    def __init__(self, model, num_samples=64, num_segments=30, compactness=1.0, kernel_width=0.25,
                 batch_size=32, seed=0, target="logit", alpha=0.1, **kw):
        super().__init__(model, **kw)
        if target not in ("logit", "prob", "sigmoid"):
            raise ConfigError(f"LIME.target must be logit, prob or sigmoid, got {target!r}")
        self.target, self.alpha = target, float(alpha)
        self.num_samples, self.num_segments = int(num_samples), int(num_segments)
        self.compactness, self.kernel_width = float(compactness), float(kernel_width)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def segments(self, img_chw):
        from skimage.segmentation import slic
        hwc = np.transpose(img_chw, (1, 2, 0)).astype(np.float64)
        hwc = (hwc - hwc.min()) / (hwc.max() - hwc.min() + 1e-8)
        return slic(hwc, n_segments=self.num_segments, compactness=self.compactness,
                    start_label=0, convert2lab=False,
                    channel_axis=-1 if hwc.shape[2] > 1 else None)

    def explain(self, images, targets, out):
        from sklearn.linear_model import Ridge
        rng = np.random.default_rng(self.seed)
        for i, cls in enumerate(targets):
            if not len(cls):
                continue
            img = images[i]
            seg = self.segments(img)
            n = int(seg.max()) + 1
            z = rng.integers(0, 2, (self.num_samples, n)).astype(np.float32)
            z[0] = 1
            baseline = img.mean(axis=(1, 2), keepdims=True)
            probs = []
            with paddle.no_grad():
                for s in range(0, len(z), self.batch_size):
                    zz = z[s:s + self.batch_size]
                    on = zz[:, seg]  # (b,H,W)
                    xs = img[None] * on[:, None] + baseline[None] * (1 - on[:, None])
                    y = self.model(paddle.to_tensor(xs.astype(np.float32)))
                    y = F.softmax(y, -1) if self.target == "prob" else F.sigmoid(y) if self.target == "sigmoid" else y
                    probs.append(y.numpy())
            probs = np.concatenate(probs)
            dist = 1 - z.mean(1)  # fraction switched off
            weights = np.exp(-(dist ** 2) / self.kernel_width ** 2)
            for c in cls:
                reg = Ridge(alpha=self.alpha).fit(z, probs[:, c], sample_weight=weights)
                out[i, c] = np.maximum(reg.coef_[seg], 0)


def build_explainer(cfg, model, num_classes=None):
    cfg = dict(cfg)
    cls = EXPLAINERS.get(cfg.pop("type"))
    return cls(model, num_classes=num_classes, **cfg)
