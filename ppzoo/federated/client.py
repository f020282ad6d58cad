"""The one piece of client code: local training of one client through the engine's step.

``local_train`` loads the global weights into the trainer's one model, builds a fresh
client optimizer, and runs the client's local epochs or steps over its sample indices
with ``trainer.train_step`` (which calls ``trainer.forward_loss``): the engine's own step,
so any registered model, dataset, transforms, loss or method-specific ``forward_loss``
works unchanged.  Strategy terms enter as follows:

* FedProx / FedAT ``proximal_mu``: mu/2 ||w - w_global||^2 added to the step's loss;
* SCAFFOLD: the linear term <w, c - c_i> added to the loss, so every gradient is
  corrected by c - c_i; afterwards c_i+ = c_i - c + (x - y) / (K lr) (option II);
* FedDA: the client optimizer applies the server's global moments at every local
  iteration (``DecoupledOptimizer``); in full-batch rounds the client returns its exact
  full-batch gradient sum_b n_b/N_i grad L_b at the global weights instead of training.

The simulator (``FederatedTrainer``) and a Flower ClientApp both call this function.
"""
import collections

import numpy as np
import paddle

from ..core.builder import build_optimizer
from ..core.errors import ConfigError
from ..engine.trainer import seed_everything
from .strategies import ClientResult

LOCAL_KEYS = {"epochs", "steps", "batch_size", "optimizer", "shuffle", "drop_last"}


def get_weights(model):
    """The model's state (parameters and buffers) as named NumPy arrays, in state_dict order."""
    return collections.OrderedDict((k, np.array(v.numpy(), copy=True))
                                   for k, v in model.state_dict().items())


def set_weights(model, weights):
    """Copy named arrays into the model in place; a missing, extra or mis-shaped name is an error."""
    state = model.state_dict()
    missing = [k for k in state if k not in weights]
    extra = [k for k in weights if k not in state]
    if missing or extra:
        raise ConfigError(f"set_weights: the weights do not fit {type(model).__name__} "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, t in state.items():
        arr = np.asarray(weights[k])
        if tuple(arr.shape) != tuple(t.shape):
            raise ConfigError(f"set_weights: {k} has shape {arr.shape}, the model expects "
                              f"{tuple(t.shape)}")
        want = np.dtype(str(t.dtype).split(".")[-1])
        t.set_value(arr if arr.dtype == want else arr.astype(want))


def _to_tensors(batch):
    return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def _collate(dataset, idx):
    fn = getattr(dataset, "collate_fn", None)
    samples = [dataset[int(i)] for i in idx]
    if fn is not None:
        return _to_tensors(fn(samples))
    from paddle.io.dataloader.collate import default_collate_fn
    return _to_tensors(default_collate_fn(samples))


def client_batches(indices, local_cfg, seed):
    """The client's batches: a list of (local epoch, sample indices), from its seed only."""
    indices = np.asarray(indices, dtype=np.int64)
    bs = int(local_cfg.get("batch_size", 32))
    shuffle = bool(local_cfg.get("shuffle", True))
    drop_last = bool(local_cfg.get("drop_last", False))
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 2654435761])
    steps = local_cfg.get("steps")
    epochs = None if steps is not None else int(local_cfg.get("epochs", 1))
    out, e = [], 0
    if len(indices) == 0:
        return out
    while True:
        order = rng.permutation(indices) if shuffle else indices
        chunks = [order[i:i + bs] for i in range(0, len(order), bs)]
        if drop_last and len(chunks) > 1 and len(chunks[-1]) < bs:
            chunks = chunks[:-1]
        for c in chunks:
            out.append((e, c))
            if steps is not None and len(out) >= int(steps):
                return out
        e += 1
        if epochs is not None and e >= epochs:
            return out


def samples_of_work(num_examples, local_cfg):
    """How many samples one round of local work processes (for the virtual clock)."""
    bs = int(local_cfg.get("batch_size", 32))
    if local_cfg.get("steps") is not None:
        steps = int(local_cfg["steps"])
        full, rest = divmod(int(num_examples), bs)
        per_epoch = [bs] * full + ([rest] if rest and not local_cfg.get("drop_last") else [])
        if not per_epoch:
            return 0
        return sum(per_epoch[i % len(per_epoch)] for i in range(steps))
    return int(local_cfg.get("epochs", 1)) * int(num_examples)


class DecoupledOptimizer:
    """FedDA's client step: the global moments (m, v) of the server on every local
    iteration (see ``FedDA``), plain Python over the model's named parameters.  It keeps
    the sum of g and g^2 per parameter for the server.  ``grad_clip`` (``train.grad_clip``)
    clips g by the global norm before it is used or summed, the same clip
    (``paddle.nn.ClipGradByGlobalNorm``) the engine's optimizers apply to plain clients."""

    def __init__(self, named_params, lr, form, beta_1, beta_2, eps, m, v, grad_clip=None):
        self.params = [(k, p) for k, p in named_params if not p.stop_gradient]
        self.clip = paddle.nn.ClipGradByGlobalNorm(clip_norm=float(grad_clip)) if grad_clip else None
        self.lr, self.form = float(lr), form
        self.b1, self.b2, self.eps = float(beta_1), float(beta_2), float(eps)
        self.m = {k: paddle.to_tensor(np.asarray(m[k])) for k, _ in self.params}
        self.v = {k: paddle.to_tensor(np.asarray(v[k])) for k, _ in self.params}
        self.sum_g = {k: paddle.zeros_like(p) for k, p in self.params}
        self.sum_g2 = {k: paddle.zeros_like(p) for k, p in self.params}
        self.count = 0

    def get_lr(self):
        return self.lr

    @paddle.no_grad()
    def step(self):
        pairs = [(p, p.grad) for _, p in self.params if p.grad is not None]
        if self.clip is not None and pairs:
            pairs = self.clip(pairs)
        grads = {id(p): g for p, g in pairs}
        for k, p in self.params:
            if id(p) not in grads:
                continue
            g = grads[id(p)]
            self.sum_g[k] += g
            self.sum_g2[k] += g * g
            if self.form == "sgdm":
                d = self.b1 * self.m[k] + (1 - self.b1) * g
            elif self.form == "adam":
                d = (self.b1 * self.m[k] + (1 - self.b1) * g) / (
                    paddle.sqrt(self.b2 * self.v[k] + (1 - self.b2) * g * g) + self.eps)
            else:
                d = g / (paddle.sqrt(self.v[k] + g * g) + self.eps)
            p.set_value(p - self.lr * d)
        self.count += 1

    def clear_grad(self):
        for _, p in self.params:
            p.clear_gradient()

    def stats(self):
        n = max(self.count, 1)
        return ({k: (v / n).numpy() for k, v in self.sum_g.items()},
                {k: (v / n).numpy() for k, v in self.sum_g2.items()})


def _local_lr(local_cfg, client_config):
    opt = dict(local_cfg.get("optimizer") or {})
    if client_config.get("learning_rate") is not None:
        return float(client_config["learning_rate"])
    return float(opt.get("learning_rate", 0.01))


def full_batch_gradient(trainer, indices, local_cfg, seed):
    """sum_b (n_b / N_i) grad L_b(w) over all of the client's samples, in batches of
    ``local.batch_size`` (exactly grad of the mean loss over its data), at the model's
    current weights; returns named arrays of the trainable parameters."""
    model = trainer.model
    named = [(k, p) for k, p in model.named_parameters() if not p.stop_gradient]
    for _, p in named:
        p.clear_gradient()
    idx = np.asarray(indices, dtype=np.int64)
    bs = int(local_cfg.get("batch_size", 32))
    n = len(idx)
    model.train()
    for j, start in enumerate(range(0, n, bs)):
        chunk = idx[start:start + bs]
        seed_everything((int(seed) * 1000003 + j) % (2 ** 31))
        loss, _ = trainer.forward_loss(_collate(trainer.train_dataset, chunk))
        (loss * (len(chunk) / n)).backward()
    grads = collections.OrderedDict((k, p.grad.numpy().copy() if p.grad is not None
                                     else np.zeros(p.shape, np.float32)) for k, p in named)
    for _, p in named:
        p.clear_gradient()
    return grads


def local_train(trainer, global_weights, indices, client_config, local_cfg, seed):
    """One client's local work; returns a ``ClientResult`` (``weights``: its full weights
    after training).  ``client_config`` comes from the strategy, plus ``client_state`` (this
    client's own state, e.g. SCAFFOLD's c_i) and ``client_id`` where the runner has them."""
    cid = int(client_config.get("client_id", -1))
    indices = np.asarray(indices, dtype=np.int64)
    model = trainer.model
    set_weights(model, global_weights)
    fedda = client_config.get("fedda")
    if fedda and fedda.get("full_batch"):
        grads = full_batch_gradient(trainer, indices, local_cfg, seed)
        return ClientResult(cid, global_weights, len(indices),
                            {"loss": float("nan"), "steps": 0, "samples": len(indices),
                             "trained_samples": 0},
                            {"grad": grads})
    lr = _local_lr(local_cfg, client_config)
    named = list(model.named_parameters())
    grad_clip = (getattr(trainer, "train_cfg", None) or {}).get("grad_clip")
    if fedda:
        optimizer = DecoupledOptimizer(named, lr, fedda["form"], fedda["beta_1"], fedda["beta_2"],
                                       fedda["eps"], fedda["m"], fedda["v"], grad_clip=grad_clip)
    else:
        opt_cfg = dict(local_cfg.get("optimizer") or {"type": "SGD"})
        optimizer = build_optimizer(opt_cfg, named, lr, grad_clip=grad_clip)

    mu = float(client_config.get("proximal_mu") or 0.0)
    anchors = ({k: paddle.to_tensor(np.asarray(global_weights[k])) for k, p in named
                if not p.stop_gradient} if mu > 0 else None)
    scaffold_c = client_config.get("scaffold_c")
    c_i = None
    corr = None
    if scaffold_c is not None:
        c_i = (client_config.get("client_state") or {}).get("c_i") or collections.OrderedDict(
            (k, np.zeros_like(v)) for k, v in scaffold_c.items())
        corr = {k: paddle.to_tensor(np.asarray(scaffold_c[k], np.float32) - np.asarray(c_i[k], np.float32))
                for k in scaffold_c}
    params = dict(named)
    base_forward = trainer.forward_loss
    had_own = "forward_loss" in vars(trainer)

    def forward_loss(batch):
        loss, log_vars = base_forward(batch)
        if anchors is not None:
            prox = paddle.add_n([((params[k] - a) ** 2).sum() for k, a in anchors.items()])
            loss = loss + 0.5 * mu * prox
        if corr is not None:
            loss = loss + paddle.add_n([(params[k] * c).sum() for k, c in corr.items()])
        return loss, log_vars

    batches = client_batches(indices, local_cfg, seed)
    saved = (trainer.optimizer if hasattr(trainer, "optimizer") else None,
             getattr(trainer, "lr", None))
    trainer.optimizer, trainer.lr = optimizer, lr
    trainer.forward_loss = forward_loss
    losses, samples = [], 0
    try:
        last_epoch = None
        for k, (epoch, idx) in enumerate(batches):
            if epoch != last_epoch and hasattr(trainer.train_dataset, "set_epoch"):
                trainer.train_dataset.set_epoch((int(seed) + epoch) % (2 ** 31))
                last_epoch = epoch
            seed_everything((int(seed) * 1000003 + k) % (2 ** 31))
            trainer.train_step(_collate(trainer.train_dataset, idx))
            losses.append(trainer.log_vars.get("loss", float("nan")))
            samples += len(idx)
    finally:
        if had_own:
            trainer.forward_loss = base_forward
        else:
            del trainer.forward_loss  # back to the class's method
        trainer.optimizer, trainer.lr = saved
    weights = get_weights(model)
    steps = len(batches)
    metrics = {"loss": float(np.mean(losses)) if losses else float("nan"), "steps": steps,
               "samples": samples, "trained_samples": samples}
    extras, new_state = {}, None
    if scaffold_c is not None:
        scale = 1.0 / (max(steps, 1) * lr)
        c_new = collections.OrderedDict(
            (k, (np.asarray(c_i[k]) - np.asarray(scaffold_c[k])
                 + (np.asarray(global_weights[k]) - weights[k]) * scale).astype(weights[k].dtype))
            for k in scaffold_c)
        extras["delta_c"] = collections.OrderedDict((k, c_new[k] - np.asarray(c_i[k])) for k in c_new)
        new_state = {"c_i": c_new}
    if fedda:
        g, g2 = optimizer.stats()
        extras["grad_mean"] = collections.OrderedDict((k, g[k]) for k in g)
        extras["grad_sq_mean"] = collections.OrderedDict((k, g2[k]) for k in g2)
    if new_state is not None:
        extras["client_state"] = new_state
    return ClientResult(cid, weights, len(indices), metrics, extras)
