"""The regularizers; each returns (step loss, values to log) for one batch."""
import copy
import types

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.errors import ConfigError
from ..core.registry import Registry

REGULARIZERS = Registry("regularizers")


def pretrained_parameters(model):
    """(name, parameter) of the pre-trained part (the encoder); the rest is the new head."""
    enc = getattr(model, "encoder", None)
    if enc is None:
        raise ConfigError(f"{type(model).__name__} has no `encoder`: the regularizer needs to know "
                          "which weights are pre-trained")
    return [(f"encoder.{n}", p) for n, p in enc.named_parameters()]


class Regularizer:
    """Base: plain task loss.  ``setup(trainer)`` runs once, after the pretrained weights load."""

    def setup(self, trainer):
        pass

    def check_optimizer(self, trainer):
        """Runs once the optimizer is built (L2-SP checks its weight decay)."""

    def after_step(self, trainer):
        """Runs after each optimizer step (SMART updates its momentum teacher)."""

    def state_dict(self):
        """Tensors to keep in checkpoints (SMART's teacher); ``{}`` for none."""
        return {}

    def load_state_dict(self, state):
        pass

    def task(self, trainer, out, label):
        return trainer.loss_fn(out, label)

    def __call__(self, trainer, batch):
        inputs, label = trainer.inputs_of(batch), batch[trainer.label_key]
        out = trainer.train_model(*inputs)
        loss = self.task(trainer, out, label)
        return loss, {"loss": loss}


@REGULARIZERS.register()
class NoRegularizer(Regularizer):
    """Plain fine-tuning."""


def derangement(n):
    """A random permutation of ``range(n)`` without fixed points (a random ``n``-cycle,
    Sattolo's construction from a uniform permutation); ``n >= 2``."""
    order = paddle.randperm(n)
    perm = paddle.zeros([n], "int64")
    return paddle.scatter(perm, order, paddle.roll(order, -1))


@REGULARIZERS.register()
class LNSR(Regularizer):
    """Layerwise noise stability regularization.

    Noise ``eps`` is added to the output of layer ``layer`` (0 = the embeddings); the
    layers above run again on the noisy state and the penalty is
    ``weight * sum_j layer_weights[j] * ||h_j(x + eps) - h_j(x)||^2`` over the layers above
    (mean over tokens, sum over features) plus ``output_weight * ||f(x + eps) - f(x)||^2``
    on the model output.  ``sigma`` is the noise norm relative to each token's hidden-state
    norm.  ``noise: gaussian`` draws isotropic Gaussian noise; ``noise: manifold`` points it
    at another example of the batch (``h_other - h``, the other example drawn by a random
    derangement, so no example is paired with itself), a direction inside the data
    manifold; a batch of one falls back to Gaussian noise.
    ``match_dropout`` runs both passes of the upper layers with the same dropout masks, so
    the term measures the noise alone (and is exactly zero without noise).
    """

    def __init__(self, weight=1.0, sigma=0.05, layer=0, layer_weights=None, output_weight=1.0,
                 noise="gaussian", match_dropout=True):
        if noise not in ("gaussian", "manifold"):
            raise ConfigError(f"regularizer.noise must be gaussian or manifold, got {noise!r}")
        self.weight, self.sigma, self.layer = float(weight), float(sigma), int(layer)
        self.layer_weights = layer_weights
        self.output_weight = float(output_weight)
        self.noise, self.match_dropout = noise, bool(match_dropout)

    def setup(self, trainer):
        n = trainer.model.num_layers
        if not 0 <= self.layer < n:
            raise ConfigError(f"regularizer.layer must be in [0, {n - 1}] (the model has {n} layers), "
                              f"got {self.layer}")
        above = n - self.layer
        if self.layer_weights is None:
            self.layer_weights = [1.0] * above
        if len(self.layer_weights) != above:
            raise ConfigError(f"regularizer.layer_weights needs {above} values (layers "
                              f"{self.layer + 1}..{n}), got {len(self.layer_weights)}")

    def make_noise(self, h):
        if self.noise == "gaussian" or h.shape[0] < 2:  # a batch of one has no other example
            direction = paddle.randn(h.shape, dtype=h.dtype)
        else:
            direction = (paddle.gather(h, derangement(h.shape[0])) - h).detach()
        scale = h.detach().norm(axis=-1, keepdim=True) / (direction.norm(axis=-1, keepdim=True) + 1e-12)
        return self.sigma * scale * direction

    def penalty(self, model, hs, mask, input_ids, out, noise=None):
        """The noise-stability term for clean hidden states ``hs`` and clean output ``out``."""
        b = self.layer
        h_noisy = hs[b] + (self.make_noise(hs[b]) if noise is None else noise)
        noisy = model.run_from(h_noisy, mask, b)
        out_noisy = model.head(noisy[-1], input_ids)
        valid = (input_ids != model.pad_token_id).astype(h_noisy.dtype).unsqueeze(-1)
        total = 0.0
        for w, clean, moved in zip(self.layer_weights, hs[b + 1:], noisy):
            sq = (((moved - clean) ** 2) * valid).sum(axis=[1, 2]) / valid.sum(axis=[1, 2])
            total = total + float(w) * sq.mean()
        diff = (out_noisy - out) ** 2
        total = total + self.output_weight * diff.reshape([diff.shape[0], -1]).sum(axis=1).mean()
        return total

    def __call__(self, trainer, batch):
        model = trainer.model
        inputs, label = trainer.inputs_of(batch), batch[trainer.label_key]
        input_ids = inputs[0]
        b = self.layer
        mask = model.attention_mask(input_ids)
        h = model.embed(*inputs)
        hs = [h] + model.run_from(h, mask, 0, end=b)  # layers 1..b, each once
        seed = int(paddle.randint(0, 2 ** 31 - 1, [1]).item()) if self.match_dropout else None
        if seed is not None:
            paddle.seed(seed)
        hs = hs + model.run_from(hs[b], mask, b)
        out = model.head(hs[-1], input_ids)
        loss = self.task(trainer, out, label)
        noise = self.make_noise(hs[b])
        if seed is not None:
            paddle.seed(seed)
        reg = self.penalty(model, hs, mask, input_ids, out, noise)
        return loss + self.weight * reg, {"loss": loss + self.weight * reg, "task": loss, "lnsr": reg}


def _weight_decay_of(optimizer):
    """The optimizer's weight-decay coefficient toward zero (0.0 when it has none)."""
    wd = getattr(optimizer, "_weight_decay", None)
    if wd is None:
        return 0.0
    if isinstance(wd, (int, float)):
        return float(wd)
    return float(getattr(wd, "_coeff", getattr(wd, "coeff", 0.0)) or 0.0)


@REGULARIZERS.register()
class L2SP(Regularizer):
    """``alpha/2 * ||w - w_pretrained||^2`` on pre-trained weights + ``beta/2 * ||w||^2`` on the
    new head (Li et al. 2018, eq. 3).  The L2-SP penalty *replaces* weight decay toward zero,
    so by default the optimizer must have none (``optimizer.weight_decay: 0``);
    ``allow_weight_decay: true`` keeps it anyway."""

    def __init__(self, alpha=0.1, beta=0.01, allow_weight_decay=False):
        self.alpha, self.beta = float(alpha), float(beta)
        self.allow_weight_decay = bool(allow_weight_decay)

    def setup(self, trainer):
        self.start = {n: p.detach().clone() for n, p in pretrained_parameters(trainer.model)}

    def check_optimizer(self, trainer):
        wd = _weight_decay_of(trainer.optimizer)
        if wd and not self.allow_weight_decay:
            raise ConfigError(f"{getattr(trainer, 'source', '<config>')}: L2SP replaces weight decay "
                              f"toward zero, but optimizer.weight_decay is {wd:g} (AdamW's default is "
                              "0.01); set optimizer.weight_decay: 0.0, or regularizer."
                              "allow_weight_decay: true to keep both")

    def penalty(self, model):
        params = dict(model.named_parameters())
        sp = sum(((params[n] - w0) ** 2).sum() for n, w0 in self.start.items())
        head = [p for n, p in params.items() if n not in self.start]
        reg = self.alpha / 2 * sp
        if self.beta and head:
            reg = reg + self.beta / 2 * sum((p ** 2).sum() for p in head)
        return reg

    def __call__(self, trainer, batch):
        loss, logs = super().__call__(trainer, batch)
        reg = self.penalty(trainer.model)
        return loss + reg, {"loss": loss + reg, "task": loss, "l2sp": reg}


def _mixout_linear_forward(self, x):
    w = self.weight
    p = self._mixout_p
    if self.training and p > 0:
        # Paddle's Linear weight is [in, out]: one draw per input unit masks a row
        shape = [w.shape[0], 1] if self._mixout_mask == "unit" else w.shape
        keep = (paddle.rand(shape) >= p).astype(w.dtype)
        w0 = self._mixout_target
        w = (keep * w + (1 - keep) * w0 - p * w0) / (1 - p)
    return F.linear(x, w, self.bias)


@REGULARIZERS.register()
class Mixout(Regularizer):
    """Mixout(w_target) of Lee et al. 2020, as their reference code applies it.

    While training, each input unit of a Linear layer (a row of Paddle's ``[in, out]``
    weight, like dropout of that unit) has its weights replaced by their target values with
    probability ``p``, and the result is rescaled so its expectation is the current weight;
    evaluation uses the weights unchanged.  The target is each layer's weight at the start
    of fine-tuning: the pre-trained weight in the encoder, the initial random weight in the
    new head.  ``p: 0`` is plain fine-tuning.

    - ``mask: unit`` (reference) draws one Bernoulli per input unit; ``mask: element`` one
      per weight element.
    - ``scope: all`` (reference) converts every Linear of the model including the head;
      ``scope: encoder`` only the pre-trained encoder's.
    - ``dropout: 0.0`` (reference) sets every dropout of the model to that rate (mixout
      replaces dropout); ``null`` leaves the model's dropout as configured.
    """

    def __init__(self, p=0.9, mask="unit", scope="all", dropout=0.0):
        if not 0 <= float(p) < 1:
            raise ConfigError(f"regularizer.p must be in [0, 1), got {p}")
        if mask not in ("unit", "element"):
            raise ConfigError(f"regularizer.mask must be unit or element, got {mask!r}")
        if scope not in ("all", "encoder"):
            raise ConfigError(f"regularizer.scope must be all or encoder, got {scope!r}")
        if dropout is not None and not 0 <= float(dropout) < 1:
            raise ConfigError(f"regularizer.dropout must be in [0, 1) or null, got {dropout}")
        self.p, self.mask, self.scope = float(p), mask, scope
        self.dropout = None if dropout is None else float(dropout)

    def setup(self, trainer):
        model = trainer.model
        root = model if self.scope == "all" else model.encoder
        self.layers = []
        for layer in root.sublayers():
            if isinstance(layer, nn.Linear):
                layer._mixout_p, layer._mixout_mask = self.p, self.mask
                layer._mixout_target = layer.weight.detach().clone()
                layer.forward = types.MethodType(_mixout_linear_forward, layer)
                self.layers.append(layer)
        if not self.layers:
            raise ConfigError(f"Mixout found no Linear layer in the model ({self.scope})")
        if self.dropout is not None:
            for layer in model.sublayers():
                if isinstance(layer, nn.Dropout):
                    layer.p = self.dropout
                elif isinstance(layer, nn.MultiHeadAttention):
                    layer.dropout = self.dropout


@REGULARIZERS.register()
class SMART(Regularizer):
    """Smoothness-inducing adversarial regularization with Bregman proximal point optimisation
    (Jiang et al. 2020).  Loss = task + ``lambda_s`` R_s + ``mu`` D_breg.

    ``R_s``: the output divergence (symmetric KL; squared error for regression) between the
    clean input and its embedding perturbed by ``steps`` ascent steps of size ``step_size``
    from Gaussian noise of std ``noise_std``.  ``projection: normalize`` (the authors' code,
    mt-dnn and its port smart-pytorch) divides the perturbation by its per-token inf-norm
    after each step (``epsilon`` only guards the division); ``projection: clip`` instead
    clips every coordinate to ``[-epsilon, epsilon]`` (the ε-ball of the paper's text).

    ``D_breg``: the divergence of the outputs from those of a momentum copy of the model
    (the teacher, run in eval mode), updated after each optimizer step as
    ``teacher = beta * teacher + (1 - beta) * model``; it is saved in checkpoints.
    """

    def __init__(self, lambda_s=1.0, mu=1.0, epsilon=1e-6, noise_std=1e-5, step_size=1e-3, steps=1,
                 beta=0.99, projection="normalize"):
        if projection not in ("normalize", "clip"):
            raise ConfigError(f"regularizer.projection must be normalize or clip, got {projection!r}")
        self.lambda_s, self.mu = float(lambda_s), float(mu)
        self.epsilon, self.noise_std, self.step_size = float(epsilon), float(noise_std), float(step_size)
        self.steps, self.beta, self.projection = int(steps), float(beta), projection

    def setup(self, trainer):
        self.ema = copy.deepcopy(trainer.model) if self.mu > 0 else None
        if self.ema is not None:
            self.ema.eval()
            for p in self.ema.parameters():
                p.stop_gradient = True

    def adversarial(self, model, emb, mask, input_ids, target):
        """(initial noise, adversarial perturbation) of the embedding output ``emb``."""
        delta0 = paddle.randn(emb.shape, dtype=emb.dtype) * self.noise_std
        delta = delta0
        for _ in range(self.steps):
            delta = delta.detach()
            delta.stop_gradient = False
            out = model.head(model.run_from(emb.detach() + delta, mask, 0)[-1], input_ids)
            div = model.divergence(out, target.detach()).mean()
            (grad,) = paddle.grad(div, delta)
            if self.projection == "normalize":
                delta = delta + self.step_size * grad
                delta = delta / (delta.abs().max(axis=-1, keepdim=True) + self.epsilon)
            else:
                grad = grad / (grad.abs().max(axis=-1, keepdim=True) + 1e-12)
                delta = (delta + self.step_size * grad).clip(-self.epsilon, self.epsilon)
        return delta0, delta.detach()

    @paddle.no_grad()
    def update_ema(self, model):
        for p_ema, p in zip(self.ema.parameters(), model.parameters()):
            p_ema.set_value(self.beta * p_ema + (1 - self.beta) * p.detach())

    def after_step(self, trainer):
        if self.ema is not None:
            self.update_ema(trainer.model)

    def state_dict(self):
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_state_dict(self, state):
        if self.ema is not None and state.get("ema"):
            self.ema.set_state_dict(state["ema"])

    def __call__(self, trainer, batch):
        model = trainer.model
        inputs, label = trainer.inputs_of(batch), batch[trainer.label_key]
        input_ids = inputs[0]
        mask = model.attention_mask(input_ids)
        emb = model.embed(*inputs)
        out = model.head(model.run_from(emb, mask, 0)[-1], input_ids)
        loss = self.task(trainer, out, label)
        total, logs = loss, {"task": loss}
        if self.lambda_s > 0:
            _, delta = self.adversarial(model, emb, mask, input_ids, out)
            out_adv = model.head(model.run_from(emb + delta, mask, 0)[-1], input_ids)
            r_s = model.divergence(out_adv, out.detach()).mean()
            total, logs["smart_adv"] = total + self.lambda_s * r_s, r_s
        if self.ema is not None:
            self.ema.eval()
            with paddle.no_grad():
                out_ema = self.ema(*inputs)
            d_breg = model.divergence(out, out_ema).mean()
            total, logs["smart_breg"] = total + self.mu * d_breg, d_breg
        logs["loss"] = total
        return total, logs
