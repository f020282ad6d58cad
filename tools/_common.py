"""What every tool shares: the import path, and one-line errors instead of stack traces."""
import functools
import os
import sys
import warnings

warnings.filterwarnings("ignore", message="No ccache found")  # noise from importing paddle

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from ppzoo.core.errors import PPZooError  # noqa: E402
from ppzoo.engine.cpu import tune_cpu  # noqa: E402

tune_cpu()


def main_guard(fn):
    """Run ``fn``; a PPZooError (bad config, data or weights) prints one line and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PPZooError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
    return wrapper
