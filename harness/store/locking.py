"""Locks: one harness at a time writes a run folder, and the per-user caches are updated whole.

Both are advisory ``flock`` locks, which the kernel drops when the holder dies however it
dies, so a killed run never leaves a folder locked. The run folder's lock file records who
holds it, so a second ``harness run --resume`` names the process it is waiting on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.paths import open_regular, read_regular, write_atomically

#: far more than a cache of agreement verdicts or calibrations holds
MAX_CACHE_BYTES = 64 << 20

#: the lock file inside a run folder
RUN_LOCK_FILE = ".harness.lock"


class RunFolderBusy(HarnessError):
    """Another harness process is writing this run folder."""


@contextlib.contextmanager
def run_folder_lock(folder: Path, purpose: str) -> Iterator[None]:
    """Hold ``folder``'s lock while writing it; a second holder gets a one-line error at once.

    :param purpose: what the holder does, recorded for the one who finds it taken
        (``"harness run --resume"``)
    """
    path = folder / RUN_LOCK_FILE
    try:
        descriptor = open_regular(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise HarnessError(f"cannot lock {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 300, 0).decode("utf-8", "replace").strip()
            raise RunFolderBusy(
                f"{folder} is in use by another harness ({holder or 'holder unknown'}); "
                "wait for it to finish, or pass another folder"
            ) from None
        os.ftruncate(descriptor, 0)
        record = f"pid {os.getpid()} on {socket.gethostname()}: {purpose}"
        os.pwrite(descriptor, record.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # closing drops the lock


def update_json_file(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Read ``path`` (a JSON object, or nothing), apply ``change`` and write it back, under a lock.

    Two processes updating the same cache (two ``check-agreement`` runs, say) each see the
    other's entries instead of overwriting them. An unreadable file is started afresh.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = open_regular(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # blocks: a cache update takes milliseconds
        try:
            data = json.loads(read_regular(path, MAX_CACHE_BYTES).decode("utf-8"))
        except (OSError, ValueError, HarnessError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        change(data)
        write_atomically(path, json.dumps(data, indent=2) + "\n")
    finally:
        os.close(descriptor)
