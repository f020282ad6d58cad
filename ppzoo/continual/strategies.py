"""Continual-learning strategies (the ``STRATEGIES`` registry, ``continual.strategy:``).

A strategy decides which data a task trains on (``train_tasks``), what one step's loss is
(``loss``), and what happens around a task (``before_task``, ``after_task``).  It keeps its
own state (replay buffer, Fisher information, the previous model) in ``state_dict`` so a
run resumes exactly at a task boundary.  ``before_task(t)`` sets everything from ``t``
alone (which parameters train, which adapter is active), so it is safe to call after a resume.
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..core.builder import build_model
from ..core.errors import ConfigError
from ..core.registry import Registry

STRATEGIES = Registry("continual_strategies")


def _set_trainable(layer, flag):
    for p in layer.parameters():
        p.stop_gradient = not flag


class Strategy:
    """Naive fine-tuning: each task trains the whole model on its own data only."""

    def setup(self, ct):
        pass

    def train_tasks(self, t):
        return [t]

    def before_task(self, ct, t):
        ct.model.active_task = t if ct.model.has_adapters else 0
        ct.model.trunk_frozen = False
        _set_trainable(ct.model, True)

    def after_task(self, ct, t):
        pass

    def task_loss(self, ct, batch):
        logits = ct.train_logits(batch)
        loss = ct.loss_fn(logits, batch["label"])
        return loss, logits

    def loss(self, ct, trainer, batch):
        loss, _ = self.task_loss(ct, batch)
        return loss, {"loss": loss}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@STRATEGIES.register()
class Naive(Strategy):
    pass


@STRATEGIES.register()
class Joint(Strategy):
    """Trains task ``t`` on the data of tasks ``0..t`` together (the usual upper bound;
    after the last task the model has seen all the data at once)."""

    def train_tasks(self, t):
        return list(range(t + 1))


@STRATEGIES.register()
class FrozenEncoder(Strategy):
    """Trains everything on the first task, then only the head (encoder and its BatchNorm
    statistics frozen)."""

    def before_task(self, ct, t):
        super().before_task(ct, t)
        if t > 0:
            _set_trainable(ct.model.encoder, False)
            ct.model.trunk_frozen = True


class ReservoirBuffer:
    """Reservoir sampling (Vitter's algorithm R): after ``n`` items of a stream, every item
    is in the buffer with probability ``capacity / n``."""

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self.items = []
        self.n_seen = 0

    def add(self, items, rng):
        for item in items:
            self.n_seen += 1
            if len(self.items) < self.capacity:
                self.items.append(item)
            else:
                j = int(rng.integers(0, self.n_seen))
                if j < self.capacity:
                    self.items[j] = item

    def state_dict(self):
        return {"items": [list(map(int, it)) for it in self.items], "n_seen": self.n_seen}

    def load_state_dict(self, state):
        self.items = [tuple(it) for it in state.get("items", [])]
        self.n_seen = int(state.get("n_seen", 0))


class BalancedBuffer:
    """A buffer split equally over its groups (tasks or classes), as Avalanche's
    ``ExperienceBalancedBuffer`` / ``ClassBalancedBuffer`` with ``adaptive_size``: with G
    groups seen so far each keeps capacity // G samples, the remainder going one each to the
    first groups in sorted order.  Every sample gets a uniform random key when it arrives and
    a group keeps its highest keys, so a group is a uniform random subset of its samples and
    shrinks to a subset of what it held (Avalanche's ``ReservoirSamplingBuffer`` weights)."""

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self.groups = {}  # group -> [(key, item)], highest key first

    def lengths(self):
        gs = sorted(self.groups)
        base, rem = divmod(self.capacity, max(len(gs), 1))
        return {g: base + (1 if i < rem else 0) for i, g in enumerate(gs)}

    def add(self, items, groups, rng):
        keys = rng.random(len(items))
        for item, g, k in zip(items, groups, keys):
            self.groups.setdefault(int(g), []).append((float(k), tuple(item)))
        for g, n in self.lengths().items():
            self.groups[g] = sorted(self.groups[g], key=lambda kv: -kv[0])[:n]

    @property
    def items(self):
        return [it for g in sorted(self.groups) for _, it in self.groups[g]]

    def state_dict(self):
        return {"groups": {str(g): [[k, *map(int, it)] for k, it in kv] for g, kv in self.groups.items()}}

    def load_state_dict(self, state):
        self.groups = {int(g): [(float(r[0]), tuple(int(x) for x in r[1:])) for r in kv]
                       for g, kv in state.get("groups", {}).items()}


@STRATEGIES.register()
class Replay(Strategy):
    """Experience replay: each step of a task after the first adds ``batch_size`` samples
    drawn (without replacement) from a buffer of ``capacity`` earlier samples.  The buffer
    takes each task's training set when the task ends, so it holds only earlier tasks while a
    task trains.

    ``buffer``: ``task_balanced`` (default; Avalanche's ``ReplayPlugin`` default
    ``ExperienceBalancedBuffer``: capacity // tasks-seen per task), ``class_balanced``
    (capacity // classes-seen per class, Avalanche's ``ClassBalancedBuffer``) or
    ``reservoir`` (one reservoir over the whole stream, Vitter's algorithm R: a task's share
    varies with the seed and shrinks with every later task's size).
    ``combine``: ``concat`` (default; Avalanche's: the current and replayed samples form one
    batch, one forward pass, so BatchNorm sees both, and the loss is the mean over the
    combined batch) or ``sum`` (loss of the current batch + ``weight`` x loss of the replay
    batch, two forward passes; with equal batch sizes about twice the gradient of ``concat``,
    i.e. a doubled learning rate).  ``weight`` applies to ``sum`` only."""

    BUFFERS = ("task_balanced", "class_balanced", "reservoir")
    COMBINES = ("concat", "sum")

    def __init__(self, capacity=200, batch_size=32, weight=1.0, buffer="task_balanced", combine="concat"):
        if int(capacity) < 1:
            raise ConfigError(f"Replay.capacity must be positive, got {capacity}")
        if buffer not in self.BUFFERS:
            raise ConfigError(f"Replay.buffer must be one of {', '.join(self.BUFFERS)}, got {buffer!r}")
        if combine not in self.COMBINES:
            raise ConfigError(f"Replay.combine must be one of {', '.join(self.COMBINES)}, got {combine!r}")
        if combine == "concat" and float(weight) != 1.0:
            raise ConfigError(f"Replay.weight applies to combine: sum only (combine: concat averages "
                              f"over the combined batch), got weight {weight}")
        self.kind, self.combine = buffer, combine
        self.buffer = ReservoirBuffer(capacity) if buffer == "reservoir" else BalancedBuffer(capacity)
        self.batch_size, self.weight = int(batch_size), float(weight)

    def after_task(self, ct, t):
        ds = ct.task_dataset([t], "train")
        order = np.random.default_rng([ct.seed, t, 11]).permutation(len(ds))
        items = [(t, int(i)) for i in order]
        rng = np.random.default_rng([ct.seed, t, 12])
        if self.kind == "reservoir":
            self.buffer.add(items, rng)
        else:
            groups = [t] * len(items) if self.kind == "task_balanced" else \
                [int(np.asarray(ds.labels)[i]) for i in order]
            self.buffer.add(items, groups, rng)

    def replay_batch(self, ct, trainer):
        """The step's replayed samples as a batch (None while the buffer is empty)."""
        items = self.buffer.items
        if not items:
            return None
        rng = np.random.default_rng([ct.seed, ct.current_task, trainer.iter, 13])
        pick = rng.choice(len(items), size=min(self.batch_size, len(items)), replace=False)
        samples = [ct.task_dataset([items[i][0]], "train")[items[i][1]] for i in pick]
        return {k: paddle.to_tensor(np.stack([s[k] for s in samples])) for k in ("image", "label", "task")}

    def loss(self, ct, trainer, batch):
        rb = self.replay_batch(ct, trainer)
        if rb is None:
            loss, _ = self.task_loss(ct, batch)
            return loss, {"loss": loss}
        if self.combine == "concat":
            both = {k: paddle.concat([batch[k], rb[k].astype(batch[k].dtype)], axis=0)
                    for k in ("image", "label", "task")}
            loss, _ = self.task_loss(ct, both)
            return loss, {"loss": loss}
        loss, _ = self.task_loss(ct, batch)
        rloss, _ = self.task_loss(ct, rb)
        total = loss + self.weight * rloss
        return total, {"loss_task": loss, "loss_replay": rloss, "loss": total}

    def state_dict(self):
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state):
        self.buffer.load_state_dict(state.get("buffer", {}))


def compute_fisher(loglik_fn, params, samples, mode="empirical", rng=None, batch_size=1):
    """Diagonal Fisher information: the mean over ``samples`` of (d log p(y|x) / d theta)^2.

    ``loglik_fn(sample) -> (log-probabilities [1, C], label)`` for one sample.  ``empirical``
    uses the sample's label; ``sampled`` draws y from the model's own prediction.
    ``batch_size`` B > 1 squares the gradient of each batch's *mean* log-likelihood and
    averages over batches (the last may be smaller), as Avalanche's ``EWCPlugin`` does; that
    is about F / B when the per-sample gradients are independent with mean zero, more when
    they share a direction.
    """
    fisher = [np.zeros(p.shape, np.float64) for p in params]
    acc = [np.zeros(p.shape, np.float64) for p in params]
    n_in_batch = n_batches = 0
    samples = list(samples)
    for i, s in enumerate(samples):
        logp, label = loglik_fn(s)
        if mode == "sampled":
            prob = np.exp(logp.numpy()[0].astype(np.float64))
            y = int(rng.choice(len(prob), p=prob / prob.sum()))
        elif mode == "empirical":
            y = int(label)
        else:
            raise ConfigError(f"EWC.fisher must be empirical or sampled, got {mode!r}")
        grads = paddle.grad(logp[0, y], params, allow_unused=True)
        for a, g in zip(acc, grads):
            if g is not None:
                a += g.numpy().astype(np.float64)
        n_in_batch += 1
        if n_in_batch == batch_size or i == len(samples) - 1:
            for f, a in zip(fisher, acc):
                f += (a / n_in_batch) ** 2
                a[...] = 0.0
            n_batches += 1
            n_in_batch = 0
    return [f / max(n_batches, 1) for f in fisher]


@STRATEGIES.register()
class EWC(Strategy):
    """Elastic weight consolidation: loss + lam/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2.

    ``F_k`` is the diagonal Fisher on ``fisher_samples`` samples of task k (``fisher:
    empirical`` or ``sampled`` labels; ``fisher_batch`` > 1 squares batch-mean gradients as
    Avalanche does), ``theta*_k`` the weights after task k.  ``online`` keeps one penalty with
    F = gamma * F + F_k and the latest anchor.  ``normalize: max`` (the default, a practical
    variant, not in the original EWC) divides each task's Fisher by its largest entry, so the
    penalty's stiffest direction has curvature lam per earlier task whatever the network: a
    raw Fisher's largest entry ranges from 0.2 to 7 on the shipped configs, and lam 100 on
    it diverges on split CIFAR-10.  Momentum SGD stays stable while lr * lam * (earlier
    tasks) < 2 (1 + momentum); lam 10 keeps that on every shipped config (lr 0.05, <= 4
    earlier tasks, momentum 0.9).  Avalanche's ``EWCPlugin(ewc_lambda=L)`` at batch size B is
    ``normalize: none, fisher_batch: B, lam: 2 L``."""

    def __init__(self, lam=10.0, fisher_samples=200, fisher="empirical", online=False, gamma=1.0,
                 normalize="max", fisher_batch=1):
        if normalize not in ("none", "max"):
            raise ConfigError(f"EWC.normalize must be none or max, got {normalize!r}")
        if int(fisher_batch) < 1:
            raise ConfigError(f"EWC.fisher_batch must be positive, got {fisher_batch}")
        self.lam, self.fisher_samples, self.fisher = float(lam), int(fisher_samples), fisher
        self.online, self.gamma, self.normalize = bool(online), float(gamma), normalize
        self.fisher_batch = int(fisher_batch)
        self.penalties = []  # [(names, fisher arrays, anchor arrays)]

    def after_task(self, ct, t):
        named = [(n, p) for n, p in ct.model.named_parameters() if not p.stop_gradient]
        ds = ct.task_dataset([t], "train", augment=False)
        pick = np.random.default_rng([ct.seed, t, 21]).permutation(len(ds))[: self.fisher_samples]
        ct.model.eval()

        def loglik(i):
            s = ds[int(i)]
            batch = {k: paddle.to_tensor(np.asarray(s[k])[None]) for k in ("image", "label", "task")}
            return F.log_softmax(ct.train_logits(batch), axis=1), s["label"]

        fisher = compute_fisher(loglik, [p for _, p in named], pick, self.fisher,
                                np.random.default_rng([ct.seed, t, 22]), self.fisher_batch)
        ct.model.train()
        if self.normalize == "max":
            top = max(float(f.max()) for f in fisher) or 1.0
            fisher = [f / top for f in fisher]
        names = [n for n, _ in named]
        anchor = [p.numpy().copy() for _, p in named]
        if self.online and self.penalties:
            old_names, old_f, _ = self.penalties[0]
            prev = dict(zip(old_names, old_f))
            fisher = [self.gamma * prev.get(n, 0.0) + f for n, f in zip(names, fisher)]
            self.penalties = []
        self.penalties.append((names, fisher, anchor))
        self._tensors = None

    def penalty(self, model):
        params = dict(model.named_parameters())
        if getattr(self, "_tensors", None) is None:
            self._tensors = [[(n, paddle.to_tensor(f.astype(np.float32)), paddle.to_tensor(a))
                              for n, f, a in zip(*pen)] for pen in self.penalties]
        total = paddle.zeros([])
        for pen in self._tensors:
            for n, f, a in pen:
                total = total + (f * (params[n] - a) ** 2).sum()
        return 0.5 * self.lam * total

    def loss(self, ct, trainer, batch):
        loss, _ = self.task_loss(ct, batch)
        logs = {"loss_task": loss}
        if self.penalties:
            pen = self.penalty(ct.model)
            logs["loss_ewc"] = pen
            loss = loss + pen
        logs["loss"] = loss
        return loss, logs

    def state_dict(self):
        return {"penalties": [{"names": n, "fisher": f, "anchor": a} for n, f, a in self.penalties]}

    def load_state_dict(self, state):
        self.penalties = [(p["names"], [np.asarray(x) for x in p["fisher"]], [np.asarray(x) for x in p["anchor"]])
                          for p in state.get("penalties", [])]
        self._tensors = None


def distillation_loss(new_logits, old_logits, temperature=2.0, t_squared=False):
    """mean_i KL(softmax(old_i / T) || softmax(new_i / T)): LwF's knowledge-distillation term
    (Li & Hoiem; the paper's cross-entropy less the old outputs' entropy, a constant, so the
    same gradients and zero when the models agree) and Avalanche's ``LwF``.  ``t_squared``
    multiplies it by T^2 (Hinton et al.'s scaling, which keeps its gradients' size as T grows)."""
    T = float(temperature)
    p_old = F.softmax(old_logits / T, axis=1)
    log_new = F.log_softmax(new_logits / T, axis=1)
    log_old = F.log_softmax(old_logits / T, axis=1)
    kl = (p_old * (log_old - log_new)).sum(axis=1).mean()
    return T * T * kl if t_squared else kl


@STRATEGIES.register()
class LwF(Strategy):
    """Learning without forgetting: loss + lam * distillation of the model after the previous
    task on the current inputs, over each earlier task's classes (task-incremental: one term
    per earlier task, as Avalanche has one per head) or over all earlier classes together
    (class-incremental).  Both models' outputs are read unmasked: the task mask of task-IL
    training covers exactly the earlier tasks' classes.  ``reduction: sum`` (Avalanche's)
    adds the per-task terms, ``mean`` averages them; ``t_squared`` scales by T^2."""

    def __init__(self, lam=1.0, temperature=2.0, t_squared=False, reduction="sum"):
        if reduction not in ("sum", "mean"):
            raise ConfigError(f"LwF.reduction must be sum or mean, got {reduction!r}")
        if float(temperature) <= 0:
            raise ConfigError(f"LwF.temperature must be positive, got {temperature}")
        self.lam, self.temperature = float(lam), float(temperature)
        self.t_squared, self.reduction = bool(t_squared), reduction
        self.old_state = None
        self.old_model = None

    def setup(self, ct):
        self.model_cfg = ct.cfg["model"]

    def after_task(self, ct, t):
        self.old_state = {k: v.numpy().copy() for k, v in ct.model.state_dict().items()}
        self.old_model = None

    def _old(self, ct):
        if self.old_model is None:
            with paddle.utils.unique_name.guard():
                self.old_model = build_model(self.model_cfg)
            self.old_model.set_state_dict({k: paddle.to_tensor(v) for k, v in self.old_state.items()})
            self.old_model.eval()
            _set_trainable(self.old_model, False)
        return self.old_model

    def loss(self, ct, trainer, batch):
        t = ct.current_task
        distil = self.old_state is not None and t > 0
        if distil and not ct.model.has_adapters:  # one forward: CE on the masked, KD on the raw output
            raw = ct.raw_logits(batch["image"], batch["task"], t)
            loss = ct.loss_fn(raw + ct.class_mask(np.asarray(batch["task"].numpy()).reshape(-1), t), batch["label"])
        else:
            loss, _ = self.task_loss(ct, batch)
            if distil:  # each earlier task's classes from its own path, as in class-IL
                raw = ct.raw_logits(batch["image"], batch["task"], t - 1, task_il=False)
        logs = {"loss_task": loss}
        if distil:
            with paddle.no_grad():
                old = ct.raw_logits(batch["image"], batch["task"], t - 1, task_il=False, model=self._old(ct))
            logs["loss_lwf"] = kd = self.distillation(ct, raw, old, t)
            loss = loss + self.lam * kd
        logs["loss"] = loss
        return loss, logs

    def distillation(self, ct, new, old, t):
        """The KD term over tasks 0..t-1 from unmasked ``new`` and ``old`` logits."""
        groups = ([ct.scenario.tasks[k]["classes"] for k in range(t)] if ct.task_il
                  else [[c for k in range(t) for c in ct.scenario.tasks[k]["classes"]]])
        terms = [distillation_loss(paddle.gather(new, paddle.to_tensor(g), axis=1),
                                   paddle.gather(old, paddle.to_tensor(g), axis=1),
                                   self.temperature, self.t_squared) for g in groups]
        kd = paddle.add_n(terms) if len(terms) > 1 else terms[0]
        return kd / len(terms) if self.reduction == "mean" else kd

    def state_dict(self):
        return {"old_state": self.old_state}

    def load_state_dict(self, state):
        self.old_state, self.old_model = state.get("old_state"), None


@STRATEGIES.register()
class GatingAdapters(Strategy):
    """Gated adapters per task on a shared encoder (needs ``ContinualNet`` with ``adapter:``).

    Task t trains its own adapter, gate and head; earlier tasks' adapters, gates and heads
    are frozen, so their outputs stay as they were.  ``trunk`` says when the shared encoder
    trains: ``first_task`` (default; later tasks leave it and its BatchNorm statistics
    fixed), ``always`` (earlier tasks' outputs then drift), or ``never``.  ``gate_l1``
    adds gate_l1 * mean(gate) to the loss, pushing each task to open few channels."""

    def __init__(self, trunk="first_task", gate_l1=0.0):
        if trunk not in ("first_task", "always", "never"):
            raise ConfigError(f"GatingAdapters.trunk must be first_task, always or never, got {trunk!r}")
        self.trunk, self.gate_l1 = trunk, float(gate_l1)

    def setup(self, ct):
        if not ct.model.has_adapters:
            raise ConfigError(f"{ct.source}: continual.strategy GatingAdapters needs model: "
                              "{type: ContinualNet, adapter: {...}}")
        if ct.model.num_tasks < ct.scenario.num_tasks:
            raise ConfigError(f"{ct.source}: model.num_tasks is {ct.model.num_tasks} but the scenario "
                              f"has {ct.scenario.num_tasks} tasks")

    def before_task(self, ct, t):
        m = ct.model
        m.active_task = t
        train_trunk = self.trunk == "always" or (self.trunk == "first_task" and t == 0)
        _set_trainable(m.encoder, train_trunk)
        m.trunk_frozen = not train_trunk
        for k in range(m.num_tasks):
            _set_trainable(m.adapters[k], k == t)
            _set_trainable(m.heads[k], k == t)

    def loss(self, ct, trainer, batch):
        loss, _ = self.task_loss(ct, batch)
        logs = {"loss_task": loss}
        if self.gate_l1 > 0:
            h = ct.model.encoder(batch["image"])
            g = ct.model.adapters[ct.current_task].gate(h).mean()
            logs["gate_mean"] = g
            loss = loss + self.gate_l1 * g
        logs["loss"] = loss
        return loss, logs
