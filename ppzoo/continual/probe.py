"""Linear probes on frozen features, and the summary numbers of a continual run.

A probe is multinomial logistic regression fitted by L-BFGS on cached features, with the
objective of scikit-learn's ``LogisticRegression(C=C)``:

    C * sum_i CE(W x_i + b, y_i) + 0.5 * ||W||^2        (the bias is not penalised)

With two classes scikit-learn fits one weight vector w (logits [0, w x + b]), not two: a
two-column softmax penalises ||w1||^2 + ||w2||^2, which at its optimum w1 = -w2 = w/2 is
||w||^2 / 2, i.e. the objective of C' = 2C.  The probe therefore fits the binary case
with one vector too, so ``C`` means what it means in scikit-learn for every number of classes.
or, ``solver: ridge``, the closed-form least-squares fit to one-hot targets with an L2
penalty ``alpha`` (scikit-learn's ``RidgeClassifier``).  Features can be standardised with
the probe's training statistics first (``standardize``).
"""
import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from ..core.errors import ConfigError

PROBE_KEYS = {"solver", "C", "alpha", "max_iter", "tol", "standardize", "batch_size"}


class LinearProbe:
    def __init__(self, solver="lbfgs", C=1.0, alpha=1.0, max_iter=300, tol=1e-6, standardize=True):
        if solver not in ("lbfgs", "ridge"):
            raise ConfigError(f"continual.probe.solver must be lbfgs or ridge, got {solver!r}")
        self.solver, self.C, self.alpha = solver, float(C), float(alpha)
        self.max_iter, self.tol, self.standardize = int(max_iter), float(tol), bool(standardize)

    def _prep(self, x):
        x = np.asarray(x, np.float64)
        return (x - self.mu) / self.sd if self.standardize else x

    def fit(self, x, y):
        x = np.asarray(x, np.float64)
        y = np.asarray(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if self.standardize:
            self.mu, self.sd = x.mean(0), x.std(0) + 1e-8
        x = self._prep(x)
        n, d = x.shape
        k = len(self.classes_)
        onehot = np.zeros((n, k))
        onehot[np.arange(n), yi] = 1.0
        if k == 1:
            self.W, self.b = np.zeros((d, 1)), np.zeros(1)
            return self
        if self.solver == "ridge":
            target = 2 * onehot - 1
            xm, tm = x.mean(0), target.mean(0)
            xc, tc = x - xm, target - tm
            self.W = np.linalg.solve(xc.T @ xc + self.alpha * np.eye(d), xc.T @ tc)
            self.b = tm - xm @ self.W
            return self

        m = 1 if k == 2 else k  # binary: one weight vector for class 1, class 0's logit fixed at 0

        def obj(theta):
            W, b = theta[: d * m].reshape(d, m), theta[d * m:]
            z = x @ W + b
            if m == 1:
                z = np.concatenate([np.zeros_like(z), z], 1)
            lse = logsumexp(z, axis=1)
            loss = self.C * np.sum(lse - np.sum(z * onehot, 1)) + 0.5 * np.sum(W * W)
            p = np.exp(z - lse[:, None])
            g = self.C * (p - onehot)[:, k - m:]
            return loss, np.concatenate([(x.T @ g + W).ravel(), g.sum(0)])

        res = minimize(obj, np.zeros(d * m + m), jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter, "gtol": self.tol})
        W, b = res.x[: d * m].reshape(d, m), res.x[d * m:]
        if m == 1:
            W, b = np.concatenate([np.zeros_like(W), W], 1), np.concatenate([np.zeros(1), b])
        self.W, self.b = W, b
        return self

    def decision_function(self, x):
        return self._prep(x) @ self.W + self.b

    def predict_proba(self, x):
        z = self.decision_function(x)
        return np.exp(z - logsumexp(z, axis=1, keepdims=True))

    def predict(self, x):
        return self.classes_[np.argmax(self.decision_function(x), 1)]

    def score(self, x, y):
        return float(np.mean(self.predict(x) == np.asarray(y)))


def probe_accuracy(train_x, train_y, test_x, test_y, **probe_cfg):
    return LinearProbe(**probe_cfg).fit(train_x, train_y).score(test_x, test_y)


# ---------------------------------------------------------------------- summaries
def forgetting(M, from_seen=True, reference="best"):
    """Mean over tasks j < T-1 of (reference accuracy on j) - M[T-1, j].

    ``reference: best`` (Chaudhry et al. 2018, the default): the best of M[t, j] over
    earlier rows t < T-1 -- over t >= j only with ``from_seen`` (after the task was learned).
    ``reference: learned`` (Avalanche's): M[j, j], the accuracy right after learning task j;
    it equals minus the backward transfer.  They differ when an old task later improves."""
    M = np.asarray(M, float)
    T = M.shape[0]
    if reference not in ("best", "learned"):
        raise ConfigError(f"continual.forgetting must be best or learned, got {reference!r}")
    if T < 2:
        return float("nan")
    if reference == "learned":
        return float(np.mean([M[j, j] - M[T - 1, j] for j in range(T - 1)]))
    vals = [np.max(M[(j if from_seen else 0):T - 1, j]) - M[T - 1, j] for j in range(T - 1)]
    return float(np.mean(vals))


def backward_transfer(M):
    """Mean over tasks j < T-1 of M[T-1, j] - M[j, j] (Lopez-Paz & Ranzato 2017): how
    learning later tasks changed each task's accuracy; negative when it forgets."""
    M = np.asarray(M, float)
    T = M.shape[0]
    if T < 2:
        return float("nan")
    return float(np.mean([M[T - 1, j] - M[j, j] for j in range(T - 1)]))


def forward_transfer(R, r_init):
    """Mean over tasks j >= 1 of R[j-1, j] - r_init[j]: how much the representation learned
    before task j helps a probe on task j, relative to the untrained encoder."""
    R, r_init = np.asarray(R, float), np.asarray(r_init, float)
    T = R.shape[0]
    if T < 2:
        return float("nan")
    return float(np.mean([R[j - 1, j] - r_init[j] for j in range(1, T)]))


def summarize(A, R, r_init, from_seen=True, reference="best"):
    """The run's summary numbers; ``*_forgetting`` uses ``reference`` (see ``forgetting``)."""
    A, R = np.asarray(A, float), np.asarray(R, float)
    T = A.shape[0]
    return {"final_acc": float(A[T - 1].mean()), "avg_probe": float(R[T - 1].mean()),
            "acc_forgetting": forgetting(A, from_seen, reference),
            "rep_forgetting": forgetting(R, from_seen, reference),
            "acc_backward_transfer": backward_transfer(A), "rep_backward_transfer": backward_transfer(R),
            "forward_transfer": forward_transfer(R, r_init), "forgetting_reference": reference}
