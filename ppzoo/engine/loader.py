"""The engine's data loaders: a sample that cannot be read reaches the main thread at once,
and the main thread waits for data where signals still work.

Paddle's DataLoader reads samples in a thread (``num_workers: 0``) or in worker processes;
an exception raised there ends the reading thread without telling the main thread, which
then waits for the next batch for ever, in C++ code where SIGINT and SIGTERM handlers never
run.  Two changes close that hole for every dataset:

* the dataset is wrapped so that a failing sample becomes a value (its index and error)
  and the collate step packs those values next to the batch; the main thread unpacks them
  and raises a ``DataError`` naming the sample's file and dataset (or, with
  ``train.bad_samples: {skip: true}``, drops the sample, logs its file once and counts it);
* the Paddle iterator is driven by a helper thread, and the main thread waits on a Python
  queue in short slices, so signal handlers run and an interrupt stops the wait.
"""
import queue
import threading
import traceback

import numpy as np
import paddle
from paddle.io.dataloader.collate import default_collate_fn

from ..core.errors import DataError

_BATCH, _BAD, _COUNT = "__ppzoo_batch__", "__ppzoo_bad__", "__ppzoo_count__"
_N = "__ppzoo_n__"  # the same count as a plain int: read without a device copy
_POLL = 0.2  # seconds between checks of the stop flag while waiting for data


class BadSampleError(DataError):
    """A sample of a dataset could not be read (or too many could, with skipping on)."""


class LoaderError(RuntimeError):
    """Code in the data loader failed with an error that is not a data problem (a bug);
    the message carries the loader's traceback."""


class LoaderInterrupted(Exception):
    """SIGINT/SIGTERM arrived while the main thread was waiting for a batch."""


def _describe(err):
    if isinstance(err, OSError) and not isinstance(err, DataError):
        what = err.strerror or str(err) or type(err).__name__
        return f"{what}: {err.filename}" if err.filename else what
    return str(err) or type(err).__name__


class _GuardedDataset(paddle.io.Dataset):
    """Returns ``("bad", index, kind, message)`` instead of raising: kind ``data`` for a
    DataError or OSError (a file that cannot be read), ``error`` with the traceback else."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        try:
            return self.dataset[idx]
        except (DataError, OSError) as err:
            return _Bad(int(idx), "data", _describe(err))
        except Exception:  # noqa: BLE001  (handed to the main thread, raised there)
            return _Bad(int(idx), "error", traceback.format_exc())


class _Bad:
    __slots__ = ("index", "kind", "message")

    def __init__(self, index, kind, message):
        self.index, self.kind, self.message = index, kind, message

    def __reduce__(self):
        return _Bad, (self.index, self.kind, self.message)


class _GuardedCollate:
    """Collates the readable samples (all of them, or none when ``skip`` is off and one is
    bad) and packs the bad ones next to the batch, as plain lists Paddle passes through."""

    def __init__(self, collate_fn, skip):
        self.collate_fn = collate_fn or default_collate_fn
        self.skip = skip

    def __call__(self, samples):
        bad = [[s.index, s.kind, s.message] for s in samples if isinstance(s, _Bad)]
        good = [s for s in samples if not isinstance(s, _Bad)]
        batch = None
        if good and (self.skip or not bad):
            try:
                batch = self.collate_fn(good)
            except Exception:  # noqa: BLE001
                bad.append([-1, "error", traceback.format_exc()])
                batch = None
        # the count array keeps the packed batch from ever being empty of tensors; the
        # loop reads the plain int beside it, so no step waits on a device-to-host copy
        return {_BATCH: batch, _BAD: bad, _COUNT: np.array([len(samples)], np.int64),
                _N: len(samples)}


def drive(iterator, stop=None, poll=_POLL):
    """Yield the items of ``iterator``, fetched by a helper thread, while this thread waits
    on a queue in ``poll``-second slices: signal handlers run during the wait, and
    ``stop()`` turning true ends it with ``LoaderInterrupted``.  An exception of the
    iterator is raised here."""
    q = queue.Queue(maxsize=1)
    done = threading.Event()
    end = object()

    def put(item):
        while not done.is_set():
            try:
                q.put(item, timeout=poll)
                return True
            except queue.Full:
                continue
        return False

    def run():
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as err:  # noqa: BLE001  (raised in the waiting thread)
            put((end, err))

    helper = threading.Thread(target=run, name="ppzoo-data-wait", daemon=True)
    helper.start()
    try:
        while True:
            try:
                item, err = q.get(timeout=poll)
            except queue.Empty:
                if stop is not None and stop():
                    raise LoaderInterrupted() from None
                continue
            if item is end:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        done.set()


def release(it, grace=1.0):
    """Shut a Paddle loader iterator down that is left before its end, without waiting for
    ever on a reading thread or worker stuck in a sample that never loads.

    Paddle's own shutdown (also run at exit) joins the reading thread without a timeout
    and its workers with none from ``__del__``.  Here the thread and the workers get
    ``grace`` seconds; a thread still reading is left behind (a daemon thread, it ends with
    the process), a worker still reading is terminated."""
    thread = getattr(it, "_thread", None)
    if thread is not None:
        it._thread = None  # Paddle's shutdown skips the join; this one waits with a timeout
    workers = list(getattr(it, "_workers", None) or [])
    try:
        if workers:
            it._try_shutdown_all(grace)
        else:
            it._try_shutdown_all()
    except Exception:  # noqa: BLE001  (best effort: the iterator is being dropped)
        pass
    if thread is not None and thread is not threading.current_thread():
        thread.join(grace)
    for w in workers:
        if w.is_alive():
            w.terminate()


class BadSamples:
    """What to do with a sample that cannot be read (``train.bad_samples``).

    Default: stop with a ``BadSampleError`` naming the file and dataset.  With ``skip``:
    leave the sample out of its batch, log its file once, count it, and stop when more than
    ``max_fraction`` of a dataset's samples have turned out bad (distinct samples, so a bad
    file met again in the next epoch, or early in an epoch, does not count twice).
    ``skipped`` counts the skipped training samples over the run (kept in ``latest/``),
    ``eval_skipped`` those of the last evaluation.
    """

    def __init__(self, cfg=None, logger=None):
        cfg = dict(cfg or {})
        self.skip = bool(cfg.get("skip", False))
        self.max_fraction = float(cfg.get("max_fraction", 0.01))
        self.logger = logger
        self.seen = self.skipped = 0            # training, over the run
        self.eval_seen = self.eval_skipped = 0  # the last evaluation
        self.named = set()                      # "<dataset>:<index>" of every bad sample met

    def state_dict(self):
        return {"seen": self.seen, "skipped": self.skipped, "named": sorted(self.named)}

    def load_state_dict(self, state):
        self.seen, self.skipped = int(state.get("seen", 0)), int(state.get("skipped", 0))
        self.named = set(state.get("named", []))

    def begin(self, training):
        if not training:
            self.eval_seen = self.eval_skipped = 0

    def check(self, where, training, size, count, bad):
        """Raise for a bad sample unless skipping; count and log otherwise."""
        for index, kind, message in bad:
            if kind != "data":
                sample = f"sample {index}" if index >= 0 else "a batch (collate_fn)"
                raise LoaderError(f"{where}: {sample} failed in the data loader:\n{message}")
        if training:
            self.seen += count
        else:
            self.eval_seen += count
        if not bad:
            return
        if not self.skip:
            more = f" (and {len(bad) - 1} more in this batch)" if len(bad) > 1 else ""
            raise BadSampleError(f"{where} sample {bad[0][0]}: {bad[0][2]}{more}")
        if training:
            self.skipped += len(bad)
        else:
            self.eval_skipped += len(bad)
        for index, _, message in bad:
            key = f"{where}:{index}"
            if key not in self.named:
                self.named.add(key)
                if self.logger is not None:
                    self.logger.warning(f"skipping a bad sample of {where} (sample {index}): "
                                        f"{message}")
        n_bad = sum(k.rsplit(":", 1)[0] == where for k in self.named)
        if n_bad > self.max_fraction * size:
            raise BadSampleError(
                f"{where}: {n_bad} of its {size} samples are bad, more than "
                f"train.bad_samples.max_fraction={self.max_fraction:g}; the last: "
                f"sample {bad[-1][0]}: {bad[-1][2]}")


class SafeLoader:
    """A ``paddle.io.DataLoader`` whose failing samples reach the main thread (see the
    module).  Iterating yields the batches, leaving out batches whose samples were all
    skipped; ``steps()`` yields ``None`` in their place, so the trainer can keep its
    iteration count tied to the sampler's position."""

    def __init__(self, dataset, batch_sampler, where, policy, training, collate_fn=None,
                 num_workers=0, stop=None):
        self.dataset, self.batch_sampler, self.where = dataset, batch_sampler, where
        self.policy, self.training, self.stop = policy, training, stop
        self.loader = paddle.io.DataLoader(
            _GuardedDataset(dataset), batch_sampler=batch_sampler,
            collate_fn=_GuardedCollate(collate_fn, policy.skip), num_workers=int(num_workers),
            use_shared_memory=False)

    def __len__(self):
        return len(self.loader)

    def steps(self):
        self.policy.begin(self.training)
        it = iter(self.loader)  # here, in the calling thread: workers start, handlers are set
        finished = False
        try:
            for packed in drive(it, self.stop):
                count = packed.get(_N)
                if not isinstance(count, int):  # a collate that lost the int: read the array
                    count = packed[_COUNT]
                    count = int(count.numpy()[0]) if hasattr(count, "numpy") else int(np.asarray(count)[0])
                self.policy.check(self.where, self.training, len(self.dataset), count,
                                  packed[_BAD])
                yield packed[_BATCH]
            finished = True
        finally:
            if not finished:
                release(it)

    def __iter__(self):
        return (b for b in self.steps() if b is not None)
