"""Evaluate weights on a config's val data without training.

    python tools/eval.py -c CFG --weights output/<run>/best [--opts k=v ...] [--output results.json]

``--weights`` is a ``.pdparams`` file or a checkpoint folder (``best/``, ``latest/``).
Prints every metric (and the per-class table of ClassificationReport) and, with
``--output``, writes them as JSON.  A val set without labels (a dataset whose
``has_labels`` is false, e.g. FSD-10's test array) is predicted instead, and the dataset
writes its predictions to ``--output`` (default ``submission.csv``).
"""
import argparse
import json
import os


import _common  # noqa: F401
from _common import add_device_arg, device_opts, main_guard


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--weights", required=True, help=".pdparams file or checkpoint folder")
    p.add_argument("-o", "--opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. eval.batch_size=128")
    p.add_argument("--output", default=None, help="write the metrics to this JSON file")
    add_device_arg(p)
    p.add_argument("--check", action="store_true",
                   help="check the config, its data, weights and output folder; build the model; "
                        "write nothing (exit 0, or one line and exit 2)")
    return p.parse_args(argv)


def _is_number(v):
    try:
        float(v)
        return not isinstance(v, (bool, str))
    except (TypeError, ValueError):
        return False


def _jsonable(v):
    """Metric values as JSON: numbers, strings (tables), arrays as lists, else their text."""
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        return v
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (list, tuple, dict)):
        return json.loads(json.dumps(v, default=str))
    return str(v)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import ppzoo  # noqa: F401  (registers every component)
    from ppzoo.core import ConfigError, load_config
    from ppzoo.engine.export import build_for_weights, load_weights, read_weights

    cfg = load_config(args.config, args.opts + device_opts(args))
    if args.output and os.path.isdir(args.output):
        raise ConfigError(f"--output {args.output} is a folder; name a .json file")
    if args.check:
        from ppzoo.engine.check import run_check
        return run_check(cfg, "eval", weights=args.weights, output=args.output)
    weights = read_weights(args.weights)  # a missing or unreadable file fails before the build
    trainer = build_for_weights(cfg)
    if trainer.val_loader is None:
        raise ConfigError(f"{args.config}: the config has no 'val_dataset' to evaluate on")
    if not trainer.metrics:
        raise ConfigError(f"{args.config}: the config lists no 'metrics'")
    file = load_weights(trainer.model, args.weights, state=weights)
    if getattr(trainer.val_dataset, "has_labels", True) is False:
        return _predict_unlabelled(trainer, args.output or "submission.csv", file)
    results = trainer.evaluate()
    print(f"weights: {file}")
    print(f"samples: {len(trainer.val_dataset)}")
    for k, v in results.items():
        if _is_number(v):
            print(f"{k}: {float(v):.4f}")
    for k, v in results.items():
        if not _is_number(v):
            print(f"{k}:\n{v}")
    if args.output:
        out = {"config": os.path.abspath(args.config), "weights": os.path.abspath(file),
               "num_samples": len(trainer.val_dataset),
               "metrics": {k: _jsonable(v) for k, v in results.items()}}
        parent = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(parent, exist_ok=True)
        tmp = f"{args.output}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(out, f, indent=1)
            os.replace(tmp, args.output)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        print(f"results written to {args.output}")
    return results


def _predict_unlabelled(trainer, output, weights):
    import numpy as np
    import paddle
    if not hasattr(trainer.val_dataset, "write_predictions"):
        from ppzoo.core import ConfigError
        raise ConfigError(f"{type(trainer.val_dataset).__name__} has no labels and cannot write predictions")
    trainer.model.eval()
    with paddle.no_grad():
        scores = [np.asarray(trainer.predict(b)) for b in trainer.val_loader]
    path = trainer.val_dataset.write_predictions(output, np.concatenate(scores))
    print(f"weights: {weights}")
    print(f"samples: {len(trainer.val_dataset)} (no labels: predictions written to {path})")
    return {"predictions": path}


if __name__ == "__main__":
    main()
