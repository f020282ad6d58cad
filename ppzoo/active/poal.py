"""POAL: Pareto optimization for active learning under out-of-distribution data
(Zhan et al., arXiv 2207.01190).

Two objectives, both to be maximized, for each candidate:
  * informativeness ``U`` (entropy of the prediction, by default);
  * in-distribution confidence ``M``: with ``d`` the smallest Mahalanobis distance of the
    candidate's features to the labelled in-distribution data (class means with one shared
    covariance over the penultimate features for deep models, or the components of a
    per-class Gaussian mixture for classical models), ``M = max(d) - d``.

Selection: (1) pre-select successive Pareto fronts of (U, M) until there are at least
``preselect_factor * n`` candidates; (2) Monte-Carlo Pareto optimization over subsets of
exactly ``n`` of them, keeping an archive of non-dominated subsets under (sum U, sum M) and
stopping early when the archive's objective cloud stops moving (maximum mean discrepancy
between successive snapshots); (3) return the archive subset that overlaps most with the
rest of the archive.

The sign question: Lee et al.'s Mahalanobis *confidence score* ``max_c -(f-mu_c)' P (f-mu_c)/2``
is already large for in-distribution samples.  The public deep-learning code treats it as a
distance and maximizes ``max(score) - score``, which is large for samples far from every class
(OOD).  ``sign: id`` (default) uses the direction derived above; ``sign: reference``
reproduces the public code's direction for comparison.  See docs/active.md.
"""
import numpy as np

from ..core.errors import ConfigError
from .classification import STRATEGIES, ClassificationStrategy, entropy, least_confidence, margin


# ---------------------------------------------------------------------- Pareto machinery
def dominates(a, b):
    """Whether objective vector(s) ``a`` dominate ``b`` (maximization): >= everywhere, > somewhere."""
    a, b = np.asarray(a), np.asarray(b)
    return np.all(a >= b, axis=-1) & np.any(a > b, axis=-1)


def pareto_front_mask(u, m):
    """Mask of the points not dominated by any other point under (u, m), both maximized.

    Sort by u descending (then m descending); a point is dominated iff some point with larger
    u has m at least as large, or a point with equal u has larger m.  O(n log n)."""
    u, m = np.asarray(u, np.float64), np.asarray(m, np.float64)
    order = np.lexsort((-m, -u))
    us, ms = u[order], m[order]
    # first position of each u-group (groups of equal u, contiguous after sorting)
    new_group = np.r_[True, us[1:] != us[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(us)), 0))
    prefix_max = np.maximum.accumulate(ms)                       # max m over positions <= i
    before_group = np.where(group_start > 0, prefix_max[np.maximum(group_start - 1, 0)], -np.inf)
    group_max = ms[group_start]                                   # m sorted descending in a group
    dominated = (before_group >= ms) | (group_max > ms)
    mask = np.zeros(len(u), bool)
    mask[order] = ~dominated
    return mask


def preselect(u, m, k):
    """Positions of successive Pareto fronts of (u, m), whole fronts, until at least ``k``."""
    remaining = np.arange(len(u))
    chosen = []
    while len(chosen) < k and len(remaining):
        front = remaining[pareto_front_mask(u[remaining], m[remaining])]
        chosen.extend(front.tolist())
        remaining = np.setdiff1d(remaining, front)
    return np.asarray(chosen, dtype=np.int64)


def mmd_rbf(x, y, kernel_mul=2.0, kernel_num=5):
    """Maximum mean discrepancy with a sum of ``kernel_num`` RBF kernels whose bandwidths are
    the mean pairwise squared distance times powers of ``kernel_mul`` (centered)."""
    z = np.concatenate([x, y]).astype(np.float64)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    n = len(z)
    bw = d2.sum() / max(n * n - n, 1)
    if bw <= 0:
        return 0.0
    bw /= kernel_mul ** (kernel_num // 2)
    k = sum(np.exp(-d2 / (bw * kernel_mul ** i)) for i in range(kernel_num))
    nx = len(x)
    return float(k[:nx, :nx].mean() + k[nx:, nx:].mean() - k[:nx, nx:].mean() - k[nx:, :nx].mean())


class ParetoArchive:
    """Non-dominated subsets of one size under (sum u, sum m)."""

    def __init__(self):
        self.subsets, self.fitness = [], np.zeros((0, 2))

    def offer(self, subset, fit):
        """Add ``subset`` unless an archived subset dominates it; drop those it weakly dominates."""
        f = self.fitness
        if len(f) and dominates(f, fit).any():
            return False
        keep = ~np.all(f <= fit, axis=1)
        self.subsets = [s for s, k in zip(self.subsets, keep) if k] + [np.asarray(subset)]
        self.fitness = np.vstack([f[keep], np.asarray(fit, np.float64)[None]])
        return True

    def __len__(self):
        return len(self.subsets)


def pareto_subset_search(u, m, n, rng, iters, check_every=200, patience=10, tol=0.01,
                         early_stop=True, batch=256):
    """Monte-Carlo Pareto optimization over ``n``-subsets of the candidates with scores
    ``u``, ``m``; returns (positions of the chosen subset, archive, iterations run).

    Each iteration draws a uniformly random ``n``-subset and offers it to the archive.  Every
    ``check_every`` iterations the archive's (sum u, sum m) points are compared (MMD) with the
    last ``patience`` snapshots; the search stops once, over ``patience`` checks, the mean and
    the standard deviation of those MMDs each vary by at most ``tol``."""
    u, m = np.asarray(u, np.float64), np.asarray(m, np.float64)
    num = len(u)
    archive = ParetoArchive()
    snapshots, history = [], []
    done = 0
    while done < iters:
        b = min(batch, iters - done)
        subsets = np.argpartition(rng.random((b, num)), n - 1, axis=1)[:, :n]
        fits = np.stack([u[subsets].sum(1), m[subsets].sum(1)], 1)
        stop = False
        for j in range(b):
            archive.offer(subsets[j], fits[j])
            done += 1
            if early_stop and done % check_every == 0:
                f = archive.fitness.copy()
                mmds = [mmd_rbf(f, s) for s in snapshots]
                history.append((np.mean(mmds), np.std(mmds)) if mmds else (0.0, 0.0))
                snapshots = (snapshots + [f])[-patience:]
                history = history[-patience:]
                if len(history) >= patience:
                    h = np.asarray(history)
                    if np.ptp(h[:, 0]) <= tol and np.ptp(h[:, 1]) <= tol:
                        stop = True
                        break
        if stop:
            break
    counts = np.zeros(num)
    for s in archive.subsets:
        counts[s] += 1
    overlap = [counts[s].sum() for s in archive.subsets]
    return archive.subsets[int(np.argmax(overlap))], archive, done


# ---------------------------------------------------------------------- ID confidence
def min_mahalanobis_shared(feats, lab_feats, lab_y, shrinkage=1e-3):
    """Smallest Mahalanobis distance of each row of ``feats`` to the class means of the
    labelled features, with one covariance shared by all classes (class-centered, as
    scikit-learn's EmpiricalCovariance on the centered features) plus ``shrinkage`` times its
    mean variance on the diagonal so that it is invertible with few labels."""
    classes = np.unique(lab_y)
    means = np.stack([lab_feats[lab_y == c].mean(0) for c in classes])
    centered = lab_feats - means[np.searchsorted(classes, lab_y)]
    cov = centered.T @ centered / max(len(centered), 1)
    cov = cov + (shrinkage * max(np.trace(cov) / len(cov), 1e-12)) * np.eye(len(cov))
    prec = np.linalg.inv(cov)
    d2 = np.stack([np.einsum("ij,jk,ik->i", feats - mu, prec, feats - mu) for mu in means], 1)
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def min_mahalanobis_gmm(feats, lab_feats, lab_y, max_components=10, seed=0, shrinkage=1e-3):
    """Smallest Mahalanobis distance to any component of a Gaussian mixture fitted per class
    (number of components chosen by BIC, 1..min(max_components, n_class - 1)), each distance
    with that component's own precision matrix."""
    from sklearn.mixture import GaussianMixture
    best = []
    for c in np.unique(lab_y):
        x = lab_feats[lab_y == c]
        if len(x) < 2:
            cov = np.eye(feats.shape[1])
            best.append((x.mean(0, keepdims=True), np.linalg.inv(cov)[None]))
            continue
        fits = []
        for k in range(1, max(2, min(max_components, len(x) - 1) + 1)):
            g = GaussianMixture(k, covariance_type="full", reg_covar=shrinkage, random_state=seed)
            g.fit(x)
            fits.append((g.bic(x), g))
        g = min(fits, key=lambda t: t[0])[1]
        best.append((g.means_, g.precisions_))
    d2 = []
    for means, precs in best:
        for mu, p in zip(means, precs):
            d2.append(np.einsum("ij,jk,ik->i", feats - mu, p, feats - mu))
    return np.sqrt(np.maximum(np.min(d2, axis=0), 0.0))


_INFORMATIVENESS = {"entropy": entropy, "margin": lambda p: -margin(p),
                    "least_confidence": least_confidence}


@STRATEGIES.register()
class POAL(ClassificationStrategy):
    """Pareto optimization for active learning under OOD data.

    ``ood_model``: ``gaussian`` (class means + shared covariance on the learner's features;
    the deep setting), ``gmm`` (per-class Gaussian mixtures; the classical setting) or
    ``auto`` (``gmm`` for scikit-learn learners, ``gaussian`` otherwise).
    ``sign``: ``id`` (the derived direction: near the labelled ID data = high) or
    ``reference`` (the public deep code's direction, which favours far-away samples).
    ``preselect_factor``: pre-select Pareto fronts until this many times the query size
    (6 in the public deep code, 5 in the classical one).
    ``iters_factor``: Monte-Carlo iterations = factor x query size x pre-selected count (1 in
    the public deep code), at most ``max_iters``; ``check_every``/``patience``/``tol`` the MMD
    early stop (objectives scaled to [0, 1] first, so ``tol`` does not depend on their units).
    """

    def __init__(self, informativeness="entropy", ood_model="auto", sign="id", preselect_factor=6,
                 iters_factor=1.0, max_iters=20000, early_stop=True, check_every=200, patience=10,
                 tol=0.01, shrinkage=1e-3):
        if informativeness not in _INFORMATIVENESS:
            raise ConfigError(f"POAL.informativeness must be one of {sorted(_INFORMATIVENESS)}, "
                              f"got {informativeness!r}")
        if ood_model not in ("auto", "gaussian", "gmm"):
            raise ConfigError(f"POAL.ood_model must be auto, gaussian or gmm, got {ood_model!r}")
        if sign not in ("id", "reference"):
            raise ConfigError(f"POAL.sign must be 'id' or 'reference', got {sign!r}")
        self.informativeness, self.ood_model, self.sign = informativeness, ood_model, sign
        self.preselect_factor, self.iters_factor = float(preselect_factor), float(iters_factor)
        self.max_iters, self.early_stop = int(max_iters), bool(early_stop)
        self.check_every, self.patience, self.tol = int(check_every), int(patience), float(tol)
        self.shrinkage = float(shrinkage)
        self.last = {}

    def id_confidence(self, learner, state, cand):
        lab, y = state.labelled_id
        if len(lab) == 0:
            return np.zeros(len(cand))
        feats = learner.embed(np.concatenate([cand, lab])).astype(np.float64)
        fc, fl = feats[:len(cand)], feats[len(cand):]
        kind = self.ood_model
        if kind == "auto":
            kind = "gmm" if getattr(learner, "kind", "") == "sklearn" else "gaussian"
        if kind == "gmm":
            d = min_mahalanobis_gmm(fc, fl, y, shrinkage=self.shrinkage)
        else:
            d = min_mahalanobis_shared(fc, fl, y, shrinkage=self.shrinkage)
        if self.sign == "reference":
            return d - d.min()
        return d.max() - d

    def query(self, learner, state, n):
        cand = np.asarray(state.candidates)
        u = _INFORMATIVENESS[self.informativeness](learner.predict_proba(cand))
        m = self.id_confidence(learner, state, cand)
        pre = preselect(u, m, int(np.ceil(self.preselect_factor * n)))
        self.last = {"u": u, "m": m, "preselected": cand[pre]}
        if len(pre) <= n:
            extra = np.setdiff1d(np.arange(len(cand)), pre)
            pre = np.concatenate([pre, extra[np.argsort(-u[extra], kind="stable")][:n - len(pre)]])
            return cand[pre[:n]]

        def scaled(v):
            span = v.max() - v.min()
            return (v - v.min()) / span if span > 0 else np.zeros_like(v)

        iters = min(self.max_iters, max(1, int(self.iters_factor * n * len(pre))))
        pos, archive, ran = pareto_subset_search(
            scaled(u[pre]), scaled(m[pre]), n, state.rng, iters, check_every=self.check_every,
            patience=self.patience, tol=self.tol, early_stop=self.early_stop)
        self.last.update(archive_size=len(archive), iterations=ran)
        return cand[pre[pos]]
