"""The Ray Serve teacher service keeps its replicas across ``scale N``: only the replica
count changes (a replica's process survives 1 -> 2 -> 1), while a new teacher or new
runner options give the deployment a new version (Serve then replaces every replica)."""
import os
import sys
import time

import pytest

from ppzoo.core.config import load_config
from ppzoo.distill.serve import replica_version

from _teachers import export_digits_teacher

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """An untrained, seeded SmallCNN teacher exported like tools/export.py."""
    return export_digits_teacher(tmp_path_factory.mktemp("serve_teacher"))[2]


def test_replica_version_changes_with_the_teacher_or_options_not_otherwise(teacher_dir,
                                                                           tmp_path):
    opts = {"cpu_threads": 1, "device": "cpu", "simulated_ms_per_sample": 0.0}
    v = replica_version(teacher_dir, opts)
    assert v == replica_version(teacher_dir + os.sep, dict(reversed(list(opts.items()))))
    assert v != replica_version(teacher_dir, dict(opts, simulated_ms_per_sample=4.0))
    assert v != replica_version(teacher_dir, dict(opts, cpu_threads=2))
    # the same files elsewhere, or a re-exported (rewritten) teacher: a new version
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(teacher_dir, copy)
    assert replica_version(copy, opts) != v
    name = sorted(os.listdir(copy))[0]
    before = replica_version(copy, opts)
    st = os.stat(os.path.join(copy, name))
    os.utime(os.path.join(copy, name), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert replica_version(copy, opts) != before


def _pids_seen(handle, want, tries=400):
    """The replicas' pids as answered through Serve's router (random between idle
    replicas), until ``want`` distinct ones were seen or ``tries`` calls were made."""
    pids = set()
    for _ in range(tries):
        pids.add(handle.info.remote().result(timeout_s=120)["pid"])
        if len(pids) >= want:
            break
    return pids


def _wait(cond, bound_s=600, every_s=0.5):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < bound_s, "condition not reached"
        time.sleep(every_s)


def test_scale_keeps_the_running_replica_1_2_1(teacher_dir, tmp_path):
    """``teacher_serve.py scale``: 1 -> 2 adds a replica beside the first, 2 -> 1 removes
    the added one; the first replica's process (pid) lives through both."""
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import teacher_serve
    from ppzoo.distill.pool import init_ray
    from ppzoo.distill.serve import replicas
    init_ray(None, num_cpus=4)
    cfg = load_config(os.path.join(ROOT, "configs/distill/digits_edl.yml"), [
        f"distill.teacher_dir={teacher_dir}", f"output_dir={tmp_path}",
        "distill.backend=serve", "distill.service=svc-keep", "distill.worker_cpus=0.5",
        "distill.num_workers=1"])
    try:
        assert teacher_serve.run(cfg, "start", out=lambda s: None)["replicas"] == {
            "RUNNING": 1}
        handle = serve.get_app_handle("svc-keep")
        (first,) = _pids_seen(handle, 1, tries=1)
        assert teacher_serve.run(cfg, "scale", 2, out=lambda s: None)["replicas"] == {
            "RUNNING": 2}
        two = _pids_seen(handle, 2)
        assert len(two) == 2 and first in two           # added beside, not rolled
        assert teacher_serve.run(cfg, "scale", 1, out=lambda s: None)["replicas"][
            "RUNNING"] == 1
        _wait(lambda: replicas("svc-keep") == {"RUNNING": 1})
        # the added replica's process goes; the router then only reaches the first
        _wait(lambda: _pids_seen(handle, 2, tries=20) == {first})
        os.kill(first, 0)                               # still the same, living process
    finally:
        serve.shutdown()
        ray.shutdown()
