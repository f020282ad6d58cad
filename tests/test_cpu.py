"""tune_cpu: thread count and MKL's code path on AMD, never overriding the user."""
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

CHILD = r'''
import json, os, sys
sys.path.insert(0, {root!r})
from ppzoo.engine import cpu
cpu.cpu_vendor = lambda: {vendor!r}
applied = cpu.tune_cpu({threads})
from paddle.base import core
print(json.dumps({{"applied": applied, "mkl": os.environ.get("MKL_DEBUG_CPU_TYPE")}}))
'''


def run_child(vendor, threads=None, **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "MKL_DEBUG_CPU_TYPE", "PPZOO_CPU_THREADS", "PADDLE_TRAINERS_NUM")}
    base.update(env)
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT, vendor=vendor, threads=threads)],
                         capture_output=True, text=True, env=base, check=True)
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_amd_gets_avx2_path_and_all_cores():
    r = run_child("AuthenticAMD")
    assert r["mkl"] == "5" and r["applied"]["MKL_DEBUG_CPU_TYPE"] == "5"
    assert r["applied"]["threads"] == (os.cpu_count() or 1)


def test_intel_keeps_mkl_dispatch_and_user_values_win():
    assert run_child("GenuineIntel")["mkl"] is None
    r = run_child("AuthenticAMD", MKL_DEBUG_CPU_TYPE="2", OMP_NUM_THREADS="1")
    assert r["mkl"] == "2" and "MKL_DEBUG_CPU_TYPE" not in r["applied"]
    assert r["applied"]["threads"] == 1
    assert run_child("AuthenticAMD", PPZOO_CPU_THREADS="3")["applied"]["threads"] == 3
    assert run_child("AuthenticAMD", threads=1)["applied"]["threads"] == 1


def test_data_parallel_processes_split_the_cores():
    r = run_child("GenuineIntel", PADDLE_TRAINERS_NUM=str(2 * (os.cpu_count() or 1)))
    assert r["applied"]["threads"] == 1
