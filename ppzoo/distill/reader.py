"""The student side of distillation: where each batch's soft labels come from.

Three sources share one interface, ``read(batches) -> batches with 'teacher'``:

``EDLReader``
    splits each student batch into requests of ``request_size`` samples, keeps at most
    ``max_in_flight`` requests at the teacher pool and ``prefetch`` batches ahead of
    the student, and yields batches in the student's order once all their requests are
    answered.  A request whose worker died or left is sent again to a live worker, so
    every sample gets its soft label exactly once; workers added to the pool start
    taking requests at the next dispatch.
``OnlineSource``
    the baseline: the teacher runs in the student's process, batch by batch.
``OfflineSource``
    soft labels computed once and stored by sample index (``write_soft_labels``).
"""
import collections
import json
import os
import shutil
import time

import numpy as np
import paddle

from ..core.errors import ConfigError, DataError


def _to_numpy(x):
    return x.numpy() if isinstance(x, paddle.Tensor) else np.asarray(x)


def _concat(parts):
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
    return np.concatenate(parts)


def _to_tensor(soft):
    if isinstance(soft, tuple):
        return tuple(paddle.to_tensor(s) for s in soft)
    return paddle.to_tensor(soft)


class _Request:
    __slots__ = ("pending", "part", "inputs", "tries", "refs")

    def __init__(self, pending, part, inputs):
        self.pending, self.part, self.inputs, self.tries, self.refs = pending, part, inputs, 0, set()


PROBE_EVERY_S = 1.0     # a worker in trouble that holds no call gets a probe at most this often


class _Pending:
    __slots__ = ("batch", "parts", "left")

    def __init__(self, batch, n_parts):
        self.batch, self.parts, self.left = batch, [None] * n_parts, n_parts


class EDLReader:
    """Soft labels from an elastic :class:`~ppzoo.distill.pool.TeacherPool`.

    Deadlines: a request unanswered after ``request_timeout_s`` (default: adaptive,
    ``timeout_factor`` x the median answer time so far, at least ``min_timeout_s``;
    ``first_timeout_s`` until the first answers) is sent again to another worker; the
    first answer wins and later copies are dropped (``late_dropped``).  The slow copy
    no longer counts against ``max_in_flight``, so a hung worker cannot stall the
    student.  A worker that timed out or was reported temporarily unavailable is *in
    trouble*: it gets no new request while it holds unanswered calls, then one at a
    time as a probe (at most every ``PROBE_EVERY_S``); if it answers again it is trusted
    again, if it stays silent for ``replace_after_s`` it is killed (freeing its
    resources) and replaced.  What the reader knows about each worker (in trouble since
    when, calls it still holds, answered or not) lives on the reader, not in one
    ``read`` call: it holds across epochs for the whole run, and ``state_dict`` carries
    it over a ``--resume`` for a service's workers (the only ones that outlive the
    student), so a paused worker is replaced however short the epochs are.  A teacher
    that raises (or a worker that dies) is retried on other workers, up to
    ``max_retries`` times per request, then a ``DataError`` stops training; missed
    deadlines and "temporarily unavailable" answers do not count (a hung or unreachable
    worker is handled by replacement, not by giving up).
    """

    def __init__(self, pool, input_keys, request_size=32, max_in_flight=4, prefetch=2,
                 control_file=None, poll_s=1.0, logger=None, max_retries=5,
                 request_timeout_s=None, first_timeout_s=60.0, min_timeout_s=1.0,
                 timeout_factor=10.0, replace_after_s=30.0, wait_log_s=5.0, rank=0):
        self.pool, self.input_keys = pool, list(input_keys)
        self.request_size = int(request_size)
        self.max_in_flight = max(int(max_in_flight), 1)
        self.prefetch = max(int(prefetch), 1)
        self.control_file, self.poll_s = control_file, float(poll_s)
        self.logger = logger
        self.max_retries = int(max_retries)
        self.request_timeout_s = None if request_timeout_s is None else float(request_timeout_s)
        self.first_timeout_s, self.min_timeout_s = float(first_timeout_s), float(min_timeout_s)
        self.timeout_factor, self.replace_after_s = float(timeout_factor), float(replace_after_s)
        self.wait_log_s, self.rank = float(wait_log_s), int(rank)
        self.resent = 0            # requests sent again (worker died, left, timed out, raised)
        self.timeouts = 0          # requests that passed their deadline
        self.late_dropped = 0      # answers that came after another copy was answered
        self.unavailable = 0       # calls answered with "temporarily unavailable"
        self.per_worker = collections.Counter()   # samples answered, by worker id
        self.wait_s = 0.0          # time the student spent waiting for soft labels
        self.latencies = collections.deque(maxlen=64)
        self._last_poll = 0.0
        self._control_value = None
        # per worker, for the whole run (every read() call, i.e. every epoch)
        self._trouble = {}         # wid -> when it first missed a deadline / was unavailable
        self._silent = set()       # wids seen silent by this reader (restored ones: not yet)
        self._answered = set()     # workers that answered (past their start-up)
        self._probed = {}          # wid -> when it last got a probe
        self._stale = {}           # ObjectRef -> (rid, wid, sent): calls past their deadline
        self._load = collections.Counter()   # calls outstanding per worker (every kind)
        self._next_rid = 0         # request ids stay unique over the run (late answers of
                                   # an earlier epoch are recognised and dropped)

    # -------------------------------------------------------------- elasticity
    def _poll_control(self):
        """``echo N > <control_file>`` resizes the pool to N workers while training runs;
        a service's worker list is refreshed at the same pace."""
        now = time.time()
        if now - self._last_poll < self.poll_s:
            return
        self._last_poll = now
        if not self.pool.owned:
            self.pool.refresh()
            return
        if not self.control_file:
            return
        try:
            with open(self.control_file, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError:
            return
        if not text or text == self._control_value:
            return
        self._control_value = text
        try:
            n = int(text)
        except ValueError:
            self._log(f"ignoring {self.control_file}: {text!r} is not a number of workers")
            return
        self._log(f"resizing the teacher pool from {len(self.pool.workers)} to {n} workers")
        self.pool.resize(n)

    def _log(self, msg):
        if self.logger:
            self.logger.info(msg)

    def timeout(self):
        """The current per-request deadline in seconds."""
        if self.request_timeout_s is not None:
            return self.request_timeout_s
        if len(self.latencies) < 3:
            return self.first_timeout_s
        return max(self.min_timeout_s, self.timeout_factor * float(np.median(self.latencies)))

    def state_dict(self):
        """What a resumed student needs to know about the workers it finds again: the
        service's workers in trouble and since when (a local pool ends with its student,
        so there is nothing to carry over)."""
        service = None if getattr(self.pool, "owned", True) else getattr(self.pool, "service", None)
        return {"service": service,
                "trouble": {str(w): t for w, t in self._trouble.items()} if service else {}}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` of the same service: its workers in trouble stay in
        trouble from the same moment.  Such a worker gets a probe; if that passes its
        deadline too, it is replaced at once when ``replace_after_s`` has passed since."""
        state = state or {}
        if not state.get("service") or getattr(self.pool, "owned", True) or \
                state["service"] != getattr(self.pool, "service", None):
            return
        for w, since in (state.get("trouble") or {}).items():
            if int(w) in self.pool.workers:
                self._trouble.setdefault(int(w), float(since))

    def _forget(self, wid):
        """Drop the calls a replaced worker still held (their requests were sent again)."""
        for ref in [r for r, v in self._stale.items() if v[1] == wid]:
            self._stale.pop(ref)
        self._load.pop(wid, None)
        for d in (self._trouble, self._probed):
            d.pop(wid, None)
        self._silent.discard(wid)

    # -------------------------------------------------------------- reading
    def _pick(self, live, holders, now, limit):
        """The worker for the next request, or None (every worker in trouble and none due
        for a probe: wait).  A worker in trouble that holds no call gets a probe at most
        every ``min(limit, PROBE_EVERY_S)``; otherwise the least-loaded healthy worker (a
        new one still loading included: it answers once loaded), preferring one that
        does not already hold the request."""
        trouble, load = self._trouble, self._load
        every = min(limit, PROBE_EVERY_S)
        for w in live:
            if w in trouble and load[w] == 0 and now - self._probed.get(w, 0.0) >= every:
                self._probed[w] = now
                return w
        ok = [w for w in live if w not in trouble] or \
            [w for w in self.pool.workers if w not in trouble]   # a service: beyond its share
        if not ok:
            return None
        choice = [w for w in ok if w not in holders] or ok
        n = max(len(live), 1)
        return min(choice, key=lambda w: (load[w], (w + self.rank) % n))

    def read(self, batches):
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        it = iter(batches)
        exhausted = False
        pending = collections.deque()        # _Pending, in student order
        queue = collections.deque()          # request ids waiting for a worker
        requests = {}                        # rid -> _Request (until answered)
        inflight = {}                        # ObjectRef -> (rid, wid, sent at): within deadline
        stale, load, trouble = self._stale, self._load, self._trouble   # the whole run's
        last_wait_log = time.time()

        def settle(ref):
            rid, wid, sent = inflight.pop(ref, None) or stale.pop(ref)
            load[wid] = max(load[wid] - 1, 0)
            if rid in requests:
                requests[rid].refs.discard(ref)
            return rid, wid, sent

        def retry(rid, why, count=True):
            req = requests[rid]
            req.tries += int(count)
            if req.tries > self.max_retries:
                raise DataError(f"teacher request {rid} failed {req.tries} times, last: {why}; "
                                f"giving up (distill.max_retries)")
            queue.appendleft(rid)
            self.resent += 1

        try:
            while True:
                self._poll_control()
                while not exhausted and len(pending) < self.prefetch:
                    try:
                        batch = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    inputs = [_to_numpy(batch[k]) for k in self.input_keys]
                    n = len(inputs[0])
                    starts = list(range(0, n, self.request_size))
                    p = _Pending(batch, len(starts))
                    pending.append(p)
                    for part, s in enumerate(starts):
                        rid = self._next_rid
                        self._next_rid += 1
                        requests[rid] = _Request(p, part,
                                                 [x[s:s + self.request_size] for x in inputs])
                        queue.append(rid)
                limit = self.timeout()
                while queue and len(inflight) < self.max_in_flight:
                    live = self.pool.ensure_alive()
                    if not live:
                        break
                    rid = queue[0]
                    if rid not in requests:      # answered by an earlier copy meanwhile
                        queue.popleft()
                        continue
                    holders = {inflight.get(r, stale.get(r, (0, None)))[1]
                               for r in requests[rid].refs}
                    wid = self._pick(live, holders, time.time(), limit)
                    if wid is None:
                        break
                    queue.popleft()
                    try:
                        ref = self.pool.workers[wid].infer.remote(rid, requests[rid].inputs)
                    except RayActorError:
                        self.pool.mark_dead(wid)
                        self._forget(wid)
                        queue.appendleft(rid)
                        continue
                    inflight[ref] = (rid, wid, time.time())
                    requests[rid].refs.add(ref)
                    load[wid] += 1
                if pending and pending[0].left == 0:
                    p = pending.popleft()
                    batch = p.batch
                    batch["teacher"] = _to_tensor(_concat(p.parts))
                    yield batch
                    continue
                if not pending and exhausted:
                    return
                now = time.time()
                # move calls past their deadline aside and send the request again
                for ref, (rid, wid, sent) in list(inflight.items()):
                    start = sent
                    if now - sent > limit and wid not in self._answered:
                        since = self.pool.loaded_since(wid)   # the clock starts once loaded
                        start = max(sent, since) if since is not None else \
                            sent + self.first_timeout_s - limit
                    if now - start > limit:
                        stale[ref] = inflight.pop(ref)
                        trouble.setdefault(wid, start + limit)
                        self._silent.add(wid)
                        self.timeouts += 1
                        if rid in requests and not any(r in inflight for r in requests[rid].refs):
                            self._log(f"teacher request {rid} on worker {wid} passed its "
                                      f"{limit:.2f} s deadline; sent again")
                            retry(rid, f"no answer within {limit:.2f} s", count=False)
                for wid, since in list(trouble.items()):
                    if wid not in self.pool.workers:
                        self._forget(wid)
                    elif wid in self._silent and now - since > self.replace_after_s:
                        self._log(f"teacher worker {wid} silent for {now - since:.1f} s; "
                                  f"replaced")
                        self.pool.replace(wid)
                        self._forget(wid)
                        for ref in [r for r, v in inflight.items() if v[1] == wid]:
                            rid = inflight.pop(ref)[0]      # a probe it held: send elsewhere
                            if rid in requests:
                                requests[rid].refs.discard(ref)
                                if not requests[rid].refs:
                                    retry(rid, f"worker {wid} replaced", count=False)
                refs = list(inflight) + list(stale)
                if not refs:
                    if now - last_wait_log >= self.wait_log_s:
                        last_wait_log = now
                        self._log(f"waiting for teacher workers: {len(self.pool.workers)} live, "
                                  f"{len(trouble)} in trouble, {len(queue)} requests queued "
                                  f"(add workers: control file {self.control_file}, or "
                                  f"tools/teacher_serve.py scale N)")
                    time.sleep(0.05)
                    continue
                t0 = time.time()
                wait_s = min(self.poll_s, max(limit / 4, 0.01))
                done, _ = ray.wait(refs, num_returns=1, timeout=wait_s)
                if done and len(refs) > 1:   # collect everything else already answered
                    more, _ = ray.wait([r for r in refs if r not in done],
                                       num_returns=len(refs) - 1, timeout=0)
                    done += more
                self.wait_s += time.time() - t0
                for ref in done:
                    if ref not in inflight and ref not in stale:   # its worker was replaced
                        continue
                    rid, wid, sent = settle(ref)
                    try:
                        _, soft = ray.get(ref)
                    except ActorUnavailableError:
                        # maybe back soon (restarting, network): not dead and not a failed
                        # try of the request; keep the worker in trouble, send elsewhere
                        self.unavailable += 1
                        trouble.setdefault(wid, time.time())
                        self._silent.add(wid)
                        if rid in requests and not requests[rid].refs:
                            retry(rid, f"worker {wid} temporarily unavailable", count=False)
                        continue
                    except RayActorError:
                        self.pool.mark_dead(wid)
                        self._forget(wid)
                        if rid in requests and not requests[rid].refs:
                            self._log(f"teacher worker {wid} died or left; request {rid} "
                                      f"sent again")
                            retry(rid, f"worker {wid} died")
                        continue
                    except RayTaskError as err:
                        cause = str(err).strip().splitlines()[-1][:300]
                        if rid in requests and not requests[rid].refs:
                            self._log(f"teacher worker {wid} raised on request {rid} "
                                      f"({cause}); sent again")
                            retry(rid, cause)
                        continue
                    trouble.pop(wid, None)
                    self._silent.discard(wid)
                    self._answered.add(wid)
                    if rid not in requests:
                        self.late_dropped += 1
                        continue
                    req = requests.pop(rid)
                    for other in req.refs:      # copies still out: their answers are dropped
                        if other in inflight:
                            stale[other] = inflight.pop(other)
                    self.latencies.append(time.time() - sent)
                    req.pending.parts[req.part] = soft
                    req.pending.left -= 1
                    self.per_worker[wid] += len(req.inputs[0])
        finally:
            # the epoch ended (or the loop stopped early): calls still out stay counted
            # against their workers, so a hung worker keeps holding them next epoch
            stale.update(inflight)

    def close(self):
        self.pool.shutdown()


class OnlineSource:
    """The baseline: the teacher's forward runs in the student's process for each batch."""

    def __init__(self, runner, input_keys):
        self.runner, self.input_keys = runner, list(input_keys)
        self.wait_s = 0.0

    def read(self, batches):
        for batch in batches:
            t0 = time.time()
            soft = self.runner.infer([_to_numpy(batch[k]) for k in self.input_keys])
            self.wait_s += time.time() - t0
            batch["teacher"] = _to_tensor(soft)
            yield batch

    def close(self):
        pass


class OfflineSource:
    """Soft labels read from a folder ``write_soft_labels`` made, by sample index."""

    def __init__(self, path, num_samples):
        meta_file = os.path.join(path, "meta.json")
        if not os.path.isfile(meta_file):
            raise DataError(f"soft-label folder {path} has no meta.json")
        with open(meta_file, encoding="utf-8") as f:
            self.meta = json.load(f)
        if self.meta["num_samples"] != num_samples:
            raise DataError(f"{path} holds soft labels for {self.meta['num_samples']} samples, "
                            f"the training set has {num_samples}; delete it to recompute")
        names = ["values.npy", "indices.npy"] if self.meta.get("topk") else ["logits.npy"]
        self.arrays = [np.load(os.path.join(path, n), mmap_mode="r") for n in names]
        self.wait_s = 0.0

    def read(self, batches):
        for batch in batches:
            idx = _to_numpy(batch["index"]).astype(np.int64)
            soft = [np.ascontiguousarray(a[idx]) for a in self.arrays]
            batch["teacher"] = _to_tensor(tuple(soft) if len(soft) > 1 else soft[0])
            yield batch

    def close(self):
        pass


def write_soft_labels(source, loader, path, num_samples, meta=None):
    """Run ``source`` (online or EDL) over ``loader`` once and store the soft labels by
    sample index in ``path`` (written to a temporary folder, then renamed)."""
    store = None
    seen = np.zeros(num_samples, bool)
    for batch in source.read(loader):
        idx = _to_numpy(batch["index"]).astype(np.int64)
        soft = batch["teacher"]
        soft = [s.numpy() for s in soft] if isinstance(soft, tuple) else [soft.numpy()]
        if store is None:
            store = [np.zeros((num_samples,) + s.shape[1:], s.dtype) for s in soft]
        for a, s in zip(store, soft):
            a[idx] = s
        seen[idx] = True
    if store is None or not seen.all():
        raise DataError(f"soft labels missing for {int((~seen).sum())} of {num_samples} samples")
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    names = ["values.npy", "indices.npy"] if len(store) == 2 else ["logits.npy"]
    for n, a in zip(names, store):
        np.save(os.path.join(tmp, n), a)
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(dict(meta or {}, num_samples=num_samples, topk=len(store) == 2 and
                       int(store[0].shape[-1]) or None), f, indent=1)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.rename(tmp, path)


def check_mode(mode, source):
    if mode not in ("online", "edl", "offline"):
        raise ConfigError(f"{source}: distill.mode must be online, edl or offline, got {mode!r}")
