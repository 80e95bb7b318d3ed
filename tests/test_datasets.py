import functools
import gzip
import http.server
import shutil
import threading

import numpy as np
import pytest

from harness.data import datasets
from harness.errors import DataError

SHIPPED = datasets.packaged_dir() / "mnist"
MNIST_FILES = [f"{stem}.gz" for stem in datasets.DATASETS["mnist"].files.values()]


@pytest.fixture(autouse=True)
def empty_user_cache(tmp_path, monkeypatch):
    """Point the user cache (platformdirs honours XDG_CACHE_HOME) at an empty folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)


def copy_mnist(folder, corrupt=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        shutil.copy(SHIPPED / name, folder / name)
    if corrupt:
        data = bytearray(gzip.decompress((folder / corrupt).read_bytes()))
        data[-1] ^= 0xFF
        (folder / corrupt).write_bytes(gzip.compress(bytes(data)))
    return folder


def test_canonical_sums_match_the_shared_reference_file():
    reference = datasets.packaged_dir().parent.parent.parent / "shared" / "data" / "SHA256SUMS"
    sums = datasets.canonical_sums()
    assert len(sums) == 9 and all(len(digest) == 64 for digest in sums.values())
    if reference.exists():  # beside a checkout of the repository: the image datasets' sums
        shipped = (datasets.packaged_dir() / "SHA256SUMS").read_text().splitlines()
        images = [line for line in shipped if "mnist/" in line]
        assert reference.read_text().split() == " ".join(images).split()


def test_the_shipped_copy_is_used_when_nothing_else_is_there():
    paths = datasets.locate("mnist")
    assert paths["train_images"] == datasets.packaged_dir() / "mnist" / "train-images-idx3-ubyte.gz"


def test_data_dir_comes_first(tmp_path):
    own = copy_mnist(tmp_path / "mine" / "mnist")
    paths = datasets.locate("mnist", tmp_path / "mine")
    assert all(path.parent == own for path in paths.values())


def test_data_dir_from_the_environment(tmp_path, monkeypatch):
    own = copy_mnist(tmp_path / "flat")  # files directly in the folder work too
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(own))
    assert datasets.locate("mnist")["test_labels"].parent == own


def test_user_cache_comes_before_the_shipped_copy(tmp_path):
    cached = copy_mnist(datasets.cache_dir() / "mnist")
    assert datasets.locate("mnist")["train_labels"].parent == cached


def test_a_checksum_mismatch_names_the_file_and_the_expected_sum(tmp_path):
    copy_mnist(tmp_path / "bad", corrupt="t10k-labels-idx1-ubyte.gz")
    expected = datasets.canonical_sums()["mnist/t10k-labels-idx1-ubyte"]
    with pytest.raises(
        DataError, match=rf"t10k-labels-idx1-ubyte.gz: checksum mismatch .* expected {expected}"
    ):
        datasets.locate("mnist", tmp_path / "bad")


def test_a_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        datasets.locate("mnist", tmp_path / "nowhere")


@pytest.fixture
def mirror(tmp_path):
    """A real HTTP server on loopback serving a folder, as a dataset mirror would."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


@pytest.fixture
def nothing_shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "packaged_dir", lambda: tmp_path / "not-shipped")


def test_downloads_into_the_user_cache_and_verifies(mirror, nothing_shipped):
    root, url = mirror
    copy_mnist(root)
    paths = datasets.locate("mnist", mirrors=["http://127.0.0.1:9/unreachable/", url])
    assert all(path.parent == datasets.cache_dir() / "mnist" for path in paths.values())
    assert datasets.locate("mnist", mirrors=[])["train_images"] == paths["train_images"]  # cached


def test_a_corrupt_download_fails_its_checksum(mirror, nothing_shipped):
    root, url = mirror
    copy_mnist(root, corrupt="train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: checksum mismatch"):
        datasets.locate("mnist", mirrors=[url])


def test_no_copy_and_no_mirror_says_how_to_fix_it(nothing_shipped):
    with pytest.raises(DataError, match="could not be downloaded .* --data-dir"):
        datasets.locate("mnist", mirrors=["http://127.0.0.1:9/"])


def test_load_scales_inputs_and_keeps_integer_labels():
    split = datasets.load("mnist", datasets.locate("mnist"), divide_by=255)
    assert split.train.x.shape == (60000, 28, 28) and split.train.x.dtype == np.float32
    assert split.train.x.max() == 1.0 and split.train.x.min() == 0.0
    assert split.test.y.dtype == np.int64 and len(split.test.y) == 10000


DEBIAN_FASHION = datasets.DATASETS["fashion_mnist"].system_dirs[0]


def test_fashion_mnist_is_found_where_debians_package_installs_it():
    # .ci/run installs Debian's dataset-fashion-mnist
    paths = datasets.locate("fashion_mnist")
    assert all(path.parent == DEBIAN_FASHION for path in paths.values())
    split = datasets.load("fashion_mnist", paths, divide_by=255)
    assert split.train.x.shape == (60000, 28, 28) and split.test.x.shape == (10000, 28, 28)
    assert np.bincount(split.train.y).tolist() == [6000] * 10
    assert np.bincount(split.test.y).tolist() == [1000] * 10


def test_fashion_mnist_in_a_data_dir_under_its_own_folder_name(tmp_path):
    folder = tmp_path / "data" / "fashion-mnist"  # the folder name SHA256SUMS uses
    shutil.copytree(DEBIAN_FASHION, folder)
    paths = datasets.locate("fashion_mnist", tmp_path / "data")
    assert all(path.parent == folder for path in paths.values())
