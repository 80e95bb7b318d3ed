"""Running a cell's work in this process: the ``inline`` executor, for debugging a plugin.

``harness run --executor inline`` trains each cell in the harness's own process, so a
breakpoint in a plugin stops there (``python -m pdb -m harness run --executor inline …``) and
a traceback points into the plugin. It gives up what the isolating runner guarantees: no
timeout or memory limit is enforced, cells share one process (and its imports, threads and
memory), and ``peak_rss_bytes`` is that process's. Use it to find a bug, never to measure.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.measure.noise import unmeasured
from harness.paths import open_no_follow
from harness.runner.child_spec import ChildSpec
from harness.runner.process import ChildOutcome, EventHandler, Limits
from harness.workload.precision import PRECISION_ENVIRONMENT


class _Collect:
    """Receives the worker's events as the child's pipe would carry them (JSON and back)."""

    def __init__(self, on_event: EventHandler | None) -> None:
        self.events: list[dict[str, Any]] = []
        self._on_event = on_event

    def send(self, event: str, **fields: Any) -> None:
        record = json.loads(json.dumps({"event": event, **fields}))
        self.events.append(record)
        if self._on_event is not None:
            self._on_event(record)


def run_inline(
    spec: ChildSpec,
    *,
    threads: int,
    limits: Limits,
    log_path: Path,
    on_event: EventHandler | None = None,
    gpu: bool = False,
    python: str | None = None,
) -> ChildOutcome:
    """Carry out ``spec`` in this process and return what a child would have reported.

    Same signature as :func:`harness.runner.process.run_child`; ``limits`` are not enforced,
    and there is no other environment to run in (``harness run`` refuses ``--with`` here).
    """
    if python is not None:
        raise HarnessError("--executor inline runs cells in this process: it can't use --with")
    from harness.runner.worker import entry_for, report_exception  # the worker's code

    # as a child gets them (a framework this process already imported has read its own)
    os.environ.update(PRECISION_ENVIRONMENT)
    collect = _Collect(on_event)
    start = time.perf_counter()
    descriptor = open_no_follow(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with (
        os.fdopen(descriptor, "w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            entry_for(spec)(spec, collect)
        except Exception as exc:
            report_exception(exc, collect, log)
    events = collect.events
    result = next((e for e in events if e.get("event") == "result"), None)
    error = next((e for e in events if e.get("event") == "error"), None)
    wall = time.perf_counter() - start
    noise = unmeasured("inline executor: the cell shared the runner's process").as_dict()
    return ChildOutcome(result, error, 0, False, wall, events, noise=noise)
