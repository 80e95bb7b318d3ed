"""The ``harness`` command line: the group, its subcommands, and one-line errors."""

from __future__ import annotations

import logging

import click

import harness
from harness.commands.agreement import check_agreement
from harness.commands.calibrate import calibrate
from harness.commands.common import EXIT_CODES
from harness.commands.listing import list_command
from harness.commands.plugin import plugin_group
from harness.commands.reports import compare_command, report_command, runs_command
from harness.commands.run import run
from harness.console import errors, print_error
from harness.errors import HarnessError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(harness.__version__, prog_name="harness")
@click.option("-v", "--verbose", is_flag=True, help="Log what the harness does (debug level).")
def cli(verbose: bool) -> None:
    """Compare deep-learning frameworks on the same training work.

    Each task (dataset, model, optimizer, epochs, quality target) is trained by every framework
    asked for, each in its own process, from the same data, initial weights and batch order,
    with the same thread count. Results land in results/<run-id>/.

    \b
    Example:
      harness run --task mnist_mlp --all-frameworks
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


for command in (
    run,
    check_agreement,
    calibrate,
    list_command,
    report_command,
    runs_command,
    compare_command,
    plugin_group,
):
    cli.add_command(command)


def main() -> None:
    """Entry point: turns a :class:`HarnessError` into one line and its exit code."""
    try:
        exit_code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        errors.print("aborted")
        raise SystemExit(130) from None
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "harness"
        print_error(f"{exc.format_message()} (see '{command} --help')")
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except HarnessError as exc:
        print_error(str(exc))
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        errors.print("interrupted")
        raise SystemExit(130) from None
    # in non-standalone mode click returns the exit code of --help/--version, else None
    raise SystemExit(exit_code if isinstance(exit_code, int) else 0)
