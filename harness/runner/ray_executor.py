"""Running a run's cells as Ray tasks on a cluster, instead of one after another here.

Each cell becomes a Ray task that asks for the cell's resources (CPUs = its thread count, one
GPU for a GPU cell) and, on whichever node Ray picks, runs the very same isolated child process
as the local executor (:func:`harness.runner.run_cell`). Results come back as each cell
finishes and are appended to the run folder here, with the cell's log and the environment of
the node it ran on. Ray never retries a cell: a node lost mid-cell is a ``failed`` row of kind
``node_lost``, and the run goes on.

Ray puts the driver's current folder first on its workers' ``sys.path`` unless the job has a
``working_dir``; the job gets an empty one, so no file lying where harness was started is
imported on a node.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.data import datasets
from harness.errors import HarnessError
from harness.measure.environment import environment_record
from harness.paths import safe_name, write_new
from harness.registry.plugins import get_registry
from harness.runner import Cell, Observer, RunSettings, new_row, run_cell
from harness.runner.process import remove_stale_folders, safe_pythonpath
from harness.store.results import RunDir

#: environment variables a node needs to see the same plugins and data as this process
FORWARDED_ENV = (
    "HARNESS_PLUGINS",
    "HARNESS_STRICT_PLUGINS",
    "HARNESS_DATA_DIR",
    "HARNESS_ENV_DIR",
    "PYTHONPATH",
)
HOSTS_DIR = "hosts"
#: a node's scratch run folder is ``harness-node-<pid of the Ray worker>-<random>``, so one left
#: by a worker that died (a lost node) is removed by the next cell there
NODE_DIR_PREFIX = "harness-node-"


def run_on_node(cell: Cell, settings: RunSettings, run_id: str) -> dict[str, Any]:
    """Body of a cell's Ray task: run it in a scratch run folder on the node, return everything."""
    remove_stale_folders(NODE_DIR_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{NODE_DIR_PREFIX}{os.getpid()}-") as scratch:
        node_dir = RunDir(Path(scratch) / run_id)
        node_dir.logs.mkdir(parents=True)
        local = replace(settings, data_paths=_data_here(cell, settings), pin_cores=False)
        registry = get_registry()
        row = run_cell(cell, local, node_dir, registry)
        files = {
            name: (node_dir.path / name).read_text(encoding="utf-8", errors="replace")
            for name in (row.get("log"), row.get("traceback"))
            if name and (node_dir.path / name).exists()
        }
    versions = {cell.framework: row.get("framework_version")}
    environment = environment_record(
        threads=settings.threads, seed=cell.task.seed, frameworks=versions
    )
    return {"row": row, "files": files, "environment": environment}


def _data_here(cell: Cell, settings: RunSettings) -> dict[str, str]:
    """The driver's dataset paths where this node shares its disk; else this node's own copy."""
    if all(Path(path).is_file() for path in settings.data_paths.values()):
        return settings.data_paths
    located = datasets.locate(cell.task.dataset_info)
    return {role: str(path) for role, path in located.items()}


def execute(
    cells: list[Cell],
    settings: RunSettings,
    run_dir: RunDir,
    *,
    address: str | None,
    observer: Observer | None = None,
) -> list[dict[str, Any]]:
    """Run every cell as a Ray task; append each result to ``run_dir`` as it comes back."""
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray needs Ray: pip install 'harness[ray]'") from None
    if address is not None:
        _check_reachable(address)
    _connect(ray, address)
    try:
        task = ray.remote(max_retries=0)(run_on_node)
        pending = {
            task.options(
                num_cpus=settings.threads, num_gpus=1 if cell.device == "gpu" else 0
            ).remote(cell, settings, run_dir.run_id): cell
            for cell in cells
        }
        rows = []
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready)
            try:
                payload = ray.get(ready)
            except ray.exceptions.RayError as exc:
                row = lost_row(cell, settings, run_dir.run_id, exc)
            else:
                row = _keep(payload, run_dir)
            run_dir.append_result(row)
            rows.append(row)
            if observer:
                observer.cell_finished(cell, row)
        return rows
    finally:
        ray.shutdown()


def _node_environment() -> dict[str, str]:
    """What a node's workers need to see the same plugins and data as this process."""
    env_vars = {name: os.environ.get(name, "") for name in FORWARDED_ENV}
    env_vars["PYTHONPATH"] = safe_pythonpath(env_vars["PYTHONPATH"])
    for name in ("HARNESS_DATA_DIR", "HARNESS_ENV_DIR"):  # workers run in a folder of their own
        if env_vars[name]:
            env_vars[name] = os.path.abspath(env_vars[name])
    return {name: value for name, value in env_vars.items() if value}


def _connect(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (or start a local one), SIGTERM's handler kept."""
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with tempfile.TemporaryDirectory(prefix="harness-ray-job-") as empty:
            ray.init(
                address=address,
                # uploaded at init (an empty package); the workers' working and import folder
                runtime_env={"working_dir": empty, "env_vars": _node_environment()},
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise HarnessError(
            f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}; "
            "check --ray-address (host:port of the head node)"
        ) from None
    finally:
        # ray.init makes SIGTERM a silent exit; it stays what harness.cli made it
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at ``address``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise HarnessError(
            f"cannot reach the Ray cluster at {address}: {exc}; check --ray-address "
            "(host:port of the head node, as 'ray start --head' printed it)"
        ) from None


def _keep(payload: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    """Write what a node sent back (logs, its environment) into the run folder."""
    for name, text in payload["files"].items():
        target = (run_dir.path / name).resolve()
        if run_dir.path.resolve() in target.parents:  # a node can't write outside the run
            write_new(target, text)
    row = payload["row"]
    hosts = run_dir.path / HOSTS_DIR
    hosts.mkdir(exist_ok=True)
    host_file = hosts / f"{safe_name(row['host'], fallback='unknown')}.json"
    if not host_file.exists():
        write_new(host_file, json.dumps(payload["environment"], indent=2) + "\n")
    return row


def lost_row(cell: Cell, settings: RunSettings, run_id: str, exc: BaseException) -> dict[str, Any]:
    """The row of a cell whose Ray task died with its worker or node."""
    row = new_row(cell, settings, run_id, get_registry().framework(cell.framework).version())
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    row.update(
        status="failed",
        kind="node_lost",
        host=None,
        error=f"lost on the cluster: {type(exc).__name__}: {message}"[:500],
    )
    return row
