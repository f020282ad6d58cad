"""Ranking files against scikit-learn's SVMlight reader (the format's reference): integer
qids, one error line for what cannot be read, and a writer whose files read back exactly."""
import io
import os

import numpy as np
import pytest

from ppzoo.core.errors import DataError
from ppzoo.ranking.data import Query, read_ltr_file, write_ltr_file

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _sk(text):
    """scikit-learn's reading of an SVMlight text with qids: dense X, y, qid."""
    X, y, qid = sklearn_datasets.load_svmlight_file(io.BytesIO(text.encode()), query_id=True)
    return X.toarray(), y, qid


def _write(tmp_path, text, name="x.txt"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_qids_are_integers_as_in_sklearn(tmp_path):
    text = "2 qid:01 1:0.5\n1 qid:1 2:0.25\n0 qid:+1 1:0.1\n3 qid:7 1:1\n"
    queries = read_ltr_file(_write(tmp_path, text))
    X, y, qid = _sk(text)
    # scikit-learn reads 01, 1 and +1 as the same qid: one query of three documents
    assert [len(q) for q in queries] == [len(np.flatnonzero(qid == v)) for v in dict.fromkeys(qid)] == [3, 1]
    assert [q.qid for q in queries] == list(dict.fromkeys(qid.tolist())) == [1, 7]
    np.testing.assert_array_equal(np.concatenate([q.features for q in queries]), X.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([q.labels for q in queries]), y)


def test_a_qid_that_is_not_an_integer_is_one_error(tmp_path):
    p = _write(tmp_path, "1 qid:1 1:0.5\n0 qid:a7 1:0.1\n")
    with pytest.raises(ValueError):  # scikit-learn refuses it too
        _sk(open(p).read())
    with pytest.raises(DataError, match=r"x.txt:2: qid 'a7' is not an integer"):
        read_ltr_file(p)


@pytest.mark.parametrize("label", ["nan", "inf", "-inf", "NaN", "1e400"])
def test_non_finite_label_names_file_and_line(tmp_path, label):
    p = _write(tmp_path, f"1 qid:1 1:0.5\n{label} qid:1 1:0.1\n")
    with pytest.raises(DataError, match=rf"x.txt:2: relevance label {label} is not an integer >= 0"):
        read_ltr_file(p)


@pytest.mark.parametrize("text, line", [
    ("1 1:0.5\n0 1:0.1\n# note\n2 qid:3 1:0.2\n", 4),   # the first lines have none
    ("1 qid:1 1:0.5\n0 qid:1 1:0.1\n\n2 1:0.2\n", 4),   # the first lines have it
    ("1 qid:1 1:0.5\n0 1:0.1\n2 qid:1 1:0.2\n", 2),
])
def test_mixed_qid_names_the_offending_line(tmp_path, text, line):
    with pytest.raises(DataError, match=rf"x.txt:{line}: this line has (no )?'qid:' while line 1"):
        read_ltr_file(_write(tmp_path, text))


def test_a_feature_index_given_twice_is_refused_like_sklearn(tmp_path):
    text = "1 qid:1 1:0.5 3:0.2 1:0.9\n"
    with pytest.raises(ValueError, match="unique"):
        _sk(text)
    with pytest.raises(DataError, match=r"x.txt:1: feature index 1 appears twice"):
        read_ltr_file(_write(tmp_path, text))


def test_shared_lambdarank_file_equals_sklearn(data_root):
    path = os.path.join(data_root, "ltr", "lambdarank", "rank.test")
    queries = read_ltr_file(path, num_features=300)
    X, y = sklearn_datasets.load_svmlight_file(path, n_features=300)
    np.testing.assert_array_equal(np.concatenate([q.features for q in queries]), X.toarray().astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([q.labels for q in queries]), y)
    sizes = [int(v) for v in open(path + ".query").read().split()]
    assert [len(q) for q in queries] == sizes and [q.qid for q in queries] == list(range(len(sizes)))


def _random_queries(seed=0, n=4, f=6):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = int(rng.integers(1, 6))
        # values across magnitudes, where six significant digits lose float32 bits
        x = (rng.normal(size=(d, f)) * 10.0 ** rng.integers(-8, 8, size=(d, f))).astype(np.float32)
        x[rng.random((d, f)) < 0.3] = 0
        out.append(Query(10 * i + 3, x, rng.integers(0, 5, d).astype(np.int64), np.arange(d)))
    out[0].features[0, 0] = np.float32(1.0000015e-6)  # the case six digits got wrong
    return out


@pytest.mark.parametrize("with_qid", [True, False])
def test_writer_round_trips_float32_exactly(tmp_path, with_qid):
    queries = _random_queries()
    p = str(tmp_path / "w.txt")
    write_ltr_file(p, queries, with_qid=with_qid)
    back = read_ltr_file(p, num_features=6)
    assert [len(q) for q in back] == [len(q) for q in queries]
    for a, b in zip(back, queries):
        np.testing.assert_array_equal(a.features, b.features)  # bit-exact, not approximately
        np.testing.assert_array_equal(a.labels, b.labels)
    if with_qid:
        assert [q.qid for q in back] == [q.qid for q in queries]
        X, y, qid = _sk(open(p).read())  # scikit-learn reads the same values back
        np.testing.assert_array_equal(X.astype(np.float32)[:, :6],
                                      np.concatenate([q.features for q in queries])[:, :X.shape[1]])
    # six significant digits, the former default, do not round-trip these values
    write_ltr_file(p, queries, with_qid=with_qid, precision=6)
    six = read_ltr_file(p, num_features=6)
    assert any(not np.array_equal(a.features, b.features) for a, b in zip(six, queries))


@pytest.mark.parametrize("change, match", [
    (lambda q: q[1].features.__setitem__((0, 2), np.nan), r"query 1 \(qid 13\) document 0: feature 3 is nan"),
    (lambda q: q[2].features.__setitem__((0, 0), np.inf), r"query 2 \(qid 23\) document 0: feature 1 is inf"),
    (lambda q: setattr(q[0], "qid", "a b"), r"query 0: qid 'a b' is not an integer"),
    (lambda q: setattr(q[0], "qid", " 3"), r"query 0: qid ' 3' is not an integer"),
    (lambda q: setattr(q[3], "qid", 3), r"query 3: qid 3 is used by an earlier query"),
    (lambda q: setattr(q[1], "labels", np.full(len(q[1]), np.nan)), r"query 1 \(qid 13\) document 0: label nan"),
    (lambda q: setattr(q[1], "labels", -np.ones(len(q[1]), np.int64)), r"document 0: label -1 is not"),
])
def test_writer_refuses_what_its_reader_refuses(tmp_path, change, match):
    queries = _random_queries()
    change(queries)
    p = tmp_path / "w.txt"
    with pytest.raises(DataError, match=match):
        write_ltr_file(str(p), queries)
    assert not os.listdir(tmp_path)  # nothing written, no temporary left


def test_writer_refuses_an_empty_query(tmp_path):
    queries = _random_queries()
    queries[2] = Query(5, np.zeros((0, 6), np.float32), np.zeros(0, np.int64), np.zeros(0))
    with pytest.raises(DataError, match=r"query 2 \(qid 5\) has 0 labels"):
        write_ltr_file(str(tmp_path / "w.txt"), queries, with_qid=False)
