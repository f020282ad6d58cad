"""Read weights and state files without running code from them.

``paddle.load`` is a plain pickle load: a ``.pdparams`` file can name any Python callable
and have it called while it is read (``os.system``, ``eval``...), whatever its hash says.
:func:`load` reads the same files through an unpickler that admits only what a state dict
holds: containers, numbers, strings and NumPy arrays.  Any other global is refused before
it is looked up, with one line naming the file and the global.

What ``paddle.save`` (Paddle 3.3) writes, found by saving model states, every optimizer and
LR schedule of ``paddle.optimizer`` under pickle protocols 2, 3 and 4: the globals
``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` and, under
protocol 2, ``_codecs.encode`` (bytes); plain pickles of arrays under protocol 5 (data
files such as FootballAction's feature ``.pkl``) add ``numpy.core.numeric._frombuffer``.
A tensor inside a non-state-dict object is saved as ``(builtins.tuple, ((name, array),))`` and a static-graph DenseTensor as
``builtins.eval('data', {'data': array})``; the latter is admitted only in exactly that
form, answered without ``eval``.  NumPy scalars (``numpy.core.multiarray.scalar``) and
``collections.OrderedDict`` are admitted too; NumPy 2 spells the module ``numpy._core``.

After unpickling, the result is converted as ``paddle.load`` converts it (big tensors
saved in slices are joined, arrays become tensors unless ``return_numpy``), so callers see
what they saw before.  ``.safetensors`` files (no code at all) are read with safetensors.
"""
import _compat_pickle
import collections
import io
import os
import pickle

import numpy as np

from .errors import WeightsError

if int(np.__version__.split(".")[0]) >= 2:
    from numpy._core import multiarray as _NP
else:
    from numpy.core import multiarray as _NP


class RefusedGlobal(pickle.UnpicklingError):
    """A global (or an admitted one called with other arguments) a state dict never holds."""

    def __init__(self, qualname, detail=""):
        super().__init__(qualname + detail)
        self.qualname = qualname + detail


def _reconstruct(subtype, *args):
    if subtype is not np.ndarray:
        raise RefusedGlobal("numpy.core.multiarray._reconstruct", f" of {subtype!r}")
    return _NP._reconstruct(subtype, *args)


def _dense_tensor(expr, env=None, *rest):
    """Paddle's saver reduces a DenseTensor to ``eval('data', {'data': array})``."""
    if expr != "data" or rest or not isinstance(env, dict) or set(env) != {"data"} \
            or not isinstance(env["data"], np.ndarray):
        raise RefusedGlobal("builtins.eval", " with an expression other than Paddle's 'data'")
    return env["data"]


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol 2 writes ``bytes``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal("_codecs.encode", " of anything but a str to latin1")
    return text.encode("latin1")


def _frombuffer(buf, dtype, shape, order):
    """``numpy.core.numeric._frombuffer``: how pickle protocol 5 (Python's default since
    3.8) writes an array.  Only raw bytes of a plain (non-object) dtype are read."""
    if isinstance(buf, pickle.PickleBuffer):
        buf = buf.raw()
    if not isinstance(buf, (bytes, bytearray, memoryview)) or not isinstance(dtype, np.dtype) \
            or dtype.hasobject or not isinstance(shape, tuple) \
            or not all(isinstance(n, int) for n in shape) or order not in ("C", "F"):
        raise RefusedGlobal("numpy.core.numeric._frombuffer", " of anything but bytes of a plain dtype")
    return np.frombuffer(buf, dtype).reshape(shape, order=order).copy()


ALLOWED = {
    ("builtins", "tuple"): tuple, ("builtins", "list"): list, ("builtins", "dict"): dict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray, ("builtins", "bytes"): bytes,
    ("builtins", "complex"): complex, ("builtins", "int"): int, ("builtins", "float"): float,
    ("builtins", "bool"): bool, ("builtins", "str"): str,
    ("builtins", "eval"): _dense_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    ALLOWED[(_mod, "scalar")] = _NP.scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    ALLOWED[(_mod, "_frombuffer")] = _frombuffer
ALLOWED[("numpy", "ndarray")] = np.ndarray
ALLOWED[("numpy", "dtype")] = np.dtype


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only the globals in :data:`ALLOWED`."""

    def find_class(self, module, name):
        # protocol 2 writes Python 2 names (``__builtin__.set``); read them as Python 3's
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise RefusedGlobal("a persistent id", f" {repr(pid)[:40]}")


def unpickle(path, error=WeightsError, kind="weights file"):
    """The object pickled in ``path``, read with :class:`RestrictedUnpickler`.

    A refused global is an ``error`` (WeightsError; DataError for data files) naming the
    file and the global; a file that is not a pickle at all is one naming the file and what
    went wrong.
    """
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except RefusedGlobal as err:
        raise error(f"{path}: refused to load {err.qualname}: a {kind} may hold "
                    "only arrays, numbers, strings and containers (see docs/weights.md)") from None
    except FileNotFoundError:
        raise error(f"{kind} not found: {path}") from None
    except (PermissionError, IsADirectoryError) as err:
        raise error(f"cannot read {path}: {err.strerror}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError, OverflowError, io.UnsupportedOperation,
            OSError) as err:
        first = str(err).splitlines()[0] if str(err) else ""
        what = "a Paddle state dict" if kind == "weights file" else f"a readable {kind}"
        raise error(f"{path} is not {what} ({type(err).__name__}: {first})") from None


def _as_paddle(obj, return_numpy):
    """Convert an unpickled object as ``paddle.load`` does (Paddle 3.3, framework/io.py)."""
    from paddle.framework.io import _ndarray_to_tensor, _pack_loaded_dict, _parse_load_result
    if isinstance(obj, dict):
        obj = _pack_loaded_dict(obj)
        names = obj.get("StructuredToParameterName@@")
        if isinstance(names, dict):
            for key, name in names.items():
                if isinstance(obj.get(key), np.ndarray):
                    obj[key] = _ndarray_to_tensor(obj[key], return_numpy)
                    if not return_numpy and getattr(obj[key], "name", ""):
                        obj[key].name = name
            del obj["StructuredToParameterName@@"]
            return obj
    return _parse_load_result(obj, return_numpy)


def load(path, return_numpy=False):
    """What Paddle's loader returns for ``path`` (tensors, or arrays with ``return_numpy``),
    read without running code from the file.

    ``.safetensors`` files are read with safetensors (a ``{name: array}`` dict).
    """
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
            obj = load_file(path)
        except FileNotFoundError:
            raise WeightsError(f"weights file not found: {path}") from None
        except Exception as err:  # noqa: BLE001 - any failure means "not a weights file"
            raise WeightsError(f"{path} is not a safetensors file ({type(err).__name__}: {err})") from None
        if return_numpy:
            return obj
        import paddle
        return {k: paddle.to_tensor(v) for k, v in obj.items()}
    obj = unpickle(path)
    import paddle.framework.io  # noqa: F401  (the conversions below are paddle.load's own)
    try:
        return _as_paddle(obj, return_numpy)
    except Exception as err:  # noqa: BLE001 - a structure paddle.load would fail on too
        first = str(err).splitlines()[0] if str(err) else ""
        raise WeightsError(f"{path} is not a Paddle state dict ({type(err).__name__}: {first})") from None


def load_npy(path, error=WeightsError, kind="array file"):
    """A ``.npy`` array, an object array (pickled inside the file) included, read without
    running code: ``np.load(allow_pickle=True)`` is a plain pickle load for those."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = np.lib.format._read_array_header(f, version)
            if not dtype.hasobject:
                f.seek(0)
                return np.load(f, allow_pickle=False)
            arr = RestrictedUnpickler(f, encoding="latin1").load()
    except RefusedGlobal as err:
        raise error(f"{path}: refused to load {err.qualname}: a {kind} may hold "
                    "only arrays, numbers, strings and containers (see docs/weights.md)") from None
    except FileNotFoundError:
        raise error(f"{kind} not found: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else "empty or truncated file"
        raise error(f"cannot read {kind} {path}: {first}") from None
    return np.asarray(arr).reshape(shape, order="F" if fortran else "C") \
        if isinstance(arr, np.ndarray) else arr
