"""``harness list``: the tasks, the datasets, and the frameworks with their version and
availability."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from harness.api.adapter import API_CHANGES, availability_of
from harness.present.console import console, styled
from harness.registry.catalog import catalog_summaries
from harness.registry.plugins import get_registry


@click.command("list")
@click.option(
    "--json", "as_json", is_flag=True, help="Print tasks, datasets and frameworks as JSON."
)
def list_command(as_json: bool) -> None:
    """List the tasks, the datasets, and the frameworks with their version and availability."""
    found = {**catalog_summaries(), **framework_summaries()}
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    print_tasks(found["tasks"])
    print_datasets(found["datasets"])
    print_frameworks(found["frameworks"], found["broken_plugins"])


def print_tasks(summaries: list[dict[str, Any]]) -> None:
    tasks = Table(title="tasks")
    for column in ("name", "dataset", "model", "epochs", "target"):
        tasks.add_column(column)
    for task in summaries:
        if task["problem"]:
            tasks.add_row(task["name"], "", styled((f"invalid: {task['problem']}", "red")), "", "")
        else:
            layers = " → ".join(task["layers"])
            tasks.add_row(
                task["name"], task["dataset"], layers, str(task["epochs"]), task["target"]
            )
    console.print(tasks)


def print_datasets(summaries: list[dict[str, Any]]) -> None:
    datasets = Table(title="datasets")
    for column in ("name", "kind", "input", "classes", "provider", "tasks"):
        datasets.add_column(column)
    for dataset in summaries:
        datasets.add_row(
            dataset["name"],
            dataset["kind"],
            "×".join(map(str, dataset["input_shape"])),
            str(dataset["num_classes"]) if dataset["num_classes"] else "(regression)",
            dataset["provider"],
            ", ".join(dataset["tasks"]),
        )
    console.print(datasets)


def print_frameworks(summaries: list[dict[str, Any]], broken: list[dict[str, Any]]) -> None:
    frameworks = Table(title="frameworks")
    for column in ("name", "version", "available", "source", "note"):
        frameworks.add_column(column)
    for framework in summaries:
        available = framework["available"]
        frameworks.add_row(
            framework["name"],
            framework["version"] or "",
            styled(("yes", "green")) if available else styled(("no", "yellow")),
            framework["source"],
            framework["reason"],
        )
    for failure in broken:
        frameworks.add_row(
            failure["plugin"],
            "",
            styled(("broken", "red")),
            failure["source"],
            f"plugin failed to load: {failure['reason']}",
        )
    console.print(frameworks)


def framework_summaries() -> dict[str, list[dict[str, Any]]]:
    """Each registered framework with its version and availability; plugins that failed to load."""
    registry = get_registry()
    frameworks = []
    for name, entry in sorted(registry.frameworks.items()):
        availability = availability_of(entry.adapter)
        api_version = getattr(entry.adapter, "api_version", 0)
        reason = availability.reason
        version = entry.adapter.version()
        if availability.available and version is None:
            reason = (
                f"no installed distribution {entry.adapter.distribution!r}: results would "
                "record no version; set the adapter's `distribution`"
            )
        elif availability.available and api_version < 1:
            reason = f"plugin API {api_version}, deprecated: see {API_CHANGES}"
        frameworks.append(
            {
                "name": name,
                "version": version,
                "available": availability.available,
                "reason": reason,
                "source": entry.source,
                "api_version": api_version,
            }
        )
    broken = [
        {"plugin": failure.plugin, "source": failure.source, "reason": failure.reason}
        for failure in registry.failures
    ]
    return {"frameworks": frameworks, "broken_plugins": broken}
