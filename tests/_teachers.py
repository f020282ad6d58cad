"""The small exported teacher the EDL-Dist service tests serve."""
import os

import paddle

from ppzoo.core.config import load_config
from ppzoo.engine.export import build_for_weights, export_from_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def export_digits_teacher(work):
    """An untrained, seeded SmallCNN teacher exported like tools/export.py into
    ``work/inference``; returns ``(trainer, config, export folder)``."""
    cfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                      ["model.width=8", f"output_dir={work}", "seed=3"])
    tr = build_for_weights(cfg)
    weights = os.path.join(str(work), "w.pdparams")
    paddle.save(tr.model.state_dict(), weights)
    out = os.path.join(str(work), "inference")
    export_from_config(cfg, weights, out)
    return tr, cfg, out
