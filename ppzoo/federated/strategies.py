"""Server strategies of federated learning as pure functions over named NumPy arrays.

A strategy holds only its hyper-parameters; everything that changes during a run lives in
the ``state`` dict it returns (NumPy arrays and plain Python values, picklable), so a run
saved at a round boundary and resumed ends exactly as an uninterrupted one.  The same
objects serve the in-process simulator (``FederatedTrainer``) and a Flower ServerApp.

Weights are ``OrderedDict[name, np.ndarray]`` in ``model.state_dict()`` order (parameters
and buffers such as BatchNorm statistics).  Every registered strategy:

* ``init_state(global_weights)``: the server state before round 1;
* ``client_config(rnd, state)``: what clients get besides the weights (FedProx' mu,
  SCAFFOLD's control variate, FedDA's global moments ...); arrays are counted as bytes sent;
* ``aggregate(rnd, global_weights, results, state) -> (new_weights, new_state)``.

Rounds are numbered from 1, as Flower's ``server_round``.  ``schedule`` says how the
simulator runs the clients: ``sync`` (every selected client starts from the global model,
the round lasts as long as the slowest), ``tiers`` (FedAT: tiers run asynchronously, one
tier update per round) or ``rings`` (FedHiSyn: ring passing inside categories, synchronous
upload).  See docs/federated.md for the formulas and what is reconstructed.
"""
import collections
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ConfigError
from ..core.registry import Registry

STRATEGIES = Registry("federated_strategies")

#: named float arrays in model.state_dict() order
NDArrays = "collections.OrderedDict[str, np.ndarray]"


@dataclass
class ClientResult:
    """What one client sends back after its local work.

    ``weights`` are the client's full weights after local training (not the update); for
    FedDA's full-batch rounds they are the unchanged global weights and the gradient is in
    ``extras["grad"]``.  ``num_examples`` is the client's data size (the aggregation weight),
    ``metrics`` e.g. ``{"loss": float, "steps": int, "samples": int}``, ``extras`` the
    strategy's NumPy payload (SCAFFOLD's ``delta_c``, FedDA's gradient statistics)."""
    client_id: int
    weights: dict
    num_examples: int
    metrics: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


def _od(items):
    return collections.OrderedDict(items)


def weighted_average(weight_list, counts):
    """Sum_i n_i w_i / sum_i n_i for every name (computed in float64, cast back)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("weighted_average: the weights sum to zero")
    first = weight_list[0]
    out = collections.OrderedDict()
    for k, v in first.items():
        acc = np.zeros(np.shape(v), dtype=np.float64)
        for w, n in zip(weight_list, counts):
            acc += np.asarray(w[k], dtype=np.float64) * n
        out[k] = (acc / total).astype(np.asarray(v).dtype, copy=False)
    return out


def fedavg_of(results):
    return weighted_average([r.weights for r in results], [r.num_examples for r in results])


def nbytes(obj):
    """Bytes of every NumPy array inside ``obj`` (dicts, lists, arrays)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


class ServerStrategy:
    """Base: FedAvg's behaviour; subclasses override what differs."""
    schedule = "sync"
    #: rounds in which every client computes its full-batch gradient (FedDA)
    full_batch_rounds = 0

    def bind(self, num_clients, trainable=None):
        """Told once by the runner: the number of clients and the names of the trainable
        parameters (the rest of the weights are buffers, e.g. BatchNorm statistics)."""
        self.num_clients = int(num_clients)
        self.trainable = list(trainable) if trainable is not None else None
        return self

    def _trainable(self, weights):
        names = getattr(self, "trainable", None)
        return [k for k in weights if names is None or k in set(names)]

    def init_state(self, global_weights):
        return {}

    def client_config(self, rnd, state):
        return {}

    def aggregate(self, rnd, global_weights, results, state):
        raise NotImplementedError


def _check(cond, msg):
    if not cond:
        raise ConfigError(f"federated.strategy: {msg}")


@STRATEGIES.register()
class FedAvg(ServerStrategy):
    """McMahan et al. 2017: the data-size weighted mean of the clients' weights."""

    def aggregate(self, rnd, global_weights, results, state):
        return fedavg_of(results), state


@STRATEGIES.register()
class FedProx(FedAvg):
    """Li et al. 2020: FedAvg with the client objective L_i(w) + mu/2 ||w - w_global||^2
    (Flower's ``proximal_mu``); the term is added in the client's forward_loss."""

    def __init__(self, proximal_mu=0.01):
        _check(float(proximal_mu) >= 0, f"FedProx.proximal_mu must be >= 0, got {proximal_mu}")
        self.proximal_mu = float(proximal_mu)

    def client_config(self, rnd, state):
        return {"proximal_mu": self.proximal_mu}


@STRATEGIES.register()
class FedAvgM(ServerStrategy):
    """Hsu et al. 2019 as Flower 1.41 ``FedAvgM``: pseudo-gradient d = w - fedavg,
    m = momentum * m + d (m = d in the first round), w <- w - server_learning_rate * m."""

    def __init__(self, server_learning_rate=1.0, server_momentum=0.0):
        self.server_learning_rate = float(server_learning_rate)
        self.server_momentum = float(server_momentum)

    def init_state(self, global_weights):
        return {"momentum": None}

    def aggregate(self, rnd, global_weights, results, state):
        avg = fedavg_of(results)
        pseudo = _od((k, global_weights[k] - avg[k]) for k in global_weights)
        state = dict(state)
        if self.server_momentum > 0.0:
            if state.get("momentum") is None:
                state["momentum"] = pseudo
            else:
                state["momentum"] = _od((k, self.server_momentum * state["momentum"][k] + pseudo[k])
                                        for k in pseudo)
            pseudo = state["momentum"]
        new = _od((k, (global_weights[k] - self.server_learning_rate * pseudo[k])
                   .astype(global_weights[k].dtype, copy=False)) for k in global_weights)
        return new, state


class _FedOpt(ServerStrategy):
    """Reddi et al. 2021 (adaptive federated optimization) as Flower 1.41 ``FedOpt``:
    delta = fedavg - w, m = beta_1 m + (1 - beta_1) delta, v per subclass,
    w <- w + eta * m / (sqrt(v) + tau).  ``eta_l``, when set, is sent to the clients as
    their learning rate (Flower keeps it without using it)."""
    defaults = {}

    def __init__(self, eta=None, eta_l=None, beta_1=None, beta_2=None, tau=None):
        d = self.defaults
        self.eta = float(d["eta"] if eta is None else eta)
        self.eta_l = None if eta_l is None else float(eta_l)
        self.beta_1 = float(d["beta_1"] if beta_1 is None else beta_1)
        self.beta_2 = float(d["beta_2"] if beta_2 is None else beta_2)
        self.tau = float(d["tau"] if tau is None else tau)
        _check(self.tau > 0, f"{type(self).__name__}.tau must be > 0, got {self.tau}")

    def init_state(self, global_weights):
        return {"m": None, "v": None}

    def client_config(self, rnd, state):
        return {"learning_rate": self.eta_l} if self.eta_l is not None else {}

    def _v(self, v, delta):
        raise NotImplementedError

    def _eta(self, rnd):
        return self.eta

    def aggregate(self, rnd, global_weights, results, state):
        avg = fedavg_of(results)
        delta = _od((k, avg[k] - global_weights[k]) for k in global_weights)
        m = state.get("m") or _od((k, np.zeros_like(x)) for k, x in delta.items())
        v = state.get("v") or _od((k, np.zeros_like(x)) for k, x in delta.items())
        m = _od((k, np.multiply(self.beta_1, m[k]) + (1 - self.beta_1) * delta[k]) for k in delta)
        v = _od((k, self._v(v[k], delta[k])) for k in delta)
        eta = self._eta(rnd)
        new = _od((k, (global_weights[k] + eta * m[k] / (np.sqrt(v[k]) + self.tau))
                   .astype(global_weights[k].dtype, copy=False)) for k in global_weights)
        return new, {"m": m, "v": v}


@STRATEGIES.register()
class FedAdam(_FedOpt):
    """v = beta_2 v + (1 - beta_2) delta^2; eta scaled by sqrt(1 - beta_2^(r+1)) / (1 - beta_1^(r+1))
    as Flower 1.41 does (r = server round)."""
    defaults = {"eta": 1e-1, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-9}

    def _v(self, v, delta):
        return self.beta_2 * v + (1 - self.beta_2) * np.multiply(delta, delta)

    def _eta(self, rnd):
        return (self.eta * np.sqrt(1 - np.power(self.beta_2, rnd + 1.0))
                / (1 - np.power(self.beta_1, rnd + 1.0)))


@STRATEGIES.register()
class FedYogi(_FedOpt):
    """v = v - (1 - beta_2) delta^2 sign(v - delta^2)."""
    defaults = {"eta": 1e-2, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}

    def _v(self, v, delta):
        d2 = np.multiply(delta, delta)
        return v - (1.0 - self.beta_2) * d2 * np.sign(v - d2)


@STRATEGIES.register()
class FedAdagrad(_FedOpt):
    """v = v + delta^2 (Flower's FedAdagrad keeps FedOpt's beta_1 = 0: m = delta)."""
    defaults = {"eta": 1e-1, "beta_1": 0.0, "beta_2": 0.0, "tau": 1e-9}

    def __init__(self, eta=None, eta_l=None, tau=None, beta_1=None):
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, tau=tau)

    def _v(self, v, delta):
        return v + np.multiply(delta, delta)


@STRATEGIES.register()
class Scaffold(ServerStrategy):
    """Karimireddy et al. 2020, SCAFFOLD with option II control variates.

    Clients correct every gradient by (c - c_i) (a linear term <w, c - c_i> in their loss,
    on the trainable parameters), then c_i+ = c_i - c + (x - y_i) / (K eta_l) and send
    y_i and delta_c_i = c_i+ - c_i.  The server: x <- x + eta_g * mean_i (y_i - x) over the
    S answering clients (``weighted: true`` uses data-size weights instead of the plain
    mean) and c <- c + sum_i delta_c_i / N (N = all clients)."""

    def __init__(self, eta_g=1.0, weighted=False):
        self.eta_g = float(eta_g)
        self.weighted = bool(weighted)

    def init_state(self, global_weights):
        return {"c": _od((k, np.zeros_like(global_weights[k]))
                         for k in self._trainable(global_weights))}

    def client_config(self, rnd, state):
        return {"scaffold_c": state["c"]}

    def aggregate(self, rnd, global_weights, results, state):
        counts = [r.num_examples if self.weighted else 1 for r in results]
        avg = weighted_average([r.weights for r in results], counts)
        new = _od((k, (global_weights[k] + self.eta_g * (avg[k] - global_weights[k]))
                   .astype(global_weights[k].dtype, copy=False)) for k in global_weights)
        n = getattr(self, "num_clients", len(results))
        c = _od((k, (v + sum(np.asarray(r.extras["delta_c"][k], np.float64) for r in results) / n)
                 .astype(v.dtype, copy=False)) for k, v in state["c"].items())
        return new, {"c": c}


@STRATEGIES.register()
class FedDA(ServerStrategy):
    """Jin et al., ICML 2022: momentum decoupling.  The server keeps the global moments
    (m, v); every local iteration of every client uses them with its own gradient g
    (``form``): ``sgdm`` d = beta_1 m + (1-beta_1) g; ``adam`` d = (beta_1 m + (1-beta_1) g)
    / (sqrt(beta_2 v + (1-beta_2) g^2) + eps); ``adagrad`` d = g / (sqrt(v + g^2) + eps);
    w <- w - eta_l d.  Clients send their weights and the mean g and g^2 of their local
    iterations; the server averages them by data size (gbar, g2bar), moves the moments
    (m = beta_1 m + (1-beta_1) gbar; v = beta_2 v + (1-beta_2) g2bar, or v + g2bar for
    adagrad) and sets w <- w + eta_g * (fedavg - w).

    The last ``full_batch_rounds`` rounds use every client's full-batch gradient at the
    global weights: G = sum_i N_i/N grad L_i(w), and the centralized optimizer's step
    with it (sgdm: m = beta_1 m + (1-beta_1) G, w -= lr m; adam: also v = beta_2 v +
    (1-beta_2) G^2, w -= lr m / (sqrt(v) + eps); adagrad: v += G^2, w -= lr G / (sqrt(v) + eps)),
    ``lr`` = ``full_batch_lr`` (default: the clients' learning rate).  ``full_batch_rounds``
    must be below the run's rounds; a resume may not move the phase over rounds already done."""

    FORMS = ("sgdm", "adam", "adagrad")

    def __init__(self, form="sgdm", beta_1=0.9, beta_2=0.99, eps=1e-8, eta_g=1.0,
                 full_batch_rounds=0, full_batch_lr=None):
        _check(form in self.FORMS, f"FedDA.form must be one of {', '.join(self.FORMS)}, got {form!r}")
        _check(int(full_batch_rounds) >= 0, f"FedDA.full_batch_rounds must be >= 0, got {full_batch_rounds}")
        self.form, self.beta_1, self.beta_2, self.eps = form, float(beta_1), float(beta_2), float(eps)
        self.eta_g = float(eta_g)
        self.full_batch_rounds = int(full_batch_rounds)
        self.full_batch_lr = None if full_batch_lr is None else float(full_batch_lr)
        self.total_rounds = None  # told by the runner (bind)

    def bind(self, num_clients, trainable=None, total_rounds=None):
        super().bind(num_clients, trainable)
        if total_rounds is not None and self.full_batch_rounds >= int(total_rounds):
            # otherwise no round would train locally: the run is a centralized full-batch run
            raise ConfigError(
                f"federated.strategy.full_batch_rounds ({self.full_batch_rounds}) must be less "
                f"than federated.rounds ({int(total_rounds)}): FedDA's full-batch rounds are the "
                "last rounds of the run, after rounds of local training")
        self.total_rounds = total_rounds
        return self

    def is_full_batch(self, rnd):
        return bool(self.full_batch_rounds and self.total_rounds is not None
                    and rnd > self.total_rounds - self.full_batch_rounds)

    def full_batch_before(self, rnd):
        """How many of rounds 1..rnd-1 are full-batch rounds under the current total."""
        return sum(self.is_full_batch(r) for r in range(1, int(rnd)))

    def init_state(self, global_weights):
        zeros = _od((k, np.zeros_like(global_weights[k])) for k in self._trainable(global_weights))
        return {"m": zeros, "v": _od((k, np.zeros_like(x)) for k, x in zeros.items()), "t": 0,
                "full_batch_done": 0}

    def check_resumed(self, rnd, state):
        """The full-batch rounds are anchored to the end of the run (the last
        ``full_batch_rounds`` of ``rounds``), so a resume that changes ``rounds`` after a
        full-batch round was done (or that moves the phase before the saved round) cannot
        end as an uninterrupted run of the new total: refuse it instead of recounting."""
        done = state.get("full_batch_done")
        if done is None or self.total_rounds is None:
            return
        want = self.full_batch_before(rnd)
        if int(done) != want:
            T, F = int(self.total_rounds), self.full_batch_rounds
            raise ConfigError(
                f"federated.rounds: latest/ did {int(done)} FedDA full-batch rounds by round "
                f"{int(rnd) - 1}, but with federated.rounds={T} and "
                f"federated.strategy.full_batch_rounds={F} the full-batch rounds are "
                f"{T - F + 1}..{T} ({want} of them by then); resume with the rounds it was "
                "trained with, or start over")

    def client_config(self, rnd, state):
        self.check_resumed(rnd, state)
        return {"fedda": {"form": self.form, "beta_1": self.beta_1, "beta_2": self.beta_2,
                          "eps": self.eps, "m": state["m"], "v": state["v"],
                          "full_batch": self.is_full_batch(rnd)}}

    def aggregate(self, rnd, global_weights, results, state, client_lr=None):
        n = [r.num_examples for r in results]
        m, v = state["m"], state["v"]
        b1, b2 = self.beta_1, self.beta_2
        if self.is_full_batch(rnd):
            G = weighted_average([r.extras["grad"] for r in results], n)
            lr = self.full_batch_lr if self.full_batch_lr is not None else client_lr
            if lr is None:
                raise ConfigError("FedDA: set full_batch_lr (no client learning rate is known)")
            m, v, step = self.centralized_step(G, m, v)
            new = collections.OrderedDict(global_weights)
            for k in step:
                new[k] = (global_weights[k] - lr * step[k]).astype(global_weights[k].dtype, copy=False)
            return new, {"m": m, "v": v, "t": state["t"] + 1,
                         "full_batch_done": int(state.get("full_batch_done") or 0) + 1}
        gbar = weighted_average([r.extras["grad_mean"] for r in results], n)
        g2bar = weighted_average([r.extras["grad_sq_mean"] for r in results], n)
        m = _od((k, b1 * m[k] + (1 - b1) * gbar[k]) for k in m)
        if self.form == "adam":
            v = _od((k, b2 * v[k] + (1 - b2) * g2bar[k]) for k in v)
        elif self.form == "adagrad":
            v = _od((k, v[k] + g2bar[k]) for k in v)
        avg = fedavg_of(results)
        new = _od((k, (global_weights[k] + self.eta_g * (avg[k] - global_weights[k]))
                   .astype(global_weights[k].dtype, copy=False)) for k in global_weights)
        return new, {"m": m, "v": v, "t": state["t"] + 1,
                     "full_batch_done": state.get("full_batch_done")}

    def centralized_step(self, G, m, v):
        """The centralized optimizer's moments and step direction for the gradient G."""
        b1, b2, eps = self.beta_1, self.beta_2, self.eps
        if self.form == "sgdm":
            m = _od((k, b1 * m[k] + (1 - b1) * G[k]) for k in m)
            return m, v, m
        if self.form == "adam":
            m = _od((k, b1 * m[k] + (1 - b1) * G[k]) for k in m)
            v = _od((k, b2 * v[k] + (1 - b2) * G[k] * G[k]) for k in v)
            return m, v, _od((k, m[k] / (np.sqrt(v[k]) + eps)) for k in m)
        v = _od((k, v[k] + G[k] * G[k]) for k in v)
        return m, v, _od((k, G[k] / (np.sqrt(v[k]) + eps)) for k in v)


@STRATEGIES.register()
class FedAT(ServerStrategy):
    """Chai et al., SC 2021 (arXiv 2010.05958): clients split into ``num_tiers`` tiers by
    their expected response time (fastest first); inside a tier rounds are synchronous, across
    tiers asynchronous.  A tier's clients start from the latest global model (optional
    proximal term ``proximal_mu`` towards it); when the tier finishes, its tier model is
    replaced by the data-size weighted mean of its clients' models and the global model is
    recomputed from the tier models:

        w = sum_{m=1..M} (T_{M+1-m} / T) w_tier_m,   T = sum_m T_m,

    T_m being tier m's update count (``weighting: cross``, the paper's: a slow tier, which
    updates less often, weighs as much as the mirrored fast tier has updated).  The global
    model is this weighted sum, not an update of the previous global model.
    ``unreported: initial`` (the paper's rule) keeps every tier model in the sum from the
    start, a tier that has not reported yet holding the initial global model (so until the
    slowest tier reports the fastest weighs 0 and the initial model at least T_1/T, e.g.
    8/9); ``skip`` sums only the tiers that have reported, mirroring the counts among them,
    and avoids both.  ``count`` weighs tier m by T_m, ``uniform`` equally."""
    schedule = "tiers"
    WEIGHTINGS = ("cross", "count", "uniform")
    UNREPORTED = ("initial", "skip")

    def __init__(self, num_tiers=3, weighting="cross", proximal_mu=0.0, tier_fraction=None,
                 unreported="initial"):
        _check(int(num_tiers) >= 1, f"FedAT.num_tiers must be >= 1, got {num_tiers}")
        _check(weighting in self.WEIGHTINGS,
               f"FedAT.weighting must be one of {', '.join(self.WEIGHTINGS)}, got {weighting!r}")
        _check(unreported in self.UNREPORTED,
               f"FedAT.unreported must be one of {', '.join(self.UNREPORTED)}, got {unreported!r}")
        self.num_tiers, self.weighting = int(num_tiers), weighting
        self.proximal_mu = float(proximal_mu)
        self.tier_fraction = None if tier_fraction is None else float(tier_fraction)
        self.unreported = unreported

    def tiers_in_use(self):
        """The tiers the runner forms: ``num_tiers``, at most one per client."""
        return min(self.num_tiers, getattr(self, "num_clients", self.num_tiers))

    def init_state(self, global_weights):
        m = self.tiers_in_use()
        models = {}
        if self.unreported == "initial":
            models = {i: _od((k, np.array(v, copy=True)) for k, v in global_weights.items())
                      for i in range(m)}
        return {"tier_models": models, "counts": [0] * m}

    def client_config(self, rnd, state):
        return {"proximal_mu": self.proximal_mu} if self.proximal_mu else {}

    def tier_weights(self, counts, reported):
        """Weights of the tiers in the sum (indices, fastest first): tier j of the n summed
        tiers gets the count of tier n-1-j among them (``cross``)."""
        reported = sorted(reported)
        if self.weighting == "uniform":
            w = [1.0] * len(reported)
        elif self.weighting == "count":
            w = [float(counts[i]) for i in reported]
        else:  # the count of the mirrored tier
            w = [float(counts[reported[len(reported) - 1 - j]]) for j in range(len(reported))]
        s = sum(w)
        return {i: wi / s for i, wi in zip(reported, w)}

    def aggregate(self, rnd, global_weights, results, state, tier=0):
        state = {"tier_models": dict(state["tier_models"]), "counts": list(state["counts"])}
        state["tier_models"][int(tier)] = fedavg_of(results)
        state["counts"][int(tier)] += 1
        tw = self.tier_weights(state["counts"], state["tier_models"].keys())
        order = sorted(i for i in tw if tw[i] > 0)
        new = weighted_average([state["tier_models"][i] for i in order], [tw[i] for i in order])
        return new, state


@STRATEGIES.register()
class FedHiSyn(ServerStrategy):
    """Li et al., ICPP 2022: devices clustered into ``num_categories`` categories by their
    measured time for one local pass (``cluster: quantile`` equal-sized groups of the sorted
    times, or ``kmeans`` 1-D k-means on log time); inside a category the devices form a ring
    (``ring_order: random`` reshuffled each round from the seed, or ``fixed`` by speed) and
    within the round's interval repeatedly train on their own data and pass the model to
    their successor; at the interval's end all categories upload at once and the server
    takes the data-size weighted mean of the models (``weighting: data``; ``visits``
    weights a model by the samples it was trained on).  ``interval_s: null`` sets the
    interval to the slowest category's time for one ring step, so every device trains at
    least once; ``max_steps`` caps the ring steps of a round (null: as many as fit).
    ``measure: speed`` (default; the paper clusters by computing capacity) clusters by the
    device's seconds per sample alone; ``pass_time`` by the time of one local pass (compute on
    the device's own data plus the hand-over), which puts a slow device with little data
    among fast ones.  ``quantile`` never separates devices of equal measure (a tie group goes
    to the quantile chunk holding most of it).  ``singleton: merge`` (default) puts a
    round's category that holds a single selected device into the nearest category in log
    measure (ties: the slower one, whose ring it does not slow down): alone, a device's ring
    is itself and it runs as many local passes as the interval fits (dozens for a fast one);
    ``keep`` leaves it alone."""
    schedule = "rings"
    MEASURES = ("speed", "pass_time")
    SINGLETONS = ("merge", "keep")

    def __init__(self, num_categories=3, cluster="quantile", ring_order="random", interval_s=None,
                 weighting="data", max_steps=None, measure="speed", singleton="merge"):
        _check(int(num_categories) >= 1, f"FedHiSyn.num_categories must be >= 1, got {num_categories}")
        _check(cluster in ("quantile", "kmeans"), f"FedHiSyn.cluster must be quantile or kmeans, got {cluster!r}")
        _check(ring_order in ("random", "fixed"), f"FedHiSyn.ring_order must be random or fixed, got {ring_order!r}")
        _check(weighting in ("data", "visits"), f"FedHiSyn.weighting must be data or visits, got {weighting!r}")
        _check(interval_s is None or float(interval_s) > 0, f"FedHiSyn.interval_s must be > 0, got {interval_s}")
        self.num_categories, self.cluster, self.ring_order = int(num_categories), cluster, ring_order
        self.interval_s = None if interval_s is None else float(interval_s)
        self.weighting = weighting
        _check(max_steps is None or int(max_steps) >= 1, f"FedHiSyn.max_steps must be >= 1, got {max_steps}")
        self.max_steps = None if max_steps is None else int(max_steps)
        _check(measure in self.MEASURES,
               f"FedHiSyn.measure must be one of {', '.join(self.MEASURES)}, got {measure!r}")
        _check(singleton in self.SINGLETONS,
               f"FedHiSyn.singleton must be one of {', '.join(self.SINGLETONS)}, got {singleton!r}")
        self.measure, self.singleton = measure, singleton

    def categories(self, times):
        """Category of each device (0 = fastest) from its measure (seconds per sample or per
        local pass; smaller is faster)."""
        t = np.asarray(times, dtype=np.float64)
        k = min(self.num_categories, len(t))
        order = np.argsort(t, kind="stable")
        cat = np.zeros(len(t), dtype=np.int64)
        if self.cluster == "quantile":
            for j, chunk in enumerate(np.array_split(order, k)):
                cat[chunk] = j
            for v in np.unique(t):  # a tie group goes whole to the chunk holding most of it
                tie = np.flatnonzero(t == v)
                cat[tie] = np.bincount(cat[tie]).argmax()
            return np.unique(cat, return_inverse=True)[1].astype(np.int64)
        x = np.log(np.maximum(t, 1e-12))
        centers = np.quantile(x, (np.arange(k) + 0.5) / k)
        for _ in range(100):
            lab = np.argmin(np.abs(x[:, None] - centers[None, :]), axis=1)
            new = np.array([x[lab == j].mean() if np.any(lab == j) else centers[j] for j in range(k)])
            if np.allclose(new, centers):
                break
            centers = new
        rank = np.argsort(np.argsort(centers))
        return rank[np.argmin(np.abs(x[:, None] - centers[None, :]), axis=1)]

    def merge_singletons(self, groups, measure):
        """``groups``: {category: [devices]} of one round; with ``singleton: merge`` each
        category of one device joins the category whose nearest member is nearest in log
        measure (ties: the slower category), smallest categories first."""
        groups = {j: list(m) for j, m in groups.items()}
        if self.singleton == "keep":
            return groups
        x = {c: float(np.log(max(measure[c], 1e-12))) for m in groups.values() for c in m}
        while len(groups) > 1:
            single = [j for j in sorted(groups) if len(groups[j]) == 1]
            if not single:
                break
            j = single[0]
            c = groups[j][0]
            best = min((min(abs(x[c] - x[o]) for o in groups[i]), -i) for i in groups if i != j)
            groups[-best[1]] += groups.pop(j)
        return groups

    def aggregate(self, rnd, global_weights, results, state):
        if self.weighting == "visits":
            counts = [r.metrics.get("trained_samples", r.num_examples) for r in results]
        else:
            counts = [r.num_examples for r in results]
        return weighted_average([r.weights for r in results], counts), state


def build_strategy(cfg, source="<config>"):
    if isinstance(cfg, str):
        cfg = {"type": cfg}
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(f"{source}: federated.strategy needs a type "
                          f"({', '.join(sorted(STRATEGIES.keys()))})")
    try:
        return STRATEGIES.build(dict(cfg), key_path="federated.strategy")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
