"""Export trained weights for Paddle Inference.

    python tools/export.py -c CFG --weights output/<run>/best --save-dir output/<run>/inference

Writes ``model.json`` + ``model.pdiparams`` (Paddle 3 PIR) and ``deploy.yml`` (task,
inputs, val transforms, label names, reader and postprocess) into ``--save-dir``; that
folder is all ``tools/infer.py`` needs.  An existing export there is replaced; any other
non-empty folder is refused.
"""
import argparse


import _common  # noqa: F401
from _common import main_guard


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--weights", required=True, help=".pdparams file or checkpoint folder")
    p.add_argument("--save-dir", required=True, help="folder to write the exported model into")
    p.add_argument("-o", "--opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. export.postprocess.topk=3")
    p.add_argument("--check", action="store_true",
                   help="check the config, its data, weights and output folder; build the model; "
                        "write nothing (exit 0, or one line and exit 2)")
    return p.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import ppzoo  # noqa: F401  (registers every component)
    from ppzoo.core import load_config
    from ppzoo.engine.export import export_from_config

    cfg = load_config(args.config, args.opts)
    if args.check:
        from ppzoo.engine.check import run_check
        return run_check(cfg, "export", weights=args.weights, save_dir=args.save_dir)
    deploy = export_from_config(cfg, args.weights, args.save_dir)
    ins = ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in deploy["inputs"])
    print(f"exported {deploy['model']} ({deploy['task']}; inputs: {ins}) to {args.save_dir}")
    return deploy


if __name__ == "__main__":
    main()
