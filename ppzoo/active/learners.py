"""The two kinds of model a query strategy works on, behind one batched interface
(:class:`ppzoo.active.strategies.Learner`): a Paddle classifier (dygraph, batched forward
passes) and a fitted scikit-learn estimator."""
import copy

import numpy as np
import paddle
import paddle.nn as nn

from ..core.builder import MODELS
from ..core.errors import ConfigError
from .noise_stability import weight_noise
from .classification import Learner


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


class ArrayInputs:
    """Model inputs for pool indices from an in-memory array (n, ...)."""

    def __init__(self, array):
        self.array = np.asarray(array)

    def __call__(self, idx):
        return self.array[np.asarray(idx, dtype=np.int64)]


class DatasetInputs:
    """Model inputs for pool indices from a ppzoo dataset (its deterministic eval
    transforms), each sample decoded once and cached."""

    def __init__(self, dataset, key="image"):
        self.dataset, self.key, self.cache = dataset, key, {}

    def __call__(self, idx):
        out = []
        for i in np.asarray(idx, dtype=np.int64).tolist():
            if i not in self.cache:
                x = self.dataset[i][self.key]
                self.cache[i] = x.numpy() if isinstance(x, paddle.Tensor) else np.asarray(x)
            out.append(self.cache[i])
        return np.stack(out) if out else np.zeros((0,))


def last_linear(model):
    """The model's last ``nn.Linear``: its input is the feature ``embed`` returns."""
    linears = [m for m in model.sublayers() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear layer whose input could "
                          "serve as the features of CoreSet, BADGE and POAL")
    return linears[-1]


class PaddleLearner(Learner):
    """A Paddle classifier (logits out) evaluated in batches of ``batch_size``."""
    kind = "paddle"

    def __init__(self, model, inputs, batch_size=256):
        self.model, self.inputs, self.batch_size = model, inputs, int(batch_size)
        self._cache = {}

    def _run(self, idx, want_feats=False):
        """Softmax outputs (and last-layer inputs) of the model in its current mode."""
        idx = np.asarray(idx, dtype=np.int64)
        feats, probs = [], []
        captured = {}
        handle = None
        if want_feats:
            def hook(layer, inp):
                captured["x"] = inp[0]
            handle = last_linear(self.model).register_forward_pre_hook(hook)
        try:
            with paddle.no_grad():
                for s in range(0, len(idx), self.batch_size):
                    x = paddle.to_tensor(self.inputs(idx[s:s + self.batch_size]))
                    logits = self.model(x)
                    probs.append(_softmax(logits.numpy().astype(np.float64)))
                    if want_feats:
                        feats.append(captured["x"].numpy().reshape(len(x), -1).astype(np.float64))
        finally:
            if handle is not None:
                handle.remove()
        probs = np.concatenate(probs) if probs else np.zeros((0, 0))
        return (probs, np.concatenate(feats) if feats else np.zeros((0, 0))) if want_feats else probs

    def _eval_pass(self, idx):
        key = np.asarray(idx, dtype=np.int64)
        if len(self._cache) == 0 or not np.isin(key, self._cache["idx"]).all():
            self.model.eval()
            probs, feats = self._run(key, want_feats=True)
            self._cache = {"idx": key, "pos": {int(i): j for j, i in enumerate(key)},
                           "probs": probs, "feats": feats}
        pos = np.asarray([self._cache["pos"][int(i)] for i in key], dtype=np.int64)
        return self._cache["probs"][pos], self._cache["feats"][pos]

    def invalidate(self):
        """Forget cached outputs (call after the model's weights changed)."""
        self._cache = {}

    def predict_proba(self, idx):
        return self._eval_pass(idx)[0]

    def embed(self, idx):
        return self._eval_pass(idx)[1]

    def mc_proba(self, idx, passes, rng):
        drops = [m for m in self.model.sublayers() if isinstance(m, (nn.Dropout, nn.Dropout2D))]
        if not drops:
            return Learner.mc_proba(self, idx, passes, rng)
        self.model.eval()
        for m in drops:
            m.train()
        try:
            out = []
            for _ in range(passes):
                paddle.seed(int(rng.integers(2 ** 31)))
                out.append(self._run(idx))
            return np.stack(out)
        finally:
            self.model.eval()

    def perturbed_outputs(self, idx, passes, xi, rng, scope="weights"):
        self.model.eval()
        outputs = self._run(idx)
        params = dict(self.model.named_parameters())
        saved = {k: p.numpy().copy() for k, p in params.items()}
        noisy = []
        try:
            for _ in range(passes):
                noise = weight_noise(saved.items(), xi, rng, scope=scope)
                for k, z in noise.items():
                    params[k].set_value(saved[k] + z)
                noisy.append(self._run(idx))
        finally:
            for k, p in params.items():
                p.set_value(saved[k])
        return outputs, np.stack(noisy)


def full_proba(est, x, num_classes):
    """``est.predict_proba(x)`` spread over all ``num_classes`` columns (a class missing from
    the labelled set gets probability 0)."""
    p = est.predict_proba(x)
    full = np.zeros((len(p), int(num_classes)))
    full[:, np.asarray(est.classes_, dtype=np.int64)] = p
    return full


class SklearnLearner(Learner):
    """A fitted scikit-learn classifier; ``inputs(idx)`` gives the pool's feature rows."""
    kind = "sklearn"

    def __init__(self, estimator, inputs, num_classes):
        if not callable(inputs):
            inputs = ArrayInputs(inputs)
        self.estimator, self.inputs, self.num_classes = estimator, inputs, int(num_classes)

    def _proba(self, est, idx):
        return full_proba(est, self.inputs(idx), self.num_classes)

    def predict_proba(self, idx):
        return self._proba(self.estimator, idx)

    def embed(self, idx):
        return np.asarray(self.inputs(idx), dtype=np.float64).reshape(len(idx), -1)

    @staticmethod
    def _weights(est):
        """(name, array, setter) for the estimator's weight matrices; intercepts are left out."""
        if hasattr(est, "coefs_"):  # MLPClassifier
            return [(f"coefs.{i}.weight", w, (lambda e, v, i=i: e.coefs_.__setitem__(i, v)))
                    for i, w in enumerate(est.coefs_)]
        if hasattr(est, "coef_"):  # linear models
            return [("coef.weight", est.coef_, lambda e, v: setattr(e, "coef_", v))]
        raise ConfigError(f"{type(est).__name__} has no weight matrices (coef_ or coefs_) to "
                          "perturb: NoiseStability needs a linear model or an MLP")

    def perturbed_outputs(self, idx, passes, xi, rng, scope="weights"):
        est = self.estimator
        outputs = self._proba(est, idx)
        named = self._weights(est)
        noisy = []
        for _ in range(passes):
            pert = copy.deepcopy(est)
            noise = weight_noise([(n, w) for n, w, _ in named], xi, rng, scope=scope)
            for name, w, setter in named:
                setter(pert, w + noise[name])
            noisy.append(self._proba(pert, idx))
        return outputs, np.stack(noisy)


_ESTIMATORS = {"LogisticRegression": "sklearn.linear_model",
               "GaussianProcessClassifier": "sklearn.gaussian_process",
               "MLPClassifier": "sklearn.neural_network", "SVC": "sklearn.svm",
               "RandomForestClassifier": "sklearn.ensemble"}


@MODELS.register()
class SklearnClassifier(nn.Layer):
    """A scikit-learn classifier behind a model's interface, for the classical setting of
    active learning: ``fit`` refits it on the labelled set each round, ``forward`` returns
    class probabilities (so the engine's metrics evaluate it).  ``estimator`` names one of
    LogisticRegression, GaussianProcessClassifier (RBF kernel), MLPClassifier, SVC
    (``probability`` on) or RandomForestClassifier; ``params`` are its arguments."""

    def __init__(self, estimator="LogisticRegression", params=None, num_classes=2):
        super().__init__()
        if estimator not in _ESTIMATORS:
            raise ConfigError(f"SklearnClassifier.estimator must be one of {sorted(_ESTIMATORS)}, "
                              f"got {estimator!r}")
        self.estimator_name, self.params = estimator, dict(params or {})
        self.num_classes = int(num_classes)
        self.estimator = None
        self.make(0)  # checks the parameters now

    def make(self, seed):
        import importlib
        cls = getattr(importlib.import_module(_ESTIMATORS[self.estimator_name]), self.estimator_name)
        params = dict(self.params)
        if self.estimator_name == "SVC":
            params.setdefault("probability", True)
        if self.estimator_name == "GaussianProcessClassifier" and "kernel" not in params:
            from sklearn.gaussian_process.kernels import RBF
            params["kernel"] = 1.0 * RBF(1.0)
        if "random_state" in cls().get_params():
            params.setdefault("random_state", int(seed))
        try:
            return cls(**params)
        except TypeError as err:
            raise ConfigError(f"SklearnClassifier.params: {err}") from None

    def fit(self, x, y, seed=0):
        x, y = np.asarray(x), np.asarray(y)
        if len(np.unique(y)) < 2:  # one class labelled so far: predict it with certainty
            from sklearn.dummy import DummyClassifier
            self.estimator = DummyClassifier(strategy="most_frequent").fit(x, y)
        else:
            import warnings
            from sklearn.exceptions import ConvergenceWarning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.estimator = self.make(seed).fit(x, y)
        return self

    def forward(self, x):
        if self.estimator is None:
            raise ConfigError("SklearnClassifier is not fitted yet")
        x = x.numpy() if isinstance(x, paddle.Tensor) else np.asarray(x)
        return paddle.to_tensor(full_proba(self.estimator, x.reshape(len(x), -1),
                                           self.num_classes).astype(np.float32))
