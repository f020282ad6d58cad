"""Teachers as inference services: a Ray actor per teacher worker and an elastic pool.

Each worker holds a Paddle Inference :class:`~ppzoo.engine.predictor.Predictor` of a
model exported with ``tools/export.py`` and answers ``infer(request_id, inputs)`` with
the teacher's logits (or their top-k).  The pool starts, adds, removes and forgets
workers; it never decides who gets which request (that is the reader's job), so a
worker that dies only costs the requests it held, which the reader sends again.
"""
import os
import time

import numpy as np

from ..core.errors import ConfigError

_REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def soft_labels_from_logits(logits, topk=None):
    """Logits -> what travels back to the student: the logits, or top-k (values, indices)."""
    logits = np.asarray(logits, dtype=np.float32)
    if not topk or topk >= logits.shape[-1]:
        return logits
    idx = np.argsort(-logits, axis=-1, kind="stable")[:, :topk]
    return np.take_along_axis(logits, idx, axis=-1), idx.astype(np.int64)


class TeacherRunner:
    """The work a teacher does, in whatever process it lives (actor or the student's own)."""

    def __init__(self, model_dir, cpu_threads=1, device="cpu", topk=None, use_mkldnn=True):
        from ..engine.predictor import Predictor
        self.predictor = Predictor(model_dir, device=device, cpu_threads=cpu_threads,
                                   use_mkldnn=use_mkldnn)
        self.topk = topk
        self.served = 0

    def infer(self, inputs):
        out = self.predictor.run(list(inputs))[0]
        self.served += len(out)
        return soft_labels_from_logits(out, self.topk)


def _actor_class():
    import ray

    @ray.remote
    class TeacherWorker:
        def __init__(self, model_dir, cpu_threads, device, topk, use_mkldnn):
            self.runner = TeacherRunner(model_dir, cpu_threads, device, topk, use_mkldnn)
            self.pid = os.getpid()

        def ready(self):
            return self.pid

        def infer(self, request_id, inputs):
            return request_id, self.runner.infer(inputs)

        def served(self):
            return self.runner.served

        def cpu_seconds(self):
            return time.process_time()

    return TeacherWorker


def init_ray(address=None, num_cpus=None):
    """Join ``address`` (a running cluster) or start a local Ray once per process."""
    import ray
    if ray.is_initialized():
        return
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=env,
                 log_to_driver=False)


class TeacherPool:
    """An elastic set of teacher workers (Ray actors).

    ``add(n)`` / ``remove(n)`` may be called at any time, also while a reader is using
    the pool; the reader picks up new workers on its next request.  ``mark_dead`` is
    how the reader reports a worker whose call failed.
    """

    def __init__(self, model_dir, num_workers=1, worker_cpus=1.0, cpu_threads=1, device="cpu",
                 topk=None, use_mkldnn=True, ray_address=None, ray_num_cpus=None,
                 worker_gpus=0.0, min_workers=1):
        if not os.path.isdir(model_dir) and not ray_address:
            raise ConfigError(f"distill.teacher_dir not found: {model_dir} (export the teacher "
                              f"with tools/export.py)")
        init_ray(ray_address, ray_num_cpus)
        self.model_dir = os.path.abspath(model_dir)
        self.opts = dict(cpu_threads=cpu_threads, device=device, topk=topk, use_mkldnn=use_mkldnn)
        self.resources = dict(num_cpus=float(worker_cpus), num_gpus=float(worker_gpus))
        self.min_workers = int(min_workers)
        self.workers = {}          # worker id -> actor handle
        self.dead = []             # ids of workers reported dead
        self._next_id = 0
        self._cls = _actor_class()
        self.add(num_workers, wait=True)

    def add(self, n=1, wait=False):
        """Start ``n`` more workers; with ``wait`` block until they have loaded the model."""
        import ray
        new = []
        for _ in range(int(n)):
            actor = self._cls.options(**self.resources).remote(
                self.model_dir, self.opts["cpu_threads"], self.opts["device"],
                self.opts["topk"], self.opts["use_mkldnn"])
            wid = self._next_id
            self._next_id += 1
            self.workers[wid] = actor
            new.append(wid)
        if wait and new:
            ray.get([self.workers[w].ready.remote() for w in new])
        return new

    def remove(self, n=1):
        """Stop the ``n`` newest workers (their unfinished requests are re-sent)."""
        import ray
        for wid in sorted(self.workers)[-int(n):] if n else []:
            ray.kill(self.workers.pop(wid))

    def kill(self, wid):
        """Kill one worker abruptly (a failure, as far as the reader can tell)."""
        import ray
        ray.kill(self.workers[wid], no_restart=True)

    def mark_dead(self, wid):
        if self.workers.pop(wid, None) is not None:
            self.dead.append(wid)

    def resize(self, n):
        n = max(int(n), 0)
        if n > len(self.workers):
            self.add(n - len(self.workers))
        elif n < len(self.workers):
            self.remove(len(self.workers) - n)

    def ensure_alive(self):
        """Keep at least ``min_workers`` (replacing dead ones); returns the live ids."""
        if len(self.workers) < self.min_workers:
            self.add(self.min_workers - len(self.workers))
        return sorted(self.workers)

    def served(self):
        """Samples served per live worker (for tests and logs)."""
        import ray
        return {w: ray.get(a.served.remote()) for w, a in self.workers.items()}

    def cpu_seconds(self):
        """CPU seconds each live worker process has used (for the benchmark)."""
        import ray
        return {w: ray.get(a.cpu_seconds.remote()) for w, a in self.workers.items()}

    def shutdown(self):
        import ray
        for a in self.workers.values():
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.workers.clear()


def wait_for(cond, timeout=30.0, step=0.05):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            return False
        time.sleep(step)
    return True
