"""Split a labelled dataset among federated clients.

``partition(cfg, labels, num_clients, seed)`` returns one array of sample indices per
client. The four schemes follow the semantics of flwr-datasets' partitioners (Flower's
data library), so a split described in a Flower paper or tutorial means the same here:

| ``type`` | keys (default) | flwr-datasets counterpart |
|---|---|---|
| ``iid`` | ``shuffle`` (true) | ``IidPartitioner`` (contiguous shards; here of a seeded permutation when ``shuffle``) |
| ``dirichlet`` | ``alpha``, ``min_partition_size`` (10), ``self_balancing`` (false), ``shuffle`` (true), ``max_tries`` (11) | ``DirichletPartitioner`` |
| ``pathological`` | ``classes_per_client``, ``class_assignment`` (random, deterministic, first-deterministic; default random), ``shuffle`` (true) | ``PathologicalPartitioner`` |
| ``shards`` | ``shards_per_client``, ``shard_size`` (null: computed), ``keep_incomplete_shard`` (false), ``shuffle`` (true) | ``ShardPartitioner`` |

Dirichlet: for every class (in sorted order) a draw ``p ~ Dir(alpha)`` over the clients
splits that class's indices at ``floor(cumsum(p) * n_class)``; with ``self_balancing`` a
client that already holds more than ``N / num_clients`` samples gets no more (its share is
zeroed, the rest renormalised). When a client ends below ``min_partition_size`` the whole
draw is repeated, at most ``max_tries`` times in all (flwr-datasets: 11), then it is one
``ConfigError``. Pathological: each client gets exactly ``classes_per_client`` classes, and
each class is split evenly (``array_split``) among the clients that hold it. Shards: the
indices sorted by label (stable) are cut into shards of ``shard_size`` consecutive samples
(default ``floor(N / (num_clients * shards_per_client))``), and each client gets
``shards_per_client`` shards drawn at random without replacement.

The same ``(cfg, labels, num_clients, seed)`` always gives the same split: every draw comes
from one ``numpy.random.default_rng(seed)`` in the order flwr-datasets draws them. The
partitions are disjoint; ``iid`` and ``dirichlet`` cover every sample, ``pathological``
every sample of the classes some client holds, ``shards`` every sample of the used shards.
A request that cannot be met (more clients than samples, a minimum size the data cannot
give, more classes per client than classes, more shards than data) is one ``ConfigError``
naming the values.
"""
import difflib

import numpy as np

from ..core.errors import ConfigError

PARTITION_KEYS = {
    "iid": {"type", "shuffle"},
    "dirichlet": {"type", "alpha", "min_partition_size", "self_balancing", "shuffle", "max_tries"},
    "pathological": {"type", "classes_per_client", "class_assignment", "shuffle"},
    "shards": {"type", "shards_per_client", "shard_size", "keep_incomplete_shard", "shuffle"},
}
CLASS_ASSIGNMENTS = ("random", "deterministic", "first-deterministic")


def partition(cfg, labels, num_clients, seed, where="federated.partition"):
    """One index array per client (``int64``), following ``cfg`` (see the module doc).

    ``where`` names the config section in error messages.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'type' "
                          f"({', '.join(PARTITION_KEYS)}), got {cfg!r}")
    kind = cfg.get("type")
    if kind not in PARTITION_KEYS:
        close = difflib.get_close_matches(str(kind), PARTITION_KEYS, n=1, cutoff=0.4)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}.type={kind!r} is not a partition type{hint}; "
                          f"known: {', '.join(PARTITION_KEYS)}")
    unknown = sorted(set(cfg) - PARTITION_KEYS[kind])
    if unknown:
        known = sorted(PARTITION_KEYS[kind] - {"type"})
        msgs = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            msgs.append(f"{where}.{key}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"unknown key(s) for partition type {kind!r}: {', '.join(msgs)}; "
                          f"it takes {', '.join(known)}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ConfigError(f"{where}: labels must be one label per sample (1-D), got shape {labels.shape}")
    num_clients = _int(num_clients, "num_clients", where, 1)
    seed = _int(seed, "seed", where, 0)
    n = len(labels)
    if num_clients > n:
        raise ConfigError(f"{where}: {num_clients} clients need at least {num_clients} samples, "
                          f"the dataset has {n}")
    shuffle = _bool(cfg.get("shuffle", True), f"{where}.shuffle")
    rng = np.random.default_rng(seed)
    if kind == "iid":
        order = rng.permutation(n) if shuffle else np.arange(n)
        parts = np.array_split(order, num_clients)
        return [p.astype(np.int64) for p in parts]
    if kind == "dirichlet":
        parts = _dirichlet(cfg, labels, num_clients, rng, where)
    elif kind == "pathological":
        parts = _pathological(cfg, labels, num_clients, rng, where)
    else:
        parts = _shards(cfg, labels, num_clients, rng, where)
    out = []
    for p in parts:
        p = np.asarray(p, dtype=np.int64)
        if shuffle:
            rng.shuffle(p)
        out.append(p)
    return out


def _int(value, name, where, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{where}: {name}={value!r} must be an integer >= {low}")
    return int(value)


def _bool(value, name):
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be true or false")
    return value


def _dirichlet(cfg, labels, num_clients, rng, where):
    if "alpha" not in cfg:
        raise ConfigError(f"{where}.alpha is required for type 'dirichlet' (a number > 0 or "
                          f"one per client)")
    alpha = cfg["alpha"]
    try:
        alpha = np.asarray(alpha, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.alpha={cfg['alpha']!r} must be a number > 0 or a list of "
                          f"{num_clients} numbers > 0") from None
    if alpha.ndim == 0:
        alpha = np.full(num_clients, float(alpha))
    if alpha.ndim != 1 or len(alpha) != num_clients or not np.all(alpha > 0) \
            or not np.all(np.isfinite(alpha)):
        raise ConfigError(f"{where}.alpha={cfg['alpha']!r} must be a number > 0 or a list of "
                          f"{num_clients} numbers > 0 (one per client)")
    min_size = _int(cfg.get("min_partition_size", 10), "min_partition_size", where, 0)
    tries = _int(cfg.get("max_tries", 11), "max_tries", where, 1)
    balance = _bool(cfg.get("self_balancing", False), f"{where}.self_balancing")
    n = len(labels)
    if min_size * num_clients > n:
        raise ConfigError(f"{where}: min_partition_size={min_size} for {num_clients} clients "
                          f"needs {min_size * num_clients} samples, the dataset has {n}")
    classes = np.unique(labels)
    by_class = [np.nonzero(labels == k)[0] for k in classes]
    average = n / num_clients
    smallest = None
    for _ in range(tries):
        parts = [[] for _ in range(num_clients)]
        for idx in by_class:
            p = rng.dirichlet(alpha)
            if balance:
                full = np.array([len(q) > average for q in parts])
                p = np.where(full, 0.0, p)
                p = p / p.sum()
            cuts = (np.cumsum(p) * len(idx)).astype(int)[:-1]
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        sizes = [len(q) for q in parts]
        if min(sizes) >= min_size:
            return parts
        smallest = min(sizes)
    raise ConfigError(f"{where}: no Dirichlet draw with alpha={cfg['alpha']!r} gave every one of "
                      f"{num_clients} clients min_partition_size={min_size} samples in "
                      f"max_tries={tries} tries (smallest client in the last try: {smallest} of "
                      f"{n} samples); raise alpha, lower min_partition_size or use fewer clients")


def _pathological(cfg, labels, num_clients, rng, where):
    if "classes_per_client" not in cfg:
        raise ConfigError(f"{where}.classes_per_client is required for type 'pathological'")
    per = _int(cfg["classes_per_client"], "classes_per_client", where, 1)
    mode = cfg.get("class_assignment", "random")
    if mode not in CLASS_ASSIGNMENTS:
        raise ConfigError(f"{where}.class_assignment={mode!r} must be one of "
                          f"{', '.join(CLASS_ASSIGNMENTS)}")
    classes = np.unique(labels)
    if per > len(classes):
        raise ConfigError(f"{where}: classes_per_client={per} but the labels hold only "
                          f"{len(classes)} classes ({classes.tolist()})")
    held = []
    for client in range(num_clients):
        if mode == "random":
            chosen = rng.choice(classes, size=per, replace=False).tolist()
        elif mode == "deterministic":
            chosen = [classes[(client + i) % len(classes)] for i in range(per)]
        else:
            chosen = [classes[client % len(classes)]]
            while len(chosen) < per:
                label = rng.choice(classes, size=1)[0]
                if label not in chosen:
                    chosen.append(label)
        held.append(chosen)
    parts = [[] for _ in range(num_clients)]
    for k in classes:
        owners = [c for c in range(num_clients) if k in held[c]]
        if not owners:
            continue
        idx = np.nonzero(labels == k)[0]
        if len(owners) > len(idx):
            raise ConfigError(f"{where}: class {k!r} is held by {len(owners)} clients but has only "
                              f"{len(idx)} samples (classes_per_client={per}, "
                              f"num_clients={num_clients}); lower either or use "
                              f"class_assignment: deterministic")
        for owner, chunk in zip(owners, np.array_split(idx, len(owners))):
            parts[owner].extend(chunk.tolist())
    return parts


def _shards(cfg, labels, num_clients, rng, where):
    if "shards_per_client" not in cfg:
        raise ConfigError(f"{where}.shards_per_client is required for type 'shards'")
    per = _int(cfg["shards_per_client"], "shards_per_client", where, 1)
    size = cfg.get("shard_size")
    keep = _bool(cfg.get("keep_incomplete_shard", False), f"{where}.keep_incomplete_shard")
    n = len(labels)
    used = num_clients * per
    if size is None:
        size = n // used
        if size < 1:
            raise ConfigError(f"{where}: {num_clients} clients x shards_per_client={per} = {used} "
                              f"shards, more than the {n} samples")
        usable = -(-n // size) if keep else n // size
    else:
        size = _int(size, "shard_size", where, 1)
        if size * used > n:
            raise ConfigError(f"{where}: {num_clients} clients x shards_per_client={per} x "
                              f"shard_size={size} = {size * used} samples, the dataset has {n}")
        usable = n // size
    order = np.argsort(labels, kind="stable")
    chosen = rng.permutation(usable)[:used]
    parts = []
    for client in range(num_clients):
        idx = []
        for s in chosen[client * per:(client + 1) * per]:
            idx.extend(order[s * size:min((s + 1) * size, n)].tolist())
        parts.append(idx)
    return parts
