"""Noise-stability sampling (Li et al., "Deep Active Learning with Noise Stability",
arXiv 2205.13340): single training, multiple inference.

Every weight tensor W of the trained model is perturbed by Gaussian noise rescaled to norm
``xi * ||W||`` (biases untouched), the pool is run through ``passes`` perturbed copies, and
each sample's feature is the concatenation over passes of (noisy output - output) / ||output||
(softmax outputs).  Samples whose output moves most, in the most different directions, are
picked by greedy k-center on those features, started from the origin as in the public code,
so the first pick is the least stable sample.
"""
import numpy as np

from ..core.errors import ConfigError
from .classification import STRATEGIES, ClassificationStrategy, k_center_greedy


def is_perturbed(name, value, scope="weights"):
    """Whether the parameter ``name`` gets noise: ``weights`` = every parameter whose name
    ends in ``weight`` (conv, linear and normalization scales, as the reference's
    ``hasattr(m, 'weight')``), ``matrices`` = only those with two or more dimensions."""
    if not str(name).endswith("weight"):
        return False
    return scope == "weights" or np.ndim(value) >= 2


def weight_noise(named_values, xi, rng, scope="weights"):
    """Noise for each perturbed tensor: standard Gaussian rescaled to ``xi * ||W||``.

    ``named_values``: iterable of (name, ndarray).  Returns {name: noise ndarray}; tensors
    left alone (biases, and vectors under ``scope='matrices'``) are absent."""
    if scope not in ("weights", "matrices"):
        raise ConfigError(f"NoiseStability.scope must be 'weights' or 'matrices', got {scope!r}")
    out = {}
    for name, w in named_values:
        if not is_perturbed(name, w, scope):
            continue
        w = np.asarray(w)
        z = rng.standard_normal(w.shape)
        nz = np.linalg.norm(z)
        out[name] = (z * (xi * np.linalg.norm(w) / max(nz, 1e-30))).astype(w.dtype)
    return out


def stability_features(outputs, noisy):
    """(n, passes * C): for each pass, (noisy - outputs) divided by each sample's ||outputs||."""
    norm = np.maximum(np.linalg.norm(outputs, axis=1, keepdims=True), 1e-12)
    diffs = (noisy - outputs[None]) / norm[None]
    return np.transpose(diffs, (1, 0, 2)).reshape(len(outputs), -1)


@STRATEGIES.register()
class NoiseStability(ClassificationStrategy):
    """``passes`` perturbed inferences (reference: 50) with relative noise ``xi`` (reference:
    1e-3); greedy k-center on the output deviations.  ``scope`` chooses the tensors perturbed
    (see :func:`is_perturbed`)."""

    def __init__(self, passes=50, xi=1e-3, scope="weights"):
        if int(passes) < 1 or not float(xi) > 0:
            raise ConfigError(f"NoiseStability needs passes >= 1 and xi > 0, got {passes}, {xi}")
        if scope not in ("weights", "matrices"):
            raise ConfigError(f"NoiseStability.scope must be 'weights' or 'matrices', got {scope!r}")
        self.passes, self.xi, self.scope = int(passes), float(xi), scope

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        outputs, noisy = learner.perturbed_outputs(cand, self.passes, self.xi, state.rng,
                                                   scope=self.scope)
        return cand[k_center_greedy(stability_features(outputs, noisy), n)]
