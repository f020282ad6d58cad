"""Downloads into the weights cache: verified before they are visible, never half-written.

A download streams into a temp file beside its final name while hashing; only when the
byte count matches Content-Length and the hash matches the expected one is it renamed
into place (``os.replace`` is atomic on one file system), so a crash, a dropped
connection or a wrong file never leaves something that a later run would trust.  A
cached file is hashed again before every use: a file damaged on disk is fetched anew.
"""
import hashlib
import http.client
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from ..core.errors import WeightsError

CHUNK = 1 << 20
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
TIMEOUT = 30
_PART_PREFIX = ".part-"
STALE_PART_AGE = 3600


def cache_root():
    """``$PPZOO_HOME`` (default ``~/.cache/ppzoo``)."""
    return os.path.expanduser(os.environ.get("PPZOO_HOME") or os.path.join("~", ".cache", "ppzoo"))


def weights_dir():
    return os.path.join(cache_root(), "weights")


def split_url_hash(url):
    """``url#sha256=<hex>`` (pip's convention) -> (url, {"sha256": hex}); else (url, {})."""
    base, _, frag = url.partition("#")
    m = re.fullmatch(r"(sha256|md5)=([0-9a-fA-F]+)", frag)
    if frag and not m:
        raise WeightsError(f"{url}: a URL fragment must be #sha256=<hex> (or #md5=<hex>)")
    return base, ({m.group(1): m.group(2).lower()} if m else {})


def cache_path(url, sha256=None, md5=None):
    """Where ``url`` is cached: ``weights/<host>/<hash of url>/[<algo>-<digest>/]<file name>``.

    The short hash keeps two URLs with the same file name apart; the host and the file
    name keep the cache readable.  A download with an expected hash has a folder of its
    own, so asking for a URL with a wrong hash never touches the file verified under the
    right one.
    """
    url, frag = split_url_hash(url)
    parts = urllib.parse.urlsplit(url)
    host = re.sub(r"[^A-Za-z0-9._-]", "_", parts.netloc) or "local"
    fname = os.path.basename(urllib.parse.unquote(parts.path)) or "weights"
    fname = re.sub(r"[^A-Za-z0-9._-]", "_", fname).lstrip(".") or "weights"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    expected = _expected(sha256, md5, frag)
    if expected:
        algo, digest = next(iter(expected.items()))
        return os.path.join(weights_dir(), host, key, f"{algo}-{digest[:16]}", fname)
    return os.path.join(weights_dir(), host, key, fname)


def _expected(sha256=None, md5=None, frag=None):
    if sha256:
        digest, algo = str(sha256).lower(), "sha256"
    elif md5:
        digest, algo = str(md5).lower(), "md5"
    elif frag:
        return dict(frag)
    else:
        return {}
    if not re.fullmatch(r"[0-9a-f]+", digest):
        raise WeightsError(f"{algo} {digest!r} is not a hexadecimal digest")
    return {algo: digest}


def file_hash(path, algo="sha256"):
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _record_path(path):
    return path + ".sha256"


def _verify_cached(path, expected):
    """True if the cached file matches ``expected`` (or, with no expected hash, the
    sha256 recorded when it was downloaded)."""
    if expected:
        algo, digest = next(iter(expected.items()))
        return file_hash(path, algo) == digest
    rec = _record_path(path)
    if not os.path.isfile(rec):
        return False
    with open(rec, "r", encoding="utf-8") as f:
        recorded = f.read().split()[0:1]
    return bool(recorded) and file_hash(path) == recorded[0]


def _remove_empty_dirs(path, stop):
    """Remove ``path`` and its parents while empty, up to (not including) ``stop``."""
    stop = os.path.abspath(stop)
    path = os.path.abspath(path)
    while path.startswith(stop + os.sep):
        try:
            os.rmdir(path)
        except OSError:
            return
        path = os.path.dirname(path)


def _remove_stale_parts(folder, age=STALE_PART_AGE):
    """Temp files of a process killed mid-download; a live download keeps its own fresh."""
    now = time.time()
    for name in os.listdir(folder):
        p = os.path.join(folder, name)
        try:
            if name.startswith(_PART_PREFIX) and now - os.path.getmtime(p) > age:
                os.remove(p)
        except OSError:
            pass


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Retryable(Exception):
    pass


def _fetch_once(url, tmp_file, progress, desc):
    """Stream ``url`` into the open ``tmp_file``; returns (sha256, md5) hex digests.

    Raises _Retryable for what a second try may cure (connection trouble, a short body,
    a 5xx), WeightsError for what it will not (404, a bad URL).
    """
    req = urllib.request.Request(url, headers={"User-Agent": "ppzoo"})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from None
        raise WeightsError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, (OSError, socket.timeout)) and not isinstance(err.reason, FileNotFoundError):
            raise _Retryable(f"cannot connect: {err.reason}") from None
        raise WeightsError(f"download of {url} failed: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        raise _Retryable(f"{type(err).__name__}: {err}") from None
    sha, md5 = hashlib.sha256(), hashlib.md5()
    received = 0
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                       mininterval=0.5, leave=False)
        try:
            while True:
                try:
                    block = resp.read(CHUNK)
                except http.client.IncompleteRead as err:
                    block = err.partial
                    _write(tmp_file, block, sha, md5)
                    received += len(block)
                    raise _Retryable(f"connection closed after {received} of {total} bytes") from None
                except (OSError, http.client.HTTPException) as err:
                    raise _Retryable(f"connection dropped after {received} bytes "
                                     f"({type(err).__name__}: {err})") from None
                if not block:
                    break
                _write(tmp_file, block, sha, md5)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise _Retryable(f"received {received} bytes, Content-Length says {total}")
    return sha.hexdigest(), md5.hexdigest()


def _write(f, block, sha, md5):
    f.write(block)
    sha.update(block)
    md5.update(block)


def download(url, sha256=None, md5=None, retries=None, backoff=None, progress=True, logger=None):
    """Return the local path of ``url`` in the cache, downloading it if needed.

    ``sha256`` (or ``md5`` where the publisher gives only that) is checked on download and
    on every later use.  Without either, the sha256 of the first download is recorded and
    checked later.  Up to ``retries`` attempts (``$PPZOO_DOWNLOAD_RETRIES``, default 3)
    for network trouble; a hash mismatch is not retried (the server holds another file).
    Any failure raises WeightsError naming the URL and leaves nothing in the cache.
    """
    url, frag = split_url_hash(url)
    expected = _expected(sha256, md5, frag)
    if retries is None:
        retries = int(os.environ.get("PPZOO_DOWNLOAD_RETRIES", DEFAULT_RETRIES))
    retries = max(1, int(retries))
    backoff = DEFAULT_BACKOFF if backoff is None else backoff
    log = logger.info if logger is not None else (lambda msg: None)

    path = cache_path(url, **expected)
    if os.path.isfile(path):
        if _verify_cached(path, expected):
            return path
        log(f"cached {path} does not match its hash; downloading {url} again")
        for p in (path, _record_path(path)):
            if os.path.exists(p):
                os.remove(p)

    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_parts(folder)
    log(f"downloading {url} -> {path}")
    last = None
    try:
        for attempt in range(1, retries + 1):
            fd, tmp = tempfile.mkstemp(prefix=_PART_PREFIX, dir=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    digests = _fetch_once(url, f, progress, os.path.basename(path))
                got = {"sha256": digests[0], "md5": digests[1]}
                for algo, digest in expected.items():
                    if got[algo] != digest:
                        raise WeightsError(
                            f"download of {url} failed: {algo} mismatch (expected {digest}, "
                            f"got {got[algo]}); nothing was cached")
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
                os.replace(tmp, path)
                if not expected:
                    # the file first, then its record: a crash between the two leaves a
                    # file without a record, which the next use fetches again
                    rec_tmp = tmp + ".sha256"
                    with open(rec_tmp, "w", encoding="utf-8") as f:
                        f.write(f"{got['sha256']}  {os.path.basename(path)}\n")
                    os.replace(rec_tmp, _record_path(path))
                return path
            except _Retryable as err:
                last = err
                if attempt < retries:
                    log(f"download of {url} failed ({err}); retry {attempt}/{retries - 1}")
                    time.sleep(backoff * attempt)
            finally:
                for p in (tmp, tmp + ".sha256"):
                    if os.path.exists(p):
                        os.remove(p)
        raise WeightsError(f"download of {url} failed after {retries} attempt(s): {last}; "
                           "nothing was cached")
    except BaseException:
        if not os.path.isfile(path):
            _remove_empty_dirs(folder, weights_dir())
        raise
