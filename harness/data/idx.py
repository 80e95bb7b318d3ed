"""A reader for the IDX format that MNIST and Fashion-MNIST are published in.

An IDX file is two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian uint32, then the values in row-major order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from harness.errors import DataError

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


#: how much is decompressed at a time while a file is read
CHUNK = 1 << 20
#: what reading a damaged file raises: gzip's own errors are OSErrors or EOFError, but a
#: damaged deflate stream raises zlib.error, which is neither
READ_ERRORS = (OSError, EOFError, zlib.error)


def read_idx_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's raw IDX bytes, decompressed when its name ends in ``.gz``.

    :param limit: the most bytes the file may hold (decompressed); past it reading stops with
        a :class:`DataError`, so a small ``.gz`` that expands to gigabytes never fills memory
    """
    return b"".join(iter_idx_chunks(path, limit))


def iter_idx_chunks(path: Path, limit: int | None = None):
    """The file's decompressed bytes, a chunk at a time, never more than ``limit`` in all.

    A file larger on disk than ``limit`` (with room for gzip's framing) is refused before it
    is read: a ``.gz`` of many empty members would otherwise cost time without passing the cap.
    """
    total = 0
    try:
        if limit is not None:
            stored = path.stat().st_size
            if stored > limit + limit // 100 + 1024:
                raise DataError(
                    f"{path}: {stored:,} bytes on disk, more than the {limit:,} bytes this file "
                    "holds uncompressed (a decompression bomb, or another file); delete or "
                    "replace it"
                )
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            # never asks for more than one byte past the cap, so that byte is all it costs
            while chunk := handle.read(CHUNK if limit is None else min(CHUNK, limit - total + 1)):
                total += len(chunk)
                if limit is not None and total > limit:
                    raise DataError(
                        f"{path}: expands to more than the {limit:,} bytes this file holds "
                        "(a decompression bomb, or another file); delete or replace it"
                    )
                yield chunk
    except READ_ERRORS as exc:
        raise DataError(
            f"{path}: cannot read: {exc}; delete it so a good copy is fetched"
        ) from None


def read_idx_shape(path: Path) -> tuple[int, ...]:
    """The shape an IDX file's header declares, read without decompressing its values (the
    sample count of a dataset, known before any cell loads it)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            magic = handle.read(4)
            dims = handle.read(4 * magic[3]) if len(magic) == 4 else b""
    except READ_ERRORS as exc:
        raise DataError(
            f"{path}: cannot read: {exc}; delete it so a good copy is fetched"
        ) from None
    header = magic + dims
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'none'})")
    if len(dims) < 4 * magic[3]:
        raise DataError(f"{path}: truncated IDX header ({len(header)} bytes)")
    return struct.unpack(f">{magic[3]}I", dims)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array of the shape and type the header declares."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{name}: not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    dtype = _DTYPES[data[2]]
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        state = "truncated" if actual < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX file {state}: header says shape {shape} ({expected} bytes of data), "
            f"found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into an array, of at most ``limit`` bytes."""
    return parse_idx(read_idx_bytes(path, limit), name=str(path))
