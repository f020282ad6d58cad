"""The project's private Ray on a busy machine: Ray's own start-up waits (the driver's 30 s
for the raylet to register, the raylet's for its agents and workers) are raised to
``PPZOO_RAY_START_TIMEOUT_S``, and a start that still fails is one line naming it.  Load
is simulated, not waited for: the raylet "registers" only at the 4th look at the GCS while
Ray's wait loop sees 40 s pass between looks (as at load 30 on 2 cores)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("ray")

from ppzoo.core.errors import ConfigError  # noqa: E402
from ppzoo.distill import raystart  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

_SCRIPT = textwrap.dedent('''
    import json, os, sys, time, types
    import ray, ray._private.node as node, ray._private.services as services
    from ppzoo.distill.pool import init_ray
    from ppzoo.core.errors import PPZooError
    out = {}
    real = services.get_node
    # 1. a raylet that never registers, with a 2 s budget: one line naming the variable
    def never(addr, nid):
        raise RuntimeError("node not found")
    services.get_node = never
    try:
        init_ray(None, num_cpus=1)
        out["never"] = "started"
    except PPZooError as err:
        out["never"] = [type(err).__name__, str(err)]
    except Exception as err:
        out["never"] = ["not one line", repr(err)[:300]]
    from ppzoo.distill.raystart import descendants
    out["left"] = sorted(n for _, n in descendants(os.getpid()).values())
    # 2. a raylet that registers at the 4th look, 40 s apart on Ray's clock: it starts
    looks = []
    def slow(addr, nid):
        looks.append(1)
        if len(looks) <= 3:
            raise RuntimeError("node not found")
        return real(addr, nid)
    services.get_node = slow
    clock = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if k[0] != "_"})
    now = [time.monotonic()]
    def monotonic():
        now[0] += 40.0
        return now[0]
    clock.monotonic = monotonic
    node.time = clock
    os.environ["PPZOO_RAY_START_TIMEOUT_S"] = "120"
    try:
        init_ray(None, num_cpus=1)
        pid = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\\0")
        out["slow"] = {"looks": len(looks), "raylet_env": sorted(
            e.decode() for e in env if e.startswith(b"RAY_") and b"timeout" in e
            or e.startswith(b"RAY_raylet_start"))}
        ray.shutdown()
    except Exception as err:
        out["slow"] = repr(err)[:300]
    print("RESULT " + json.dumps(out))
''')


def test_private_ray_start_outlasts_rays_own_waits_and_fails_in_one_line():
    env = dict(os.environ, PYTHONPATH=ROOT, PPZOO_RAY_START_TIMEOUT_S="2")
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=1800)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert run.returncode == 0 and lines, (run.stdout + run.stderr)[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    kind, msg = out["never"]
    assert kind == "RayStartError" and "\n" not in msg, out["never"]
    assert "within 2 s" in msg and "PPZOO_RAY_START_TIMEOUT_S" in msg
    assert out["left"] == [], out["left"]      # the half-started Ray was stopped, agents too
    slow = out["slow"]
    assert isinstance(slow, dict), slow          # Ray alone: "timed out during startup"
    assert slow["looks"] == 4
    # the budget reached the processes Ray started (the raylet's own waits)
    assert {"RAY_raylet_start_wait_time_s=120", "RAY_agent_register_timeout_ms=120000",
            "RAY_worker_register_timeout_seconds=120"} <= set(slow["raylet_env"]), slow


def test_start_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(raystart.START_TIMEOUT_ENV, raising=False)
    assert raystart.start_timeout_s() == 180.0
    monkeypatch.setenv(raystart.START_TIMEOUT_ENV, "600")
    assert raystart.start_timeout_s() == 600.0
    assert raystart.ray_settings(600)["RAY_agent_register_timeout_ms"] == "600000"
    # a shorter budget never lowers Ray's own defaults
    assert raystart.ray_settings(5)["RAY_worker_register_timeout_seconds"] == "60"
    monkeypatch.setenv(raystart.START_TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="PPZOO_RAY_START_TIMEOUT_S"):
        raystart.start_timeout_s()


def test_ray_cli_wrapper_refuses_a_bad_budget_in_one_line():
    """``python -m ppzoo.distill.raystart`` (how the tools start a head) checks the budget
    before Ray's CLI runs: a bad value is one line naming the variable, exit 2."""
    env = dict(os.environ, PYTHONPATH=ROOT, PPZOO_RAY_START_TIMEOUT_S="-5")
    run = subprocess.run([sys.executable, "-m", "ppzoo.distill.raystart", "start", "--head"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=1200)
    err = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert run.returncode == 2 and len(err) == 1, run.stderr[-2000:]
    assert "PPZOO_RAY_START_TIMEOUT_S" in err[0]
