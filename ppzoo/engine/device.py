"""Which device a run uses: ``train.device`` (or a tool's ``--device``) -> ``paddle.set_device``.

Without the key Paddle's own default holds (the first GPU of a CUDA build, else the CPU).
Tensors the engine makes afterwards land on the current place, so the same config trains
on either.  A GPU asked of a Paddle build without CUDA is a ConfigError, not a crash deep
in the first kernel.
"""
import re

from ..core.errors import ConfigError

_DEVICE = re.compile(r"^(cpu|gpu(:\d+)?)$")


def check_device(value, where="train.device"):
    """One line naming the key and value when ``value`` is not cpu, gpu or gpu:N."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ConfigError(f"{where}={value!r}: expected cpu, gpu or gpu:N")
    return value


def select_device(value, where="train.device"):
    """``paddle.set_device(value)`` when given; returns the device in use ("cpu", "gpu:0")."""
    import paddle

    check_device(value, where)
    if value is not None:
        if value.startswith("gpu"):
            if not paddle.is_compiled_with_cuda():
                raise ConfigError(f"{where}={value!r}, but this Paddle build has no CUDA; "
                                  f"install paddlepaddle-gpu or use cpu")
            n = paddle.device.cuda.device_count()
            idx = int(value.split(":")[1]) if ":" in value else 0
            if idx >= n:
                raise ConfigError(f"{where}={value!r}, but {n} GPU(s) are visible")
        paddle.set_device(value)
    return paddle.get_device()


def on_gpu():
    import paddle

    return paddle.is_compiled_with_cuda() and paddle.get_device().startswith("gpu")
