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


class _Pending:
    __slots__ = ("batch", "parts", "left")

    def __init__(self, batch, n_parts):
        self.batch, self.parts, self.left = batch, [None] * n_parts, n_parts


class EDLReader:
    """Soft labels from an elastic :class:`~ppzoo.distill.pool.TeacherPool`."""

    def __init__(self, pool, input_keys, request_size=32, max_in_flight=4, prefetch=2,
                 control_file=None, poll_s=1.0, logger=None, max_retries=20):
        self.pool, self.input_keys = pool, list(input_keys)
        self.request_size = int(request_size)
        self.max_in_flight = max(int(max_in_flight), 1)
        self.prefetch = max(int(prefetch), 1)
        self.control_file, self.poll_s = control_file, float(poll_s)
        self.logger = logger
        self.max_retries = int(max_retries)
        self.resent = 0            # requests sent again after a worker died or left
        self.per_worker = collections.Counter()   # samples answered, by worker id
        self.wait_s = 0.0          # time the student spent waiting for soft labels
        self._last_poll = 0.0
        self._control_value = None

    # -------------------------------------------------------------- elasticity
    def _poll_control(self):
        """``echo N > <control_file>`` resizes the pool to N workers while training runs."""
        now = time.time()
        if not self.control_file or now - self._last_poll < self.poll_s:
            return
        self._last_poll = now
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

    # -------------------------------------------------------------- reading
    def read(self, batches):
        import ray
        from ray.exceptions import RayActorError

        it = iter(batches)
        exhausted = False
        pending = collections.deque()        # _Pending, in student order
        queue = collections.deque()          # request ids waiting for a worker
        requests = {}                        # rid -> (pending, part, inputs, tries)
        inflight = {}                        # ObjectRef -> (rid, wid)
        load = collections.Counter()         # requests in flight per worker
        next_rid = 0
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
                    requests[next_rid] = (p, part, [x[s:s + self.request_size] for x in inputs], 0)
                    queue.append(next_rid)
                    next_rid += 1
            while queue and len(inflight) < self.max_in_flight:
                live = self.pool.ensure_alive()
                if not live:
                    break
                wid = min(live, key=lambda w: (load[w], w))
                rid = queue.popleft()
                ref = self.pool.workers[wid].infer.remote(rid, requests[rid][2])
                inflight[ref] = (rid, wid)
                load[wid] += 1
            if pending and pending[0].left == 0:
                p = pending.popleft()
                batch = p.batch
                batch["teacher"] = _to_tensor(_concat(p.parts))
                yield batch
                continue
            if not pending and exhausted:
                return
            if not inflight:
                time.sleep(0.05)     # no live worker: wait for one to be added
                continue
            t0 = time.time()
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
            if done and len(inflight) > 1:   # collect everything else already answered
                more, _ = ray.wait([r for r in inflight if r not in done],
                                   num_returns=len(inflight) - 1, timeout=0)
                done += more
            self.wait_s += time.time() - t0
            for ref in done:
                rid, wid = inflight.pop(ref)
                load[wid] -= 1
                try:
                    _, soft = ray.get(ref)
                except RayActorError:
                    self.pool.mark_dead(wid)
                    p, part, inputs, tries = requests[rid]
                    if tries >= self.max_retries:
                        raise DataError(f"teacher request {rid} failed on {tries + 1} workers; "
                                        f"giving up") from None
                    requests[rid] = (p, part, inputs, tries + 1)
                    queue.appendleft(rid)
                    self.resent += 1
                    self._log(f"teacher worker {wid} died or left; request {rid} sent again")
                    continue
                p, part, inputs, _ = requests.pop(rid)
                p.parts[part] = soft
                p.left -= 1
                self.per_worker[wid] += len(inputs[0])

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
