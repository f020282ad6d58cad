"""Starting the project's private Ray on a busy machine, and stopping one for good.

Ray waits a fixed time for its own processes while it starts: in Ray 2.55 the driver gives
the raylet 30 s to register with the GCS (hard-coded in ``ray/_private/node.py``), the
raylet gives its agents ``RAY_agent_register_timeout_ms`` (30 s) and its worker processes
``RAY_worker_register_timeout_seconds`` (60 s).  On a 2-core machine at load 8-33 these
pass and Ray fails to start.  :func:`patient_start` raises all of them to one budget,
``PPZOO_RAY_START_TIMEOUT_S`` (default 180 s): the ``RAY_*`` settings are given to the
processes Ray starts (a value already in the environment wins), and the driver's
registration wait keeps asking the GCS until the budget is spent.  A start that still
fails is one :class:`RayStartError` line naming the variable to raise, and what it had
launched is stopped.

``python -m ppzoo.distill.raystart start --head ...`` runs Ray's own CLI with the same
budget (``tools/teacher_serve.py`` and ``benchmarks/distill_cluster_check.py`` start
their heads this way).

:func:`stop_cluster` stops a cluster started with ``--temp-dir`` without ``ray stop``
(which ends every Ray of the user): the processes whose command line names the folder
(GCS, raylet, monitors) and every process below them.  The tree matters: the raylet's
agents and workers re-title themselves (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``,
``ray::IDLE``) and their command lines no longer name the folder.
"""
import contextlib
import os
import signal
import sys
import time

from ..core.errors import ConfigError, PPZooError

START_TIMEOUT_ENV = "PPZOO_RAY_START_TIMEOUT_S"
DEFAULT_START_TIMEOUT_S = 180.0


class RayStartError(PPZooError):
    """The local Ray did not come up within the start-up budget."""


class _StartTimeout(Exception):
    """Not a RuntimeError: Ray's own wait loop must not swallow it."""


def start_timeout_s():
    """The start-up budget in seconds: ``PPZOO_RAY_START_TIMEOUT_S`` or 180."""
    raw = os.environ.get(START_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_START_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{START_TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0")
    return value


def ray_settings(timeout_s):
    """The ``RAY_*`` start-up timeouts for a budget of ``timeout_s`` seconds (Ray's
    defaults where they are longer)."""
    t = max(float(timeout_s), 1.0)
    return {"RAY_raylet_start_wait_time_s": str(int(max(t, 10))),
            "RAY_agent_register_timeout_ms": str(int(max(t, 30) * 1000)),
            "RAY_worker_register_timeout_seconds": str(int(max(t, 60))),
            "RAY_gcs_rpc_server_reconnect_timeout_s": str(int(max(t, 60))),
            "RAY_gcs_server_request_timeout_seconds": str(int(max(t, 60)))}


def start_hint(timeout_s):
    return (f"on a busy machine set {START_TIMEOUT_ENV} higher (now {timeout_s:g} s), or "
            f"join a running cluster with distill.ray_address")


@contextlib.contextmanager
def patient_start(timeout_s=None):
    """Ray's start-up waits stretched to ``timeout_s`` (default :func:`start_timeout_s`)
    for what runs inside: the ``RAY_*`` settings for the processes Ray starts, and the
    driver's wait for the raylet to register (each look at the GCS that finds no node yet
    is repeated until the budget is spent, so Ray's own 30 s loop never runs out)."""
    import ray._private.services as services
    timeout_s = start_timeout_s() if timeout_s is None else float(timeout_s)
    added = {k: v for k, v in ray_settings(timeout_s).items() if k not in os.environ}
    os.environ.update(added)
    real = services.get_node
    deadline = time.monotonic() + timeout_s

    def get_node(gcs_address, node_id):
        while True:
            try:
                return real(gcs_address, node_id)
            except RuntimeError as err:
                if time.monotonic() > deadline:
                    raise _StartTimeout(f"the raylet did not register with the GCS within "
                                        f"{timeout_s:g} s ({str(err).splitlines()[0][:150]})"
                                        ) from None
                time.sleep(0.5)

    services.get_node = get_node
    try:
        yield timeout_s
    finally:
        services.get_node = real
        for k in added:
            os.environ.pop(k, None)


def start_local(**init_kwargs):
    """``ray.init(**init_kwargs)`` starting a local Ray within :func:`patient_start`; a
    failed start is one :class:`RayStartError` (what is left of it is shut down)."""
    import ray
    timeout_s = start_timeout_s()
    before = set(descendants(os.getpid()))
    try:
        with patient_start(timeout_s):
            ray.init(**init_kwargs)
    except PPZooError:
        raise
    except Exception as err:  # noqa: BLE001 - Ray raises plain Exceptions here
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001 - nothing to shut down
            pass
        # what the failed start left (GCS, raylet, the raylet's agents): Ray does not
        # know it started them when the start failed half-way
        _stop({p: v for p, v in descendants(os.getpid()).items() if p not in before}, 5.0)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RayStartError(f"the local Ray did not start within {timeout_s:g} s ({first}); "
                            f"{start_hint(timeout_s)}") from None


# ---------------------------------------------------------------------- stopping
def _processes():
    """``{pid: (parent pid, start time, command line)}`` of every process we can read."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] == b"Z":           # a zombie is gone already
            continue
        out[int(d)] = (int(fields[1]), int(fields[19]), cmd)
    return out


def descendants(pid):
    """``{pid: (start time, name)}`` of every process below ``pid``."""
    procs = _processes()
    children = {}
    for p, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return {p: (procs[p][1], _name(procs[p][2])) for p in found}


def _name(cmd):
    return os.path.basename(cmd.split(b"\0")[0].decode(errors="replace")) or "?"


def _stop(procs, grace_s):
    """SIGTERM to ``procs`` ({pid: (start time, name)}), SIGKILL to those left after
    ``grace_s``; returns the pids that needed SIGKILL."""
    killed = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_all(procs, sig, killed)
        if _wait_gone(procs, grace_s):
            return killed
    return killed


def _signal_all(procs, sig, killed):
    """Send ``sig`` to the live ones of ``procs``; pids sent SIGKILL are added to ``killed``."""
    for p, (start, _) in procs.items():
        if alive(p, start):
            if sig == signal.SIGKILL:
                killed.append(p)
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass


def _wait_gone(procs, wait_s):
    """True once none of ``procs`` is alive, False after ``wait_s`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < wait_s:
        if not any(alive(p, s) for p, (s, _) in procs.items()):
            return True
        time.sleep(0.2)
    return False


def cluster_processes(folder):
    """``{pid: (start time, name)}`` of the cluster whose temp folder is ``folder``: the
    processes whose command line names it and every process below them."""
    procs = _processes()
    mine, p = set(), os.getpid()        # this process and its ancestors are never part of it
    while p in procs and p not in mine:
        mine.add(p)
        p = procs[p][0]
    key = os.path.abspath(folder).encode()
    found = {p for p, (_, _, cmd) in procs.items() if key in cmd and p not in mine}
    children = {}
    for p, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(p)
    todo = list(found)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found and c not in mine:
                found.add(c)
                todo.append(c)
    return {p: (procs[p][1], _name(procs[p][2])) for p in found}


def alive(pid, start):
    """Whether process ``pid`` that started at ``start`` (clock ticks) still runs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields[0] != b"Z" and int(fields[19]) == start


def stop_cluster(folder, grace_s=10.0):
    """SIGTERM to every process of the cluster (:func:`cluster_processes`), SIGKILL to
    those left after ``grace_s``; returns ``(processes, killed)``.  Looks again after each
    round, so processes the cluster started meanwhile are stopped too."""
    seen, killed = {}, []

    def round_(sig, wait_s):
        procs = {p: v for p, v in cluster_processes(folder).items()
                 if p not in seen or seen[p][0] == v[0]}
        seen.update(procs)
        _signal_all(procs, sig, killed)
        return _wait_gone(seen, wait_s)

    if not round_(signal.SIGTERM, grace_s):
        round_(signal.SIGKILL, grace_s)
        round_(signal.SIGKILL, 1.0)     # anything started while the first ones stopped
    return seen, killed


def main(argv=None):
    """``python -m ppzoo.distill.raystart <ray CLI arguments>``: Ray's CLI with the
    start-up budget of :func:`patient_start`."""
    from ray.scripts.scripts import main as ray_main
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        timeout_s = start_timeout_s()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.argv = ["ray"] + argv
    try:
        with patient_start(timeout_s):
            ray_main()
    except _StartTimeout as err:
        print(f"error: {err}; {start_hint(timeout_s)}", file=sys.stderr)
        return 2
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
