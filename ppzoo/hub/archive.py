"""Weights published inside archives (PaddleSeg's backbones come as ``.tar.gz``).

An archive is unpacked once into the cache, keyed by its own sha256 so a changed archive
is unpacked anew, through a temp folder renamed into place, refusing members that would
land outside it (absolute paths, ``..``, links).
"""
import os
import shutil
import tarfile
import tempfile
import zipfile

from ..core.errors import WeightsError
from .download import file_hash, weights_dir

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
WEIGHT_SUFFIXES = (".pdparams", ".safetensors")


def is_archive(path):
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_name(name, archive):
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise WeightsError(f"{archive}: member {name!r} would unpack outside its folder")


def _unpack(archive, dest):
    try:
        if archive.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    _safe_name(name, archive)
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in members:
                    _safe_name(m.name, archive)
                    if not (m.isfile() or m.isdir()):
                        raise WeightsError(f"{archive}: member {m.name!r} is a link or device")
                t.extractall(dest, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise WeightsError(f"{archive} is not a readable archive ({type(err).__name__}: {err})") from None


def weights_in_archive(archive):
    """The weights file inside ``archive``, unpacking it into the cache if needed.

    One ``.pdparams``/``.safetensors`` inside is taken; with several, ``model.pdparams``;
    otherwise the error lists them.
    """
    key = file_hash(archive)[:16]
    root = os.path.join(weights_dir(), "unpacked")
    dest = os.path.join(root, key)
    if not os.path.isdir(dest):
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".part-", dir=root)
        try:
            _unpack(archive, tmp)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not os.path.isdir(dest):  # not a concurrent unpack of the same archive
                    raise
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    found = sorted(os.path.relpath(os.path.join(d, f), dest)
                   for d, _, fs in os.walk(dest) for f in fs if f.endswith(WEIGHT_SUFFIXES))
    if len(found) > 1:
        preferred = [f for f in found if os.path.basename(f) == "model.pdparams"]
        found = preferred if len(preferred) == 1 else found
    if len(found) != 1:
        raise WeightsError(f"{archive}: expected one weights file inside, found "
                           f"{', '.join(found) if found else 'none'}")
    return os.path.join(dest, found[0])
