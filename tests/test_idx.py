import gzip
import struct

import numpy as np
import pytest

from harness.data.datasets import packaged_dir
from harness.data.idx import parse_idx, read_idx
from harness.errors import DataError

MNIST = packaged_dir() / "mnist"


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def test_reads_mnist_training_images_and_labels():
    images = read_idx(MNIST / "train-images-idx3-ubyte.gz")
    labels = read_idx(MNIST / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    scaled = images / 255.0
    assert scaled.mean() == pytest.approx(0.1307, abs=1e-4)
    assert scaled.std() == pytest.approx(0.3081, abs=1e-4)


def test_reads_mnist_test_labels():
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_round_trips_every_declared_shape_and_big_endian_type():
    array = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    parsed = parse_idx(idx_bytes(array, 0x0C))
    assert parsed.shape == (2, 3, 4)
    assert parsed.tolist() == array.tolist()


def test_truncated_data_names_the_file_and_the_sizes():
    data = idx_bytes(np.zeros((10, 4, 4), dtype=np.uint8))[:-5]
    with pytest.raises(
        DataError, match=r"x.idx: IDX file truncated: header says shape \(10, 4, 4\)"
    ):
        parse_idx(data, name="x.idx")


def test_bad_magic_is_not_an_idx_file():
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"\x1f\x8b\x08\x00rest")


def test_a_cut_gzip_file_is_a_clear_error(tmp_path):
    whole = (MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    cut = tmp_path / "t10k-labels-idx1-ubyte.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=f"{cut}: cannot read"):
        read_idx(cut)


def test_plain_uncompressed_files_are_read_too(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    assert read_idx(path).shape == (10000,)
