"""Teachers as inference services: a Ray actor per teacher worker and an elastic pool.

Each worker holds a Paddle Inference :class:`~ppzoo.engine.predictor.Predictor` of a
model exported with ``tools/export.py`` and answers ``infer(request_id, inputs)`` with
the teacher's logits (or their top-k).  The pool starts, adds, removes and replaces
workers; it never decides who gets which request (that is the reader's job), so a
worker that dies only costs the requests it held, which the reader sends again.

Two ways to own the workers:

- a *local pool* (``TeacherPool(model_dir, ...)``): the student starts its workers and
  they end with it (the one-command default);
- a *service* (``TeacherPool.connect(name)``): named, detached actors started by
  ``tools/teacher_serve.py``; any number of students and data-parallel ranks use the
  same workers by name, and the workers outlive every student.
"""
import importlib.util
import os
import socket
import time

import numpy as np

from ..core.errors import ConfigError, PPZooError, WeightsError

_REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAMESPACE = "ppzoo"


class TeacherStartError(PPZooError):
    """Teacher workers could not be started (no room in the cluster, repeated deaths)."""


def soft_labels_from_logits(logits, topk=None):
    """Logits -> what travels back to the student: the logits, or top-k (values, indices)."""
    logits = np.asarray(logits, dtype=np.float32)
    if not topk or topk >= logits.shape[-1]:
        return logits
    idx = np.argsort(-logits, axis=-1, kind="stable")[:, :topk]
    return np.take_along_axis(logits, idx, axis=-1), idx.astype(np.int64)


def check_teacher_dir(model_dir):
    """The folder must be an export (``deploy.yml``, ``model.json``, ``model.pdiparams``)."""
    from ..engine.predictor import load_deploy
    if not os.path.isdir(model_dir):
        raise ConfigError(f"distill.teacher_dir not found: {model_dir} (export the teacher "
                          f"with tools/export.py)")
    try:
        load_deploy(model_dir)
    except ConfigError as err:
        raise ConfigError(f"distill.teacher_dir {model_dir} is not an exported model: {err}") \
            from None


class TeacherRunner:
    """The work a teacher does, in whatever process it lives (actor or the student's own).

    ``simulated_ms_per_sample`` (benchmark knob, 0 = off) sleeps that long per sample
    after the forward pass: it stands for a remote or heavier teacher whose latency the
    student would otherwise wait for.  It is never on unless a config sets it.
    """

    def __init__(self, model_dir, cpu_threads=1, device="cpu", topk=None, use_mkldnn=True,
                 simulated_ms_per_sample=0.0):
        from ..engine.predictor import Predictor
        self.predictor = Predictor(model_dir, device=device, cpu_threads=cpu_threads,
                                   use_mkldnn=use_mkldnn)
        self.topk = topk
        self.simulated_ms = float(simulated_ms_per_sample or 0.0)
        self.served = 0

    def warm_up(self):
        """One forward pass on zeros: a truncated or broken weights file fails here."""
        inputs = []
        for spec in self.predictor.deploy["inputs"]:
            shape = [1 if (s is None or s < 0) else s for s in spec.get("shape") or [1]]
            inputs.append(np.zeros(shape, dtype=spec.get("dtype") or "float32"))
        self.predictor.run(inputs)

    def infer(self, inputs):
        out = self.predictor.run(list(inputs))[0]
        if self.simulated_ms:
            time.sleep(self.simulated_ms * len(out) / 1000.0)
        self.served += len(out)
        return soft_labels_from_logits(out, self.topk)


def _actor_class():
    import ray

    @ray.remote
    class TeacherWorker:
        def __init__(self, model_dir, opts):
            self.pid, self.error, self.runner = os.getpid(), None, None
            self.loaded_at = time.time()
            opts = dict(opts)
            self.coordinator = opts.pop("coordinator", None)
            try:
                self.runner = TeacherRunner(model_dir, **opts)
                self.runner.warm_up()
            except Exception as err:  # noqa: BLE001 - reported by ready(), one line
                self.runner = None
                self.error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"
            if self.runner is not None:
                self._call_coordinator("join_teacher")

        def _call_coordinator(self, method):
            """A service's worker registers itself once loaded (also after Ray restarted
            it) and leaves on its own; the coordinator balances students over workers."""
            name = ray.get_runtime_context().get_actor_name()
            if not (self.coordinator and name):
                return
            try:
                coord = ray.get_actor(self.coordinator, namespace=NAMESPACE)
                ray.get(getattr(coord, method).remote(name), timeout=10)
            except Exception:  # noqa: BLE001 - no coordinator: students use every worker
                pass

        def leave(self):
            self._call_coordinator("leave_teacher")
            return True

        def ready(self):
            return self.pid, self.error

        def info(self):
            return {"pid": self.pid, "loaded_at": self.loaded_at,
                    "served": self.runner.served if self.runner else 0, "error": self.error}

        def infer(self, request_id, inputs):
            if self.runner is None:
                raise WeightsError(f"teacher not loaded: {self.error}")
            return request_id, self.runner.infer(inputs)

        def served(self):
            return self.runner.served if self.runner else 0

        def cpu_seconds(self):
            return time.process_time()

    return TeacherWorker


def balance(students, teachers):
    """The paper's balancing: ``students`` (in join order) over ``teachers`` (sorted ids).

    Pair ``k`` (``k < max(C, S)``) gives teacher ``k mod S`` to student ``k mod C``, so with
    C students and S teachers every teacher serves at most ceil(C/S) students and every
    student gets at least floor(S/C) teachers (one, when C > S).  Returns
    ``{student: [teacher ids]}`` (empty lists when there is no teacher)."""
    out = {s: [] for s in students}
    if not students or not teachers:
        return out
    for k in range(max(len(students), len(teachers))):
        out[students[k % len(students)]].append(teachers[k % len(teachers)])
    return {s: sorted(set(t)) for s, t in out.items()}


def _coordinator_class():
    import ray

    @ray.remote(num_cpus=0)
    class Coordinator:
        """Who serves whom, for one teacher service (a named detached actor).

        Teachers join once loaded and leave on their own (``join_teacher`` /
        ``leave_teacher``); students say they are there with ``heartbeat`` about once a
        second and get their teachers back.  A teacher that died (reported by a student,
        or gone from Ray's named actors) and a student silent for ``student_ttl_s`` drop
        out; every change re-balances at once (:func:`balance`)."""

        def __init__(self, service, student_ttl_s=15.0):
            self.prefix, self.ttl = f"{service}/teacher-", float(student_ttl_s)
            # worker ids that joined and have not left; after a restart of the coordinator
            # itself, the service's running workers (they joined the lost instance)
            self.teachers = set(service_worker_names(service).values())
            self.students = {}          # student id -> (joined at, last heartbeat)
            self._checked = 0.0

        def _wid(self, name):
            tail = name[len(self.prefix):] if name.startswith(self.prefix) else ""
            return int(tail) if tail.isdigit() else None

        def join_teacher(self, name):
            wid = self._wid(name)
            if wid is not None:
                self.teachers.add(wid)
            return wid

        def leave_teacher(self, name):
            self.teachers.discard(self._wid(name) if isinstance(name, str) else name)

        def report_dead(self, wid):
            """A student's call to ``wid`` failed for good (Ray restarts a service worker,
            which joins again once it has loaded)."""
            self.teachers.discard(int(wid))

        def leave_student(self, student):
            self.students.pop(student, None)

        def _prune(self, now):
            for s in [s for s, (_, seen) in self.students.items() if now - seen > self.ttl]:
                self.students.pop(s)
            if now - self._checked > 2.0:     # teachers killed without leaving
                self._checked = now
                alive = set(service_worker_names(self.prefix[:-len("/teacher-")]).values())
                self.teachers &= alive

        def heartbeat(self, student):
            now = time.time()
            joined = self.students.get(student, (now, now))[0]
            self.students[student] = (joined, now)
            self._prune(now)
            return self.assignment()[student]

        def assignment(self):
            order = sorted(self.students, key=lambda s: (self.students[s][0], s))
            return balance(order, sorted(self.teachers))

        def state(self):
            self._prune(time.time())
            return {"teachers": sorted(self.teachers), "assignment": self.assignment()}

    return Coordinator


def coordinator_name(service):
    return f"{service}/coordinator"


def stop_coordinator(service):
    import ray
    try:
        _kill(ray.get_actor(coordinator_name(service), namespace=NAMESPACE))
    except ValueError:      # none
        pass


def require_ray(source="distill"):
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(f"{source}: mode edl needs Ray, which is not installed "
                          f"(pip install 'ray>=2.9'), or use distill.mode=online")


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_address(address, timeout_s=10.0):
    """Fail within ``timeout_s`` unless a Ray cluster answers at ``host:port``.

    Ray's head (GCS) and the Ray Client server speak gRPC, i.e. HTTP/2: after the client
    preface a server sends its SETTINGS frame.  Checking for that frame catches both
    nothing listening and something listening that is not Ray (a proxy, another
    service), which would otherwise make ``ray.init`` retry for minutes.
    """
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"distill.ray_address {address!r}: expected host:port, "
                          f"ray://host:port or auto")
    fix = "start one with 'ray start --head' or fix distill.ray_address"
    deadline = time.time() + float(timeout_s)
    try:
        with socket.create_connection((host, int(port)), timeout=float(timeout_s)) as sock:
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                sock.settimeout(max(deadline - time.time(), 0.01))
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.timeout:
        raise ConfigError(f"distill.ray_address {address}: no Ray cluster answers within "
                          f"{timeout_s:g} s (the port accepts connections but does not answer "
                          f"as Ray's gRPC server); {fix}") from None
    except OSError as err:
        raise ConfigError(f"distill.ray_address {address}: no Ray cluster answers within "
                          f"{timeout_s:g} s ({err.strerror or err}); {fix}") from None
    if len(head) < 9 or head[3] != 0x4:
        raise ConfigError(f"distill.ray_address {address}: no Ray cluster answers within "
                          f"{timeout_s:g} s (something else listens there); {fix}")


def init_ray(address=None, num_cpus=None, connect_timeout_s=10.0):
    """Join ``address`` (a running cluster) or start a local Ray once per process (within
    ``PPZOO_RAY_START_TIMEOUT_S``, see :mod:`ppzoo.distill.raystart`)."""
    require_ray()
    import ray
    if ray.is_initialized():
        return
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}}
    if address:
        check_address(address, connect_timeout_s)
        try:
            ray.init(address=address, runtime_env=env, log_to_driver=False, namespace=NAMESPACE)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ConfigError(f"distill.ray_address {address}: cannot join the Ray cluster "
                              f"({str(err).splitlines()[0][:200]})") from None
    else:       # a private Ray, with start-up waits a busy machine survives
        from .raystart import start_local
        start_local(num_cpus=num_cpus, include_dashboard=False, runtime_env=env,
                    log_to_driver=False, namespace=NAMESPACE)


def _kill(actor, no_restart=True):
    import ray
    try:
        ray.kill(actor, no_restart=no_restart)
    except Exception:  # noqa: BLE001 - already gone
        pass


class TeacherPool:
    """An elastic set of teacher workers (Ray actors).

    ``add(n)`` / ``remove(n)`` may be called at any time, also while a reader is using
    the pool; the reader picks up new workers on its next request.  ``mark_dead`` is
    how the reader reports a worker whose call failed; ``replace`` kills a worker that
    stopped answering (so it frees its CPUs/GPUs) and forgets it.
    """

    def __init__(self, model_dir, num_workers=1, worker_cpus=1.0, cpu_threads=1, device="cpu",
                 topk=None, use_mkldnn=True, ray_address=None, ray_num_cpus=None,
                 worker_gpus=0.0, min_workers=1, simulated_ms_per_sample=0.0,
                 start_timeout_s=None, start_retries=2, connect_timeout_s=10.0,
                 service=None, logger=None, _connect=False):
        self.logger = logger
        self.service = service
        self.owned = not _connect           # a service's workers are never killed for good
        self.workers = {}                   # worker id -> actor handle
        self.dead = []                      # ids of workers reported dead
        self.retired = []                   # ids killed after they stopped answering
        self._next_id = 0
        self._loading = {}                  # ready() ref -> worker id, for workers still loading
        self.loaded = {}                    # worker id -> when it was seen to have loaded
        self.min_workers = int(min_workers)
        self.assigned = None                # service with a coordinator: this student's workers
        self.coordinator = None
        self.student_id = None
        if _connect:
            init_ray(ray_address or "auto", None, connect_timeout_s)
            import ray
            self.student_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
            try:
                self.coordinator = ray.get_actor(coordinator_name(service), namespace=NAMESPACE)
            except ValueError:              # a service without one: every worker is shared
                self.coordinator = None
            self.refresh()
            if not self.workers:
                raise ConfigError(f"distill.service {service!r}: no teacher service of that "
                                  f"name in the Ray cluster (start it with tools/teacher_serve.py "
                                  f"-c CFG start)")
            return
        if not ray_address or os.path.isdir(model_dir):   # a cluster's nodes may hold it
            check_teacher_dir(model_dir)
        init_ray(ray_address, ray_num_cpus, connect_timeout_s)
        self.model_dir = os.path.abspath(model_dir)
        self.opts = dict(cpu_threads=cpu_threads, device=device, topk=topk, use_mkldnn=use_mkldnn,
                         simulated_ms_per_sample=simulated_ms_per_sample)
        self.resources = dict(num_cpus=float(worker_cpus), num_gpus=float(worker_gpus))
        if start_timeout_s is None:  # the project's Ray start-up budget (PPZOO_RAY_START_TIMEOUT_S)
            from .raystart import start_timeout_s as ray_start_budget
            start_timeout_s = ray_start_budget()
        self.start_timeout_s, self.start_retries = float(start_timeout_s), int(start_retries)
        self._cls = _actor_class()
        self.add(num_workers, wait=True)

    # ------------------------------------------------------------------ service
    @classmethod
    def connect(cls, service, ray_address=None, connect_timeout_s=10.0, logger=None):
        """Use the workers of the running service ``service`` (never kills them for good).

        With the service's coordinator, this student is given its share of the workers
        (at most ceil(C/S) students per worker, re-balanced as students and workers come
        and go); :meth:`ensure_alive` returns that share, the other workers stay known as
        a fallback for when all of its own are in trouble."""
        return cls(None, service=service, ray_address=ray_address,
                   connect_timeout_s=connect_timeout_s, logger=logger, _connect=True)

    def refresh(self):
        """Service: pick up workers the service added or dropped since the last look."""
        if self.owned:
            return
        import ray
        names = service_worker_names(self.service)
        for name, wid in names.items():
            if wid not in self.workers:     # new, or restarted by Ray after a failure
                try:
                    self.workers[wid] = ray.get_actor(name, namespace=NAMESPACE)
                except ValueError:      # gone between listing and lookup
                    pass
        for wid in [w for w in self.workers if w not in names.values()]:
            self.workers.pop(wid)
        if self.coordinator is not None:
            try:
                self.assigned = ray.get(self.coordinator.heartbeat.remote(self.student_id),
                                        timeout=10)
            except Exception:  # noqa: BLE001 - coordinator gone or slow: share every worker
                self.assigned = None

    def _log(self, msg):
        if self.logger:
            self.logger.info(msg)

    # ------------------------------------------------------------------ workers
    def _start(self, name=None):
        opts = dict(self.resources)
        if name:
            opts.update(name=name, namespace=NAMESPACE, lifetime="detached", max_restarts=-1)
        return self._cls.options(**opts).remote(self.model_dir, self.opts)

    def add(self, n=1, wait=False, names=None):
        """Start ``n`` more workers; with ``wait`` block until they have loaded the model."""
        if not self.owned:
            raise ConfigError("a student cannot add workers to a service; use "
                              "tools/teacher_serve.py -c CFG scale N")
        new = []
        for i in range(int(n)):
            wid = self._next_id
            self._next_id += 1
            self.workers[wid] = self._start(names[i] if names else None)
            new.append(wid)
        if wait and new:
            self._await_ready(new, names)
            self.loaded.update({w: time.time() for w in new})
        else:
            self._loading.update({self.workers[w].ready.remote(): w for w in new})
        return new

    def loaded_since(self, wid):
        """When worker ``wid`` was first seen to have loaded the teacher (0 for a
        service's workers, loaded before any student came), or None while it is still
        loading: the reader's deadlines for a worker start when it has loaded."""
        if not self.owned:
            return 0.0
        if wid not in self.loaded and self._loading:
            import ray
            done, _ = ray.wait(list(self._loading), num_returns=len(self._loading), timeout=0)
            for ref in done:
                self.loaded[self._loading.pop(ref)] = time.time()
        return self.loaded.get(wid)

    def _await_ready(self, wids, names=None):
        """Wait until ``wids`` loaded the model; replace a worker that dies while starting
        (up to ``start_retries`` times each); one clear error otherwise, within
        ``start_timeout_s``."""
        import ray
        from ray.exceptions import RayActorError
        deadline = time.time() + self.start_timeout_s
        tries = {w: 0 for w in wids}
        name_of = dict(zip(wids, names or [None] * len(wids)))
        refs = {self.workers[w].ready.remote(): w for w in wids}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1,
                               timeout=max(deadline - time.time(), 0.0))
            if not done:
                self._kill_all(wids)
                r = self.resources
                raise TeacherStartError(
                    f"{len(refs)} of {len(wids)} teacher workers did not start within "
                    f"{self.start_timeout_s:g} s (each asks for {r['num_cpus']:g} CPUs and "
                    f"{r['num_gpus']:g} GPUs; see 'ray status'; distill.start_timeout_s)")
            wid = refs.pop(done[0])
            try:
                _, error = ray.get(done[0])
            except RayActorError as err:
                tries[wid] += 1
                _kill(self.workers[wid])
                if tries[wid] > self.start_retries:
                    self._kill_all(wids)
                    raise TeacherStartError(
                        f"a teacher worker died while starting, {tries[wid]} times in a row "
                        f"({str(err).splitlines()[0][:200]})") from None
                self._log(f"teacher worker {wid} died while starting; starting it again")
                self.workers[wid] = self._start(name_of[wid])
                refs[self.workers[wid].ready.remote()] = wid
                continue
            if error:
                self._kill_all(wids)
                raise WeightsError(f"distill.teacher_dir {self.model_dir}: the teacher cannot "
                                   f"be loaded ({error})")

    def _kill_all(self, wids):
        for w in wids:
            if w in self.workers:
                _kill(self.workers.pop(w))

    def remove(self, n=1):
        """Stop the ``n`` newest workers (their unfinished requests are re-sent)."""
        for wid in sorted(self.workers)[-int(n):] if n else []:
            _kill(self.workers.pop(wid))

    def kill(self, wid):
        """Kill one worker abruptly (a failure, as far as the reader can tell)."""
        _kill(self.workers[wid])

    def mark_dead(self, wid):
        """A worker's call raised ``RayActorError`` for good: kill it (releasing whatever
        it still holds) and forget it; ``ensure_alive`` starts a replacement."""
        actor = self.workers.pop(wid, None)
        if actor is not None:
            self.dead.append(wid)
            if self.owned:
                _kill(actor)
            else:   # a service worker: Ray restarts it (max_restarts=-1)
                _kill(actor, no_restart=False)
                if self.coordinator is not None:     # re-balance; it joins again once loaded
                    self.coordinator.report_dead.remote(wid)
                if self.assigned is not None and wid in self.assigned:
                    self.assigned = [w for w in self.assigned if w != wid]

    def replace(self, wid):
        """A worker stopped answering (hung, paused, unreachable): kill it (it frees its
        reservation) and start a new one in its place, so the pool keeps its size; a
        service's worker is restarted by Ray under the same name instead."""
        if wid in self.workers:
            self.retired.append(wid)
            self.mark_dead(wid)
            if self.owned:
                self.add(1)

    def resize(self, n):
        n = max(int(n), 0)
        if n > len(self.workers):
            self.add(n - len(self.workers))
        elif n < len(self.workers):
            self.remove(len(self.workers) - n)

    def ensure_alive(self):
        """Keep at least ``min_workers`` (replacing dead ones); returns the live ids this
        student should use (a service's coordinator: its balanced share)."""
        if self.owned and len(self.workers) < self.min_workers:
            self.add(self.min_workers - len(self.workers))
        if self.assigned is not None:
            return [w for w in self.assigned if w in self.workers]
        return sorted(self.workers)

    def _each(self, method, timeout_s=10.0):
        """``method`` of every live worker; a worker that does not answer within
        ``timeout_s`` (hung, paused) or died is left out."""
        import ray
        refs = {getattr(a, method).remote(): w for w, a in self.workers.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s) if refs \
            else ([], [])
        out = {}
        for r in done:
            try:
                out[refs[r]] = ray.get(r)
            except Exception:  # noqa: BLE001 - died: left out
                pass
        return out

    def served(self):
        """Samples served per live worker (for tests and logs)."""
        return self._each("served")

    def cpu_seconds(self):
        """CPU seconds each live worker process has used (statistics: a hung worker is
        left out after 2 s rather than holding up the end of a run)."""
        return self._each("cpu_seconds", timeout_s=2.0)

    def info(self):
        return self._each("info")

    def shutdown(self):
        if self.owned:
            for a in self.workers.values():
                _kill(a)
        elif self.coordinator is not None:          # this student's share goes to others
            try:
                import ray
                ray.get(self.coordinator.leave_student.remote(self.student_id), timeout=10)
            except Exception:  # noqa: BLE001 - gone: its heartbeat times out instead
                pass
        self.workers.clear()


# ---------------------------------------------------------------------- the service
def service_worker_names(service):
    """``{actor name: worker id}`` of the running service ``service``."""
    import ray
    prefix = f"{service}/teacher-"
    out = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"] if isinstance(entry, dict) else entry
        ns = entry.get("namespace") if isinstance(entry, dict) else NAMESPACE
        if ns == NAMESPACE and name.startswith(prefix) and name[len(prefix):].isdigit():
            out[name] = int(name[len(prefix):])
    return out


class TeacherService(TeacherPool):
    """The owner's side of a service: named detached workers ``<service>/teacher-<i>``.

    Used by ``tools/teacher_serve.py``; students use :meth:`TeacherPool.connect`.
    """

    def __init__(self, service, model_dir, ray_address="auto", student_ttl_s=15.0, **kwargs):
        kwargs["num_workers"] = 0
        super().__init__(model_dir, ray_address=ray_address, service=service, **kwargs)
        import ray
        for name, wid in service_worker_names(service).items():
            self.workers[wid] = ray.get_actor(name, namespace=NAMESPACE)
        self._next_id = max(self.workers, default=-1) + 1
        self.coordinator = _coordinator_class().options(
            name=coordinator_name(service), namespace=NAMESPACE, lifetime="detached",
            get_if_exists=True, max_restarts=-1).remote(service, student_ttl_s)
        self.opts["coordinator"] = coordinator_name(service)
        if self.workers:    # workers of an earlier start: make sure they are registered
            ray.get([self.coordinator.join_teacher.remote(n)
                     for n in service_worker_names(service)], timeout=30)

    def scale(self, n):
        n = max(int(n), 0)
        if n > len(self.workers):
            k = n - len(self.workers)
            ids = range(self._next_id, self._next_id + k)
            self.add(k, wait=True, names=[f"{self.service}/teacher-{i}" for i in ids])
        elif n < len(self.workers):
            self.remove(len(self.workers) - n)
        return sorted(self.workers)

    def remove(self, n=1):
        """The ``n`` newest workers leave the coordinator (students re-balance), then stop."""
        import ray
        gone = sorted(self.workers)[-int(n):] if n else []
        try:
            ray.get([self.workers[w].leave.remote() for w in gone], timeout=10)
        except Exception:  # noqa: BLE001 - hung or dead: the coordinator notices it is gone
            pass
        for wid in gone:
            _kill(self.workers.pop(wid))

    def balance_state(self):
        """The coordinator's view: joined teachers and ``{student: [worker ids]}``."""
        import ray
        return ray.get(self.coordinator.state.remote(), timeout=10)

    def stop(self):
        for a in self.workers.values():
            _kill(a)
        self.workers.clear()
        _kill(self.coordinator)


def wait_for(cond, timeout=30.0, step=0.05):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            return False
        time.sleep(step)
    return True
