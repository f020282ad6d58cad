"""EDL-Dist on a real Ray cluster: ``ray start --head`` in a temporary folder on free ports,
``tools/teacher_serve.py start`` against it, a ``tools/train.py`` student served through
``distill.ray_address``, ``stop``, and the cluster's processes stopped (by pid, never
``ray stop``, which would end every Ray of the user): all of them, agents and workers
included, and none survives.  The steps are
``benchmarks/distill_cluster_check.py``, run here as its own process (docs/distill.md)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("ray")
from ppzoo.distill.raystart import alive  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(sys.executable), "ray"))
                    and not shutil.which("ray"), reason="no 'ray' command")
def test_service_and_student_on_a_ray_start_cluster(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "distill_cluster_check.py"),
         "--iters", "10", "--out", str(tmp_path / "page.md"), "--json",
         str(tmp_path / "steps.json")],
        capture_output=True, text=True, timeout=3600, env=dict(os.environ, PYTHONPATH=ROOT))  # 60 s at rest, 313 s at load 8
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    steps = json.loads((tmp_path / "steps.json").read_text())
    names = [s["step"] for s in steps]
    assert names == ["start a head", "start the service", "status",
                     "a student on the cluster", "status", "stop the service",
                     "status after stop", "stop the cluster"]
    assert all(s["rc"] == 0 for s in steps if s["step"] != "status after stop")
    served = next(s["served"] for s in steps if "served" in s)
    assert len(served) == 2 and sum(served.values()) >= 10 * 64
    # the cluster was stopped for good: every process of it, including the raylet's
    # agents, whose titles do not name the cluster's folder, and none survives
    procs = steps[-1]["processes"]
    names = {p["name"] for p in procs}
    assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, names
    assert any(n.startswith("ray::") and "Agent" not in n for n in names), names  # workers
    survivors = [p for p in procs if alive(p["pid"], p["start"])]
    assert not survivors, survivors
