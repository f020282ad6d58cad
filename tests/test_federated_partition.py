"""Partitioners against flwr-datasets' own output and against the Dirichlet definition."""
import json
import os

import numpy as np
import pytest

from ppzoo.core.errors import ConfigError
from ppzoo.federated.partition import partition

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "flwr_datasets_partitions.json")


def _reference():
    with open(FIXTURE) as f:
        return json.load(f)


@pytest.mark.parametrize("case", sorted(_reference()["cases"]))
def test_partitions_equal_flwr_datasets_output(case):
    """Same seed, same arguments: the same indices in the same order as flwr-datasets 0.6.1
    (the fixture was written by flwr-datasets itself; see its generated_by field)."""
    ref = _reference()
    c = ref["cases"][case]
    parts = partition(c["cfg"], np.array(ref["labels"]), c["num_clients"], c["seed"])
    assert [p.tolist() for p in parts] == c["partitions"]


def _labels(n, k, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


@pytest.mark.parametrize("cfg", [
    {"type": "iid"},
    {"type": "dirichlet", "alpha": 0.1, "min_partition_size": 5},
    {"type": "dirichlet", "alpha": 1.0, "self_balancing": True},
])
def test_disjoint_and_cover_everything(cfg):
    labels = _labels(1000, 10)
    parts = partition(cfg, labels, 12, seed=4)
    allidx = np.concatenate(parts)
    assert len(parts) == 12
    assert len(allidx) == len(set(allidx.tolist())) == 1000
    assert allidx.dtype == np.int64


def test_iid_sizes_differ_by_at_most_one_and_mix_classes():
    labels = np.repeat(np.arange(4), 25)          # sorted labels: a contiguous split would be pure
    parts = partition({"type": "iid"}, labels, 3, seed=1)
    assert sorted(len(p) for p in parts) == [33, 33, 34]
    assert all(len(np.unique(labels[p])) == 4 for p in parts)


@pytest.mark.parametrize("alpha", [0.3, 3.0])
def test_dirichlet_shares_have_the_dirichlet_variance(alpha):
    """Each class's share on a client is p_i of p ~ Dir(alpha * 1_K): mean 1/K and variance
    (1/K)(1 - 1/K)/(K alpha + 1). Checked over 300 classes of 2000 samples each."""
    k_clients, n_classes, per_class = 5, 300, 2000
    labels = np.repeat(np.arange(n_classes), per_class)
    parts = partition({"type": "dirichlet", "alpha": alpha, "min_partition_size": 0,
                       "shuffle": False}, labels, k_clients, seed=7)
    shares = np.array([[np.sum(labels[p] == c) / per_class for p in parts]
                       for c in range(n_classes)])
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=k_clients / per_class)
    expected_var = (1 / k_clients) * (1 - 1 / k_clients) / (k_clients * alpha + 1)
    assert abs(shares.mean() - 1 / k_clients) < 1e-3
    assert shares.var() == pytest.approx(expected_var, rel=0.15)


def test_smaller_alpha_gives_fewer_classes_per_client():
    labels = _labels(5000, 10)
    def classes_held(alpha):
        parts = partition({"type": "dirichlet", "alpha": alpha, "min_partition_size": 0},
                          labels, 20, seed=2)
        # classes making up at least 5% of the client's data
        return np.mean([np.sum(np.bincount(labels[p], minlength=10) >= 0.05 * len(p))
                        for p in parts if len(p)])
    assert classes_held(0.05) < 3 < 8 < classes_held(100.0)


def test_dirichlet_min_partition_size_is_honoured():
    labels = _labels(2000, 10)
    parts = partition({"type": "dirichlet", "alpha": 0.3, "min_partition_size": 30}, labels, 20,
                      seed=5)
    assert min(len(p) for p in parts) >= 30


def test_impossible_min_size_is_one_config_error_naming_the_values():
    labels = _labels(100, 10)
    with pytest.raises(ConfigError) as e:
        partition({"type": "dirichlet", "alpha": 0.5, "min_partition_size": 11}, labels, 10, seed=0)
    msg = str(e.value)
    assert "min_partition_size=11" in msg and "10 clients" in msg and "110" in msg and "100" in msg


def test_min_size_no_draw_reaches_is_a_config_error_after_max_tries():
    labels = _labels(1000, 10)
    with pytest.raises(ConfigError, match=r"alpha=0\.01.*min_partition_size=45.*max_tries=3"):
        partition({"type": "dirichlet", "alpha": 0.01, "min_partition_size": 45, "max_tries": 3},
                  labels, 20, seed=0)


def test_self_balancing_caps_clients_near_the_average():
    """With self-balancing a client stops receiving classes once above N/K, so no client
    exceeds the average by more than one class's worth of samples."""
    labels = np.repeat(np.arange(20), 50)        # 1000 samples, 20 classes of 50
    parts = partition({"type": "dirichlet", "alpha": 0.2, "min_partition_size": 0,
                       "self_balancing": True}, labels, 5, seed=3)
    assert max(len(p) for p in parts) <= 1000 / 5 + 50
    unbalanced = partition({"type": "dirichlet", "alpha": 0.2, "min_partition_size": 0},
                           labels, 5, seed=3)
    assert max(len(p) for p in unbalanced) > max(len(p) for p in parts)


def test_pathological_deterministic_by_hand():
    # classes 0..3 with 4 samples each; client c holds classes c and c+1 (mod 4)
    labels = np.repeat(np.arange(4), 4)
    parts = partition({"type": "pathological", "classes_per_client": 2,
                       "class_assignment": "deterministic", "shuffle": False}, labels, 4, seed=0)
    # each class is held by two clients and split in halves, lower client id first
    # class 0 (0..3): clients 0, 3; class 1 (4..7): 0, 1; class 2 (8..11): 1, 2; class 3: 2, 3
    assert [p.tolist() for p in parts] == [[0, 1, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13],
                                           [2, 3, 14, 15]]


@pytest.mark.parametrize("mode", ["random", "first-deterministic", "deterministic"])
def test_pathological_gives_exactly_the_classes_per_client(mode):
    labels = _labels(3000, 10)
    parts = partition({"type": "pathological", "classes_per_client": 3, "class_assignment": mode},
                      labels, 25, seed=8)
    assert all(len(np.unique(labels[p])) == 3 for p in parts)
    allidx = np.concatenate(parts)
    assert len(allidx) == len(set(allidx.tolist()))
    held = set(np.unique(labels[allidx]).tolist())
    assert len(allidx) == int(np.isin(labels, sorted(held)).sum())   # every sample of a held class


def test_more_classes_per_client_than_classes_is_a_config_error():
    with pytest.raises(ConfigError, match=r"classes_per_client=4 .* only 3 classes"):
        partition({"type": "pathological", "classes_per_client": 4}, _labels(90, 3), 5, seed=0)


def test_class_with_fewer_samples_than_owners_is_a_config_error():
    labels = np.array([0] * 50 + [1] * 2)
    with pytest.raises(ConfigError, match=r"class 1 is held by 5 clients but has only 2"):
        partition({"type": "pathological", "classes_per_client": 2}, labels, 5, seed=0)


def test_shards_by_hand():
    """12 samples, labels sorted 0..2 (4 each), 3 clients x 2 shards: shard size 2, six
    label-pure shards of consecutive sorted samples; each client gets 2 of them."""
    labels = np.array([2, 0, 1, 0, 2, 1, 0, 1, 2, 0, 1, 2])
    parts = partition({"type": "shards", "shards_per_client": 2, "shuffle": False}, labels, 3,
                      seed=0)
    order = np.argsort(labels, kind="stable")
    shards = [sorted(order[2 * s:2 * s + 2].tolist()) for s in range(6)]
    got = []
    for p in parts:
        assert len(p) == 4
        got += [sorted(p[:2].tolist()), sorted(p[2:].tolist())]
        assert all(len(np.unique(labels[p[i:i + 2]])) == 1 for i in (0, 2))
    assert sorted(got) == sorted(shards)


def test_too_many_shards_is_a_config_error():
    with pytest.raises(ConfigError, match=r"3 clients x shards_per_client=2 x shard_size=20 = 120"):
        partition({"type": "shards", "shards_per_client": 2, "shard_size": 20}, _labels(100, 5),
                  3, seed=0)


@pytest.mark.parametrize("cfg", [{"type": "iid"}, {"type": "dirichlet", "alpha": 0.5},
                                 {"type": "pathological", "classes_per_client": 2},
                                 {"type": "shards", "shards_per_client": 2}])
def test_same_seed_same_split_other_seed_other_split(cfg):
    labels = _labels(600, 6)
    a = partition(cfg, labels, 8, seed=1)
    b = partition(cfg, labels, 8, seed=1)
    c = partition(cfg, labels, 8, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("cfg,num_clients,pattern", [
    ({"type": "diriclet", "alpha": 1}, 3, r"type='diriclet'.*did you mean 'dirichlet'"),
    ({"type": "dirichlet", "alpah": 1}, 3, r"federated\.partition\.alpah \(did you mean 'alpha'"),
    ({"type": "dirichlet"}, 3, r"alpha is required"),
    ({"type": "dirichlet", "alpha": -1}, 3, r"alpha=-1 must be"),
    ({"type": "dirichlet", "alpha": [1, 2]}, 3, r"alpha=\[1, 2\].*one per client"),
    ({"type": "iid"}, 0, r"num_clients=0"),
    ({"type": "iid"}, 101, r"101 clients need at least 101 samples"),
    ({"type": "iid", "shuffle": "yes"}, 3, r"shuffle='yes' must be true or false"),
    ({"type": "pathological", "classes_per_client": 2, "class_assignment": "rand"}, 3,
     r"class_assignment='rand'"),
])
def test_bad_config_is_one_config_error(cfg, num_clients, pattern):
    with pytest.raises(ConfigError, match=pattern):
        partition(cfg, _labels(100, 5), num_clients, seed=0)
