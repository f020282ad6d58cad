"""PSSL's 1001-class weighted segmentation cross-entropy: forward + backward time of
``SegCrossEntropyLoss`` (Paddle's fused ``cross_entropy``) against the log-softmax form it
replaced (log_softmax over the channel axis + take_along_axis), on random logits.

    nice -n 5 /work/main/.venv/bin/python benchmarks/pssl_loss.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

PAGE = os.path.join(ROOT, "docs", "benchmarks", "pssl_loss.md")
CMD = "nice -n 5 /work/main/.venv/bin/python benchmarks/pssl_loss.py"


def log_softmax_form(logits, label, w, ignore):
    """The formula before the change (kept here only to time it)."""
    valid = (label != ignore).astype("float32")
    safe = paddle.where(label == ignore, paddle.zeros_like(label), label)
    logp = F.log_softmax(logits, axis=1)
    nll = -paddle.take_along_axis(logp, safe.unsqueeze(1), axis=1).squeeze(1)
    pw = valid * paddle.gather(w, safe.flatten()).reshape(safe.shape)
    return (nll * pw).sum() / paddle.clip(pw.sum(), min=1e-6)


def timed(fn, x, y, repeats):
    out = []
    for _ in range(repeats):
        x.clear_gradient() if x.grad is not None else None
        t = time.perf_counter()
        loss = fn(x, y)
        loss.backward()
        _ = x.grad.numpy()  # wait for the gradient
        out.append(time.perf_counter() - t)
    return float(loss), out


def main():
    import ppzoo  # noqa: F401
    from ppzoo.segmentation.losses import SegCrossEntropyLoss
    loss = SegCrossEntropyLoss(num_classes=1001, ignore_index=1001, background_index=1000, background_weight=0.1)
    w = loss.weights(1001)
    rows = []
    for hw, old_repeats in ((32, 1), (64, 0)):
        paddle.seed(0)
        x = paddle.randn([2, 1001, hw, hw])
        x.stop_gradient = False
        y = paddle.randint(0, 1002, [2, hw, hw])
        v_new, t_new = timed(lambda a, b: loss.single(a, b), x, y, 5)
        if old_repeats:
            v_old, t_old = timed(lambda a, b: log_softmax_form(a, b, w, 1001), x, y, old_repeats)
            old = f"{np.median(t_old):.1f} ({old_repeats} run) | {abs(v_new - v_old):.1e}"
        else:  # minutes of a shared CPU: not rerun at this size
            old = "not run (4x the 32x32 work) | -"
        rows.append(f"| 2x1001x{hw}x{hw} | {np.median(t_new):.3f} (min {min(t_new):.3f}, 5 runs) | {old} |")
        print(rows[-1], flush=True)
    body = (__doc__.split("\n\n")[0] + "\n\nBackground weight 0.1, ignore index 1001, labels uniform over "
            "0..1001. Seconds for one forward + backward (the CPU is shared with other jobs: the load "
            "average is on the Machine line).\n\n| logits | fused cross_entropy (s) | log-softmax form (s) | "
            "difference of the loss values |\n|---|---|---|---|\n" + "\n".join(rows))
    write_page(PAGE, "PSSL segmentation loss at 1001 classes", CMD, body)


if __name__ == "__main__":
    main()
