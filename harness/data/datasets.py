"""Where dataset files are found, how they are verified, and how they become arrays.

Files are looked for, in order: the ``--data-dir`` / ``HARNESS_DATA_DIR`` folder, the user
cache, the copy that ships with the package (MNIST), system-wide copies (Fashion-MNIST from
Debian's ``dataset-fashion-mnist``); failing all of them they are downloaded from the dataset's
public mirrors into the user cache. Whatever the source, the SHA-256 of the
decompressed bytes must equal the canonical sum in ``SHA256SUMS``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from harness.data import corpus, series
from harness.data.idx import iter_idx_chunks, parse_idx, read_idx
from harness.errors import DataError, HarnessError
from harness.paths import safe_name

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "HARNESS_DATA_DIR"
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset the harness knows how to find, verify and load."""

    name: str
    #: file stem (without ``.gz``) for each of :data:`ROLES`
    files: dict[str, str]
    input_shape: tuple[int, ...]
    #: 0 for real-valued targets (regression); a language model's vocabulary size
    num_classes: int
    #: base URLs tried in order when no local copy exists
    mirrors: tuple[str, ...]
    #: the folder name in SHA256SUMS, the shipped copy and data folders (``fashion-mnist``)
    folder: str = ""
    #: system-wide copies, searched after the shipped one (e.g. where a Debian package puts it)
    system_dirs: tuple[Path, ...] = ()
    #: for a dataset the harness generates from the task's seed instead of reading files
    generate: Callable[[int], tuple[tuple[np.ndarray, np.ndarray], ...]] | None = None
    #: decompressed size of each of :data:`ROLES`: reading stops past it (decompression bombs)
    sizes: dict[str, int] | None = None
    #: SHA-256 of each file's decompressed bytes, by role; built-in datasets keep theirs in the
    #: shipped ``SHA256SUMS``, a plugin's dataset gives them here
    sha256: dict[str, str] | None = None
    #: who provides it: ``harness`` for a built-in dataset; the plugin registry sets a plugin's
    #: (its name and distribution), so rows and error messages can say where data came from
    provider: str = "harness"
    #: each sample's labels: ``()`` for one class (or value) per sample, ``(steps,)`` for a
    #: class per step (the next token at every position of a language model's input)
    label_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # the name and folder become paths (the cache, data folders): nothing may climb out
        for what, value in (("name", self.name), ("folder", self.folder)):
            if value and safe_name(value) != value:
                raise ValueError(
                    f"dataset {self.name!r}: its {what} may hold only letters, digits and . _ - "
                    "(it names a folder)"
                )
        # a file of unknown size could only be capped after it had filled memory
        if self.files and (
            set(self.files) != set(ROLES) or not set(ROLES) <= set(self.sizes or {})
        ):
            raise ValueError(
                f"dataset {self.name!r}: give files and sizes (decompressed bytes, the cap "
                f"reading stops at) for each of {', '.join(ROLES)}"
            )

    @property
    def subfolder(self) -> str:
        return self.folder or self.name


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: MNIST's and Fashion-MNIST's files: a header, then 60,000 (10,000) 28x28 images or labels
_IDX_SIZES = {
    "train_images": 16 + 60_000 * 28 * 28,
    "train_labels": 8 + 60_000,
    "test_images": 16 + 10_000 * 28 * 28,
    "test_labels": 8 + 10_000,
}

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        files=_IDX_FILES,
        sizes=_IDX_SIZES,
        input_shape=(28, 28),
        num_classes=10,
        mirrors=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ),
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        files=_IDX_FILES,
        sizes=_IDX_SIZES,
        input_shape=(28, 28),
        num_classes=10,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        folder="fashion-mnist",
        # Debian's dataset-fashion-mnist package
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
    "sine_waves": DatasetInfo(
        name="sine_waves",
        files={},
        input_shape=(series.STEPS, 1),
        num_classes=0,
        mirrors=(),
        generate=series.sine_waves,
    ),
    "austen": DatasetInfo(
        name="austen",
        files={},
        input_shape=(corpus.CONTEXT,),
        num_classes=len(corpus.ALPHABET),
        mirrors=(),
        generate=corpus.austen,
        label_shape=(corpus.CONTEXT,),
    ),
}


@dataclass(frozen=True)
class Arrays:
    """Inputs and labels of one split."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Split:
    train: Arrays
    test: Arrays
    #: identifies what was loaded, before any preprocessing (:func:`digest_of_files`,
    #: :func:`digest_of_arrays`); rows and the agreement cache record it
    sha256: str | None = None


def builtin_dataset(dataset: str | DatasetInfo) -> DatasetInfo:
    """``dataset`` itself when it is a :class:`DatasetInfo`, else the built-in dataset of that
    name. A plugin's dataset is resolved by ``harness.registry.catalog.dataset_info``, which
    hands its facts down here: this layer never asks the plugin registry."""
    if isinstance(dataset, DatasetInfo):
        return dataset
    if dataset not in DATASETS:
        raise DataError(
            f"dataset {dataset!r} is not built in: pass its DatasetInfo (from "
            "harness.registry.catalog.dataset_info)"
        )
    return DATASETS[dataset]


def canonical_sums() -> dict[str, str]:
    """``{"mnist/train-images-idx3-ubyte": sha256, ...}`` from the shipped ``SHA256SUMS``."""
    text = files("harness.data").joinpath("SHA256SUMS").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def cache_dir() -> Path:
    """The user cache folder for datasets (downloads land here)."""
    return Path(platformdirs.user_cache_dir("harness")) / "datasets"


def packaged_dir() -> Path:
    """The folder of dataset copies that ship inside the package."""
    return Path(str(files("harness.data")))


def search_dirs(data_dir: Path | None) -> list[Path]:
    """The folders searched for a dataset's files, in order."""
    dirs = []
    explicit = data_dir or (
        Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else None
    )
    if explicit is not None:
        if not explicit.is_dir():
            raise DataError(f"data folder {explicit} does not exist; pass an existing --data-dir")
        dirs.append(explicit)
    dirs += [cache_dir(), packaged_dir()]
    return dirs


def verify(path: Path, expected_sha256: str, size: int | None = None) -> None:
    """Check the SHA-256 of the file's decompressed bytes; a mismatch names the file.

    The bytes are hashed as they are decompressed, and reading stops once they pass ``size``
    (the file's known size), so a damaged or hostile file costs neither memory nor time.
    """
    hasher = hashlib.sha256()
    for chunk in iter_idx_chunks(path, size):
        hasher.update(chunk)
    digest = hasher.hexdigest()
    if digest != expected_sha256:
        raise DataError(
            f"{path}: checksum mismatch (SHA-256 of the decompressed bytes is {digest}, "
            f"expected {expected_sha256}); delete or replace the file"
        )


def locate(
    dataset: str | DatasetInfo,
    data_dir: Path | None = None,
    *,
    mirrors: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Find (or download), verify and return the path of each of the dataset's files."""
    info = builtin_dataset(dataset)
    if info.generate is not None:
        return {}  # made from the task's seed in each cell
    sums = file_sums(info)
    dirs = [*search_dirs(data_dir), *info.system_dirs]
    located = {}
    for role, stem in info.files.items():
        expected = sums[role]
        path = _find_local(dirs, info, stem)
        if path is None:
            path = _download(info, stem, mirrors if mirrors is not None else info.mirrors)
        verify(path, expected, (info.sizes or {}).get(role))
        logger.debug("%s %s: %s", info.name, role, path)
        located[role] = path
    return located


def file_sums(info: DatasetInfo) -> dict[str, str]:
    """The SHA-256 of each of a file dataset's files, by role: the plugin's own, or the
    canonical ones shipped in ``SHA256SUMS``.

    :raises HarnessError: for a file without one (it could not be verified)
    """
    canonical = canonical_sums()
    sums = {}
    for role, stem in info.files.items():
        expected = (info.sha256 or {}).get(role) or canonical.get(f"{info.subfolder}/{stem}")
        if expected is None:
            raise HarnessError(
                f"dataset {info.name!r} gives no SHA-256 for its {role} file, so it can't be "
                "verified; its plugin must give sha256 for each file"
            )
        sums[role] = expected
    return sums


def _find_local(dirs: list[Path], info: DatasetInfo, stem: str) -> Path | None:
    subfolders = dict.fromkeys([info.subfolder, info.name])
    for folder in dirs:
        candidates = [folder / sub / f"{stem}.gz" for sub in subfolders] + [folder / f"{stem}.gz"]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def _download(info: DatasetInfo, stem: str, mirrors: Sequence[str]) -> Path:
    import pooch  # imported here: only needed when no local copy exists

    target = cache_dir() / info.subfolder
    problems = []
    for base in mirrors:
        try:
            fetched = pooch.retrieve(
                url=base + f"{stem}.gz",
                known_hash=None,  # sums are of decompressed bytes, checked by verify()
                fname=f"{stem}.gz",
                path=target,
                progressbar=False,
            )
            return Path(fetched)
        except Exception as exc:  # network errors come in many types; try the next mirror
            problems.append(f"{base}: {type(exc).__name__}")
    raise DataError(
        f"{info.subfolder}/{stem}.gz not found locally and could not be downloaded "
        f"({'; '.join(problems) or 'no mirrors'}); put the file in a folder and pass "
        f"--data-dir DIR (or set {DATA_DIR_ENV})"
    )


def hold_out(train: Arrays, count: int) -> tuple[Arrays, Arrays]:
    """Split the last ``count`` training samples off as a validation set."""
    if count >= len(train.x):
        raise DataError(f"cannot hold out {count} of only {len(train.x)} training samples")
    cut = len(train.x) - count
    return Arrays(train.x[:cut], train.y[:cut]), Arrays(train.x[cut:], train.y[cut:])


def shaped_for(task: Any, split: Split) -> Split:
    """The split with inputs shaped as the task's model takes them (e.g. a channel axis added
    to (28, 28) images for a convolution)."""
    shape = tuple(task.model.input_shape)

    def reshape(arrays: Arrays) -> Arrays:
        return Arrays(arrays.x.reshape(len(arrays.x), *shape), arrays.y)

    return Split(train=reshape(split.train), test=reshape(split.test), sha256=split.sha256)


def load(
    dataset: str | DatasetInfo,
    paths: dict[str, Path],
    *,
    divide_by: float = 1.0,
    seed: int = 0,
) -> Split:
    """Read the located files into float32 inputs (divided by ``divide_by``) and int64 labels;
    a generated dataset is made from ``seed`` instead (float32 inputs and targets)."""
    info = builtin_dataset(dataset)
    if info.generate is not None:
        (x_train, y_train), (x_test, y_test) = info.generate(seed)
        split = Split(train=Arrays(x_train, y_train), test=Arrays(x_test, y_test))
        check_loaded(info, split)
        # the task's preprocessing applies to every dataset, generated ones too
        train, test = (Arrays(_divided(a.x, divide_by), a.y) for a in (split.train, split.test))
        return Split(train, test, sha256=digest_of_arrays(split))

    limits = info.sizes or {}

    def inputs(role: str) -> np.ndarray:
        raw = read_idx(paths[role], limits.get(role))
        return (raw.astype(np.float32) / np.float32(divide_by)).astype(np.float32)

    def labels(role: str) -> np.ndarray:
        return read_idx(paths[role], limits.get(role)).astype(np.int64)

    split = Split(
        train=Arrays(inputs("train_images"), labels("train_labels")),
        test=Arrays(inputs("test_images"), labels("test_labels")),
        sha256=digest_of_files(file_sums(info)),
    )
    check_loaded(info, split)
    return split


def digest_of_files(sums: dict[str, str]) -> str:
    """What a file dataset loaded, identified by its files' SHA-256 sums: :func:`locate`
    verified each file's decompressed bytes against them, so they name those bytes exactly
    (and cost nothing to combine)."""
    text = "".join(f"{role} {sums[role]}\n" for role in sorted(sums))
    return hashlib.sha256(text.encode()).hexdigest()


def digest_of_arrays(split: Split) -> str:
    """What a generated dataset made: the SHA-256 of its arrays' types, shapes and bytes."""
    hasher = hashlib.sha256()
    for array in (split.train.x, split.train.y, split.test.x, split.test.y):
        contiguous = np.ascontiguousarray(array)
        hasher.update(f"{contiguous.dtype.str} {contiguous.shape}\n".encode())
        hasher.update(contiguous.data.cast("B"))
    return hasher.hexdigest()


def _divided(x: np.ndarray, divide_by: float) -> np.ndarray:
    return x if divide_by == 1.0 else (x / np.float32(divide_by)).astype(np.float32)


def check_loaded(info: DatasetInfo, split: Split) -> None:
    """What a loader returned, checked once here, so that no framework trains on something
    else than the dataset declares: float32 inputs of the declared shape, all finite; integer
    labels in ``[0, num_classes)``, or finite float32 targets for a regression dataset.

    :raises DataError: one line naming the dataset, its provider and the first problem
    """
    for part, arrays in (("train", split.train), ("test", split.test)):
        problem = _arrays_problem(info, arrays)
        if problem is not None:
            raise DataError(f"dataset {info.name!r} from {info.provider}: {part} {problem}")


def _arrays_problem(info: DatasetInfo, arrays: Arrays) -> str | None:
    x, y = np.asarray(arrays.x), np.asarray(arrays.y)
    if len(x) != len(y):
        return f"inputs ({len(x)}) and labels ({len(y)}) differ in count"
    if x.dtype != np.float32:
        return f"inputs are {x.dtype}, not float32 (scale them with the task's [preprocessing] divide_by)"
    if x.shape[1:] not in (info.input_shape, (*info.input_shape, 1)):
        return f"inputs have shape {x.shape[1:]} per sample, but the dataset declares {info.input_shape}"
    if not _all_finite(x):
        return "inputs hold NaN or infinite values"
    if info.num_classes:
        if y.shape[1:] != info.label_shape or not np.issubdtype(y.dtype, np.integer):
            return (
                f"labels are {y.dtype} of shape {y.shape[1:]} per sample, not integer class indices"
            )
        if len(y) and (y.min() < 0 or y.max() >= info.num_classes):
            return (
                f"labels run from {y.min()} to {y.max()}, outside 0..{info.num_classes - 1} "
                f"({info.num_classes} classes)"
            )
    elif y.dtype != np.float32 or not _all_finite(y):
        return "targets must be finite float32 values (a regression dataset)"
    return None


__all__ = [
    "Arrays",
    "DATASETS",
    "DatasetInfo",
    "Split",
    "builtin_dataset",
    "load",
    "locate",
    "parse_idx",
    "verify",
]


def _all_finite(values: np.ndarray) -> bool:
    """Whether no value is NaN or infinite, without a boolean copy of the array (MNIST's would
    add 47 MB to the cell's peak memory): min and max carry any NaN or infinity through."""
    return values.size == 0 or bool(np.isfinite(values.min()) and np.isfinite(values.max()))
