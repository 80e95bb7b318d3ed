"""``harness list``: the tasks, and the frameworks with their version and availability."""

from __future__ import annotations

import click
from rich.table import Table

from harness.console import console, styled
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.tasks import builtin_task_files, load_task


@click.command("list")
def list_command() -> None:
    """List the tasks, and the frameworks with their version and availability."""
    tasks = Table(title="tasks")
    for column in ("name", "dataset", "model", "epochs", "target"):
        tasks.add_column(column)
    for name, path in sorted(builtin_task_files().items()):
        try:
            task = load_task(str(path))
        except HarnessError as exc:
            tasks.add_row(name, "", styled((f"invalid: {exc}", "red")), "", "")
            continue
        layers = " → ".join(
            f"{layer.kind}({getattr(layer, 'units', '')})".replace("()", "")
            for layer in task.model.layers
        )
        tasks.add_row(
            name,
            task.dataset.name,
            layers,
            str(task.training.epochs),
            task.target.describe(),
        )
    console.print(tasks)

    registry = get_registry()
    frameworks = Table(title="frameworks")
    for column in ("name", "version", "available", "source", "note"):
        frameworks.add_column(column)
    for name, entry in sorted(registry.frameworks.items()):
        availability = entry.adapter.availability()
        frameworks.add_row(
            name,
            entry.adapter.version() or "",
            styled(("yes", "green")) if availability.available else styled(("no", "yellow")),
            entry.source,
            availability.reason,
        )
    for failure in registry.failures:
        frameworks.add_row(
            failure.plugin,
            "",
            styled(("broken", "red")),
            failure.source,
            f"plugin failed to load: {failure.reason}",
        )
    console.print(frameworks)
