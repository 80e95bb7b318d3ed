"""What the runner hands a child process: one typed spec, whichever entry the child runs.

The spec crosses the process boundary as one JSON object on the child's standard input; both
sides build and read it through :class:`ChildSpec`, so a field can't be misspelt on one side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

#: the entry a cell runs unless its spec names another
TRAIN = "harness.runner.worker:run_cell"


@dataclass(frozen=True)
class ChildSpec:
    """One child's work: which code (``entry``), which framework where, and on what."""

    framework: str
    threads: int
    #: ``module:function`` of harness that the child calls with this spec and its event channel
    entry: str = TRAIN
    device: str = "cpu"
    mode: str = "eager"
    #: ``float32``, ``bfloat16`` or ``mixed`` (harness.workload.precision)
    precision: str = "float32"
    #: pin the child to ``threads`` cores (off where cells share a node they don't own)
    pin_cores: bool = True
    #: the task as ``Task.model_dump(mode="json")``; ``None`` for work that trains nothing
    task: dict[str, Any] | None = None
    #: each dataset file by role (absolute paths: the child works in a folder of its own)
    data_paths: dict[str, str] = field(default_factory=dict)
    #: train on only the first N training samples (smoke runs)
    train_subset: int | None = None
    #: what the entry alone reads (the agreement check's steps and weights file, calibration's
    #: matrix size); each entry documents its own
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ChildSpec:
        """The spec a runner wrote; a field this harness doesn't know is an error, not ignored."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a child spec is a JSON object, not {type(data).__name__}")
        return cls(**data)

    def with_absolute_paths(self) -> ChildSpec:
        paths = {role: str(Path(path).resolve()) for role, path in self.data_paths.items()}
        return replace(self, data_paths=paths)
