"""``harness plugin new``: start a framework plugin of your own."""

from __future__ import annotations

from pathlib import Path

import click

from harness.present.console import console
from harness.scaffold import new_plugin


@click.group("plugin")
def plugin_group() -> None:
    """Write framework plugins: see docs/writing-a-plugin.md."""


@plugin_group.command("new")
@click.argument("name")
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
def new_command(name: str, parent: Path, distribution: str | None, import_name: str | None) -> None:
    """Write a ready-to-install plugin distribution for framework NAME.

    It holds a pyproject.toml that registers the plugin through the `harness` entry point,
    the adapter module with every method to fill in, a README, and a test file that runs
    the conformance kit (harness.testing) against it.
    """
    folder = new_plugin(name, parent, distribution=distribution, import_name=import_name)
    console.print(f"wrote {folder}")
    steps = (
        "next:\n"
        f"  cd {folder}\n"
        "  pip install -e '.[test]'     # harness list now shows it\n"
        f"  $EDITOR harness_{name}/adapter.py\n"
        "  pytest                       # the conformance kit tells you what is left"
    )
    console.print(steps)
