"""What every tool shares: the import path, and one-line errors instead of stack traces."""
import functools
import os
import signal
import sys
import threading
import warnings

warnings.filterwarnings("ignore", message="No ccache found")  # noise from importing paddle

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from ppzoo.core.errors import PPZooError  # noqa: E402
from ppzoo.engine.cpu import tune_cpu  # noqa: E402



def _interrupted(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_interrupt_handlers():
    """SIGTERM and SIGINT raise KeyboardInterrupt, which ``main_guard`` turns into one line
    and exit 130.  Importing paddle installs handlers that print Paddle's FatalError dump
    instead, so these go in after that import; ``Trainer.train()`` installs its own (finish
    the step, save) while it runs and restores these afterwards.  Returns the previous ones
    (none outside the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _interrupted) for s in (signal.SIGTERM, signal.SIGINT)}


# a tool run as a script owns its process: its handlers hold from before paddle is imported;
# a process that imports a tool (tests) gets them only while the tool's main runs
_TOOL_PROCESS = os.path.dirname(os.path.abspath(sys.argv[0] or "")) == os.path.dirname(os.path.abspath(__file__))
if _TOOL_PROCESS:
    install_interrupt_handlers()
tune_cpu()  # imports paddle
if _TOOL_PROCESS:
    install_interrupt_handlers()


def main_guard(fn):
    """Run ``fn`` and turn what a user can fix into one line on stderr:

    a PPZooError (bad config, data, weights, a used run folder) or an OSError (a path that
    cannot be read or written) exits 2; an interrupt (Ctrl-C, SIGTERM) exits 130."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = install_interrupt_handlers()
        try:
            return fn(*args, **kwargs)
        except PPZooError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(getattr(err, "exit_code", 2))
        except OSError as err:
            print(f"error: {describe_os_error(err)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as err:
            by = f" by {err.args[0]}" if err.args and str(err.args[0]).startswith("SIG") else ""
            print(f"error: interrupted{by}", file=sys.stderr)
            sys.exit(130)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    return wrapper


def describe_os_error(err):
    """``<what went wrong>: <path>`` for an OSError, with both paths of a rename."""
    what = err.strerror or str(err) or type(err).__name__
    paths = [p for p in (err.filename, getattr(err, "filename2", None)) if p]
    return f"{what}: {' -> '.join(map(str, paths))}" if paths else what


def add_predictor_args(parser):
    """The options of every tool that runs an exported model through Paddle Inference."""
    parser.add_argument("--device", default=None, help="cpu, gpu or gpu:N (default: gpu if available)")
    parser.add_argument("--cpu-threads", type=int, default=None, help="math library threads on the CPU")


def add_device_arg(parser):
    """``--device cpu|gpu|gpu:N`` of the tools that train or evaluate: sets ``train.device``."""
    parser.add_argument("--device", default=None,
                        help="cpu, gpu or gpu:N (sets train.device; default: the config's, "
                             "else Paddle's default: gpu when this build has CUDA)")


def device_opts(args):
    """The ``--opts`` entry that ``--device`` stands for (none when not given)."""
    device = getattr(args, "device", None)
    return [f"train.device={device}"] if device else []
