"""Learning to rank: data formats, DCG/NDCG against hand computation and scikit-learn, each
loss against a hand computation, the RE/PV criteria against their formulas, training on the
real data, and export + infer against dygraph."""
import math
import os

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.core.errors import ConfigError, DataError
from ppzoo.ranking.active import (REPV, RankingEntropy, normalize_scores, prediction_variance,
                                  ranking_entropy)
from ppzoo.ranking.data import LTRDataset, Query, read_ltr_file, write_ltr_file
from ppzoo.ranking.losses import (GradedCrossEntropy, LambdaRankLoss, ListNetLoss,
                                  PointwiseRegression, RankNetLoss)
from ppzoo.ranking.metrics import RankingMetrics, dcg_at_k, ndcg_at_k
from ppzoo.ranking.synthetic import make_queries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- metrics
def test_dcg_ndcg_hand_computed():
    scores, labels = [3.0, 2.0, 1.0], [2, 0, 1]
    # ranks 1..3 hold grades 2, 0, 1: (2^2-1)/log2(2) + 0 + (2^1-1)/log2(4)
    assert dcg_at_k(scores, labels, 3) == pytest.approx(3 + 0 + 0.5)
    assert dcg_at_k(scores, labels, 1) == pytest.approx(3.0)
    ideal = 3 + 1 / math.log2(3)
    assert ndcg_at_k(scores, labels, 3) == pytest.approx(3.5 / ideal)
    assert ndcg_at_k(scores, labels, 10) == pytest.approx(3.5 / ideal)  # k beyond the list
    # no relevant document: DCG 0, NDCG the documented convention
    assert dcg_at_k([1, 2], [0, 0], 2) == 0.0
    assert ndcg_at_k([1, 2], [0, 0], 2) == 1.0
    assert ndcg_at_k([1, 2], [0, 0], 2, empty_value=0.0) == 0.0


def test_ties_are_deterministic():
    # stable: tied documents keep file order; average: mean gain over the tie group
    assert dcg_at_k([1, 1, 1], [0, 0, 3], 1) == 0.0
    assert dcg_at_k([1, 1, 1], [0, 0, 3], 1, ties="average") == pytest.approx(7 / 3)


def test_ndcg_matches_scikit_learn_where_gains_coincide():
    from sklearn.metrics import ndcg_score
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 15))
        y = rng.integers(0, 5, n)
        s = rng.normal(size=n)
        if rng.random() < 0.5:
            s = np.round(s)  # ties
        gain = 2.0 ** y - 1  # scikit-learn uses y_true as the gain itself
        for k in (1, 3, 4, 5, 10):
            ref = ndcg_score(gain[None], s[None], k=k)
            assert ndcg_at_k(s, y, k, ties="average", empty_value=0.0) == pytest.approx(ref, abs=1e-12)
            if len(np.unique(s)) == n:
                assert ndcg_at_k(s, y, k, empty_value=0.0) == pytest.approx(ref, abs=1e-12)


def test_ranking_metrics_ignore_padding_and_average_queries():
    m = RankingMetrics(ndcg_ks=[3], dcg_ks=[3])
    scores = np.array([[3.0, 2.0, 1.0], [0.5, 0.2, 9.0]])
    labels = np.array([[2, 0, 1], [1, 0, -1]], np.float32)  # second query: 2 documents
    m.update(scores, labels)
    out = m.accumulate()
    assert out["DCG@3"] == pytest.approx((3.5 + 1.0) / 2)
    assert out["NDCG@3"] == pytest.approx((3.5 / (3 + 1 / math.log2(3)) + 1.0) / 2)
    assert list(out)[0] == "NDCG@3"


# --------------------------------------------------------------------------- losses
S = np.array([[1.0, 0.5, -0.2, 7.0]], np.float32)  # last position is padding
Y = np.array([[2, 0, 1, -1]], np.float32)


def _loss(cls, **kw):
    return float(cls(**kw)(paddle.to_tensor(S), paddle.to_tensor(Y)))


def _softplus(x):
    return math.log1p(math.exp(x))


def test_pointwise_losses_hand_computed():
    s, y = S[0, :3].astype(float), Y[0, :3].astype(float)
    assert _loss(PointwiseRegression) == pytest.approx(np.mean((s - y) ** 2), rel=1e-6)
    p = 1 / (1 + np.exp(-s))
    t = y / 4
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert _loss(GradedCrossEntropy, max_grade=4) == pytest.approx(ce.mean(), rel=1e-6)


def test_ranknet_hand_computed():
    s = S[0]
    pairs = [(0, 1), (0, 2), (2, 1)]  # y_i > y_j
    ref = np.mean([_softplus(-(s[i] - s[j])) for i, j in pairs])
    assert _loss(RankNetLoss) == pytest.approx(ref, rel=1e-6)
    ref2 = np.mean([_softplus(-2 * (s[i] - s[j])) for i, j in pairs])
    assert _loss(RankNetLoss, sigma=2.0) == pytest.approx(ref2, rel=1e-6)


def test_listnet_hand_computed():
    s, y = S[0, :3].astype(float), Y[0, :3].astype(float)
    pt = np.exp(y) / np.exp(y).sum()
    ls = s - np.log(np.exp(s).sum())
    assert _loss(ListNetLoss) == pytest.approx(-(pt * ls).sum(), rel=1e-6)


def _ndcg_after_swap(s, y, i, j):
    s2 = s.copy()
    s2[i], s2[j] = s[j], s[i]
    return ndcg_at_k(s2, y)


def test_lambdarank_hand_computed_from_swapped_ndcg():
    s, y = S[0, :3].astype(float), Y[0, :3].astype(int)
    base = ndcg_at_k(s, y)
    pairs = [(0, 1), (0, 2), (2, 1)]
    ref = sum(abs(_ndcg_after_swap(s, y, i, j) - base) * _softplus(-(s[i] - s[j])) for i, j in pairs)
    assert _loss(LambdaRankLoss) == pytest.approx(ref, rel=1e-5)
    # NDCG@1: only swaps that move a document into or out of rank 1 count
    ref1 = sum(abs(ndcg_at_k(np.where(np.arange(3) == i, s[j], np.where(np.arange(3) == j, s[i], s)), y, 1)
                   - ndcg_at_k(s, y, 1)) * _softplus(-(s[i] - s[j])) for i, j in pairs)
    assert _loss(LambdaRankLoss, topk=1) == pytest.approx(ref1, rel=1e-5)


def test_lambdarank_gradient_pushes_relevant_documents_up():
    s = paddle.to_tensor(S.copy(), stop_gradient=False)
    LambdaRankLoss()(s, paddle.to_tensor(Y)).backward()
    g = s.grad.numpy()[0]
    assert g[0] < 0 and g[1] > 0 and g[3] == 0  # grade 2 up, grade 0 down, padding untouched


def test_losses_average_over_queries_and_ignore_padding():
    s2 = np.concatenate([S, np.array([[0.3, -1.0, 2.0, 0.0]], np.float32)])
    y2 = np.concatenate([Y, np.array([[1, 3, 0, 0]], np.float32)])
    for cls in (ListNetLoss, LambdaRankLoss):
        both = float(cls()(paddle.to_tensor(s2), paddle.to_tensor(y2)))
        each = [float(cls()(paddle.to_tensor(s2[i:i + 1]), paddle.to_tensor(y2[i:i + 1]))) for i in range(2)]
        assert both == pytest.approx(np.mean(each), rel=1e-6)


# --------------------------------------------------------------------------- RE / PV
def test_ranking_entropy_top_vote_form_zero_when_agreeing_max_when_disagreeing():
    agree = np.array([[3.0, 1.0, 0.0], [2.0, 1.5, 0.1], [9.0, 0.0, -1.0]])
    assert ranking_entropy(agree, form="top_vote") == 0.0
    disagree = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 5.0]])
    assert ranking_entropy(disagree, form="top_vote") == pytest.approx(math.log(3))
    assert ranking_entropy(disagree, form="top_vote", normalize=True) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):  # no committee of 3 exceeds the all-disagree value
        assert ranking_entropy(rng.normal(size=(3, 3)), form="top_vote") <= math.log(3) + 1e-12


def rank_vote_entropy_by_hand(scores):
    """Independent reading of rank disagreement: each member's ranking by sorting the
    documents (ties: document order), then per document the entropy (scipy) of the rank
    positions it got from the members, averaged over the documents."""
    from scipy.stats import entropy
    m, d = scores.shape
    rank_of = [{doc: pos for pos, doc in enumerate(sorted(range(d), key=lambda j: (-row[j], j)))}
               for row in scores]
    per_doc = []
    for doc in range(d):
        counts = np.bincount([rank_of[k][doc] for k in range(m)], minlength=d)
        per_doc.append(entropy(counts / m))
    return float(np.mean(per_doc))


def test_default_ranking_entropy_is_committee_disagreement_not_list_length():
    rng = np.random.default_rng(0)
    for d in (2, 5, 40, 200):
        one = rng.normal(size=d)
        same = np.repeat(one[None], 5, axis=0)  # five identical committee members
        assert ranking_entropy(same) == 0.0
        assert RankingEntropy().score([same], rng)[0] == 0.0
        assert ranking_entropy(same, form="softmax_disagreement") == pytest.approx(0.0, abs=1e-12)
        # the consensus entropy is the one model's uncertainty: log D for flat scores
        assert ranking_entropy(np.zeros((5, d)), form="consensus_entropy") == pytest.approx(math.log(d))
    for _ in range(10):
        s = rng.normal(size=(5, int(rng.integers(2, 30))))
        s[:, 0] = s[:, 1]  # a tie inside every member's list
        assert ranking_entropy(s) == pytest.approx(rank_vote_entropy_by_hand(s), abs=1e-12)
        assert 0.0 <= ranking_entropy(s) <= math.log(min(5, s.shape[1])) + 1e-12
        assert ranking_entropy(s, normalize=True) == pytest.approx(
            rank_vote_entropy_by_hand(s) / math.log(min(5, s.shape[1])))
    # a tie ranks in document order, as the metrics do: these two members agree
    assert ranking_entropy(np.array([[1.0, 1.0, 0.0], [1.0, 0.9, 0.0]])) == 0.0
    # members that reverse each other's order: every document gets two ranks, half-half
    rev = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    assert ranking_entropy(rev) == pytest.approx(math.log(2))
    # disagreement rises with the committee's disagreement, not with the scores' spread
    base = rng.normal(size=10)
    close = np.stack([base + 1e-3 * rng.normal(size=10) for _ in range(5)])
    assert ranking_entropy(close) < ranking_entropy(rng.normal(size=(5, 10)))


def test_ranking_entropy_consensus_and_softmax_disagreement_forms():
    s = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    h = lambda q: float(-(q * np.log(q)).sum())  # noqa: E731
    assert ranking_entropy(s, form="consensus_entropy") == pytest.approx(h(p.mean(0)))
    assert ranking_entropy(s, form="softmax_disagreement") == pytest.approx(
        h(p.mean(0)) - np.mean([h(r) for r in p]))
    assert ranking_entropy(s / 2, form="consensus_entropy") == pytest.approx(
        ranking_entropy(s, form="consensus_entropy", temperature=2.0))
    with pytest.raises(ConfigError, match="form"):
        ranking_entropy(s, form="votes")
    for old, new in (("softmax", "consensus_entropy"), ("vote", "top_vote")):
        with pytest.raises(ConfigError, match=new):
            RankingEntropy(form=old)


def test_prediction_variance_equals_the_variance_formula():
    s = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, 3.0]])
    cur = s[-1]
    assert prediction_variance(s) == pytest.approx(((cur - cur.mean()) ** 2).sum() / 3)
    assert prediction_variance(s, source="committee") == pytest.approx(
        np.mean([((r - r.mean()) ** 2).mean() for r in s]))
    assert prediction_variance(s, over="members") == pytest.approx(np.mean([0.25, 0.25, 0.25]))


def test_repv_combines_re_and_alpha_pv():
    rng = np.random.default_rng(1)
    outs = [rng.normal(size=(3, int(n))) for n in rng.integers(2, 9, 12)]
    re = np.array([ranking_entropy(o) for o in outs])
    pv = np.array([prediction_variance(o) for o in outs])
    got = REPV(alpha=0.5).score(outs, rng)
    np.testing.assert_allclose(got, re + 0.5 * pv)
    got = REPV(alpha=2.0, normalize="minmax").score(outs, rng)
    np.testing.assert_allclose(got, normalize_scores(re, "minmax") + 2 * normalize_scores(pv, "minmax"))
    assert normalize_scores([3.0, 1.0, 2.0], "rank").tolist() == [1.0, 0.0, 0.5]


# --------------------------------------------------------------------------- data
def test_letor_and_lightgbm_forms_read_the_same(tmp_path):
    queries, _ = make_queries(num_queries=6, num_features=5, seed=3)
    a, b = str(tmp_path / "a.txt"), str(tmp_path / "b.txt")
    write_ltr_file(a, queries, with_qid=True)
    write_ltr_file(b, queries, with_qid=False)
    qa, qb = read_ltr_file(a, num_features=5), read_ltr_file(b, num_features=5)
    assert os.path.isfile(b + ".query") and len(qa) == len(qb) == 6
    for x, y, q in zip(qa, qb, queries):
        np.testing.assert_allclose(x.features, q.features, rtol=1e-5)
        np.testing.assert_allclose(y.features, q.features, rtol=1e-5)
        assert x.labels.tolist() == y.labels.tolist() == q.labels.tolist()
    ds = LTRDataset(a, num_features=5)
    batch = ds.collate_fn([ds[0], ds[1]])
    n0, n1 = len(queries[0]), len(queries[1])
    assert batch["features"].shape == (2, max(n0, n1), 5)
    assert batch["mask"].sum() == n0 + n1 and (batch["label"][batch["mask"] == 0] == -1).all()


def test_bad_ranking_files_get_one_clear_error(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("1 qid:1 1:0.5\n0 qid:2 1:0.1\n2 qid:1 1:0.3\n")
    with pytest.raises(DataError, match=r"x.txt:3: qid 1 appears again"):
        read_ltr_file(str(p))
    p.write_text("1 1:0.5\n0 1:zz\n")
    with pytest.raises(DataError, match=r"x.txt:2: field '1:zz'"):
        read_ltr_file(str(p))
    p.write_text("1 1:0.5\n0 2:0.1\n")
    with pytest.raises(DataError, match="group file .*x.txt.query is missing"):
        read_ltr_file(str(p))
    (tmp_path / "x.txt.query").write_text("3\n")
    with pytest.raises(DataError, match="sum to 3 but .* has 2 documents"):
        read_ltr_file(str(p))
    p.write_text("-1 qid:1 1:0.5\n")
    with pytest.raises(DataError, match="x.txt:1: relevance label -1"):
        read_ltr_file(str(p))
    p.write_text("1 qid:1 7:0.5\n")
    with pytest.raises(DataError, match="feature index 7 exceeds num_features=5"):
        read_ltr_file(str(p), num_features=5)


def test_real_lambdarank_files(data_root):
    train = read_ltr_file(os.path.join(data_root, "ltr", "lambdarank", "rank.train"), num_features=300)
    assert len(train) == 201 and sum(len(q) for q in train) == 3005
    assert {int(v) for q in train for v in q.labels} == {0, 1, 2, 3, 4}


# --------------------------------------------------------------------------- training, export
def _cfg(**train):
    from ppzoo.core import load_config
    cfg = load_config(os.path.join(ROOT, "configs", "ranking", "mlp_lambdarank.yml"))
    cfg["train"].update(train)
    return cfg


def test_ranker_trained_on_real_data_beats_random(data_root, tmp_path):
    from ppzoo.engine.trainer import build_trainer
    cfg = _cfg(epochs=12, log_interval=1000, eval_interval=10 ** 6)
    trainer = build_trainer(cfg, work_dir=str(tmp_path / "run"))
    trainer.train()
    ndcg = trainer.evaluate()["NDCG@10"]
    rng = np.random.default_rng(0)
    rand = []
    for _ in range(20):
        m = RankingMetrics(ndcg_ks=[10], dcg_ks=[])
        for q in trainer.val_dataset.queries:
            m.update(rng.random(len(q))[None], q.labels[None].astype(np.float32))
        rand.append(m.accumulate()["NDCG@10"])
    assert np.mean(rand) == pytest.approx(0.59, abs=0.03)  # the reference random figure
    assert ndcg > np.mean(rand) + 0.08, (ndcg, np.mean(rand))


@pytest.mark.parametrize("model", ["MLPRanker", "ListwiseRanker"])
def test_export_and_infer_match_dygraph(tmp_path, model):
    from ppzoo.engine.export import export_from_config
    from ppzoo.engine.predictor import run_inference
    from ppzoo.engine.trainer import build_trainer
    train, _ = make_queries(num_queries=12, num_features=6, seed=0)
    test, _ = make_queries(num_queries=5, num_features=6, seed=1)
    write_ltr_file(str(tmp_path / "train.txt"), train)
    write_ltr_file(str(tmp_path / "test.txt"), test, with_qid=False)
    cfg = _cfg(iters=6, log_interval=100)
    cfg["train"].pop("epochs")
    cfg["model"] = {"type": model, "num_features": 6}
    for k in ("train_dataset", "val_dataset"):
        cfg[k]["num_features"] = 6
    cfg["train_dataset"]["path"] = str(tmp_path / "train.txt")
    cfg["val_dataset"]["path"] = str(tmp_path / "test.txt")
    cfg["export"]["input_spec"][0]["shape"] = [None, None, 6]
    trainer = build_trainer(cfg, work_dir=str(tmp_path / "run"))
    trainer.train()
    export_from_config(cfg, str(tmp_path / "run" / "latest"), str(tmp_path / "inference"))
    out = tmp_path / "infer.jsonl"
    res = run_inference(str(tmp_path / "inference"), str(tmp_path / "test.txt"), output=str(out),
                        echo=None, device="cpu", use_mkldnn=False)
    assert out.is_file() and len(res) == 1 and len(res[0]["queries"]) == 5
    trainer.model.eval()
    for q, r in zip(test, res[0]["queries"]):
        ref = trainer.model(paddle.to_tensor(q.features[None]),
                            paddle.to_tensor(np.ones((1, len(q)), np.float32))).numpy()[0]
        ranked = r["ranking"]
        assert sorted(d["doc"] for d in ranked) == list(range(len(q)))
        got = np.array([d["score"] for d in ranked])
        np.testing.assert_allclose(got, ref[[d["doc"] for d in ranked]], atol=1e-5)
        assert (np.diff(got) <= 0).all()  # best first


def test_synthetic_queries_have_a_frequency_structure():
    queries, freq = make_queries(num_queries=120, num_features=6, seed=0)
    ndocs = np.array([len(q) for q in queries])
    assert np.corrcoef(np.log(freq), ndocs)[0, 1] > 0.5  # frequent queries have more documents
    head = queries[int(np.argmax(freq))]
    assert head.features[0, 0] == pytest.approx(1.0)  # feature 1: normalised log-frequency
    test, _ = make_queries(num_queries=60, num_features=6, seed=1)
    for split in (queries, test):
        grades = np.bincount(np.concatenate([q.labels for q in split]), minlength=5)
        assert len(grades) == 5 and (grades > 0).all()
