"""The one door through which names become paths, and writes that stay inside a folder.

Names come from task files, result rows, plugins and the command line; any of them may be
hostile (``../x``, ``/abs``, empty, a thousand characters, non-ASCII). :func:`safe_name` maps
each to a plain file name, and the writers here never follow a symbolic link, so what harness
writes stays under the folder it was given.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
from pathlib import Path

from harness.errors import HarnessError

#: longest name :func:`safe_name` returns; file systems allow 255 bytes, and callers add
#: prefixes and suffixes such as ``.traceback.txt``
MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def safe_name(text: object, *, fallback: str = "unnamed") -> str:
    """``text`` as a file name made of ``[A-Za-z0-9_.-]``, never empty, hidden, ``.`` or ``..``.

    A name that is already safe comes back unchanged. Any other gets its unsafe characters
    replaced by ``_``, leading dots dropped, its length capped, and a short hash of the
    original appended, so that two different names never share a file.

    >>> safe_name("mnist_mlp-torch-eager-cpu-r0")
    'mnist_mlp-torch-eager-cpu-r0'
    >>> safe_name("../etc/passwd")
    '_etc_passwd-7fef78f534'
    """
    original = "" if text is None else str(text)
    name = _UNSAFE.sub("_", original).lstrip(".")
    if name == original and 0 < len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{(name or fallback)[: MAX_NAME_LENGTH - 11]}-{digest}"


def child_path(folder: Path, *names: object) -> Path:
    """``folder/<safe name>/…``: a path under ``folder`` built from untrusted names."""
    return folder.joinpath(*(safe_name(name) for name in names))


def find_links(folder: Path) -> list[Path]:
    """Symbolic links anywhere under ``folder`` (not followed), as paths relative to it."""
    links = []
    for root, directories, files in os.walk(folder, followlinks=False):
        for name in directories + files:
            path = Path(root, name)
            if path.is_symlink():
                links.append(path.relative_to(folder))
    return sorted(links)


def refuse_links(folder: Path) -> None:
    """One-line error if a run folder holds a symbolic link: harness never writes through one."""
    links = find_links(folder)
    if links:
        first = folder / links[0]
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        raise HarnessError(
            f"{folder} holds a symbolic link, {links[0]} -> {os.readlink(first)}{more}; "
            "harness writes nothing through links: remove them, or use a run folder of your own"
        )


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses to follow a symbolic link at the last component of ``path``."""
    try:
        return os.open(path, flags | _NO_FOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HarnessError(
                f"{path} is a symbolic link; harness writes nothing through links: remove it"
            ) from None
        raise


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """:func:`open_no_follow` that also refuses anything but a regular file: a pipe waits for a
    writer and a device never ends, so reading or locking one would hang the command."""
    descriptor = open_no_follow(path, flags | os.O_NONBLOCK, mode)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise HarnessError(
            f"{path} is not a regular file (a pipe, a device or a socket); remove it"
        )
    os.set_blocking(descriptor, True)
    return descriptor


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, never through a link, never more than
    ``limit`` (a file past it is refused in one line, not read into memory whole)."""
    with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise HarnessError(f"{path}: larger than {limit:,} bytes, more than harness reads")
    return data


def write_new(path: Path, data: bytes | str) -> None:
    """Create or overwrite ``path`` with ``data``, never through a link (e.g. a log or chart)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    descriptor = open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(payload)


def write_atomically(path: Path, data: bytes | str) -> None:
    """Replace ``path`` whole: write a new temporary file beside it, then rename it over.

    A reader sees the old file or the new one, never half of one. If the write fails (disk
    full, read-only folder) the temporary file is removed and the old file is left as it was.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # a stale one of this pid, or a planted link: never write through it
    try:
        descriptor = open_no_follow(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)  # replaces a link at ``path`` itself, never its target
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
