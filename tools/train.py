"""Train a model from a config: python tools/train.py -c CFG [--opts k=v ...] [--resume | --overwrite].

A run folder that holds a run is refused unless ``--resume`` (continue it from latest/) or
``--overwrite`` (move it aside to <folder>.old-<time> and start afresh) is given.  Ctrl-C
finishes the step, writes latest/ and exits 130.  ``--check`` says what the run would need
(data, downloads, earlier steps) and where it would write, and writes nothing.
"""
import argparse

import _common  # noqa: F401
from _common import add_device_arg, device_opts, main_guard


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. train.epochs=2 optimizer.learning_rate=0.1")
    p.add_argument("--resume", action="store_true", help="continue from <save-dir>/latest/")
    p.add_argument("--overwrite", action="store_true",
                   help="move a used run folder aside to <folder>.old-<time> and start afresh")
    p.add_argument("--save-dir", default=None, help="run directory (default output/<name>)")
    add_device_arg(p)
    p.add_argument("--check", action="store_true",
                   help="check the config, its data, weights and output folder; build the model; "
                        "write nothing (exit 0, or one line and exit 2)")
    return p.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import paddle.distributed as dist

    import ppzoo
    from ppzoo.core import load_config
    cfg = load_config(args.config, args.opts + device_opts(args))
    if args.check:
        from ppzoo.engine.check import run_check
        return run_check(cfg, "train", save_dir=args.save_dir, resume=args.resume,
                         overwrite=args.overwrite)
    if dist.get_world_size() > 1:
        dist.init_parallel_env()
    kwargs = {"overwrite": True} if args.overwrite else {}
    trainer = ppzoo.build_trainer(cfg, work_dir=args.save_dir, resume=args.resume, **kwargs)
    trainer.train()


if __name__ == "__main__":
    main()
