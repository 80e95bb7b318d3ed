"""The austen corpus: read out of a Debian package's R data base without R, verified on every
load, and cut into next-character windows."""

import gzip
import hashlib
import io
import struct
import tarfile
import zlib

import numpy as np
import pytest

from harness.data import corpus, datasets, rdata
from harness.errors import DataError

# -- a lazy-load data base written by hand, to R's XDR serialisation format -------------------


def _int(value: int) -> bytes:
    return struct.pack(">i", value)


def _char(text: str) -> bytes:
    data = text.encode()
    return _int(9) + _int(len(data)) + data


def _strings(values: list[str]) -> bytes:
    return _int(16) + _int(len(values)) + b"".join(map(_char, values))


def _named_list(items: dict[str, bytes]) -> bytes:
    """A VECSXP with a names attribute (a pairlist tagged ``names``), as R writes the index."""
    names = b"".join(_char(name) for name in items)
    attributes = _int(2 | 1 << 10) + _int(1) + _char("names") + _int(16) + _int(len(items))
    attributes += names + _int(254)
    return _int(19 | 1 << 9) + _int(len(items)) + b"".join(items.values()) + attributes


def _serialized(body: bytes) -> bytes:
    return b"X\n" + _int(3) + _int(0x040201) + _int(0x030500) + _int(5) + b"UTF-8" + body


def _record(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + zlib.compress(data)


def _data_base(objects: dict[str, list[str]]) -> tuple[bytes, bytes]:
    rdb, offsets = b"", {}
    for name, lines in objects.items():
        record = _record(_serialized(_strings(lines)))
        offsets[name] = (len(rdb), len(record))
        rdb += record
    variables = {name: _int(13) + _int(2) + _int(a) + _int(b) for name, (a, b) in offsets.items()}
    index = _named_list({"variables": _named_list(variables)})
    return gzip.compress(_serialized(index)), rdb


def _deb(files: dict[str, bytes]) -> bytes:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:xz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    out = b"!<arch>\n"
    for name, body in (("debian-binary", b"2.0\n"), ("data.tar.xz", tar.getvalue())):
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    return out


NOVELS = {name: [f"{name.upper()}", "", "It is a truth."] for name in corpus.NOVELS}


def test_the_novels_are_read_out_of_the_packages_data_base_in_the_packages_order():
    rdx, rdb = _data_base(dict(reversed(NOVELS.items())))  # stored in another order
    deb = _deb({corpus._DATA + "Rdata.rdx": rdx, corpus._DATA + "Rdata.rdb": rdb})
    text = corpus.text_from_deb(deb)
    assert text.split("\n")[:3] == ["SENSESENSIBILITY", "", "It is a truth."]
    assert text.split("\n")[-3] == "PERSUASION"
    assert text.count("\n") == 3 * len(corpus.NOVELS) - 1


def test_what_the_reader_does_not_understand_is_refused_in_one_line():
    with pytest.raises(rdata.RDataError, match="not a Debian package"):
        rdata.deb_member(b"PK\x03\x04", "x")
    with pytest.raises(rdata.RDataError, match="XDR"):
        rdata.unserialize(b"A\n" + _int(3))
    closure = _int(3)  # a function: no text in it
    with pytest.raises(rdata.RDataError, match="type 3"):
        rdata.unserialize(_serialized(closure))
    deb = _deb({"usr/other": b""})
    with pytest.raises(rdata.RDataError, match="not in the package"):
        rdata.deb_member(deb, corpus._DATA + "Rdata.rdx")


def test_the_shipped_text_is_the_packages_and_its_sum_is_checked_on_load(tmp_path, monkeypatch):
    text = corpus.read_text()
    assert len(text.encode()) == corpus.TEXT_BYTES
    assert "".join(sorted(set(text))) == corpus.ALPHABET
    assert text.startswith("SENSE AND SENSIBILITY\n")
    assert hashlib.sha256(text.encode()).hexdigest() == datasets.canonical_sums()[corpus.FILE]
    # a copy earlier in the search path with one character changed is refused, not read
    damaged = tmp_path / corpus.FILE
    damaged.parent.mkdir()
    damaged.with_suffix(".txt.gz").write_bytes(
        gzip.compress(text.replace("Elinor", "Elinar", 1).encode())
    )
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match="checksum mismatch"):
        corpus.read_text()


def test_a_sample_is_a_window_and_its_labels_the_next_character_at_every_step():
    ids = corpus.encode("ab\nba")
    assert ids.tolist() == [corpus.ALPHABET.index(c) for c in "ab\nba"]
    x, y = corpus.windows(np.arange(10), context=3)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(DataError, match="outside the alphabet"):
        corpus.encode("naïve")


def test_the_austen_dataset_loads_as_the_harness_checks_it():
    split = datasets.load("austen", {}, seed=0)
    info = datasets.DATASETS["austen"]
    assert split.train.x.shape[1:] == info.input_shape == (corpus.CONTEXT,)
    assert split.train.y.shape[1:] == info.label_shape
    assert int(split.train.y.max()) < info.num_classes == len(corpus.ALPHABET)
    # the test split is the end of the text, after every training window
    assert len(split.test.x) < len(split.train.x) / 8
    assert np.array_equal(split.train.x[1:, 0], split.train.y[:-1, -1].astype(np.float32))
    assert split.sha256 == datasets.load("austen", {}, seed=1).sha256  # the seed changes nothing


def test_a_run_on_a_damaged_corpus_stops_before_any_cell_with_one_line(tmp_path):
    import os
    import subprocess
    import sys

    text = gzip.decompress((datasets.packaged_dir() / f"{corpus.FILE}.gz").read_bytes())
    (tmp_path / "austen").mkdir()
    (tmp_path / "austen" / "austen.txt.gz").write_bytes(gzip.compress(text[:-1] + b"!"))
    env = {**os.environ, datasets.DATA_DIR_ENV: str(tmp_path)}
    run = [sys.executable, "-m", "harness", "run", "--task", "text_gpt", "--framework", "torch"]
    done = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "checksum mismatch" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()
