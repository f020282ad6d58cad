"""The ``segmentation`` inference task: an image -> class map and a colour mask PNG."""
import os

import numpy as np
from PIL import Image

from ..core.errors import DataError
from ..engine.predictor import INFER_TASKS, InferTask
from .datasets import CAMVID_PALETTE


def palette(n, given=None):
    """``given`` colours first, then a fixed pseudo-random colour per further class."""
    cols = [list(c) for c in (given or [])]
    rng = np.random.default_rng(12345)
    while len(cols) < n:
        cols.append(rng.integers(0, 256, 3).tolist())
    return np.asarray(cols[:n], np.uint8)


@INFER_TASKS.register(name="segmentation")
class SegmentationTask(InferTask):
    """Writes ``<name>_mask.png`` (class ids) and ``<name>_color.png`` at the input
    image's size; prints per-class pixel fractions."""
    onednn_supported = False  # Paddle 3.3's oneDNN path fails on the exported bilinear resize

    extensions = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        n = getattr(dataset, "num_classes", None) if dataset is not None else None
        given = CAMVID_PALETTE if type(dataset).__name__ == "CamVid" else None
        return {"reader": {"mode": "RGB"},
                "postprocess": {"palette": palette(int(n or 0), given).tolist() if n else None}}

    def read(self, path):
        from ..transforms import read_image
        img = read_image(path, self.reader.get("mode", "RGB"))
        return {"image": img, "orig_hw": img.shape[:2]}

    def postprocess(self, outputs, samples):
        out = np.asarray(outputs[0])
        if out.ndim == 4:
            out = out.argmax(1)
        if out.ndim != 3:
            raise DataError(f"segmentation expects outputs [batch, classes, H, W] or [batch, H, W], "
                            f"got {list(np.asarray(outputs[0]).shape)}")
        results = []
        for pred, s in zip(out, samples):
            h, w = s["orig_hw"]
            pred = np.asarray(Image.fromarray(pred.astype(np.uint8)).resize((w, h), Image.NEAREST))
            cnt = np.bincount(pred.ravel())
            fr = {self.label_name(c): round(float(v) / pred.size, 4) for c, v in enumerate(cnt) if v}
            results.append({"pixel_fractions": fr, "_pred": pred})
        return results

    def format(self, result):
        top = sorted(result["pixel_fractions"].items(), key=lambda kv: -kv[1])[:5]
        return f"{result['file']}: " + ", ".join(f"{k} {v:.2f}" for k, v in top)

    def save(self, result, path, out_dir):
        pred = result.pop("_pred")
        name = os.path.splitext(os.path.basename(path))[0]
        pal = self.post.get("palette")
        pal = np.asarray(pal, np.uint8) if pal else palette(int(pred.max()) + 1)
        if pred.max() >= len(pal):
            pal = np.concatenate([pal, palette(int(pred.max()) + 1)[len(pal):]])
        Image.fromarray(pred).save(os.path.join(out_dir, name + "_mask.png"))
        Image.fromarray(pal[pred]).save(os.path.join(out_dir, name + "_color.png"))
        result["mask"], result["color"] = name + "_mask.png", name + "_color.png"
