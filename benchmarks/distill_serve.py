"""EDL-Dist teacher service: named detached Ray actors (what ppzoo uses) against the same
teacher as a Ray Serve deployment.

    PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_serve.py \
        [--latency-ms 0 4] [--replicas 1 2 4] [--iters 30] [--repeats 3]

Both backends run the same exported teacher (SmallCNN width 64 on the digits, Paddle
Inference, 1 thread) in the same ``TeacherRunner``, each replica/worker reserving 0.5 CPU
of one local Ray; Serve through ppzoo's backend (``ppzoo.distill.serve``: the replica
runs the blocking forward in a thread, one request at a time, so its event loop keeps
answering the router; the student reaches it through an async client actor); the student is the same DistillTrainer with the same ``EDLReader``
(prefetch, ``max_in_flight``, deadlines): for Serve its pool is one handle and Serve's
router picks the replica, for the named actors the reader picks the worker.  Measured:

1. per-request latency (16 samples, no simulated latency): a blocking round trip, 200
   sequential requests after 20 warm-up ones, median and 90th percentile;
2. student samples/s at 1/2/4 replicas with each ``--latency-ms`` of simulated teacher
   latency (the labelled benchmark knob ``distill.simulated_ms_per_sample``; 0: the bare
   SmallCNN teacher), timed from iteration 3 to the last-but-one (no start-up, eval or
   checkpoint), median of repeats; and whether the two backends' students end with
   bit-identical weights (same seed, same soft labels);
3. time to scale up: named actors ``TeacherService.scale(n + 1)`` (returns when the new
   worker has loaded the teacher); Serve: a redeploy with one more replica
   (``serve.run`` returns when it is running) and autoscaling (min 1, max 4,
   ``target_ongoing_requests`` 2, metrics every 0.5 s, look-back 2 s, upscale delay 1 s:
   its most responsive settings) from the start of a steady load until 2 and 4 replicas
   run; then, for both, a student (largest latency) whose 2 teachers are scaled to 1
   after its 5th iteration: its wall time, timeouts, and whether the teacher it keeps is
   one that served before the scale (Serve: a pid seen before);
4. one of 2 replicas SIGSTOPped after the student's 5th iteration: the student's wall time
   for the run (bounded at ``--stall-cap-s``) and what the backend did about the replica.

Writes ``docs/benchmarks/distill_serve.md``.
"""
import argparse
import copy
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

os.environ.setdefault("PPZOO_CPU_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from distill_common import export_untrained  # noqa: E402

from ppzoo.engine.hooks import Hook  # noqa: E402


class IterClock(Hook):
    """Wall-clock time at the end of every iteration; ``at`` runs a callback at one."""
    priority = 1

    def __init__(self, at=None, action=None):
        self.t, self.at, self.action = [], at, action

    def after_iter(self, trainer):
        self.t.append(time.perf_counter())
        if self.at is not None and len(self.t) == self.at:
            self.action()


def serve_app(model_dir, replicas=None, autoscaling=None, ms=0.0, name="teacher"):
    """Deploy (or redeploy) the teacher with ppzoo's Serve backend; returns a handle."""
    from ray import serve

    from ppzoo.distill.serve import deploy
    deploy(name, model_dir, {"cpu_threads": 1, "simulated_ms_per_sample": ms},
           num_replicas=replicas or 1, autoscaling=autoscaling, worker_cpus=0.5)
    return serve.get_app_handle(name)


def serve_replicas(app="teacher"):
    from ppzoo.distill.serve import replicas
    return (replicas(app) or {}).get("RUNNING", 0)


def serve_pids(handle, n, tries=400):
    pids = set()
    for _ in range(tries):
        pids.add(handle.info.remote().result(timeout_s=30)["pid"])
        if len(pids) >= n:
            break
    return sorted(pids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 4.0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stall-cap-s", type=float, default=120.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks/distill_serve.md"))
    args = ap.parse_args()
    import ray
    from ray import serve

    from ppzoo.core.config import load_config
    from ppzoo.distill.pool import TeacherPool, TeacherService, init_ray
    from ppzoo.engine.trainer import build_trainer

    work = tempfile.mkdtemp(prefix="distill_serve_")
    quiet = ["train.log_interval=100000", f"output_dir={work}"]
    tcfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                       ["model.width=64", *quiet])
    tdir = export_untrained(tcfg, work)
    x16 = np.zeros((16, 1, 8, 8), np.float32)
    from ppzoo.distill.serve import ServePool
    init_ray(None, num_cpus=2 * max(args.replicas) + 1)
    rows, notes = {}, {}
    k = [0]

    def student_cfg(opts):
        k[0] += 1
        total = args.iters
        return load_config(os.path.join(ROOT, "configs/distill/digits_edl.yml"), [
            f"distill.teacher_dir={tdir}", f"train.iters={total}",
            f"train.eval_interval={10 * total}", f"train.checkpoint_interval={10 * total}",
            "distill.request_size=16", "distill.prefetch=4", *quiet, f"name=run{k[0]}", *opts])

    def timed(cfg, prepare=None, at=None, action=None):
        tr = build_trainer(copy.deepcopy(cfg))
        if prepare:
            prepare(tr)
        clock = IterClock(at, action)
        tr.register_hook(clock)
        t0 = time.perf_counter()
        tr.train()
        total = time.perf_counter() - t0
        t = clock.t
        sps = (len(t) - 5) * tr.batch_size / (t[-2] - t[3])
        timed.last = tr
        return sps, total, getattr(tr, "teacher_stats", {})

    def weights(tr):
        return {k: v.numpy() for k, v in tr.model.state_dict().items()}

    # ---------------------------------------------------------------- 1. latency
    def latency(call):
        for _ in range(20):
            call()
        ts = []
        for _ in range(200):
            t0 = time.perf_counter()
            call()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts), float(np.percentile(ts, 90))

    svc = TeacherService("bench-svc", tdir, worker_cpus=0.5)
    svc.scale(1)
    actor = svc.workers[0]
    rows["latency_actor"] = latency(lambda: ray.get(actor.infer.remote(0, [x16])))
    handle = serve_app(tdir, replicas=1)
    rows["latency_serve"] = latency(lambda: handle.infer.remote(0, [x16]).result())
    client = ServePool("teacher").client      # the student's path: the client actor
    rows["latency_serve_client"] = latency(lambda: ray.get(client.infer.remote(0, [x16])))
    print("latency", rows["latency_actor"], rows["latency_serve"], flush=True)

    # ---------------------------------------------------------------- 3. scale-up times
    t0 = time.perf_counter()
    svc.scale(2)
    rows["scale_actor"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    handle = serve_app(tdir, replicas=2)
    rows["scale_serve"] = time.perf_counter() - t0
    print("scale", rows["scale_actor"], rows["scale_serve"], flush=True)

    # ---------------------------------------------------------------- 2. throughput
    svc.stop()
    sps, same = {}, {}
    for ms in args.latency_ms:
        svc = TeacherService(f"bench-svc-{ms:g}ms", tdir, worker_cpus=0.5,
                             simulated_ms_per_sample=ms)
        lat = [f"distill.simulated_ms_per_sample={ms}"]
        for rep in range(args.repeats):
            for r in args.replicas:
                svc.scale(r)
                cfg = student_cfg(lat + [f"distill.service={svc.service}",
                                         f"distill.max_in_flight={2 * r + 2}", "seed=0"])
                s, _, st = timed(cfg)
                w_actors = weights(timed.last)
                sps.setdefault(("actors", ms, r), []).append(s)
                print("actors", ms, rep, r, s, st.get("per_worker"), flush=True)
                handle = serve_app(tdir, replicas=r, ms=ms)
                got = serve_pids(handle, r)
                cfg = student_cfg(lat + ["distill.backend=serve", "distill.service=teacher",
                                         f"distill.max_in_flight={2 * r + 2}", "seed=0"])
                s, _, st = timed(cfg)
                w_serve = weights(timed.last)
                same.setdefault(ms, []).append(all(
                    np.array_equal(w_actors[k], w_serve[k]) for k in w_actors))
                sps.setdefault(("serve", ms, r), []).append(s)
                print("serve", ms, rep, r, s, len(got), same[ms][-1], flush=True)
        if ms != max(args.latency_ms):
            svc.stop()
    ms = max(args.latency_ms)           # the remaining probes: the slowest teacher
    lat = [f"distill.simulated_ms_per_sample={ms}"]
    rows["sps"] = sps

    # ---------------------------------------------------------------- 3b. autoscaling
    serve.delete("teacher")
    auto = {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2,
            "metrics_interval_s": 0.5, "look_back_period_s": 2.0, "upscale_delay_s": 1.0,
            "downscale_delay_s": 600.0}
    handle = serve_app(tdir, autoscaling=auto, ms=ms)
    stop = threading.Event()

    def load():      # a student-like steady load: 10 requests of 16 samples outstanding
        refs = []
        while not stop.is_set():
            while len(refs) < 10:
                refs.append(handle.infer.remote(0, [x16]))
            refs.pop(0).result(timeout_s=60)

    th = threading.Thread(target=load, daemon=True)
    t0 = time.perf_counter()
    th.start()
    reach = {}
    while time.perf_counter() - t0 < 120 and len(reach) < 2:
        n = serve_replicas()
        for target in (2, 4):
            if n >= target and target not in reach:
                reach[target] = time.perf_counter() - t0
        time.sleep(0.2)
    stop.set()
    th.join(60)
    rows["autoscale"] = reach
    print("autoscale", reach, flush=True)

    # ---------------------------------------------------------------- 4. SIGSTOP
    svc.scale(2)
    pid_a = ray.get(svc.workers[0].info.remote())["pid"]
    stall = {}

    def stopped_run(name, cfg, pid, prepare=None):
        result = {}

        def go():
            result["r"] = timed(cfg, prepare=prepare, at=5,
                                action=lambda: os.kill(pid, signal.SIGSTOP))
        th = threading.Thread(target=go, daemon=True)
        t0 = time.perf_counter()
        th.start()
        th.join(args.stall_cap_s)
        done = not th.is_alive()
        wall = time.perf_counter() - t0
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        th.join(120)
        stall[name] = {"finished_within_cap": done, "wall_s": wall,
                       "stats": result.get("r", (0, 0, {}))[2]}
        print("sigstop", name, stall[name], flush=True)

    cfg = student_cfg(lat + [f"distill.service={svc.service}", "distill.max_in_flight=6",
                             "distill.request_timeout_s=1.0", "distill.replace_after_s=60"])
    stopped_run("actors", cfg, pid_a)
    serve.delete("teacher")
    handle = serve_app(tdir, replicas=2, ms=ms)
    pids = serve_pids(handle, 2)
    cfg = student_cfg(lat + ["distill.backend=serve", "distill.service=teacher",
                             "distill.max_in_flight=6", "distill.request_timeout_s=1.0",
                             "distill.replace_after_s=60"])
    stopped_run("serve (reader deadlines on)", cfg, pids[0])
    # Serve's own recovery: does it replace a stopped replica, and when?  (fresh pids:
    # the replica stopped above may already have been replaced)
    time.sleep(5)
    pids = serve_pids(handle, 2)
    os.kill(pids[0], signal.SIGSTOP)
    t0 = time.perf_counter()
    replaced = None
    while time.perf_counter() - t0 < 90:
        try:
            now = set(serve_pids(handle, 2, tries=20))
        except Exception:  # noqa: BLE001
            now = set()
        if len(now) == 2 and pids[0] not in now:
            replaced = time.perf_counter() - t0
            break
        time.sleep(1.0)
    try:
        os.kill(pids[0], signal.SIGCONT)
    except ProcessLookupError:
        pass
    stall["serve_replaced_after_s"] = replaced
    print("serve replaced", replaced, flush=True)

    # ---------------------------------------------------------------- 3c. scale 2 -> 1 mid-run
    down = {}

    def scaled_run(name, cfg, scale_down, before, after):
        th = []

        def action():          # the scale runs beside the student, as an operator's would
            th.append(threading.Thread(target=scale_down, daemon=True))
            th[0].start()
        t0 = time.perf_counter()
        _, _, st = timed(cfg, at=5, action=action)
        wall = time.perf_counter() - t0
        th[0].join(300)
        kept = after()
        down[name] = {"wall_s": wall, "timeouts": st.get("timeouts"),
                      "resent": st.get("resent"), "kept_a_teacher": bool(kept & before)}
        print("scale down", name, down[name], flush=True)

    svc.scale(2)
    before = {i["pid"] for i in svc.info().values()}
    stop_cfg = ["distill.max_in_flight=6", "distill.request_timeout_s=1.0"]
    scaled_run("actors", student_cfg(lat + [f"distill.service={svc.service}", *stop_cfg]),
               lambda: svc.scale(1), before,
               lambda: {i["pid"] for i in svc.info().values()})
    serve.delete("teacher")
    handle = serve_app(tdir, replicas=2, ms=ms)
    before = set(serve_pids(handle, 2))
    scaled_run("serve", student_cfg(lat + ["distill.backend=serve", "distill.service=teacher",
                                           *stop_cfg]),
               lambda: serve_app(tdir, replicas=1, ms=ms), before,
               lambda: set(serve_pids(handle, 1, tries=20)))
    rows["scale_down"] = down
    svc.stop()
    serve.shutdown()

    # ---------------------------------------------------------------- page
    med = {c: float(np.median(v)) for c, v in sps.items()}

    def cell(c):
        v = sps[c]
        return f"{med[c]:.0f} [{min(v):.0f}-{max(v):.0f}]"

    la, ls, lc = rows["latency_actor"], rows["latency_serve"], rows["latency_serve_client"]
    lines = [
        "| measure | named detached actors | Ray Serve deployment |", "|---|---|---|",
        f"| request latency, 16 samples, median / p90 (ms) | {la[0]:.2f} / {la[1]:.2f} | "
        f"{ls[0]:.2f} / {ls[1]:.2f} (handle); {lc[0]:.2f} / {lc[1]:.2f} (through the "
        f"student's client actor, the reader's path) |"]
    for ms in args.latency_ms:
        for r in args.replicas:
            ratio = med[("serve", ms, r)] / med[("actors", ms, r)]
            lines.append(f"| student samples/s, {r} replica(s), {ms:g} ms/sample "
                         f"{'(the bare teacher)' if ms == 0 else 'simulated'} | "
                         f"{cell(('actors', ms, r))} | {cell(('serve', ms, r))} "
                         f"({ratio:.2f}x) |")
        lines.append(f"| students' weights bit-identical, {ms:g} ms/sample | "
                     f"{sum(same[ms])} of {len(same[ms])} pairs | (same pairs) |")
    lines.append(f"| scale 1 -> 2 replicas, explicit (s) | {rows['scale_actor']:.1f} "
                 f"(`scale 2`) | {rows['scale_serve']:.1f} (redeploy, `num_replicas: 2`) |")
    ar = rows["autoscale"]
    lines.append("| autoscale 1 -> 2 / 1 -> 4 under load (s) | none (explicit `scale N`) | "
                 + " / ".join(f"{ar[k]:.1f}" if k in ar else "not reached in 120 s"
                              for k in (2, 4)) + " |")

    def stall_cell(key):
        s = stall[key]
        st = s["stats"]
        return (f"{'finished' if s['finished_within_cap'] else 'NOT finished'} in "
                f"{s['wall_s']:.1f} s; timeouts {st.get('timeouts', '?')}, "
                f"re-sent {st.get('resent', '?')}")
    lines.append(f"| one of 2 replicas SIGSTOPped at iteration 5 ({args.iters} iterations) | "
                 f"{stall_cell('actors')} | {stall_cell('serve (reader deadlines on)')} |")
    rep = stall["serve_replaced_after_s"]
    dn = rows["scale_down"]

    def down_cell(key):
        d = dn[key]
        return (f"{d['wall_s']:.1f} s; timeouts {d['timeouts']}, re-sent {d['resent']}; "
                f"{'kept a replica that served before' if d['kept_a_teacher'] else 'all replicas new'}")
    lines.append(f"| 2 -> 1 replicas after iteration 5 ({args.iters} iterations, "
                 f"{ms:g} ms/sample), student wall time | {down_cell('actors')} | "
                 f"{down_cell('serve')} |")
    lines.append("| the stopped replica replaced by the backend | by the reader after "
                 "`replace_after_s` (default 30 s; Ray restarts the named worker) | "
                 + (f"after {rep:.1f} s (health check every 2 s, timeout 10 s)"
                    if rep is not None else "not within 90 s") + " |")
    body = (f"Teacher SmallCNN width 64 (digits, Paddle Inference, 1 thread, 0.5 CPU per "
            f"replica), student SmallCNN width 8, batch 64, request size 16, prefetch 4, "
            f"`max_in_flight` 2 x replicas + 2; {args.iters} iterations per run, timed from "
            f"iteration 3 to the last-but-one; median [min-max] of {args.repeats} "
            f"round-robin repeats (Serve / actors ratio of the medians in brackets after "
            f"Serve's); one local Ray.\n\n" + "\n".join(lines) + "\n")
    cmd = "PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/distill_serve.py " + " ".join(
        sys.argv[1:])
    write_page(args.out, "EDL-Dist teacher service: named actors vs Ray Serve", cmd, body)


if __name__ == "__main__":
    main()
