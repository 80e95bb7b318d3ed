"""The ``austen`` dataset: Jane Austen's six novels as characters, for a language model.

The text is the one Debian ships in ``r-cran-janeaustenr`` 1.0.0-1 (Julia Silge's CRAN package
of the Project Gutenberg texts, public domain; the package is MIT-licensed): the six novels in
the package's order (Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma,
Northanger Abbey, Persuasion), their lines joined by newlines. A copy ships with harness
(``austen/austen.txt.gz``) and is verified against ``SHA256SUMS`` whenever it is read;
``python -m harness.data.corpus rebuild [DEB]`` makes it again from the package (downloaded,
checksummed, when no ``.deb`` is given), without R.

Characters become ids by their place in :data:`ALPHABET` (the 81 distinct characters of the
text, sorted by code point). The first 90 % of the text trains, the last 10 % (the end of
*Persuasion*) tests; each is cut into non-overlapping windows of :data:`CONTEXT` + 1
characters: a sample's input is a window's first :data:`CONTEXT` ids, its labels the next
character at every position (the window shifted by one).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

from harness.errors import DataError

#: the Debian package the text comes from, and where a user who is online can fetch it
DEB_URL = (
    "https://deb.debian.org/debian/pool/main/r/r-cran-janeaustenr/"
    "r-cran-janeaustenr_1.0.0-1_all.deb"
)
DEB_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
_DATA = "usr/lib/R/site-library/janeaustenr/data/"
#: the package's objects, in the order of its ``austen_books()``
NOVELS = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)
FILE = "austen/austen.txt"
#: the text's UTF-8 bytes (the file's decompressed size): reading stops past it
TEXT_BYTES = 4_025_028
ALPHABET = "\n !\"&'()*,-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz£"
CONTEXT = 64
TEST_FRACTION = 0.1


def text_from_deb(deb: bytes) -> str:
    """The six novels' text, read from the Debian package's R data base."""
    from harness.data import rdata

    objects = rdata.lazy_load(
        rdata.deb_member(deb, _DATA + "Rdata.rdx"), rdata.deb_member(deb, _DATA + "Rdata.rdb")
    )
    return "\n".join(line or "" for novel in NOVELS for line in objects[novel])


def read_text() -> str:
    """The shipped (or ``--data-dir``) copy of the text, verified against ``SHA256SUMS``."""
    from harness.data.datasets import canonical_sums, search_dirs, verify

    for folder in search_dirs(None):
        path = folder / f"{FILE}.gz"
        if path.is_file():
            verify(path, canonical_sums()[FILE], TEXT_BYTES)
            with gzip.open(path, "rb") as stream:
                return stream.read(TEXT_BYTES + 1).decode("utf-8")
    raise DataError(
        f"{FILE}.gz is not in harness's data folders; rebuild it with "
        "`python -m harness.data.corpus rebuild` (downloads the Debian package)"
    )


def encode(text: str) -> np.ndarray:
    """Each character's index in :data:`ALPHABET`, int64."""
    table = np.full(max(map(ord, ALPHABET)) + 1, -1, dtype=np.int64)
    table[[ord(c) for c in ALPHABET]] = np.arange(len(ALPHABET))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    if codes.max(initial=0) >= len(table) or (ids := table[codes]).min(initial=0) < 0:
        raise DataError("the text holds a character outside the alphabet")
    return ids


def windows(ids: np.ndarray, context: int = CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, context)`` as float32 ids and labels ``(n, context)`` int64: the next id."""
    count = (len(ids) - 1) // context
    inputs = ids[: count * context].reshape(count, context)
    labels = ids[1 : count * context + 1].reshape(count, context)
    return inputs.astype(np.float32), labels.astype(np.int64)


def austen(seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` of the novels; the seed is not needed (the
    windows are fixed; each epoch's batch order comes from the task's seed)."""
    del seed
    ids = encode(read_text())
    cut = int(len(ids) * (1 - TEST_FRACTION))
    return windows(ids[:cut]), windows(ids[cut:])


def _rebuild(deb_path: str | None, out: Path) -> int:
    if deb_path:
        deb = Path(deb_path).read_bytes()
    else:
        import pooch  # imported here: only this command downloads

        deb = Path(pooch.retrieve(DEB_URL, known_hash=f"sha256:{DEB_SHA256}")).read_bytes()
    if hashlib.sha256(deb).hexdigest() != DEB_SHA256:
        print(f"error: {deb_path}: not r-cran-janeaustenr 1.0.0-1 (SHA-256 differs)")
        return 1
    data = text_from_deb(deb).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as stream:
        stream.write(data)
    print(f"{out}: {len(data):,} bytes, SHA-256 {hashlib.sha256(data).hexdigest()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the austen text from its Debian package.")
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("rebuild", help="write austen.txt.gz from the .deb")
    rebuild.add_argument("deb", nargs="?", help="r-cran-janeaustenr_1.0.0-1_all.deb (else fetched)")
    rebuild.add_argument("--out", type=Path, default=Path(f"{FILE}.gz"))
    args = parser.parse_args(argv)
    return _rebuild(args.deb, args.out)


if __name__ == "__main__":
    sys.exit(main())
