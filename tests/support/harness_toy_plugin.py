"""``toy``: a framework plugin for a library, ``toyframe``, that is installed only by ``--with``.

``toyframe`` is built in the tests as wheels of two versions (:func:`toyframe_wheels`), like
two releases of a real framework: 1.0 spends ``EPOCH_SECONDS`` = 0.05 s on an epoch, 2.0 three
times as long, a regression for ``harness history`` to find. Training is the ``centroid``
classifier of :mod:`harness_test_plugins`, so both versions learn the same and differ only in
time. Loaded with ``HARNESS_PLUGINS=harness_toy_plugin``.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zipfile
from pathlib import Path

from harness_test_plugins import CentroidAdapter, CentroidTrainer

import harness

#: seconds each version of toyframe spends on an epoch
EPOCH_SECONDS = {"1.0": 0.05, "2.0": 0.15}


class ToyTrainer(CentroidTrainer):
    def train_epoch(self, batch_order):
        import toyframe

        time.sleep(toyframe.EPOCH_SECONDS)
        return super().train_epoch(batch_order)


class ToyAdapter(CentroidAdapter):
    name = "toy"
    import_name = "toyframe"
    distribution = "toyframe"
    install_hint = "harness run --with toyframe==1.0 --find-links <the wheels' folder>"

    def build(self, task, weights, x, y):
        return ToyTrainer(x, y, task.model.layers[-1].units)


@harness.hookimpl
def harness_register_frameworks(register):
    register(ToyAdapter())


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel of ``files`` (path in the wheel → text), written by hand so that
    building it needs no build backend and no network."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: harness-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    records = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        records.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    records.append(f"{dist_info}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def toyframe_wheels(folder: Path) -> list[Path]:
    """toyframe 1.0 and 2.0 as wheels in ``folder`` (for ``--find-links``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        build_wheel(
            folder,
            "toyframe",
            version,
            {"toyframe.py": f'__version__ = "{version}"\nEPOCH_SECONDS = {seconds}\n'},
        )
        for version, seconds in EPOCH_SECONDS.items()
    ]
