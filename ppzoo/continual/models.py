"""Encoders and the continual classifier (shared encoder, optional gated adapters per task).

``ContinualNet`` splits a classifier into what the representation protocol probes (the
encoder's features) and what it does not (the linear head).  With ``adapter:`` set, every
task ``k`` has its own bottleneck adapter ``A_k`` and gate ``g_k`` on the encoder's pooled
features and its own head:

    h   = encoder(x)
    z_k = h + g_k * A_k(h)          g_k = sigmoid(s_k)      (gate: vector)
                                    g_k = sigmoid(G_k h + c_k) (gate: input)
    logits_k = head_k(z_k)

``A_k``'s up-projection starts at zero, so a new task starts from ``z_k = h``.  Which
parts train in which task is set by the ``GatingAdapters`` strategy
(``ppzoo/continual/strategies.py``).
"""
import paddle
import paddle.nn as nn
from paddle.vision.models.resnet import BasicBlock

from ..core.builder import BACKBONES, MODELS, build_model
from ..core.errors import ConfigError
from ..models.classification.cnn import SmallCNN


@BACKBONES.register()
class ConvEncoder(nn.Layer):
    """The conv-BN-ReLU blocks of ``SmallCNN`` and its global average pool; ``out_dim`` features."""

    def __init__(self, in_channels=3, width=32, depth=2, norm="bn"):
        super().__init__()
        cnn = SmallCNN(num_classes=1, in_channels=in_channels, width=width, depth=depth, norm=norm)
        self.features, self.pool = cnn.features, cnn.pool
        self.out_dim = cnn.classifier.weight.shape[0]

    def forward(self, x):
        return self.pool(self.features(x)).flatten(1)


@BACKBONES.register()
class ResNetEncoder(nn.Layer):
    """A CIFAR-style ResNet (3x3 stem, ``len(widths)`` stages of ``blocks`` BasicBlocks,
    stride 2 from the second stage on, global average pool), sized for a CPU."""

    def __init__(self, in_channels=3, widths=(16, 32, 64), blocks=1):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or int(blocks) < 1:
            raise ConfigError(f"ResNetEncoder needs widths and blocks >= 1, got {widths}, {blocks}")
        self.stem = nn.Sequential(nn.Conv2D(in_channels, widths[0], 3, padding=1, bias_attr=False),
                                  nn.BatchNorm2D(widths[0]), nn.ReLU())
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            for b in range(int(blocks)):
                down = None
                if b == 0 and (stride != 1 or c != w):
                    down = nn.Sequential(nn.Conv2D(c, w, 1, stride=stride, bias_attr=False),
                                         nn.BatchNorm2D(w))
                layers.append(BasicBlock(c, w, stride=stride if b == 0 else 1, downsample=down))
                c = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.out_dim = c

    def forward(self, x):
        return self.pool(self.layers(self.stem(x))).flatten(1)


class GatedAdapter(nn.Layer):
    """``g * A(h)`` with ``A`` a bottleneck MLP (up-projection zero at start) and ``g`` a gate."""

    def __init__(self, dim, bottleneck=32, gate="vector", gate_init=0.0):
        super().__init__()
        if gate not in ("vector", "input", "none"):
            raise ConfigError(f"ContinualNet.adapter.gate must be vector, input or none, got {gate!r}")
        self.down = nn.Linear(dim, int(bottleneck))
        self.up = nn.Linear(int(bottleneck), dim,
                            weight_attr=nn.initializer.Constant(0.0), bias_attr=nn.initializer.Constant(0.0))
        self.gate_kind = gate
        if gate == "vector":
            self.gate_logit = self.create_parameter([dim], default_initializer=nn.initializer.Constant(gate_init))
        elif gate == "input":
            self.gate_fc = nn.Linear(dim, dim, bias_attr=nn.initializer.Constant(gate_init))

    def gate(self, h):
        if self.gate_kind == "vector":
            return nn.functional.sigmoid(self.gate_logit).unsqueeze(0)
        if self.gate_kind == "input":
            return nn.functional.sigmoid(self.gate_fc(h))
        return paddle.ones([1, h.shape[1]], h.dtype)

    def forward(self, h):
        return self.gate(h) * self.up(nn.functional.relu(self.down(h)))


@MODELS.register()
class ContinualNet(nn.Layer):
    """``encoder`` (a BACKBONES entry with ``out_dim``) + linear head over ``num_classes``.

    ``adapter: {bottleneck, gate: vector|input|none, gate_init, probe: concat|last|trunk}``
    adds one gated adapter and one head per task (``num_tasks`` of them).  ``forward(x,
    task)`` gives task ``task``'s path (default: the latest task trained, ``active_task``).
    """

    def __init__(self, encoder, num_classes, num_tasks=1, adapter=None):
        super().__init__()
        self.encoder = build_model(encoder) if isinstance(encoder, dict) else encoder
        dim = getattr(self.encoder, "out_dim", None)
        if dim is None:
            raise ConfigError("ContinualNet.encoder must have an out_dim (e.g. ConvEncoder, ResNetEncoder)")
        self.num_classes, self.num_tasks, self.feature_dim = int(num_classes), int(num_tasks), int(dim)
        self.active_task = 0
        self.trunk_frozen = False
        self.adapter_cfg = dict(adapter) if adapter else None
        if self.adapter_cfg is not None:
            cfg = dict(self.adapter_cfg)
            self.probe_mode = cfg.pop("probe", "concat")
            if self.probe_mode not in ("concat", "last", "trunk"):
                raise ConfigError(f"ContinualNet.adapter.probe must be concat, last or trunk, got {self.probe_mode!r}")
            unknown = set(cfg) - {"bottleneck", "gate", "gate_init"}
            if unknown:
                raise ConfigError(f"ContinualNet.adapter: unknown keys {sorted(unknown)} "
                                  "(known: bottleneck, gate, gate_init, probe)")
            self.adapters = nn.LayerList([GatedAdapter(dim, **cfg) for _ in range(self.num_tasks)])
            self.heads = nn.LayerList([nn.Linear(dim, self.num_classes) for _ in range(self.num_tasks)])
        else:
            self.head = nn.Linear(dim, self.num_classes)

    @property
    def has_adapters(self):
        return self.adapter_cfg is not None

    def train(self):
        super().train()
        if self.trunk_frozen:  # a frozen encoder keeps its BatchNorm statistics too
            self.encoder.eval()
        return self

    def task_features(self, h, task):
        if not self.has_adapters:
            return h
        return h + self.adapters[task](h)

    def head_of(self, task):
        return self.heads[task] if self.has_adapters else self.head

    def forward(self, x, task=None):
        task = self.active_task if task is None else int(task)
        h = self.encoder(x)
        return self.head_of(task)(self.task_features(h, task))

    def probe_features(self, x, upto_task):
        """The representation the probes read after training tasks ``0..upto_task``."""
        h = self.encoder(x)
        if not self.has_adapters or self.probe_mode == "trunk" or upto_task < 0:
            return h
        if self.probe_mode == "last":
            return self.task_features(h, upto_task)
        return paddle.concat([h] + [self.adapters[k](h) for k in range(upto_task + 1)], axis=1)


@BACKBONES.register()
class IdentityEncoder(nn.Layer):
    """Flattens the input: the representation is the input itself (``out_dim`` features)."""

    def __init__(self, out_dim):
        super().__init__()
        self.out_dim = int(out_dim)

    def forward(self, x):
        return x.flatten(1)
