import paddle.nn as nn

from ...core.builder import MODELS
from ...core.errors import ConfigError


@MODELS.register()
class SmallCNN(nn.Layer):
    """A few conv-BN-ReLU blocks and a linear head: the CPU-sized classifier of tests and
    the quick start.  ``features``/``classifier`` are split so CAM-style explainers and
    fine-tuning with a new head can reach them."""

    def __init__(self, num_classes=10, in_channels=3, width=32, depth=2, dropout=0.0, norm="bn"):
        super().__init__()
        if norm not in ("bn", "none"):
            raise ConfigError(f"SmallCNN.norm must be 'bn' or 'none', got {norm!r}")

        def conv(cin, cout):
            if norm == "bn":
                return [nn.Conv2D(cin, cout, 3, padding=1, bias_attr=False), nn.BatchNorm2D(cout), nn.ReLU()]
            return [nn.Conv2D(cin, cout, 3, padding=1), nn.ReLU()]

        layers, c = [], in_channels
        for i in range(depth):
            out = width * (2 ** i)
            layers += conv(c, out) + conv(out, out)
            if i < depth - 1:
                layers.append(nn.MaxPool2D(2))
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.classifier = nn.Linear(c, num_classes)
        self.num_classes = num_classes

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)
