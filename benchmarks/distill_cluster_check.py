"""EDL-Dist on a real Ray cluster, end to end, with the project's own commands:

1. ``ray start --head`` in a temporary folder on free ports (its address file stays in
   that folder, so no other program's ``ray.init()`` on the machine finds this cluster),
   run as ``python -m ppzoo.distill.raystart start --head ...``: Ray's CLI with start-up
   waits a loaded machine survives (``PPZOO_RAY_START_TIMEOUT_S``, default 180 s);
2. ``tools/teacher_serve.py -c CFG start`` against it (2 named detached teacher workers);
3. ``tools/teacher_serve.py status``;
4. a student, ``tools/train.py`` with ``distill.ray_address`` and ``distill.service``,
   served by those workers (checked: the workers' pids are unchanged and they served);
5. ``tools/teacher_serve.py stop``, then the cluster's processes are stopped.

    nice -n 5 python benchmarks/distill_cluster_check.py [--iters 20] [--out PAGE]

Step 5 does not run ``ray stop``: that command ends *every* Ray process of the user on
the machine (other jobs' clusters included).  It stops this cluster's processes by pid
(``ppzoo.distill.raystart.stop_cluster``): those whose command line names the temporary
folder (GCS, raylet, monitors) and every process below them (the raylet's
``ray::DashboardAgent``, ``ray::RuntimeEnvAgent`` and workers, whose titles no longer name
the folder): SIGTERM, then SIGKILL after 10 s.  The step records every process it found,
and the check fails if any of them survives.  On a machine of its own, ``ray stop`` does
the same.
Writes ``docs/benchmarks/distill_cluster.md`` with every command and its outcome.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from distill_common import export_untrained  # noqa: E402
from ppzoo.core.ports import free_ports  # noqa: E402
from ppzoo.distill.raystart import alive, cluster_processes, stop_cluster  # noqa: E402

PY = sys.executable
RAY = [PY, "-m", "ppzoo.distill.raystart"]     # Ray's CLI, patient on a busy machine


def worker_port_range(width=40):
    """A block of ``width`` consecutive free ports for Ray's workers."""
    import random
    rng = random.Random(os.getpid())
    for _ in range(200):
        lo = rng.randrange(20000, 40000)
        ok = True
        for p in range(lo, lo + width):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return lo, lo + width - 1
    raise RuntimeError("no free block of ports for Ray's workers")


def cluster_pids(folder):
    """Pids of the cluster whose temp folder is ``folder`` (named in their command line,
    or below such a process)."""
    return sorted(cluster_processes(folder))


def run_check(iters=20, log=print):
    """Run every step; returns a list of (command, seconds, outcome) and raises on failure."""
    from ppzoo.core.config import load_config

    folder = tempfile.mkdtemp(prefix="rc_", dir="/tmp")    # short: Ray's socket paths
    steps = []
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_ADDRESS="")
    env.pop("RAY_ADDRESS")
    try:
        # an exported teacher (untrained, seeded: the check is about the plumbing)
        tcfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                           ["model.width=16", f"output_dir={folder}/work", "seed=0"])
        tdir = export_untrained(tcfg, folder, "teacher")

        (port, nm, om, client, agent, agent_grpc, rt_env, metrics) = free_ports(8)
        lo, hi = worker_port_range()
        address = f"127.0.0.1:{port}"

        def step(name, cmd, check=True, timeout=1200):  # a bound for a hang, not a speed limit
            t0 = time.time()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                                 timeout=timeout)
            dt = time.time() - t0
            tail = (out.stdout + out.stderr).strip().splitlines()
            shown = " ".join(a if " " not in a else repr(a) for a in cmd)
            shown = shown.replace(PY, "python").replace(ROOT + "/", "")
            shown = shown.replace(folder, "<tmp>")
            steps.append({"step": name, "command": shown, "s": round(dt, 1),
                          "rc": out.returncode, "tail": tail[-3:]})
            log(f"[{dt:5.1f} s rc {out.returncode}] {name}: {shown}")
            if check and out.returncode:
                raise RuntimeError(f"{name} failed:\n" + "\n".join(tail[-30:]))
            return out

        step("start a head", [
            *RAY, "start", "--head", f"--port={port}", f"--temp-dir={folder}/ray",
            "--num-cpus=3", f"--node-manager-port={nm}", f"--object-manager-port={om}",
            f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={rt_env}",
            f"--metrics-export-port={metrics}", f"--min-worker-port={lo}",
            f"--max-worker-port={hi}", "--include-dashboard=false", "--disable-usage-stats"])
        cfg = os.path.join("configs", "distill", "digits_service.yml")
        opts = [f"distill.teacher_dir={tdir}", f"distill.ray_address={address}",
                "distill.service=cluster-check", "distill.worker_cpus=1"]
        serve = [PY, "tools/teacher_serve.py", "-c", cfg]
        step("start the service", serve + ["start", "--opts", *opts, "distill.num_workers=2"])
        before = json.loads(step("status", serve + ["status", "--opts", *opts]).stdout)
        assert len(before["workers"]) == 2, before
        step("a student on the cluster", [
            PY, "tools/train.py", "-c", cfg, "--opts", *opts, f"output_dir={folder}/student",
            f"train.iters={iters}", "train.eval_interval=1000", "train.log_interval=10"])
        after = json.loads(step("status", serve + ["status", "--opts", *opts]).stdout)
        pid = {k: v["pid"] for k, v in before["workers"].items()}
        assert {k: v["pid"] for k, v in after["workers"].items()} == pid, (before, after)
        served = {k: v["served"] for k, v in after["workers"].items()}
        assert sum(served.values()) >= iters * 64, served
        steps[-1]["served"] = served
        log(f"the student was served by the service's workers: samples per worker {served}")
        step("stop the service", serve + ["stop", "--opts", *opts])
        gone = step("status after stop", serve + ["status", "--opts", *opts], check=False)
        assert gone.returncode != 0 and "no teacher service" in gone.stderr, gone.stderr[-500:]
    finally:
        t0 = time.time()
        seen, killed = stop_cluster(folder)
        left = [p for p, (start, _) in seen.items() if alive(p, start)]
        log(f"stopped the cluster: SIGTERM to {len(seen)} processes "
            f"({', '.join(sorted(n for _, n in seen.values()))}), SIGKILL to {len(killed)}")
        steps.append({"step": "stop the cluster", "command": "SIGTERM/SIGKILL by pid",
                      "s": round(time.time() - t0, 1), "rc": 1 if left else 0,
                      "tail": [f"{len(seen)} processes, {len(killed)} killed, "
                               f"{len(left)} left"],
                      "processes": [{"pid": p, "start": st, "name": n}
                                    for p, (st, n) in sorted(seen.items())]})
        shutil.rmtree(folder, ignore_errors=True)
        assert not left and not cluster_pids(folder), f"still running: {left}"
    return steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks/distill_cluster.md"))
    ap.add_argument("--json", default=None, help="also write the steps as JSON here")
    args = ap.parse_args()
    t0 = time.time()
    steps = run_check(args.iters)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(steps, f)
    rows = ["| step | command | s | rc |", "|---|---|---|---|"]
    for s in steps:
        rows.append(f"| {s['step']} | `{s['command']}` | {s['s']} | {s['rc']} |")
    served = next((s["served"] for s in steps if "served" in s), {})
    stopped = steps[-1].get("processes", [])
    names = sorted({p["name"] for p in stopped})
    body = (f"All steps passed in {time.time() - t0:.0f} s (ports chosen free at run time; "
            f"`<tmp>` a fresh folder under /tmp).  The student's {args.iters} iterations of "
            f"batch 64 were served by the service's 2 workers (samples per worker "
            f"{served}); their pids were the same before and after the student.  "
            f"Stopping the cluster found {len(stopped)} processes ({', '.join(names)}) "
            f"and left none running.\n\n"
            + "\n".join(rows) + "\n")
    cmd = "nice -n 5 python benchmarks/distill_cluster_check.py " + " ".join(sys.argv[1:])
    write_page(args.out, "EDL-Dist on a real Ray cluster (scripted check)", cmd, body)


if __name__ == "__main__":
    main()
