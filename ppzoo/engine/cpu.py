"""CPU math settings that Paddle leaves at slow defaults.

Paddle's dygraph runs its CPU kernels on one thread unless told otherwise, and the MKL it
ships picks a generic (non-AVX2) code path on AMD processors.  On a 2-core AMD EPYC both
together make a float32 matmul about 3-6x slower than it can be (see docs/engine.md,
"CPU speed").  ``tune_cpu`` fixes both; it never overrides a value the user has set.
"""
import os
import sys



def _launch_env(key):
    """``key`` as the process was started with: importing paddle sets OMP_NUM_THREADS=1 where
    it is unset, so os.environ no longer tells a user's value from paddle's."""
    try:
        with open("/proc/self/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                k, _, v = item.partition(b"=")
                if k.decode(errors="replace") == key:
                    return v.decode(errors="replace")
        return None
    except OSError:
        return os.environ.get(key) if "paddle" not in sys.modules else None

_AMD_MKL_PATH = "5"  # MKL_DEBUG_CPU_TYPE=5: MKL's AVX2 kernels, honoured by the MKL Paddle ships


def cpu_vendor():
    """``AuthenticAMD``, ``GenuineIntel``, ... from /proc/cpuinfo; "" where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def tune_cpu(threads=None):
    """Use ``threads`` CPU threads (default: ``PPZOO_CPU_THREADS``, else ``OMP_NUM_THREADS`` as
    set before paddle was imported, else the visible cores divided among data-parallel processes) and,
    on AMD, MKL's AVX2 path unless ``MKL_DEBUG_CPU_TYPE`` is already set.

    MKL reads ``MKL_DEBUG_CPU_TYPE`` at its first call, so this works after ``import paddle``
    as long as no matmul ran yet.  Returns the settings applied.
    """
    import paddle  # noqa: F401  (loads the core before setting its thread count)
    from paddle.base import core

    if threads is None:
        procs = int(os.environ.get("PADDLE_TRAINERS_NUM") or 1)  # data-parallel processes share cores
        threads = int(os.environ.get("PPZOO_CPU_THREADS") or _launch_env("OMP_NUM_THREADS")
                      or (os.cpu_count() or 1) // max(1, procs))
    threads = max(1, int(threads))
    core.set_num_threads(threads)
    applied = {"threads": threads}
    if cpu_vendor() == "AuthenticAMD" and "MKL_DEBUG_CPU_TYPE" not in os.environ:
        os.environ["MKL_DEBUG_CPU_TYPE"] = _AMD_MKL_PATH
        applied["MKL_DEBUG_CPU_TYPE"] = _AMD_MKL_PATH
    return applied
