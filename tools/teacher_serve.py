"""Run EDL-Dist teachers as a service that outlives students:
python tools/teacher_serve.py -c CFG start|status|scale N|stop [--opts k=v ...].

The service is a set of named, detached Ray actors ``<service>/teacher-<i>`` (namespace
``ppzoo``) holding the exported teacher of ``distill.teacher_dir``.  Students (every
data-parallel rank, any number of jobs) use it with ``distill.service: <service>`` and
find the same loaded workers after a crash or a resume.

``start`` joins the Ray cluster at ``distill.ray_address`` (default: the cluster of this
machine, ``auto``); when there is none and no address was given, it starts a local head
node first (``ray start --head``; stop it with ``ray stop``).  Then it starts
``distill.num_workers`` workers (or ``--workers N``).  ``scale N`` adds or removes
workers; ``status`` lists them (pid, samples served, loaded since) and which students use
which workers (the coordinator's balance: at most ceil(C/S) students per worker);
``stop`` kills them and the coordinator.
The service name is ``distill.service`` (default: ``<config name>-teachers``).

With ``distill.backend: serve`` the same teacher runs as a Ray Serve application of that
name instead: ``start`` deploys ``num_workers`` replicas, or autoscales between
``distill.autoscaling.min_replicas`` and ``max_replicas``; ``scale N`` redeploys with N
replicas under the same deployment version, so Serve adds or removes replicas and keeps
the running ones (a changed teacher or runner option replaces them all); ``status`` shows
the replicas by state; ``stop`` deletes the application.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import _common  # noqa: F401
from _common import main_guard

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-c", "--config", required=True, help="a distillation config (distill: ...)")
    p.add_argument("command", choices=["start", "status", "scale", "stop"])
    p.add_argument("n", nargs="?", type=int, help="scale: the number of workers")
    p.add_argument("--workers", type=int, default=None, help="start: workers (default "
                   "distill.num_workers)")
    p.add_argument("-o", "--opts", nargs="+", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def service_name(cfg):
    d = cfg.get("distill") or {}
    return d.get("service") or f"{cfg.get('name', 'distill')}-teachers"


def _ensure_cluster(address, num_cpus=None, connect_timeout_s=10.0):
    """Join ``address`` or this machine's cluster; start a local head when there is none."""
    from ppzoo.core.errors import ConfigError
    from ppzoo.distill.pool import init_ray
    try:
        init_ray(address or "auto", None, connect_timeout_s)
        return
    except ConfigError:
        if address and address != "auto":
            raise
    from ppzoo.distill.raystart import RayStartError, start_hint, start_timeout_s
    # Ray's CLI with start-up waits a busy machine survives (PPZOO_RAY_START_TIMEOUT_S)
    cmd = [sys.executable, "-m", "ppzoo.distill.raystart", "start", "--head",
           "--disable-usage-stats", "--include-dashboard=false"]
    if num_cpus:
        cmd.append(f"--num-cpus={int(num_cpus)}")
    timeout_s = start_timeout_s()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 120,
                             env=env)
    except subprocess.TimeoutExpired:
        raise RayStartError(f"'ray start --head' did not return within {timeout_s + 120:g} s; "
                            f"{start_hint(timeout_s)}") from None
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise RayStartError(f"'ray start --head' failed ({last}); {start_hint(timeout_s)}")
    init_ray("auto", None, connect_timeout_s)


def _run_serve(d, name, command, n, workers, out):
    """``distill.backend: serve``: the same teacher as a Ray Serve application."""
    from ppzoo.core.errors import ConfigError
    from ppzoo.distill import serve as sv
    from ppzoo.distill.pool import check_teacher_dir, init_ray
    if command in ("start", "scale"):
        if not d.get("teacher_dir"):
            raise ConfigError("distill.teacher_dir (an exported teacher) is required to start "
                              "a teacher service")
        check_teacher_dir(d["teacher_dir"])
    if command == "start":
        _ensure_cluster(d.get("ray_address"), d.get("ray_num_cpus"),
                        d.get("connect_timeout_s", 10.0))
    else:
        init_ray(d.get("ray_address") or "auto", None, d.get("connect_timeout_s", 10.0))
    running = sv.replicas(name)
    if command in ("status", "stop") and running is None:
        if command == "stop":
            out(f"service {name}: not running")
            return {"service": name, "backend": "serve", "replicas": {}}
        raise ConfigError(f"no teacher service {name!r} in the Ray cluster (start it with "
                          f"tools/teacher_serve.py -c CFG start)")
    opts = dict(cpu_threads=d.get("cpu_threads", 1), device=d.get("device", "cpu"),
                topk=d.get("topk"), use_mkldnn=d.get("use_mkldnn", True),
                simulated_ms_per_sample=d.get("simulated_ms_per_sample", 0.0))
    res = dict(worker_cpus=d.get("worker_cpus", 1), worker_gpus=d.get("worker_gpus", 0))
    if command == "start":
        if running is not None:
            out(f"service {name}: already running ({running})")
        else:
            sv.deploy(name, d["teacher_dir"], opts, workers or int(d.get("num_workers", 1)),
                      d.get("autoscaling"), **res)
    elif command == "scale":
        if n is None or n < 1:
            raise ConfigError("scale needs the number of replicas (at least 1), e.g. scale 4")
        if d.get("autoscaling"):
            raise ConfigError(f"service {name} autoscales (distill.autoscaling); change "
                              f"min_replicas/max_replicas and run start again")
        sv.deploy(name, d["teacher_dir"], opts, n, None, **res)
    elif command == "stop":
        sv.delete(name)
        out(f"service {name}: stopped")
        return {"service": name, "backend": "serve", "replicas": {}}
    status = {"service": name, "backend": "serve", "replicas": sv.replicas(name),
              "autoscaling": d.get("autoscaling")}
    out(json.dumps(status, indent=1))
    return status


def run(cfg, command, n=None, workers=None, out=print):
    """The tool's work, callable in-process (tests): returns the status as a dict."""
    from ppzoo.core.errors import ConfigError
    from ppzoo.distill.pool import TeacherService, require_ray
    d = dict(cfg.get("distill") or {})
    require_ray("teacher_serve")
    name = service_name(cfg)
    backend = d.get("backend", "actors")
    if backend not in ("actors", "serve"):
        raise ConfigError(f"distill.backend must be actors or serve, got {backend!r}")
    if backend == "serve":
        return _run_serve(d, name, command, n, workers, out)
    if command == "start":
        if not d.get("teacher_dir"):
            raise ConfigError("distill.teacher_dir (an exported teacher) is required to start "
                              "a teacher service")
        _ensure_cluster(d.get("ray_address"), d.get("ray_num_cpus"),
                        d.get("connect_timeout_s", 10.0))
    else:
        from ppzoo.distill.pool import init_ray, service_worker_names, stop_coordinator
        init_ray(d.get("ray_address") or "auto", None, d.get("connect_timeout_s", 10.0))
        if command in ("status", "stop") and not service_worker_names(name):
            if command == "stop":
                stop_coordinator(name)
                out(f"service {name}: no workers running")
                return {"service": name, "workers": {}}
            raise ConfigError(f"no teacher service {name!r} in the Ray cluster (start it with "
                              f"tools/teacher_serve.py -c CFG start)")
    svc = TeacherService(
        name, d.get("teacher_dir") or "", ray_address=d.get("ray_address") or "auto",
        worker_cpus=d.get("worker_cpus", 1), worker_gpus=d.get("worker_gpus", 0),
        cpu_threads=d.get("cpu_threads", 1), device=d.get("device", "cpu"), topk=d.get("topk"),
        use_mkldnn=d.get("use_mkldnn", True),
        simulated_ms_per_sample=d.get("simulated_ms_per_sample", 0.0),
        start_timeout_s=d.get("start_timeout_s"), start_retries=d.get("start_retries", 2),
        connect_timeout_s=d.get("connect_timeout_s", 10.0),
        student_ttl_s=d.get("student_ttl_s", 15.0))
    if command == "start":
        target = workers if workers is not None else int(d.get("num_workers", 1))
        if len(svc.workers) >= target:
            out(f"service {name}: already running with {len(svc.workers)} workers")
        else:
            svc.scale(target)
    elif command == "scale":
        if n is None or n < 0:
            raise ConfigError("scale needs the number of workers, e.g. scale 4")
        svc.scale(n)
    elif command == "stop":
        k = len(svc.workers)
        svc.stop()
        out(f"service {name}: stopped {k} workers")
        return {"service": name, "workers": {}}
    info = svc.info()
    now = time.time()
    balance = svc.balance_state()
    status = {"service": name, "workers": {
        w: {"pid": i["pid"], "served": i["served"], "up_s": round(now - i["loaded_at"], 1),
            "error": i["error"]} for w, i in sorted(info.items())}}
    status["students"] = balance["assignment"]     # student -> its workers (balanced)
    silent = sorted(set(svc.workers) - set(info))
    if silent:
        status["not_answering"] = silent
    out(json.dumps(status, indent=1))
    return status


@main_guard
def main(argv=None):
    args = parse_args(argv)
    from ppzoo.core import load_config
    cfg = load_config(args.config, args.opts)
    run(cfg, args.command, args.n, args.workers)


if __name__ == "__main__":
    main()
