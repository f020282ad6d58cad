"""The teacher service on Ray Serve (``distill.backend: serve``): autoscaling replicas.

The same :class:`~ppzoo.distill.pool.TeacherRunner` as the named-actor service, deployed
as a Serve application named after the service, either with a fixed number of replicas
(``num_workers``, changed by ``tools/teacher_serve.py scale N``) or with Serve's
autoscaling between ``distill.autoscaling.min_replicas`` and ``max_replicas`` (any key
of Serve's ``AutoscalingConfig``).  Students reach it through one deployment handle: the
reader still splits batches into requests, keeps them in order, applies deadlines and
re-sends; Serve's router picks the replica and Serve replaces replicas that fail its
health check.  Measured against the named actors in docs/benchmarks/distill_serve.md.
"""
import asyncio
import hashlib
import json
import os

from ..core.errors import ConfigError
from .pool import NAMESPACE, TeacherRunner, init_ray

SERVE_AUTOSCALING = {"target_ongoing_requests": 2, "metrics_interval_s": 0.5,
                     "look_back_period_s": 2.0, "upscale_delay_s": 1.0,
                     "downscale_delay_s": 60.0}


class ServeTeacher:
    """One replica: the forward runs in a thread, one request at a time (like an actor), so
    the replica's event loop keeps answering the router's queue-length probes."""

    def __init__(self, model_dir, opts):
        self.runner = TeacherRunner(model_dir, **opts)
        self.runner.warm_up()
        self.lock = asyncio.Lock()

    async def infer(self, request_id, inputs):
        async with self.lock:
            return request_id, await asyncio.to_thread(self.runner.infer, inputs)

    def info(self):
        return {"pid": os.getpid(), "served": self.runner.served}


def _serve():
    try:
        from ray import serve
    except ImportError as err:
        raise ConfigError(f"distill.backend serve needs Ray Serve (pip install "
                          f"'ray[serve]'): {err}") from None
    return serve


def replica_version(model_dir, opts):
    """The deployment's ``version``: what a replica holds (the teacher's folder, its files'
    sizes and modification times, the runner's options).  Serve restarts every replica when
    the version changes and gives each ``serve.run`` without one a random version, so a
    fixed one is what lets ``scale N`` add or remove replicas and keep the running ones,
    while a new teacher or new options still replace them all."""
    model_dir = os.path.abspath(model_dir)
    files = []
    for name in sorted(os.listdir(model_dir)):
        st = os.stat(os.path.join(model_dir, name))
        files.append([name, st.st_size, st.st_mtime_ns])
    key = json.dumps([model_dir, files, sorted((str(k), repr(v)) for k, v in opts.items())])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def deploy(service, model_dir, opts, num_replicas=1, autoscaling=None, worker_cpus=1.0,
           worker_gpus=0.0):
    """Start (or update) the Serve application ``service``; returns when it runs.  An
    update that changes only the number of replicas (or the autoscaling bounds) keeps the
    running replicas (see :func:`replica_version`)."""
    serve = _serve()
    serve.start(proxy_location="Disabled")
    dep = serve.deployment(ServeTeacher, name="teacher",
                           version=replica_version(model_dir, opts),
                           ray_actor_options={"num_cpus": float(worker_cpus),
                                              "num_gpus": float(worker_gpus)},
                           max_ongoing_requests=8, health_check_period_s=2.0,
                           health_check_timeout_s=10.0)
    if autoscaling:
        cfg = dict(SERVE_AUTOSCALING, **autoscaling)
        dep = dep.options(autoscaling_config=cfg, num_replicas="auto")
    else:
        dep = dep.options(num_replicas=int(num_replicas))
    serve.run(dep.bind(os.path.abspath(model_dir), dict(opts)), name=service,
              route_prefix=None)


def replicas(service):
    """``{state: count}`` of the application's replicas, or None when it is not running."""
    serve = _serve()
    app = serve.status().applications.get(service)
    if app is None:
        return None
    out = {}
    for d in app.deployments.values():
        for state, n in d.replica_states.items():
            out[state] = out.get(state, 0) + n
    return out


def delete(service):
    serve = _serve()
    if serve.status().applications.get(service) is not None:
        serve.delete(service)


def _client_class():
    import ray

    @ray.remote(num_cpus=0)
    class ServeClient:
        """The student's door to the application: an async actor that awaits Serve's
        responses, so each call is an ObjectRef the reader can wait on with deadlines.
        (A ``DeploymentResponse`` turned into an ObjectRef in the student's process
        blocks until the answer, which would serialise every request.)"""

        def __init__(self, service):
            from ray import serve
            self.handle = serve.get_app_handle(service)

        async def infer(self, request_id, inputs):
            return await self.handle.infer.remote(request_id, inputs)

        async def ping(self):
            return os.getpid()

    return ServeClient


class ServePool:
    """The reader's view of a Serve application: one 'worker' (the student's client
    actor), Serve's router behind it.  Nothing is killed or replaced from here (Serve
    replaces replicas that fail its health check), and nothing is owned."""
    owned = False

    def __init__(self, service, ray_address=None, connect_timeout_s=10.0, logger=None):
        init_ray(ray_address or "auto", None, connect_timeout_s)
        if replicas(service) is None:
            raise ConfigError(f"distill.service {service!r}: no Serve application of that "
                              f"name (start it with tools/teacher_serve.py -c CFG start)")
        import ray
        self.service, self.logger = service, logger
        self.client = _client_class().remote(service)
        ray.get(self.client.ping.remote(), timeout=60)
        self.workers = {0: self.client}
        self.retired, self.dead, self.min_workers = [], [], 1

    def refresh(self):
        pass

    def ensure_alive(self):
        return [0]

    def loaded_since(self, wid):
        return 0.0

    def mark_dead(self, wid):
        pass

    replace = mark_dead

    def served(self):
        return {}

    def cpu_seconds(self):
        return {}

    def info(self):
        return {}

    def shutdown(self):
        import ray
        try:
            ray.kill(self.client)
        except Exception:  # noqa: BLE001 - already gone
            pass


__all__ = ["ServePool", "deploy", "replicas", "delete", "NAMESPACE"]
