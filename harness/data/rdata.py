"""Read the character vectors of an R package's lazy-load data base, without R.

CRAN packages keep their datasets in ``data/Rdata.rdb`` (each object R-serialised and
zlib-compressed) with an index, ``data/Rdata.rdx`` (a gzip-compressed ``.rds`` file). Debian ships CRAN packages as ``.deb``
files, so a public-domain text such as Jane Austen's novels (``r-cran-janeaustenr``) can be
taken from the package registry this way: :func:`deb_member` reads a file out of the ``.deb``,
:func:`lazy_load` the objects out of the data base. Only what text needs is understood (the
XDR serialisation's vectors, strings, pairlists and attributes); anything else is refused.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from typing import Any

#: serialisation type codes (R Internals, "Serialization Formats")
_NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 254, 1, 2, 9, 10, 13, 14, 16, 19
_REF, _GLOBALENV, _EMPTYENV, _BASEENV, _MISSING = 255, 253, 242, 241, 251


class RDataError(ValueError):
    """The bytes are not R serialisation this reader understands."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at, self.refs = data, 0, []  # type: ignore[var-annotated]

    def _int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.at)
        self.at += 4
        return value

    def _bytes(self, count: int) -> bytes:
        chunk = self.data[self.at : self.at + count]
        if len(chunk) != count:
            raise RDataError("truncated R serialisation")
        self.at += count
        return chunk

    def header(self) -> None:
        if self._bytes(2) != b"X\n":
            raise RDataError("not R's XDR serialisation (no 'X\\n' header)")
        version = self._int()
        self._int(), self._int()  # the writer's and the oldest reader's R versions
        if version == 3:
            self._bytes(self._int())  # the native encoding's name
        elif version != 2:
            raise RDataError(f"serialisation version {version} (2 and 3 are read)")

    def item(self) -> Any:
        flags = self._int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (_NIL, _GLOBALENV, _EMPTYENV, _BASEENV, _MISSING):
            return None
        if kind == _REF:
            index = flags >> 8 or self._int()
            return self.refs[index - 1]
        if kind == _SYM:
            symbol = self.item()
            self.refs.append(symbol)
            return symbol
        if kind == _LIST:
            return self._pairlist(has_attr, has_tag)
        if kind == _CHAR:
            length = self._int()
            return None if length == -1 else self._bytes(length).decode("utf-8")
        if kind in (_LGL, _INT, _REAL, _STR, _VEC):
            value = self._vector(kind)
            attributes = self.item() if has_attr else {}
            if kind == _VEC and "names" in attributes:  # a named list, such as the index
                return dict(zip(attributes["names"], value, strict=True))
            return value
        raise RDataError(f"R object of type {kind} (only vectors, strings and pairlists are read)")

    def _pairlist(self, has_attr: int, has_tag: int) -> dict[str, Any]:
        if has_attr:
            self.item()
        tag = self.item() if has_tag else None
        entries = {str(tag): self.item()}
        rest = self.item()
        return {**entries, **(rest or {})}

    def _vector(self, kind: int) -> list[Any]:
        length = self._int()
        if kind in (_LGL, _INT):
            return list(struct.unpack_from(f">{length}i", self._bytes(4 * length)))
        if kind == _REAL:
            return list(struct.unpack_from(f">{length}d", self._bytes(8 * length)))
        return [self.item() for _ in range(length)]


def unserialize(data: bytes) -> Any:
    """One R object from its XDR serialisation: vectors as lists, pairlists and named lists
    as dicts (other attributes, such as a class, are read and dropped)."""
    reader = _Reader(data)
    reader.header()
    return reader.item()


def _inflate(record: bytes) -> bytes:
    """A lazy-load record: its length (4 bytes, big-endian), then the zlib stream."""
    (length,) = struct.unpack_from(">I", record, 0)
    data = zlib.decompress(record[4:])
    if len(data) != length:
        raise RDataError(f"a record inflates to {len(data)} bytes, its header says {length}")
    return data


def lazy_load(rdx: bytes, rdb: bytes) -> dict[str, Any]:
    """Every object of a lazy-load data base (``Rdata.rdx`` and ``Rdata.rdb``), by name."""
    # the index is saved as an .rds file (gzip); each record is length-prefixed zlib
    index = unserialize(gzip.decompress(rdx))
    objects = {}
    for name, (offset, length) in index["variables"].items():
        objects[name] = unserialize(_inflate(rdb[offset : offset + length]))
    return objects


def deb_member(deb: bytes, path: str) -> bytes:
    """One file of a Debian package (an ``ar`` archive around ``data.tar.*``)."""
    if not deb.startswith(b"!<arch>\n"):
        raise RDataError("not a Debian package (no ar header)")
    at = 8
    while at < len(deb):
        name = deb[at : at + 16].decode().strip().rstrip("/")
        size = int(deb[at + 48 : at + 58])
        body = deb[at + 60 : at + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as archive:
                wanted = "./" + path.lstrip("/").removeprefix("./")
                names = set(archive.getnames())
                if wanted not in names and wanted[2:] not in names:
                    raise RDataError(f"{path} is not in the package")
                member = archive.extractfile(wanted if wanted in names else wanted[2:])
                if member is None:
                    raise RDataError(f"{path} is not a file in the package")
                return member.read()
        at += 60 + size + size % 2
    raise RDataError("the package has no data.tar member")
