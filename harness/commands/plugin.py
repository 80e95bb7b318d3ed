"""``harness plugin new``: start a plugin of your own (a framework, a dataset or a task)."""

from __future__ import annotations

from pathlib import Path

import click

from harness.present.console import console
from harness.scaffold import KINDS, new_plugin


@click.group("plugin")
def plugin_group() -> None:
    """Write plugins (frameworks, datasets, tasks): see docs/writing-a-plugin.md."""


@plugin_group.command("new")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="framework",
    show_default=True,
    help="framework: an adapter; dataset: a dataset and a task on it; task: a task file.",
)
@click.option(
    "--dir",
    "parent",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Folder to create the plugin's distribution folder (harness-NAME) in.",
)
@click.option(
    "--distribution",
    metavar="DIST",
    help="The framework's own distribution, as pip installs it (e.g. paddlepaddle). "
    "[default: NAME]",
)
@click.option(
    "--import-name",
    metavar="MODULE",
    help="The module that is there when the framework is installed (e.g. paddle). [default: NAME]",
)
def new_command(
    name: str, kind: str, parent: Path, distribution: str | None, import_name: str | None
) -> None:
    """Write a ready-to-install plugin distribution named NAME.

    It holds a pyproject.toml that registers the plugin through the `harness` entry point,
    the module to fill in (a framework's adapter, a dataset's generator and a task on it, or
    a task file), a README, and a test file that runs the conformance kit of its kind
    (harness.testing) against it.
    """
    if kind != "framework" and (distribution or import_name):
        raise click.UsageError("--distribution and --import-name are for --kind framework")
    folder = new_plugin(name, parent, kind=kind, distribution=distribution, import_name=import_name)
    console.print(f"wrote {folder}")
    to_edit = {
        "framework": f"harness_{name}/adapter.py",
        "dataset": f"harness_{name}/data.py",
        "task": f"harness_{name}/{name}.toml",
    }[kind]
    steps = (
        "next:\n"
        f"  cd {folder}\n"
        "  pip install -e '.[test]'     # harness list now shows it\n"
        f"  $EDITOR {to_edit}\n"
        "  pytest                       # the conformance kit tells you what is left"
    )
    console.print(steps, highlight=False)
