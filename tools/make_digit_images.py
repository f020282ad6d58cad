"""Write images of the digits val split as PNG files, to try tools/infer.py on.

    python tools/make_digit_images.py --out-dir DIR [--num 20] [--split val]

Files are named ``<index>_label<digit>.png``: 8x8 grayscale, exactly the pixels the
DigitsDataset gives the model.
"""
import argparse
import os

import _common  # noqa: F401
from _common import main_guard


@main_guard
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--num", type=int, default=20)
    p.add_argument("--split", default="val")
    args = p.parse_args(argv)
    from PIL import Image

    from ppzoo.datasets.classification import DigitsDataset

    ds = DigitsDataset(split=args.split)
    os.makedirs(args.out_dir, exist_ok=True)
    n = min(args.num, len(ds))
    for i in range(n):
        s = ds.load(i)
        img = Image.fromarray(s["image"][:, :, 0], mode="L")
        img.save(os.path.join(args.out_dir, f"{i:04d}_label{int(s['label'])}.png"))
    print(f"wrote {n} digit images to {args.out_dir}")


if __name__ == "__main__":
    main()
