"""Predict with an exported model: needs nothing but the folder tools/export.py wrote.

    python tools/infer.py --model-dir output/<run>/inference --input img.png|folder/
                          [--batch-size 8] [--topk 5] [--output results.jsonl|out_dir/]

A folder is read in sorted order and batched.  Prints one line per input; ``--output``
writes JSON lines (a ``.json``/``.jsonl`` file, or ``results.jsonl`` plus any files the
task saves in a folder).  An unreadable input stops with an error naming it and leaves
no partial output.
"""
import argparse


import _common  # noqa: F401
from _common import add_predictor_args, main_guard


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True, help="folder written by tools/export.py")
    p.add_argument("--input", required=True, help="an input file or a folder of them")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--topk", type=int, default=None, help="labels per input (classification)")
    p.add_argument("--output", default=None, help="JSON lines file (.json/.jsonl) or folder")
    add_predictor_args(p)
    p.add_argument("--no-mkldnn", action="store_true",
                   help="CPU without oneDNN: slower, outputs equal to the dygraph model's")
    return p.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import ppzoo  # noqa: F401  (registers every inference task)
    from ppzoo.engine.predictor import run_inference

    opts = {"topk": args.topk} if args.topk is not None else {}
    results = run_inference(args.model_dir, args.input, batch_size=args.batch_size,
                            output=args.output, device=args.device,
                            cpu_threads=args.cpu_threads, use_mkldnn=not args.no_mkldnn, **opts)
    if args.output:
        print(f"{len(results)} results written to {args.output}")
    return results


if __name__ == "__main__":
    main()
