"""FedHiSyn's categories by computing capacity (seconds per sample, the paper's criterion)
or by pass time, ties kept together, one-device categories merged into their nearest
category, and the rounds' client compute (samples processed) counted by hand."""
import numpy as np
import pytest

from ppzoo.federated import strategies as S
from ppzoo.core.errors import ConfigError
from test_federated import fixed_modules, make_cfg, parts_of, records, train  # noqa: F401

LOCAL = {"steps": 1, "batch_size": 8, "optimizer": {"type": "SGD", "learning_rate": 0.05}}


def test_quantile_categories_never_split_devices_of_equal_speed():
    # 3 devices at 400/s, 4 at 100/s, 3 at 25/s: the three speed classes, whatever the order
    sec = np.array([1 / 100, 1 / 400, 1 / 25, 1 / 100, 1 / 400, 1 / 25, 1 / 100, 1 / 400, 1 / 25, 1 / 100])
    want = {1 / 400: 0, 1 / 100: 1, 1 / 25: 2}
    cat = S.FedHiSyn(num_categories=3).categories(sec)
    assert list(cat) == [want[v] for v in sec]


def test_speed_measure_clusters_by_samples_per_second_not_pass_time(tmp_path):
    # one local epoch: devices 0-2 at 32/s with 64 samples (2 s a pass), device 3 at 8/s
    # with 64 (8 s), device 4 at 8/s with 2 samples (0.25 s): slow, but the quickest pass
    prof = [["f", 32.0, 0.0, 1e18]] * 3 + [["s", 8.0, 0.0, 1e18]] * 2
    local = {"epochs": 1, "batch_size": 64, "optimizer": {"type": "SGD", "learning_rate": 0.05}}
    parts = parts_of([64, 64, 64, 64, 2])  # device 4: slow but only 2 samples (a 0.25 s pass)
    by = {}
    for measure in ("speed", "pass_time"):
        cfg = make_cfg({"type": "FedHiSyn", "num_categories": 2, "cluster": "kmeans", "measure": measure,
                        "singleton": "keep", "max_steps": 1}, parts, rounds=1, local=local, profile=prof)
        by[measure] = train(cfg, tmp_path, name=measure).sched["category"]
    # by hand: seconds per sample 1/32 x3, 1/8 x2 -> {0,1,2} | {3,4}; pass times 2,2,2,8,0.25 s
    # -> 1-D k-means on log time: {4} | {0,1,2,3} (the slow device 4 in the fastest category)
    assert by["speed"] == [0, 0, 0, 1, 1]
    assert by["pass_time"] == [1, 1, 1, 1, 0]


def test_merge_singletons_by_hand():
    s = S.FedHiSyn(singleton="merge")
    measure = [1 / 32, 1 / 32, 1 / 16, 1 / 8, 1 / 8, 1 / 2]
    # device 2 (16/s) is log 2 from both neighbours: the tie goes to the slower category (2);
    # device 5 (2/s) is alone in category 3, nearest is category 2 (8/s)
    got = s.merge_singletons({0: [0, 1], 1: [2], 2: [3, 4], 3: [5]}, measure)
    assert got == {0: [0, 1], 2: [3, 4, 2, 5]}
    assert S.FedHiSyn(singleton="keep").merge_singletons({0: [0], 1: [1]}, measure) == {0: [0], 1: [1]}
    assert s.merge_singletons({1: [2]}, measure) == {1: [2]}  # nothing to merge into
    with pytest.raises(ConfigError, match="FedHiSyn.singleton"):
        S.FedHiSyn(singleton="drop")


@pytest.mark.parametrize("singleton", ["keep", "merge"])
def test_one_device_category_is_merged_or_trains_alone(tmp_path, singleton):
    # one 8-sample step a pass: 0.25 s at 32/s, 0.5 s at 16/s, 1 s at 8/s; interval 1 s
    prof = [["f", 32.0, 0.0, 1e18]] * 2 + [["m", 16.0, 0.0, 1e18]] + [["s", 8.0, 0.0, 1e18]] * 2
    cfg = make_cfg({"type": "FedHiSyn", "num_categories": 3, "cluster": "kmeans", "singleton": singleton},
                   parts_of([16] * 5), rounds=1, local=LOCAL, profile=prof)
    t = train(cfg, tmp_path)
    assert t.sched["category"] == [0, 0, 1, 2, 2]
    rec = records(t)[0]
    if singleton == "keep":  # the mid device alone: 2 passes in the 1 s interval
        assert rec["ring_steps"] == {"0": 4, "1": 2, "2": 1}
        assert t.last_ring_trace[2] == [2, 2]
        assert rec["client_samples"] == 2 * 4 * 8 + 2 * 8 + 2 * 8
    else:  # it joins the slow ring (a tie in log speed goes to the slower category)
        assert rec["ring_steps"] == {"0": 4, "2": 1}
        assert t.last_ring_trace[2] == [2]
        assert rec["client_samples"] == 2 * 4 * 8 + 3 * 8
    assert rec["round_time_s"] == pytest.approx(1.0)


def test_sync_rounds_count_client_samples(tmp_path):
    cfg = make_cfg({"type": "FedAvg"}, parts_of([10, 30, 20]), rounds=2,
                   local={"epochs": 2, "batch_size": 8, "optimizer": {"type": "SGD", "learning_rate": 0.05}})
    t = train(cfg, tmp_path)
    assert [r["client_samples"] for r in records(t)] == [2 * 60, 2 * 60]


def test_device_uploads_give_the_one_model_per_category_mean_under_data_weighting():
    """The abstract uploads "the models trained in different categories"; ppzoo uploads every
    device's model.  With ``weighting: data`` the server's mean equals the other reading,
    one data-weighted model per category then the categories weighted by their data,
    computed here by hand; ``visits`` weighting is where the two readings part."""
    rng = np.random.default_rng(0)
    cats = {0: [0, 1, 2], 1: [3, 4], 2: [5]}
    n = [50, 10, 40, 7, 93, 20]
    models = [{"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)} for _ in n]
    results = [S.ClientResult(c, models[c], n[c], {"trained_samples": 5 * n[c] + c}) for c in range(6)]
    got, _ = S.FedHiSyn(weighting="data").aggregate(1, models[0], results, {})
    for k in ("w", "b"):
        per_cat = {j: sum(n[c] * models[c][k] for c in m) / sum(n[c] for c in m) for j, m in cats.items()}
        size = {j: sum(n[c] for c in m) for j, m in cats.items()}
        want = sum(size[j] * per_cat[j] for j in cats) / sum(size.values())
        np.testing.assert_allclose(got[k], want, rtol=1e-12)
    visits, _ = S.FedHiSyn(weighting="visits").aggregate(1, models[0], results, {})
    assert not np.allclose(visits["w"], got["w"])
