"""Where the built-in task files are, and whether a ``--task`` value is a path or a name.

Imports only the standard library: the plugin registry and the catalog both use it.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def builtin_task_files() -> dict[str, Path]:
    """The task files that ship with harness, by task name (the file's stem)."""
    folder = files("harness_tasks")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def is_task_path(name_or_path: str) -> bool:
    """A path has a ``/`` (or the platform's separator) or ends in ``.toml``; anything else is
    a task name, whatever files happen to lie in the current folder."""
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    return name_or_path.endswith(".toml") or any(sep in name_or_path for sep in separators)
