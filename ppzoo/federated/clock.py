"""Device heterogeneity and a virtual clock for simulated federated rounds.

Every client gets a ``DeviceProfile``: a compute speed (training samples per second) and a
link (latency in seconds, bandwidth in bytes per second). From it

    compute_s(n)  = n / samples_per_s
    transfer_s(b) = latency_s + b / bandwidth_bytes_per_s
    round_s(n, down, up) = transfer_s(down) + compute_s(n) + transfer_s(up)

and a synchronous round lasts as long as its slowest client (``sync_round_time``).
Asynchronous and ring schedules run on ``VirtualClock``, an event queue ordered by
simulated time (ties in the order of scheduling).

``build_profile(cfg, num_clients, seed)`` makes the profiles from a config section:

    {type: classes, assign: shuffle,             # or contiguous: client ids in class order
     classes: [{name: fast, fraction: 0.5, samples_per_s: 400, latency_s: 0.02, bandwidth_mbps: 50},
               {name: slow, fraction: 0.5, samples_per_s: 40,  latency_s: 0.2,  bandwidth_mbps: 5}]}
    {type: lognormal, median_samples_per_s: 100, sigma: 1.0,
     latency_s: 0.05, latency_sigma: 0.0, bandwidth_mbps: 20, bandwidth_sigma: 0.0}

``classes``: each class gets ``round(fraction * num_clients)`` clients by the largest
remainder (the fractions must sum to 1); with ``assign: shuffle`` (default) a seeded
permutation decides which client ids land in which class, with ``contiguous`` the first
ids go to the first class. ``lognormal``: speed = median * exp(sigma * z), z ~ N(0, 1) per
client, and likewise for latency and bandwidth with their own sigmas (0: the same for all);
the device class of a client is ``lognormal``. Megabits are 10^6 bits (``bandwidth_mbps``
* 125000 bytes per second).
"""
import difflib
import heapq
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError

PROFILE_KEYS = {
    "classes": {"type", "classes", "assign"},
    "lognormal": {"type", "median_samples_per_s", "sigma", "latency_s", "latency_sigma",
                  "bandwidth_mbps", "bandwidth_sigma"},
}
CLASS_KEYS = {"name", "fraction", "samples_per_s", "latency_s", "bandwidth_mbps"}
BYTES_PER_MEGABIT = 125000.0


@dataclass(frozen=True)
class DeviceProfile:
    device_class: str
    samples_per_s: float
    latency_s: float
    bandwidth_bytes_per_s: float

    def compute_s(self, num_samples):
        """Seconds to train on ``num_samples`` samples (one forward and backward each)."""
        return float(num_samples) / self.samples_per_s

    def transfer_s(self, num_bytes):
        """Seconds to move ``num_bytes`` over this client's link: latency + bytes / bandwidth."""
        return self.latency_s + float(num_bytes) / self.bandwidth_bytes_per_s

    def round_s(self, num_samples, bytes_down, bytes_up):
        """Download the model, train, upload the update."""
        return self.transfer_s(bytes_down) + self.compute_s(num_samples) + self.transfer_s(bytes_up)

    def to_dict(self):
        return {"device_class": self.device_class, "samples_per_s": self.samples_per_s,
                "latency_s": self.latency_s, "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s}


def build_profile(cfg, num_clients, seed, where="federated.devices"):
    """One ``DeviceProfile`` per client id, from ``cfg`` (see the module doc)."""
    if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) \
            or num_clients < 1:
        raise ConfigError(f"{where}: num_clients={num_clients!r} must be an integer >= 1")
    if not isinstance(cfg, dict) or cfg.get("type") not in PROFILE_KEYS:
        kind = cfg.get("type") if isinstance(cfg, dict) else cfg
        close = difflib.get_close_matches(str(kind), PROFILE_KEYS, n=1, cutoff=0.4)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}.type={kind!r} is not a device profile type{hint}; "
                          f"known: {', '.join(PROFILE_KEYS)}")
    kind = cfg["type"]
    _check_keys(cfg, PROFILE_KEYS[kind], where)
    rng = np.random.default_rng(seed)
    if kind == "classes":
        return _classes(cfg, int(num_clients), rng, where)
    return _lognormal(cfg, int(num_clients), rng, where)


def _check_keys(cfg, allowed, where):
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        msgs = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.5)
            msgs.append(f"{where}.{key}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"unknown key(s): {', '.join(msgs)}; known: {', '.join(sorted(allowed))}")


def _positive(value, name, allow_zero=False):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name}={value!r} must be a number {'>= 0' if allow_zero else '> 0'}")
    return float(value)


def _classes(cfg, num_clients, rng, where):
    classes = cfg.get("classes")
    if not isinstance(classes, list) or not classes:
        raise ConfigError(f"{where}.classes must be a non-empty list of "
                          f"{{name, fraction, samples_per_s, latency_s, bandwidth_mbps}}")
    assign = cfg.get("assign", "shuffle")
    if assign not in ("shuffle", "contiguous"):
        raise ConfigError(f"{where}.assign={assign!r} must be shuffle or contiguous")
    made, fractions = [], []
    for i, c in enumerate(classes):
        at = f"{where}.classes.{i}"
        if not isinstance(c, dict):
            raise ConfigError(f"{at} must be a mapping, got {c!r}")
        _check_keys(c, CLASS_KEYS, at)
        missing = sorted(CLASS_KEYS - set(c) - {"name"})
        if missing:
            raise ConfigError(f"{at} lacks {', '.join(missing)}")
        fractions.append(_positive(c["fraction"], f"{at}.fraction", allow_zero=True))
        made.append(DeviceProfile(str(c.get("name", f"class{i}")),
                                  _positive(c["samples_per_s"], f"{at}.samples_per_s"),
                                  _positive(c["latency_s"], f"{at}.latency_s", allow_zero=True),
                                  _positive(c["bandwidth_mbps"], f"{at}.bandwidth_mbps")
                                  * BYTES_PER_MEGABIT))
    total = sum(fractions)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"{where}.classes: the fractions {fractions} sum to {total:g}, not 1")
    counts = class_counts(fractions, num_clients)
    ids = rng.permutation(num_clients) if assign == "shuffle" else np.arange(num_clients)
    out = [None] * num_clients
    start = 0
    for profile, count in zip(made, counts):
        for cid in ids[start:start + count]:
            out[int(cid)] = profile
        start += count
    return out


def class_counts(fractions, num_clients):
    """Clients per class: ``fraction * num_clients`` rounded by the largest remainder
    (ties to the earlier class), so the counts sum to ``num_clients``."""
    exact = np.asarray(fractions, dtype=float) * num_clients
    counts = np.floor(exact).astype(int)
    rest = num_clients - counts.sum()
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return counts.tolist()


def _lognormal(cfg, num_clients, rng, where):
    if "median_samples_per_s" not in cfg:
        raise ConfigError(f"{where}.median_samples_per_s is required for type 'lognormal'")
    median = _positive(cfg["median_samples_per_s"], f"{where}.median_samples_per_s")
    sigma = _positive(cfg.get("sigma", 1.0), f"{where}.sigma", allow_zero=True)
    latency = _positive(cfg.get("latency_s", 0.05), f"{where}.latency_s", allow_zero=True)
    lat_sigma = _positive(cfg.get("latency_sigma", 0.0), f"{where}.latency_sigma", allow_zero=True)
    mbps = _positive(cfg.get("bandwidth_mbps", 20.0), f"{where}.bandwidth_mbps")
    bw_sigma = _positive(cfg.get("bandwidth_sigma", 0.0), f"{where}.bandwidth_sigma",
                         allow_zero=True)
    speed = median * np.exp(sigma * rng.standard_normal(num_clients))
    lat = latency * np.exp(lat_sigma * rng.standard_normal(num_clients))
    bw = mbps * BYTES_PER_MEGABIT * np.exp(bw_sigma * rng.standard_normal(num_clients))
    return [DeviceProfile("lognormal", float(s), float(l), float(b))
            for s, l, b in zip(speed, lat, bw)]


def _per_client(value, n, name):
    if np.ndim(value) == 0:
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name}: {len(value)} values for {n} clients")
    return value


def client_round_times(profiles, samples, bytes_down, bytes_up):
    """Each client's ``round_s`` (download, train, upload); ``samples`` and the byte counts
    are one number for all or one per profile."""
    n = len(profiles)
    samples = _per_client(samples, n, "samples")
    down = _per_client(bytes_down, n, "bytes_down")
    up = _per_client(bytes_up, n, "bytes_up")
    return [p.round_s(s, d, u) for p, s, d, u in zip(profiles, samples, down, up)]


def sync_round_time(profiles, samples, bytes_down, bytes_up):
    """Seconds of a synchronous round: the slowest client's download + training + upload
    (0 for no clients)."""
    times = client_round_times(profiles, samples, bytes_down, bytes_up)
    return max(times) if times else 0.0


def payload_bytes(weights):
    """Bytes of a set of named arrays (a model's weights or an update) on the wire."""
    return int(sum(np.asarray(a).nbytes for a in weights.values()))


class VirtualClock:
    """Simulated time and an event queue.

    ``schedule(delay, event)`` files ``event`` at ``now + delay``; ``pop()`` returns the
    earliest ``(time, event)`` and moves ``now`` to it (events at the same time come out in
    the order they were scheduled). ``advance(seconds)`` moves ``now`` on directly (a
    synchronous round). ``state_dict()`` / ``load_state_dict()`` save and restore the time
    and the pending events (events must then be plain data: numbers, strings, lists, dicts).
    """

    def __init__(self, start=0.0):
        self.now = float(start)
        self._queue = []
        self._seq = itertools.count()

    def __len__(self):
        return len(self._queue)

    def schedule(self, delay, event):
        """File ``event`` at ``now + delay`` (delay >= 0); returns that time."""
        if not delay >= 0:
            raise ValueError(f"cannot schedule an event {delay!r} seconds in the past")
        return self.schedule_at(self.now + float(delay), event)

    def schedule_at(self, time, event):
        """File ``event`` at the absolute simulated ``time`` (not before ``now``)."""
        time = float(time)
        if time < self.now:
            raise ValueError(f"cannot schedule an event at {time} before now ({self.now})")
        heapq.heappush(self._queue, (time, next(self._seq), event))
        return time

    def peek(self):
        """The earliest ``(time, event)`` without removing it, or None."""
        if not self._queue:
            return None
        time, _, event = self._queue[0]
        return time, event

    def pop(self):
        """Remove the earliest event, move ``now`` to its time and return ``(time, event)``."""
        if not self._queue:
            raise IndexError("pop from an empty VirtualClock")
        time, _, event = heapq.heappop(self._queue)
        self.now = time
        return time, event

    def advance(self, seconds):
        """Move ``now`` forward by ``seconds`` (no pending event may be skipped)."""
        if not seconds >= 0:
            raise ValueError(f"cannot advance the clock by {seconds!r} seconds")
        target = self.now + float(seconds)
        if self._queue and self._queue[0][0] < target:
            raise ValueError(f"advancing to {target} would skip an event at {self._queue[0][0]}")
        self.now = target
        return self.now

    def state_dict(self):
        pending = sorted(self._queue, key=lambda e: (e[0], e[1]))
        return {"now": self.now, "events": [[t, e] for t, _, e in pending]}

    def load_state_dict(self, state):
        self.now = float(state["now"])
        self._queue = []
        self._seq = itertools.count()
        for time, event in state["events"]:
            heapq.heappush(self._queue, (float(time), next(self._seq), event))
