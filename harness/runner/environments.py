"""Per-cell environments: the same cell in a virtual environment built for other package versions.

``harness run --with jax==0.9.2 --with jax==0.10.2`` runs every cell once in each of two
environments. Each environment is an *overlay*, the way ``uv run --with`` makes one: a virtual
environment holding only the pinned packages (and what they need, as uv resolves them), with a
``.pth`` file that puts harness's own environment behind it. So the cell sees this harness and
its plugins exactly as installed, and the pinned versions in front of whatever that environment
has. uv builds them (fast, and it caches downloads); they are kept in ``$HARNESS_ENV_DIR`` (else
the user cache) under the hash of what they hold, and reused, offline, by every later run.

A pin that doesn't exist or doesn't install is :class:`EnvironmentBuildError`, which the runner
turns into a ``failed`` row of kind ``environment`` for that cell; the other cells run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import site
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import HarnessError
from harness.paths import write_atomically

#: where built environments are kept, instead of the user cache
ENV_DIR_ENV = "HARNESS_ENV_DIR"
#: written last into a built environment: a folder without it is a build that was cut short
BUILT_MARKER = "harness-environment.json"
#: the ``.pth`` file that puts harness's own environment behind the overlay
OVERLAY_PTH = "_harness_base_environment.pth"
#: longest a build may take (downloading a framework's wheels on a slow link included)
BUILD_TIMEOUT_SECONDS = 1800.0

#: builds that failed in this process, by key: every cell of that environment fails alike, so
#: uv is asked once, not once per cell
_FAILED: dict[str, str] = {}


class EnvironmentBuildError(HarnessError):
    """An environment could not be built: a pin that doesn't exist, doesn't install, or no uv."""


@dataclass(frozen=True)
class IndexOptions:
    """Where uv finds packages (``--index-url``, ``--find-links``, ``--offline`` of ``harness run``)."""

    index_url: str | None = None
    find_links: tuple[str, ...] = ()
    offline: bool = False

    def uv_arguments(self) -> list[str]:
        arguments = ["--index-url", self.index_url] if self.index_url else []
        for location in self.find_links:
            arguments += ["--find-links", location]
        return arguments + (["--offline"] if self.offline else [])


@dataclass(frozen=True)
class BuiltEnvironment:
    """An environment ready for cells: its folder, and whether this call built it."""

    folder: Path
    requirements: tuple[str, ...]
    #: ``False`` when it was found built in the cache
    built: bool
    #: how long this call took: the build, or finding it in the cache
    seconds: float

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"


def parse_requirement(text: str) -> Requirement:
    """``text`` as a requirement in pip's syntax, or one line saying why it isn't one."""
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0] if str(exc) else "not a requirement"
        raise HarnessError(
            f"--with {text!r} is not a requirement in pip's syntax (say jax==0.9.2): {first}"
        ) from None


def environment_matrix(values: Sequence[str]) -> list[tuple[str, ...]]:
    """The environments that ``--with`` values ask for: the requirements naming one package are
    alternatives, and those naming different packages combine, every alternative with every other.

    >>> environment_matrix(["jax==0.9.2", "jax==0.10.2"])
    [('jax==0.9.2',), ('jax==0.10.2',)]
    >>> environment_matrix(["jax==0.9.2", "numpy<2", "jax==0.10.2"])
    [('jax==0.9.2', 'numpy<2'), ('jax==0.10.2', 'numpy<2')]
    """
    alternatives: dict[str, list[str]] = {}
    for value in values:
        requirement = parse_requirement(value.strip())
        choices = alternatives.setdefault(canonicalize_name(requirement.name), [])
        if str(requirement) not in choices:
            choices.append(str(requirement))
    return [tuple(combination) for combination in itertools.product(*alternatives.values())]


def environment_name(requirements: Sequence[str]) -> str:
    """How rows and tables name an environment: its requirements, ``jax==0.9.2,numpy<2``."""
    return ",".join(requirements)


def environments_folder() -> Path:
    """Where built environments are kept (``$HARNESS_ENV_DIR``, else the user cache)."""
    configured = os.environ.get(ENV_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(platformdirs.user_cache_dir("harness")) / "environments"


def base_site_directories() -> list[str]:
    """The site-packages of harness's own environment, which every overlay sees behind its own."""
    found = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        found.append(site.getusersitepackages())
    return list(dict.fromkeys(os.path.realpath(path) for path in found))


def environment_key(requirements: Sequence[str], index: IndexOptions) -> str:
    """The hash of what an environment holds: its requirements, where they come from, and the
    Python and environment it overlays (so one built for another interpreter is never reused)."""
    from harness import __version__

    content = {
        "requirements": sorted(requirements),
        "index_url": index.index_url,
        "find_links": [os.path.abspath(location) for location in index.find_links],
        "python": sys.version,
        "executable": os.path.realpath(sys.executable),
        "base": base_site_directories(),
        "harness": __version__,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:20]


def ensure_environment(requirements: Sequence[str], index: IndexOptions) -> BuiltEnvironment:
    """The environment for ``requirements``, from the cache or built now.

    Two processes asking for the same environment (two Ray tasks on one node) build it once:
    the second waits on the first's lock and then finds it built.

    :raises EnvironmentBuildError: when uv is missing or the requirements don't install
    """
    start = time.perf_counter()
    requirements = tuple(requirements)
    root = environments_folder()
    root.mkdir(parents=True, exist_ok=True)
    key = environment_key(requirements, index)
    if key in _FAILED:
        raise EnvironmentBuildError(_FAILED[key])
    folder = root / key
    with _build_lock(root / f"{key}.lock"):
        if (folder / BUILT_MARKER).is_file():
            return BuiltEnvironment(folder, requirements, False, time.perf_counter() - start)
        shutil.rmtree(folder, ignore_errors=True)  # a build that was cut short
        try:
            _build(folder, requirements, index)
        except EnvironmentBuildError as exc:
            _FAILED[key] = str(exc)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        seconds = time.perf_counter() - start
        record = {"requirements": list(requirements), "build_seconds": round(seconds, 3)}
        write_atomically(folder / BUILT_MARKER, json.dumps(record, indent=2) + "\n")
    return BuiltEnvironment(folder, requirements, True, seconds)


def _build(folder: Path, requirements: tuple[str, ...], index: IndexOptions) -> None:
    uv = find_uv()
    _run_uv([uv, "venv", "--quiet", "--python", sys.executable, str(folder)], requirements)
    python = folder / "bin" / "python"
    site_packages = _site_packages(python, requirements)
    # ``import`` lines of a .pth run at start-up: addsitedir also reads the base's own .pth
    # files, so editable installs there (harness itself, often) are found from the overlay
    lines = [f"import site; site.addsitedir({path!r})" for path in base_site_directories()]
    (site_packages / OVERLAY_PTH).write_text("\n".join(lines) + "\n")
    install = [uv, "pip", "install", "--quiet", "--python", str(python), *index.uv_arguments()]
    _run_uv([*install, *requirements], requirements)


def find_uv() -> str:
    """The uv executable: the ``uv`` package's own, else one on ``PATH``."""
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin

        return str(find_uv_bin())
    found = shutil.which("uv")
    if found is None:
        raise EnvironmentBuildError(
            "--with builds environments with uv, which is not installed: "
            "pip install 'harness[versions]' (or pip install uv)"
        )
    return found


def _site_packages(python: Path, requirements: tuple[str, ...]) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    result = subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise EnvironmentBuildError(
            f"the environment {environment_name(requirements)} has no working Python: "
            f"{_last_error_line(result.stderr)}"
        )
    return Path(result.stdout.strip())


def _run_uv(command: list[str], requirements: tuple[str, ...]) -> None:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(
            f"building the environment {environment_name(requirements)} took over "
            f"{BUILD_TIMEOUT_SECONDS:g} s"
        ) from None
    if result.returncode != 0:
        raise EnvironmentBuildError(
            f"{environment_name(requirements)} does not install: "
            f"{uv_error(result.stderr or result.stdout)}"
        )


def uv_error(output: str) -> str:
    """uv's error as one line: the reason it gives (``cause: Because …``) where it gives one,
    else its ``error:`` line."""
    lines = [line.strip(" │╰─▶×\t") for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("hint:", "help:"))]
    cause = next((line for line in lines if line.startswith(("cause:", "Because"))), None)
    error = next((line for line in lines if line.startswith("error:")), None)
    text = cause or error or (lines[-1] if lines else "uv failed without a message")
    text = text.removeprefix("cause: ").removeprefix("error: ")
    if text.startswith("Because "):  # uv's proof: "Because X and you require Y, we can conclude…"
        text = text.removeprefix("Because ").partition(", we can conclude")[0]
        text = text.rpartition(" and you require ")[0] or text
    return (text[:400] + "…") if len(text) > 400 else text


def _last_error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # dropped by the kernel if the holder dies
        yield
    finally:
        os.close(descriptor)
