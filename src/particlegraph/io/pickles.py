"""Reading pickles from untrusted files: only allowed classes, bounded bytes, bounded expansion.

A pickle can run any code while it loads and can describe far more data than it holds. Every
pickle reader of the toolkit goes through :func:`load_pickle`:

* the unpickler resolves only the ``(module, name)`` pairs the caller allows (numpy arrays and
  plain containers for event files: :data:`NUMPY_GLOBALS`), anything else is refused;
* it is the pure-Python unpickler over a :class:`~particlegraph.io.limits.BoundedReader`, which
  checks every read request *before* it runs, so a pickle declaring an 8 GB block is refused
  after a few bytes (the C unpickler reserves the declared block first);
* the loaded object's expansion through shared references is bounded with
  :func:`~particlegraph.io.limits.check_expanded` before the caller converts or iterates it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import pickle
from collections.abc import Collection
from pathlib import Path
from typing import Any

from particlegraph.errors import DataFileError, ResourceLimitError, brief
from particlegraph.io.limits import BoundedReader, Limits, check_expanded

#: What a pickled numpy array (numpy 1: ``numpy.core``, numpy 2: ``numpy._core``) and plain
#: containers need; builtins such as list and dict are built by opcodes, not looked up.
NUMPY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol-2 pickles store array bytes as encoded text
    }
)

_OPEN: dict[str | None, Any] = {None: open, "bz2": bz2.open, "gzip": gzip.open, "xz": lzma.open}


class RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler that resolves only ``allowed`` globals.

    ``numpy.core.*`` names (numpy 1 pickles) are looked up as ``numpy._core.*`` under numpy 2.
    """

    def __init__(self, stream: Any, allowed: Collection[tuple[str, str]]) -> None:
        super().__init__(stream)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def load_pickle(
    path: str | os.PathLike[str],
    allowed: Collection[tuple[str, str]] = NUMPY_GLOBALS,
    codec: str | None = None,
    limits: Limits | None = None,
    what: str = "pickle",
) -> Any:
    """Unpickle ``path`` (``codec``: None, ``bz2``, ``gzip`` or ``xz``) within ``limits``.

    At most ``limits.max_bytes`` (default :meth:`Limits.from_env`) are read (decompressed), and
    the result may expand to at most ``max_bytes // 4`` values (a float32 each) through shared
    references. ``what`` names the expected content in messages (e.g. ``"tracks.pickle"``).

    Raises:
        DataFileError: missing, truncated or damaged file, or a class that is not allowed.
        ResourceLimitError: more bytes or values than the limits.
    """
    path = Path(path)
    limits = Limits.from_env() if limits is None else limits
    if not path.is_file():
        raise DataFileError(f"{path}: no such file (expected a {what})")
    try:
        with BoundedReader(_OPEN[codec](path, "rb"), limits.max_bytes, str(path)) as stream:
            obj = RestrictedUnpickler(stream, allowed).load()
    except ResourceLimitError:
        raise
    except MemoryError as err:
        raise ResourceLimitError(f"{path}: too large to unpickle in memory") from err
    except (OSError, EOFError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise DataFileError(f"{path}: not a complete {what} ({brief(err)})") from err
    except KeyError as err:  # the pure-Python unpickler's unknown opcode: the byte's value
        code = err.args[0] if err.args else None
        key = repr(chr(code)) if isinstance(code, int) and 0 <= code < 256 else repr(code)
        raise DataFileError(f"{path}: not a readable {what} (invalid load key, {key})") from err
    except Exception as err:  # pickle raises many types on bad input
        raise DataFileError(f"{path}: not a readable {what} ({brief(err)})") from err
    check_expanded(obj, str(path), limits.max_bytes // 4)
    return obj
