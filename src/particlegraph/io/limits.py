"""Resource limits for reading untrusted files: bounded decompression and declared sizes.

A 9 KB ``.pkl.bz2`` can expand to gigabytes, and a Parquet footer can declare a hundred million
rows; reading either naively ends in a ``MemoryError`` after seconds and gigabytes. The helpers
here refuse such inputs *before* allocating: :class:`BoundedReader` counts the bytes a consumer
(pickle, a parser) asks a decompressing stream for and raises as soon as a single request or the
running total passes the limit, and :func:`check_declared` compares a declared size with it.

Limits (per input file) default to :data:`DEFAULT_MAX_BYTES` and :data:`DEFAULT_MAX_ROWS` and can
be changed with the environment variables ``PARTICLEGRAPH_MAX_INPUT_MB`` and
``PARTICLEGRAPH_MAX_ROWS``, or per call.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from particlegraph.errors import ConfigError, ResourceLimitError

#: Largest decompressed / declared size of one input file, bytes (1 GiB: far above a public
#: Delphes MLPF file, about 60 MB unpacked, and well under the memory of a laptop).
DEFAULT_MAX_BYTES = 1 << 30
#: Most rows (events) one input file may declare.
DEFAULT_MAX_ROWS = 1_000_000

_OPENERS: dict[str, Any] = {"bz2": bz2.open, "gzip": gzip.open, "xz": lzma.open}


def _env_int(name: str, default: int, scale: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a number; unset it or give e.g. 2048") from err
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive finite number, got {raw!r}")
    return int(value * scale)


@dataclass(frozen=True)
class Limits:
    """Per-file resource limits.

    Attributes:
        max_bytes: largest decompressed size (or declared uncompressed size), bytes.
        max_rows: most rows (events) a file may declare.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_rows <= 0:
            raise ConfigError(f"limits must be positive, got {self}")

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, overridden by ``PARTICLEGRAPH_MAX_INPUT_MB`` / ``PARTICLEGRAPH_MAX_ROWS``."""
        return cls(
            max_bytes=_env_int("PARTICLEGRAPH_MAX_INPUT_MB", DEFAULT_MAX_BYTES, 1 << 20),
            max_rows=_env_int("PARTICLEGRAPH_MAX_ROWS", DEFAULT_MAX_ROWS),
        )


def _mb(n: float) -> str:
    return f"{n / (1 << 20):.0f} MB"


_HINT = "set PARTICLEGRAPH_MAX_INPUT_MB higher if the file is genuine"


def check_declared(path: str | os.PathLike[str], what: str, declared: int, limit: int,
                   hint: str = _HINT, stage: str = "reading") -> None:  # fmt: skip
    """Raise :class:`ResourceLimitError` when a file declares ``declared`` > ``limit``.

    ``what`` names the quantity (``"rows"``, ``"bytes uncompressed"``); ``stage`` what has not
    happened yet (``"reading"``, ``"processing"``), for the message.
    """
    if declared > limit:
        raise ResourceLimitError(
            f"{path}: declares {declared:,} {what}, more than the limit of {limit:,} "
            f"(refused before {stage}; {hint})"
        )


class BoundedReader:
    """A read-only stream that raises :class:`ResourceLimitError` past ``max_bytes``.

    Wraps a decompressing file object. Each ``read(n)`` is checked *before* it runs, so a
    consumer that asks for one huge block (a pickled array declaring gigabytes) is refused
    without allocating it; the running total bounds everything else.

    Args:
        raw: the stream to read (e.g. ``bz2.open(path)``).
        max_bytes: the most bytes that may be read in total.
        name: file name for messages.
    """

    def __init__(self, raw: IO[bytes], max_bytes: int, name: str = "input") -> None:
        self.raw, self.max_bytes, self.name = raw, max_bytes, name
        self.consumed = 0

    def _refuse(self, wanted: int) -> None:
        raise ResourceLimitError(
            f"{self.name}: expands to more than {_mb(self.max_bytes)} "
            f"(asked for {_mb(self.consumed + wanted)}; refused before reading; {_HINT})"
        )

    def _account(self, data: bytes) -> bytes:
        self.consumed += len(data)
        if self.consumed > self.max_bytes:
            self._refuse(0)
        return data

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: the rest, read in bounded chunks)."""
        left = self.max_bytes - self.consumed
        if n is None or n < 0:
            data = self.raw.read(left + 1)
            return self._account(data)
        if n > left:
            self._refuse(n)
        return self._account(self.raw.read(n))

    def readline(self, size: int = -1) -> bytes:
        """One line, at most ``size`` bytes (and never past the limit)."""
        left = self.max_bytes - self.consumed
        cap = left + 1 if size is None or size < 0 else min(size, left + 1)
        return self._account(self.raw.readline(cap))

    def close(self) -> None:
        """Close the wrapped stream."""
        self.raw.close()

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_bounded(path: str | os.PathLike[str], codec: str = "bz2",
                 max_bytes: int | None = None) -> BoundedReader:  # fmt: skip
    """Open a compressed file (``bz2``, ``gzip`` or ``xz``) as a :class:`BoundedReader`.

    ``max_bytes`` defaults to :meth:`Limits.from_env`'s ``max_bytes``.
    """
    if codec not in _OPENERS:
        raise ConfigError(f"unknown codec {codec!r}; choose {', '.join(_OPENERS)}")
    limit = Limits.from_env().max_bytes if max_bytes is None else max_bytes
    return BoundedReader(_OPENERS[codec](Path(path), "rb"), limit, str(path))


def decompress_bounded(data: bytes, codec: str = "bz2", max_bytes: int | None = None,
                       name: str = "input") -> bytes:  # fmt: skip
    """Decompress ``data`` in memory, refusing output larger than ``max_bytes``.

    Uses incremental decompressors with ``max_length``, so at most ``max_bytes + 1`` bytes are
    ever produced however large the declared or real expansion is.
    """
    limit = Limits.from_env().max_bytes if max_bytes is None else max_bytes
    if codec == "bz2":
        dec: Any = bz2.BZ2Decompressor()
    elif codec == "xz":
        dec = lzma.LZMADecompressor()
    elif codec == "gzip":
        import zlib

        dec = zlib.decompressobj(wbits=31)
    else:
        raise ConfigError(f"unknown codec {codec!r}; choose {', '.join(_OPENERS)}")
    if codec == "gzip":
        out = dec.decompress(data, limit + 1)
    else:
        out = dec.decompress(data, max_length=limit + 1)
    if len(out) > limit:
        raise ResourceLimitError(
            f"{name}: expands to more than {_mb(limit)} (refused after {_mb(limit)}; {_HINT})"
        )
    result: bytes = out
    return result


#: Deepest nesting :func:`expanded_size` follows; deeper structures are refused (no event file
#: nests containers more than a handful of levels).
MAX_DEPTH = 64


def expanded_size(obj: Any, stop_at: int | None = None) -> int:
    """Scalar values ``obj`` expands to when every shared reference is copied out.

    An unpickled object may reference one list many times (``[[x] * 100] * 100 ...``): a few
    hundred bytes of pickle that become 1e12 numbers in ``np.asarray`` or in a loop over them.
    This counts them without expanding anything: each distinct container is summed once
    (memoised by identity), so the time is linear in the number of *distinct* objects. Arrays
    and tensors count their elements (``.size`` / ``.numel()``), ``str`` / ``bytes`` their
    length, dicts their keys and values, anything else 1. Counting stops early once the total
    passes ``stop_at``.

    Raises:
        ResourceLimitError: containers nested deeper than :data:`MAX_DEPTH`.
    """
    memo: dict[int, int] = {}
    limit = stop_at if stop_at is not None else -1

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str | bytes | bytearray):
            return max(len(item), 1)
        numel = getattr(item, "numel", None)
        if callable(numel):  # a torch tensor, without importing torch here
            return int(numel())
        kind = getattr(getattr(item, "dtype", None), "kind", None)
        if kind == "O" and hasattr(item, "ravel"):  # numpy object array: its items count
            item = list(item.ravel())
        elif kind is not None and hasattr(item, "size"):  # a numpy array or scalar
            return int(item.size)
        if not isinstance(item, list | tuple | set | frozenset | dict):
            return 1
        key = id(item)
        if key in memo:
            return memo[key]
        if depth >= MAX_DEPTH:
            raise ResourceLimitError(f"containers nested deeper than {MAX_DEPTH} levels")
        parts = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        total = 0
        for part in parts:
            total += size(part, depth + 1)
            if 0 <= limit < total:
                break
        memo[key] = total
        return total

    return size(obj, 0)


def check_expanded(obj: Any, where: str, max_values: int) -> None:
    """Raise :class:`ResourceLimitError` when ``obj`` expands to more than ``max_values`` values.

    Called on an unpickled object *before* it is converted or iterated (see
    :func:`expanded_size`); ``where`` names the file for the message.
    """
    try:
        n = expanded_size(obj, stop_at=max_values)
    except ResourceLimitError as err:
        raise ResourceLimitError(f"{where}: {err} (refused before reading it)") from None
    if n > max_values:
        raise ResourceLimitError(
            f"{where}: shared references expand to more than {max_values:,} values (at least "
            f"{n:,}; refused before building arrays; {_HINT})"
        )


#: Largest uncompressed / compressed ratio of an entry of a zip-based file (``torch.save``
#: stores its entries uncompressed, ratio 1; deflate reaches ~1000 on zeros: a bomb).
MAX_ZIP_RATIO = 100


def check_zip_entries(path: str | os.PathLike[str], max_bytes: int | None = None) -> None:
    """Refuse a zip-based file (a ``.pt`` of ``torch.save``) that declares too much data.

    Reads only the zip's central directory: the declared uncompressed sizes must add up to at
    most ``max_bytes`` (default :meth:`Limits.from_env`), and no compressed entry may expand more
    than :data:`MAX_ZIP_RATIO` times. A file that is not a zip (the legacy ``torch.save``
    format) is left to its reader.
    """
    import zipfile

    limit = Limits.from_env().max_bytes if max_bytes is None else max_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    total = sum(e.file_size for e in entries)
    check_declared(path, "bytes uncompressed", total, limit)
    for e in entries:
        if e.compress_type != zipfile.ZIP_STORED and e.file_size > MAX_ZIP_RATIO * max(
            e.compress_size, 1
        ):
            raise ResourceLimitError(
                f"{path}: entry {e.filename} expands {e.file_size:,} bytes from "
                f"{e.compress_size:,} (more than {MAX_ZIP_RATIO}x: a decompression bomb; "
                "refused before reading; torch.save never compresses its entries)"
            )
