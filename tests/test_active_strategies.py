"""Query strategies for classification on constructed pools where the answer is known,
each score checked against its definition computed separately (scipy / brute force)."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest
from scipy.spatial.distance import mahalanobis
from scipy.stats import entropy as sp_entropy

from ppzoo.active.classification import (BADGE, BALD, CoreSet, EntropySampling, IdealEntropy,
                                         LeastConfidence, Learner, MarginSampling, PoolState,
                                         gradient_embedding)
from ppzoo.active.learners import ArrayInputs, PaddleLearner, SklearnLearner
from ppzoo.active.noise_stability import NoiseStability, stability_features, weight_noise
from ppzoo.active.poal import (POAL, ParetoArchive, dominates, min_mahalanobis_shared, mmd_rbf,
                               pareto_front_mask, pareto_subset_search, preselect)
from ppzoo.active.strategies import STRATEGIES
from ppzoo.core.errors import ConfigError


class ArrayLearner(Learner):
    """A learner whose outputs are given arrays over the pool."""

    def __init__(self, probs, feats=None, mc=None, noisy=None):
        self.probs, self.feats, self.mc, self.noisy = probs, feats, mc, noisy

    def predict_proba(self, idx):
        return self.probs[idx]

    def embed(self, idx):
        return self.feats[idx]

    def mc_proba(self, idx, passes, rng):
        return self.mc[:, idx]

    def perturbed_outputs(self, idx, passes, xi, rng, scope="weights"):
        return self.probs[idx], self.noisy[:, idx]


def state_for(n_pool, labelled=(), labels=None, is_ood=None, seed=0):
    labelled = np.asarray(labelled, dtype=np.int64)
    cand = np.setdiff1d(np.arange(n_pool), labelled)
    lab = np.full(n_pool, -2) if labels is None else np.asarray(labels)
    return PoolState(cand, labelled, lab, is_ood, np.random.default_rng(seed))


# The three uncertainty scores rank this pool differently, so each test fails if its score
# is swapped for another (or its sign flipped).
UNCERTAIN = np.array([
    [0.50, 0.50, 0.00],   # margin 0, least confidence .50, entropy .693
    [0.40, 0.30, 0.30],   # margin .1, least confidence .60, entropy 1.089 (largest)
    [0.45, 0.45, 0.10],   # margin 0, least confidence .55, entropy .984
    [0.34, 0.33, 0.33],   # margin .01, least confidence .66 (largest), entropy 1.0986
    [0.98, 0.01, 0.01],
    [0.90, 0.05, 0.05],
])


def test_entropy_margin_least_confidence_pick_their_definition():
    learner = ArrayLearner(UNCERTAIN)
    ent = sp_entropy(UNCERTAIN.T)
    srt = np.sort(UNCERTAIN, 1)
    margin = srt[:, -1] - srt[:, -2]
    lc = 1 - UNCERTAIN.max(1)
    for strat, want in [(EntropySampling(), np.argsort(-ent)[:2]),
                        (MarginSampling(), np.argsort(margin, kind="stable")[:3]),
                        (LeastConfidence(), np.argsort(-lc)[:2])]:
        n = len(want)
        got = strat(learner, state_for(len(UNCERTAIN)), n)
        assert sorted(got.tolist()) == sorted(want.tolist()), type(strat).__name__
    assert sorted(EntropySampling()(learner, state_for(6), 2).tolist()) == [1, 3]
    assert sorted(MarginSampling()(learner, state_for(6), 2).tolist()) == [0, 2]
    assert sorted(LeastConfidence()(learner, state_for(6), 2).tolist()) == [1, 3]


def test_strategies_pick_only_candidates_and_respect_labelled():
    learner = ArrayLearner(UNCERTAIN)
    got = EntropySampling()(learner, state_for(6, labelled=[1, 3]), 2)
    assert sorted(got.tolist()) == [0, 2]


def test_bald_is_mutual_information_and_prefers_disagreement():
    # sample 0: every pass says (.5, .5); sample 1: passes disagree completely; same mean
    mc = np.array([[[0.5, 0.5], [1.0, 0.0], [0.7, 0.3]],
                   [[0.5, 0.5], [0.0, 1.0], [0.7, 0.3]]])  # (passes, n, C)
    mi = sp_entropy(mc.mean(0).T) - np.mean([sp_entropy(m.T) for m in mc], 0)
    np.testing.assert_allclose(mi, [0.0, np.log(2), 0.0], atol=1e-9)
    learner = ArrayLearner(mc.mean(0), mc=mc)
    assert BALD(passes=2)(learner, state_for(3), 1).tolist() == [1]
    # entropy of the mean cannot tell samples 0 and 1 apart
    assert np.isclose(sp_entropy(mc.mean(0)[0]), sp_entropy(mc.mean(0)[1]))


def brute_force_k_center(x, centers, k):
    picks = []
    for _ in range(k):
        best, best_d = None, -1
        for i in range(len(x)):
            if i in picks:
                continue
            pts = list(centers) + [x[j] for j in picks]
            d = min(np.linalg.norm(x[i] - c) for c in pts)
            if d > best_d:
                best, best_d = i, d
        picks.append(best)
    return picks


def test_coreset_covers_outliers_first_and_matches_brute_force():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 0.1, (30, 2)), [[5.0, 5.0], [-6.0, 4.0]]])
    labelled = np.arange(10)           # labelled samples sit in the central cluster
    learner = ArrayLearner(np.full((32, 2), 0.5), feats=feats)
    got = CoreSet()(learner, state_for(32, labelled=labelled), 2)
    assert got.tolist() == [31, 30]    # the farthest outlier, then the other one
    x = rng.normal(size=(40, 3))
    learner = ArrayLearner(np.full((40, 2), 0.5), feats=x)
    got = CoreSet()(learner, state_for(40, labelled=[0, 1, 2]), 6)
    cand = np.arange(3, 40)
    assert got.tolist() == [int(cand[i]) for i in brute_force_k_center(x[3:], x[:3], 6)]


def test_badge_gradient_embedding_and_diverse_uncertain_picks():
    probs = np.array([[0.7, 0.2, 0.1]])
    h = np.array([[1.0, -2.0]])
    g = gradient_embedding(probs, h)
    # gradient of CE(softmax(W h), yhat) w.r.t. W is (p - e_yhat) h^T, checked with Paddle
    w = paddle.to_tensor(np.log(probs).T @ np.linalg.pinv(h).T, stop_gradient=False)
    logits = paddle.matmul(paddle.to_tensor(h), w, transpose_y=True)
    loss = nn.functional.cross_entropy(logits, paddle.to_tensor([0]))
    loss.backward()
    np.testing.assert_allclose(g.reshape(3, 2), w.grad.numpy(), atol=1e-6)
    # pool: 10 copies of one uncertain sample, 20 confident samples, 6 distinct uncertain ones
    rng = np.random.default_rng(0)
    feats = np.concatenate([np.tile([[1.0, 0.0]], (10, 1)), rng.normal(size=(20, 2)),
                            rng.normal(size=(6, 2)) * 3])
    probs = np.concatenate([np.tile([[0.5, 0.5]], (10, 1)), np.tile([[0.999, 0.001]], (20, 1)),
                            np.tile([[0.4, 0.6]], (6, 1))])
    learner = ArrayLearner(probs, feats=feats)
    norms = np.linalg.norm(gradient_embedding(probs, feats), axis=1)
    for seed in range(5):
        got = BADGE()(learner, state_for(36, seed=seed), 5)
        assert got[0] == int(np.argmax(norms))  # the largest gradient comes first
        # confident samples have gradient ~0: together they act as one point near the origin
        assert np.isin(got, np.arange(10, 30)).sum() <= 1, "BADGE took several confident samples"
        assert np.isin(got, np.arange(10)).sum() <= 1, "BADGE picked duplicates"


def test_ideal_entropy_never_picks_ood():
    probs = np.array([[0.34, 0.33, 0.33]] * 3 + [[0.5, 0.5, 0.0]] * 3 + [[0.9, 0.05, 0.05]] * 3)
    is_ood = np.array([True] * 3 + [False] * 6)
    st = state_for(9, is_ood=is_ood)
    assert set(EntropySampling()(ArrayLearner(probs), st, 3).tolist()) == {0, 1, 2}
    assert set(IdealEntropy()(ArrayLearner(probs), st, 3).tolist()) == {3, 4, 5}


# ---------------------------------------------------------------- noise stability
def test_weight_noise_has_the_relative_norm_and_leaves_biases_alone():
    rng = np.random.default_rng(0)
    params = [("conv.weight", rng.normal(size=(4, 3, 3, 3))), ("conv.bias", rng.normal(size=4)),
              ("bn.weight", rng.normal(size=4)), ("fc.weight", rng.normal(size=(5, 4)))]
    noise = weight_noise(params, 1e-3, rng)
    assert set(noise) == {"conv.weight", "bn.weight", "fc.weight"}
    for name, w in params:
        if name in noise:
            assert np.linalg.norm(noise[name]) / np.linalg.norm(w) == pytest.approx(1e-3, rel=1e-6)
    assert set(weight_noise(params, 1e-3, rng, scope="matrices")) == {"conv.weight", "fc.weight"}


class Recorder(nn.Layer):
    """A linear classifier that records its weight and bias at every call."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.seen = []

    def forward(self, x):
        self.seen.append((self.fc.weight.numpy().copy(), self.fc.bias.numpy().copy()))
        return self.fc(x)


def test_paddle_learner_perturbs_each_pass_and_restores():
    paddle.seed(0)
    model = Recorder()
    w0, b0 = model.fc.weight.numpy().copy(), model.fc.bias.numpy().copy()
    x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    learner = PaddleLearner(model, ArrayInputs(x), batch_size=4)
    out, noisy = learner.perturbed_outputs(np.arange(10), 3, 0.01, np.random.default_rng(1))
    assert out.shape == (10, 4) and noisy.shape == (3, 10, 4)
    seen = model.seen[3:]  # 3 batches of the clean pass, then 3 batches per noisy pass
    rel = [np.linalg.norm(w - w0) / np.linalg.norm(w0) for w, _ in seen]
    np.testing.assert_allclose(rel, 0.01, rtol=1e-4)
    assert all(np.array_equal(b, b0) for _, b in seen)
    assert np.array_equal(model.fc.weight.numpy(), w0)  # restored
    assert not np.allclose(noisy[0], out)


def test_noise_stability_features_and_picks():
    out = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]])
    noisy = np.stack([out + [[0.1, -0.1], [0.0, 0.0], [0.01, -0.01]],
                      out + [[-0.1, 0.1], [0.0, 0.0], [0.01, -0.01]]])
    f = stability_features(out, noisy)
    want = np.concatenate([(noisy[k] - out) / np.linalg.norm(out, axis=1, keepdims=True)
                           for k in range(2)], 1)
    np.testing.assert_allclose(f, want)
    learner = ArrayLearner(out, noisy=noisy)
    assert NoiseStability(passes=2)(learner, state_for(3), 1).tolist() == [0]  # least stable
    # second pick: the farthest in deviation space from the first (sample 1 does not move,
    # sample 2 moves a little; both are at similar distance, k-center takes the farther)
    got = NoiseStability(passes=2)(learner, state_for(3), 2).tolist()
    d = np.linalg.norm(f - f[0], axis=1)
    assert got == [0, int(np.argmax(np.where(np.arange(3) == 0, -1, d)))]


def test_noise_stability_on_sklearn_models():
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    est = LogisticRegression().fit(x, y)
    learner = SklearnLearner(est, x, 2)
    out, noisy = learner.perturbed_outputs(np.arange(60), 4, 0.05, rng)
    assert noisy.shape == (4, 60, 2) and not np.allclose(noisy[0], out)
    got = NoiseStability(passes=4, xi=0.05)(learner, state_for(60), 3)
    # the least stable samples lie near the decision boundary x0 = 0
    assert np.abs(x[got[0], 0]) < np.median(np.abs(x[:, 0]))


# ---------------------------------------------------------------- POAL
def brute_force_front(u, m):
    pts = np.stack([u, m], 1)
    return np.array([not any(dominates(pts[j], pts[i]) for j in range(len(u)) if j != i)
                     for i in range(len(u))])


def test_pareto_front_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        u = rng.integers(0, 5, 40).astype(float)
        m = rng.integers(0, 5, 40).astype(float)
        np.testing.assert_array_equal(pareto_front_mask(u, m), brute_force_front(u, m))
    u, m = rng.random(200), rng.random(200)
    np.testing.assert_array_equal(pareto_front_mask(u, m), brute_force_front(u, m))
    pre = preselect(u, m, 30)
    assert len(pre) >= 30 and brute_force_front(u, m)[pre].sum() == brute_force_front(u, m).sum()


def test_pareto_archive_holds_only_non_dominated_subsets():
    rng = np.random.default_rng(0)
    u, m = rng.random(30), rng.random(30)
    pos, archive, ran = pareto_subset_search(u, m, 4, rng, iters=2000, early_stop=False)
    f = archive.fitness
    assert ran == 2000 and len(archive) >= 1
    for i in range(len(f)):
        assert not dominates(np.delete(f, i, 0), f[i]).any()
    for s, fit in zip(archive.subsets, f):
        assert len(set(s.tolist())) == 4
        np.testing.assert_allclose(fit, [u[s].sum(), m[s].sum()])
    assert any(np.array_equal(pos, s) for s in archive.subsets)
    a = ParetoArchive()
    assert a.offer([0], [1.0, 1.0]) and not a.offer([1], [0.5, 1.0]) and a.offer([2], [2.0, 0.0])
    assert a.offer([3], [1.0, 1.5]) and len(a) == 2  # replaced the dominated [0]


def test_mmd_early_stop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)
    assert mmd_rbf(x, x + 3.0) > 0.1
    u, m = rng.random(40), rng.random(40)
    _, _, ran = pareto_subset_search(u, m, 3, rng, iters=100000, check_every=200, tol=0.05)
    assert ran < 100000


def test_mahalanobis_matches_scipy():
    rng = np.random.default_rng(0)
    lab = np.concatenate([rng.normal(0, 1, (30, 3)), rng.normal(4, 1, (30, 3))])
    y = np.repeat([0, 1], 30)
    x = rng.normal(2, 2, (10, 3))
    d = min_mahalanobis_shared(x, lab, y, shrinkage=0.0)
    means = [lab[y == c].mean(0) for c in (0, 1)]
    cen = lab - np.stack(means)[y]
    prec = np.linalg.inv(cen.T @ cen / len(cen))
    want = [min(mahalanobis(xi, mu, prec) for mu in means) for xi in x]
    np.testing.assert_allclose(d, want, rtol=1e-8)


def ood_pool(seed=0):
    """Two ID classes around (-3, 0) and (3, 0) and OOD samples far away at (0, 8) whose
    predictions are the most uncertain of the pool; labelled: 5 of each ID class."""
    rng = np.random.default_rng(seed)
    id_x = np.concatenate([rng.normal([-3, 0], 1.0, (40, 2)), rng.normal([3, 0], 1.0, (40, 2))])
    ood_x = rng.normal([0, 8], 1.0, (20, 2))
    feats = np.concatenate([id_x, ood_x])
    p1 = 1 / (1 + np.exp(-feats[:, 0]))
    probs = np.stack([1 - p1, p1], 1)
    probs[80:] = [[0.5, 0.5]] * 20                        # OOD: the highest entropy
    probs[80:] += rng.normal(0, 0.005, (20, 1)) * [1, -1]
    labels = np.full(100, -2)
    labelled = np.r_[0:5, 40:45]
    labels[labelled] = np.repeat([0, 1], 5)
    is_ood = np.arange(100) >= 80
    return ArrayLearner(probs, feats=feats), labelled, labels, is_ood


def test_poal_queries_fewer_ood_than_entropy_and_the_reference_sign_more():
    learner, labelled, labels, is_ood = ood_pool()
    st = state_for(100, labelled, labels, is_ood, seed=0)
    n = 10
    ent = EntropySampling()(learner, st, n)
    poal = POAL(ood_model="gaussian")(learner, st, n)
    ref = POAL(ood_model="gaussian", sign="reference")(learner, st, n)
    n_ent, n_poal, n_ref = (int(is_ood[p].sum()) for p in (ent, poal, ref))
    assert n_ent == n                        # entropy takes only OOD samples here
    assert n_poal <= 3, n_poal               # the derived sign avoids most of them
    assert n_ref >= n_poal + 3, (n_ref, n_poal)  # the public code's sign seeks them
    poal_gmm = POAL(ood_model="gmm")(learner, st, n)
    assert int(is_ood[poal_gmm].sum()) <= 3


def test_poal_id_confidence_direction():
    learner, labelled, labels, is_ood = ood_pool()
    st = state_for(100, labelled, labels, is_ood)
    cand = st.candidates
    m = POAL(ood_model="gaussian").id_confidence(learner, st, cand)
    assert m[is_ood[cand]].max() < np.median(m[~is_ood[cand]])
    m_ref = POAL(ood_model="gaussian", sign="reference").id_confidence(learner, st, cand)
    assert m_ref[is_ood[cand]].min() > np.median(m_ref[~is_ood[cand]])


def test_registry_and_option_errors():
    for name in ("EntropySampling", "MarginSampling", "LeastConfidence", "BALD", "CoreSet",
                 "BADGE", "NoiseStability", "POAL", "IdealEntropy", "RandomStrategy"):
        assert name in STRATEGIES
    with pytest.raises(ConfigError, match="sign"):
        POAL(sign="ood")
    with pytest.raises(ConfigError, match="scope"):
        NoiseStability(scope="all")
    with pytest.raises(ConfigError, match="ActiveLearningTrainer"):
        EntropySampling().select([None], [0], 1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="dropout"):
        PaddleLearner(Recorder(), ArrayInputs(np.zeros((2, 3), "float32"))).mc_proba(
            np.arange(2), 2, np.random.default_rng(0))
