"""EDL-Dist on a real Ray cluster, end to end, with the project's own commands:

1. ``ray start --head`` in a temporary folder on free ports (its address file stays in
   that folder, so no other program's ``ray.init()`` on the machine finds this cluster);
2. ``tools/teacher_serve.py -c CFG start`` against it (2 named detached teacher workers);
3. ``tools/teacher_serve.py status``;
4. a student, ``tools/train.py`` with ``distill.ray_address`` and ``distill.service``,
   served by those workers (checked: the workers' pids are unchanged and they served);
5. ``tools/teacher_serve.py stop``, then the cluster's processes are stopped.

    nice -n 5 python benchmarks/distill_cluster_check.py [--iters 20] [--out PAGE]

Step 5 does not run ``ray stop``: that command ends *every* Ray process of the user on
the machine (other jobs' clusters included).  It stops the processes whose command line
names this cluster's temporary folder (GCS, raylet, agents and workers), by pid: SIGTERM,
then SIGKILL after 10 s.  On a machine of its own, ``ray stop`` does the same.
Writes ``docs/benchmarks/distill_cluster.md`` with every command and its outcome.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from distill_common import export_untrained  # noqa: E402
from ppzoo.core.ports import free_ports  # noqa: E402

PY = sys.executable
RAY = os.path.join(os.path.dirname(PY), "ray")


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
    """Processes whose command line names ``folder`` (this cluster's and nothing else)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if folder.encode() in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def _signal(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def stop_cluster(folder, log):
    pids = cluster_pids(folder)
    _signal(pids, signal.SIGTERM)
    t0 = time.time()
    while time.time() - t0 < 10 and cluster_pids(folder):
        time.sleep(0.5)
    left = cluster_pids(folder)
    _signal(left, signal.SIGKILL)
    t0 = time.time()
    while time.time() - t0 < 10 and cluster_pids(folder):
        time.sleep(0.2)
    log(f"stopped the cluster: SIGTERM to {len(pids)} processes, SIGKILL to {len(left)}")
    return pids


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

        def step(name, cmd, check=True, timeout=300):
            t0 = time.time()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                                 timeout=timeout)
            dt = time.time() - t0
            tail = (out.stdout + out.stderr).strip().splitlines()
            shown = " ".join(a if " " not in a else repr(a) for a in cmd)
            shown = shown.replace(PY, "python").replace(RAY, "ray").replace(ROOT + "/", "")
            shown = shown.replace(folder, "<tmp>")
            steps.append({"step": name, "command": shown, "s": round(dt, 1),
                          "rc": out.returncode, "tail": tail[-3:]})
            log(f"[{dt:5.1f} s rc {out.returncode}] {name}: {shown}")
            if check and out.returncode:
                raise RuntimeError(f"{name} failed:\n" + "\n".join(tail[-30:]))
            return out

        step("start a head", [
            RAY, "start", "--head", f"--port={port}", f"--temp-dir={folder}/ray",
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
        pids = stop_cluster(folder, log)
        steps.append({"step": "stop the cluster", "command": "SIGTERM/SIGKILL by pid",
                      "s": 0, "rc": 0, "tail": [f"{len(pids)} processes"]})
        assert not cluster_pids(folder)
        shutil.rmtree(folder, ignore_errors=True)
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
    body = (f"All steps passed in {time.time() - t0:.0f} s (ports chosen free at run time; "
            f"`<tmp>` a fresh folder under /tmp).  The student's {args.iters} iterations of "
            f"batch 64 were served by the service's 2 workers (samples per worker "
            f"{served}); their pids were the same before and after the student.\n\n"
            + "\n".join(rows) + "\n")
    cmd = "nice -n 5 python benchmarks/distill_cluster_check.py " + " ".join(sys.argv[1:])
    write_page(args.out, "EDL-Dist on a real Ray cluster (scripted check)", cmd, body)


if __name__ == "__main__":
    main()
