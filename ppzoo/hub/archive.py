"""Weights published inside archives (PaddleSeg's backbones come as ``.tar.gz``).

An archive is unpacked once into the cache, keyed by its own sha256 so a changed archive
is unpacked anew, through a temp folder renamed into place.  Unpacking refuses members
that would land outside the folder (absolute paths, ``..``), links and devices, stops at
limits on the unpacked size, the size relative to the archive and the member count (an
archive bomb fills no disk), and never takes a member's mode: files get 0644 and folders
0755 (less what the umask removes), so no setuid/setgid/sticky bit and no world-writable
file or folder comes out of an archive, the unpack folder included.  The sha256 of every
unpacked file is recorded in a manifest beside them and checked on every use: a file
replaced or added in the cache afterwards is refused.
"""
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile

from ..core.errors import ConfigError, WeightsError
from .download import CHUNK, file_hash, weights_dir

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
WEIGHT_SUFFIXES = (".pdparams", ".safetensors")
MANIFEST = ".ppzoo-manifest.json"

# (environment variable, default): PaddleSeg's backbone archives unpack to a few hundred MB
# at about the archive's own size (float32 weights hardly compress)
LIMITS = {
    "max_bytes": ("PPZOO_ARCHIVE_MAX_BYTES", 4 << 30),     # unpacked bytes in all
    "max_files": ("PPZOO_ARCHIVE_MAX_FILES", 1000),        # members (files and folders)
    "max_ratio": ("PPZOO_ARCHIVE_MAX_RATIO", 100),         # unpacked / archive size ...
}
RATIO_FLOOR = 1 << 20                                      # ... once over 1 MiB unpacked


def is_archive(path):
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def archive_limits():
    """``{max_bytes, max_files, max_ratio}`` from the environment or the defaults."""
    out = {}
    for key, (env, default) in LIMITS.items():
        raw = os.environ.get(env)
        if raw is None or raw.strip() == "":
            out[key] = default
            continue
        try:
            value = float(raw) if key == "max_ratio" else int(raw)
        except ValueError:
            value = -1
        if value <= 0:
            raise ConfigError(f"{env}={raw!r} must be a number > 0")
        out[key] = value
    return out


def _member_parts(name, archive):
    """The path parts of a member (``./`` and empty parts dropped); refuses escapes."""
    raw = name.replace("\\", "/")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if raw.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise WeightsError(f"{archive}: member {name!r} would unpack outside its folder")
    return parts


class _Unpacker:
    """Writes members into ``dest`` with safe modes, counting against the limits."""

    def __init__(self, archive, dest):
        self.archive, self.dest = archive, dest
        self.limits = archive_limits()
        self.size = max(1, os.path.getsize(archive))
        self.written = 0
        self.members = 0
        self.files = {}        # relative path -> sha256

    def count(self):
        self.members += 1
        if self.members > self.limits["max_files"]:
            raise WeightsError(f"{self.archive}: more than {self.limits['max_files']} members; "
                               f"refused (raise {LIMITS['max_files'][0]} if it is right)")

    def _grow(self, n):
        self.written += n
        lim = self.limits
        if self.written > lim["max_bytes"]:
            raise WeightsError(f"{self.archive}: unpacks to more than {lim['max_bytes']} bytes; "
                               f"refused (raise {LIMITS['max_bytes'][0]} if it is right)")
        if self.written > RATIO_FLOOR and self.written > lim["max_ratio"] * self.size:
            raise WeightsError(f"{self.archive}: unpacks to more than {lim['max_ratio']:g} times its "
                               f"{self.size} bytes, like an archive bomb; refused (raise "
                               f"{LIMITS['max_ratio'][0]} if it is right)")

    def folder(self, name):
        parts = _member_parts(name, self.archive)
        if parts:
            os.makedirs(os.path.join(self.dest, *parts), mode=0o755, exist_ok=True)

    def file(self, name, stream, declared=None):
        parts = _member_parts(name, self.archive)
        if not parts:
            raise WeightsError(f"{self.archive}: member {name!r} has no file name")
        rel = "/".join(parts)
        if rel == MANIFEST:
            raise WeightsError(f"{self.archive}: member {name!r} has a name the cache uses itself")
        if rel in self.files:
            raise WeightsError(f"{self.archive}: member {name!r} appears twice")
        if declared and self.written + declared > self.limits["max_bytes"]:
            self._grow(declared)            # a declared size over the limit: refused unread
        target = os.path.join(self.dest, *parts)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        h = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as out:
            while True:
                block = stream.read(CHUNK)
                if not block:
                    break
                self._grow(len(block))
                h.update(block)
                out.write(block)
        self.files[rel] = h.hexdigest()


def _unpack(archive, dest):
    """Unpack ``archive`` into the (empty) folder ``dest``; returns {relative path: sha256}."""
    u = _Unpacker(archive, dest)
    try:
        if archive.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    u.count()
                    kind = stat.S_IFMT(info.external_attr >> 16)
                    if info.is_dir():
                        u.folder(info.filename)
                    elif kind not in (0, stat.S_IFREG):
                        raise WeightsError(f"{archive}: member {info.filename!r} is a link or device")
                    else:
                        with z.open(info) as src:
                            u.file(info.filename, src, info.file_size)
        else:
            with tarfile.open(archive) as t:
                for m in t:
                    u.count()
                    if m.isdir():
                        u.folder(m.name)
                    elif m.isfile():
                        src = t.extractfile(m)
                        u.file(m.name, src, m.size)
                    else:
                        _member_parts(m.name, archive)
                        raise WeightsError(f"{archive}: member {m.name!r} is a link or device")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, RuntimeError) as err:
        raise WeightsError(f"{archive} is not a readable archive ({type(err).__name__}: {err})") from None
    return u.files


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(folder):
    """Remove a cache folder (moved aside first, so no reader sees it half-removed)."""
    aside = f"{folder}.old-{os.getpid()}"
    try:
        os.rename(folder, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _read_manifest(dest):
    try:
        with open(os.path.join(dest, MANIFEST), encoding="utf-8") as f:
            files = json.load(f)["files"]
        return files if isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify_unpacked(dest, archive, files):
    """Every file under ``dest`` is one the archive held, with the recorded sha256."""
    found = {os.path.relpath(os.path.join(d, f), dest).replace(os.sep, "/")
             for d, _, fs in os.walk(dest) for f in fs} - {MANIFEST}
    added = sorted(found - set(files))
    gone = sorted(set(files) - found)
    changed = [rel for rel in sorted(set(files) & found)
               if file_hash(os.path.join(dest, rel)) != files[rel]]
    for what, items in (("was replaced", changed), ("was added", added), ("is missing", gone)):
        if items:
            raise WeightsError(f"{os.path.join(dest, items[0])} {what} since {archive} was unpacked "
                               f"(sha256 recorded in {MANIFEST}); remove {dest} to unpack it again")


def weights_in_archive(archive):
    """The weights file inside ``archive``, unpacking it into the cache if needed.

    One ``.pdparams``/``.safetensors`` inside is taken; with several, ``model.pdparams``;
    otherwise the error lists them.
    """
    digest = file_hash(archive)
    root = os.path.join(weights_dir(), "unpacked")
    dest = os.path.join(root, digest[:16])
    if os.path.isdir(dest) and _read_manifest(dest) is None:
        _discard(dest)          # unpacked by an older version (no manifest) or broken
    if not os.path.isdir(dest):
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".part-", dir=root)
        try:
            files = _unpack(archive, tmp)
            with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
                json.dump({"archive": os.path.basename(archive), "archive_sha256": digest,
                           "files": files}, f, indent=1)
            os.chmod(tmp, 0o755 & ~_umask())    # mkdtemp makes it private (0700)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not os.path.isdir(dest):  # not a concurrent unpack of the same archive
                    raise
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    files = _read_manifest(dest)
    if files is None:
        raise WeightsError(f"{dest}: its {MANIFEST} cannot be read; remove {dest} to unpack "
                           f"{archive} again")
    verify_unpacked(dest, archive, files)
    found = sorted(rel for rel in files if rel.endswith(WEIGHT_SUFFIXES))
    if len(found) > 1:
        preferred = [f for f in found if os.path.basename(f) == "model.pdparams"]
        found = preferred if len(preferred) == 1 else found
    if len(found) != 1:
        raise WeightsError(f"{archive}: expected one weights file inside, found "
                           f"{', '.join(found) if found else 'none'}")
    return os.path.join(dest, *found[0].split("/"))
