"""Device profiles and the virtual clock, against round times computed by hand."""
from collections import OrderedDict

import numpy as np
import pytest

from ppzoo.core.errors import ConfigError
from ppzoo.federated.clock import (DeviceProfile, VirtualClock, build_profile, class_counts,
                                   client_round_times, payload_bytes, sync_round_time)

TWO_CLASSES = {"type": "classes", "assign": "contiguous", "classes": [
    {"name": "fast", "fraction": 0.5, "samples_per_s": 100, "latency_s": 0.1, "bandwidth_mbps": 8},
    {"name": "slow", "fraction": 0.5, "samples_per_s": 10, "latency_s": 0.5, "bandwidth_mbps": 0.8},
]}


def test_profile_times_by_hand():
    p = DeviceProfile("x", samples_per_s=50.0, latency_s=0.2, bandwidth_bytes_per_s=1000.0)
    assert p.compute_s(100) == 2.0
    assert p.transfer_s(500) == 0.2 + 0.5
    assert p.round_s(100, 500, 2000) == pytest.approx(0.7 + 2.0 + 2.2)


def test_classes_profile_and_sync_round_by_hand():
    profiles = build_profile(TWO_CLASSES, 4, seed=0)
    assert [p.device_class for p in profiles] == ["fast", "fast", "slow", "slow"]
    fast, slow = profiles[0], profiles[2]
    assert fast.bandwidth_bytes_per_s == 1_000_000 and slow.bandwidth_bytes_per_s == 100_000
    # 1 MB down, 200 samples, 0.5 MB up
    # fast: (0.1 + 1.0) + 2.0 + (0.1 + 0.5) = 3.7 ; slow: (0.5 + 10) + 20 + (0.5 + 5) = 36.0
    times = client_round_times(profiles, 200, 1_000_000, 500_000)
    np.testing.assert_allclose(times, [3.7, 3.7, 36.0, 36.0])
    assert sync_round_time(profiles, 200, 1_000_000, 500_000) == pytest.approx(36.0)
    # per-client sample counts: the slow clients train on 10 samples, a fast one on 3000
    # fast: 1.1 + 30 + 0.6 = 31.7 ; slow: 10.5 + 1 + 5.5 = 17.0
    assert sync_round_time(profiles, [3000, 100, 10, 10], 1_000_000, 500_000) == \
        pytest.approx(31.7)
    assert sync_round_time([], 1, 1, 1) == 0.0


def test_classes_counts_by_largest_remainder_and_shuffled_assignment():
    assert class_counts([0.5, 0.3, 0.2], 10) == [5, 3, 2]
    assert class_counts([1 / 3, 1 / 3, 1 / 3], 10) == [4, 3, 3]     # tie: the earlier class
    assert class_counts([0.25, 0.75], 7) == [2, 5]                  # 1.75, 5.25
    cfg = dict(TWO_CLASSES, assign="shuffle")
    a = build_profile(cfg, 10, seed=3)
    assert [p.device_class for p in a].count("fast") == 5
    assert [p.device_class for p in a] != ["fast"] * 5 + ["slow"] * 5
    assert a == build_profile(cfg, 10, seed=3)
    order = np.random.default_rng(3).permutation(10)
    assert {int(i) for i in order[:5]} == {i for i, p in enumerate(a) if p.device_class == "fast"}


def test_lognormal_profile_by_the_formula():
    cfg = {"type": "lognormal", "median_samples_per_s": 100.0, "sigma": 0.5, "latency_s": 0.05,
           "bandwidth_mbps": 20}
    profiles = build_profile(cfg, 6, seed=11)
    z = np.random.default_rng(11).standard_normal(6)
    np.testing.assert_allclose([p.samples_per_s for p in profiles], 100.0 * np.exp(0.5 * z))
    assert {p.latency_s for p in profiles} == {0.05}
    assert {p.bandwidth_bytes_per_s for p in profiles} == {2_500_000.0}
    many = build_profile(dict(cfg, sigma=1.0), 4000, seed=1)
    logs = np.log([p.samples_per_s for p in many])
    assert np.median(logs) == pytest.approx(np.log(100.0), abs=0.06)
    assert np.std(logs) == pytest.approx(1.0, abs=0.05)


def test_payload_bytes():
    w = OrderedDict(a=np.zeros((3, 4), np.float32), b=np.zeros(5, np.float64))
    assert payload_bytes(w) == 3 * 4 * 4 + 5 * 8


def test_virtual_clock_orders_events_and_advances_time():
    clock = VirtualClock()
    assert clock.schedule(5.0, "b") == 5.0
    clock.schedule(2.0, "a")
    clock.schedule(5.0, "c")                 # same time as b: after b
    assert len(clock) == 3 and clock.peek() == (2.0, "a")
    assert clock.pop() == (2.0, "a") and clock.now == 2.0
    clock.schedule(1.0, "d")                 # relative to now: at 3.0
    assert [clock.pop() for _ in range(3)] == [(3.0, "d"), (5.0, "b"), (5.0, "c")]
    assert clock.now == 5.0 and len(clock) == 0 and clock.peek() is None
    with pytest.raises(IndexError):
        clock.pop()
    with pytest.raises(ValueError):
        clock.schedule(-1.0, "past")
    with pytest.raises(ValueError):
        clock.schedule_at(4.0, "past")
    clock.advance(2.5)
    assert clock.now == 7.5
    clock.schedule(1.0, "e")
    with pytest.raises(ValueError, match="skip"):
        clock.advance(2.0)


def test_asynchronous_tiers_by_hand():
    """Two tiers on the event queue, each repeating its own round: tier A every 3 s,
    tier B every 7 s. Up to t = 14 the server sees A at 3, 6, B at 7, A at 9, 12, B at 14
    and A at 15 after it."""
    clock = VirtualClock()
    clock.schedule(3.0, "A")
    clock.schedule(7.0, "B")
    seen = []
    while clock.peek()[0] <= 14.0:
        t, tier = clock.pop()
        seen.append((t, tier))
        clock.schedule(3.0 if tier == "A" else 7.0, tier)
    assert seen == [(3.0, "A"), (6.0, "A"), (7.0, "B"), (9.0, "A"), (12.0, "A"), (14.0, "B")]
    assert clock.peek() == (15.0, "A")


def test_clock_state_round_trips():
    clock = VirtualClock(start=1.5)
    for delay, ev in [(4.0, {"tier": 1}), (2.0, [0, 1]), (2.0, "x")]:
        clock.schedule(delay, ev)
    state = clock.state_dict()
    other = VirtualClock()
    other.load_state_dict(state)
    assert other.now == 1.5
    assert [other.pop() for _ in range(3)] == [clock.pop() for _ in range(3)]


@pytest.mark.parametrize("cfg,pattern", [
    ({"type": "clases"}, r"type='clases'.*did you mean 'classes'"),
    ({"type": "lognormal", "median_samples_per_s": 1, "sigm": 1}, r"devices\.sigm \(did you mean 'sigma'"),
    ({"type": "lognormal", "median_samples_per_s": 0}, r"median_samples_per_s=0 must be a number > 0"),
    ({"type": "classes", "classes": []}, r"classes must be a non-empty list"),
    ({"type": "classes", "classes": [{"name": "a", "fraction": 0.7, "samples_per_s": 1,
                                      "latency_s": 0, "bandwidth_mbps": 1}]},
     r"fractions \[0\.7\] sum to 0\.7, not 1"),
    ({"type": "classes", "classes": [{"name": "a", "fraction": 1, "samples_per_s": 1,
                                      "bandwidth_mbps": 1}]}, r"classes\.0 lacks latency_s"),
    ({"type": "classes", "classes": [{"name": "a", "fraction": 1, "samples_per_s": "fast",
                                      "latency_s": 0, "bandwidth_mbps": 1}]},
     r"classes\.0\.samples_per_s='fast'"),
])
def test_bad_profile_is_one_config_error(cfg, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_profile(cfg, 4, seed=0)
