"""Generate PSSL pseudo labels: python tools/pssl_generate.py -c configs/pssl/<name>.yml"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._common import main_guard  # noqa: E402


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("-o", "--opts", nargs="+", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    import ppzoo  # noqa: F401  (registers components)
    from ppzoo.core.config import load_config
    from ppzoo.pssl.generate import Generator
    cfg = load_config(args.config, args.opts)
    return Generator(cfg).run()


if __name__ == "__main__":
    main()
