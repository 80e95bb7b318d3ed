"""The ``harness`` command line: the group, its subcommands, and one-line errors."""

from __future__ import annotations

import importlib
from typing import NoReturn

import click

from harness import signals
from harness.commands.common import EXIT_CODES
from harness.errors import HarnessError

#: every subcommand: where it lives and its one-line help. A command's module, and the heavy
#: libraries it needs (pandas, scipy, matplotlib, the runner), are imported only when that
#: command runs, so ``harness --help`` answers at once. A test keeps the help here equal to
#: the first line of each command's own docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "harness.commands.run:run",
        "Train a task with one or more frameworks and record accuracy, time and memory.",
    ),
    "show": (
        "harness.commands.show:show_command",
        "Print a finished run's tables; writes nothing.",
    ),
    "runs": (
        "harness.commands.reports:runs_command",
        "List the runs in the results folder, oldest first.",
    ),
    "report": (
        "harness.commands.reports:report_command",
        "Write report.md and report.html into RUN_DIR (default: the latest run).",
    ),
    "compare": (
        "harness.commands.reports:compare_command",
        "Compare RUN_B with RUN_A, cell by cell: ratio B/A of the medians and a verdict per metric.",
    ),
    "history": (
        "harness.commands.history:history_command",
        "Show each cell's time per epoch over every run and version, with its change points.",
    ),
    "check-agreement": (
        "harness.commands.agreement:check_agreement",
        "Train the first steps of a task in every framework and compare them, pair by pair.",
    ),
    "calibrate": (
        "harness.commands.calibrate:calibrate",
        "Measure each framework's peak float32 matrix-product FLOP/s here, and cache it.",
    ),
    "list": (
        "harness.commands.listing:list_command",
        "List the tasks, the datasets, and the frameworks with their version and availability.",
    ),
    "doctor": (
        "harness.commands.doctor:doctor_command",
        "Check what on this machine will disturb measurements, with advice.",
    ),
    "plugin": (
        "harness.commands.plugin:plugin_group",
        "Write plugins (frameworks, datasets, tasks): see docs/writing-a-plugin.md.",
    ),
}


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived while a command ran (the interrupt is ``.interrupt``)."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(signals.message(interrupt))
        self.interrupt = interrupt


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when the subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        # click answers an interrupt by printing an empty line and raising Abort; passed on as
        # Stopped instead, it reaches main() as it came, and ends in one line
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Stopped(exc) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help) for name, (_, help) in COMMANDS.items()])


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(package_name="harness", prog_name="harness")
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
    import logging  # here, not at the top: `harness --help` and `harness list` stay quick

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


def main() -> None:
    """Entry point: turns a :class:`HarnessError` into one line and its exit code.

    SIGTERM is raised as :class:`harness.signals.Terminated`, a ``KeyboardInterrupt``, so a
    run stopped by ``kill`` cleans up and says so as after Ctrl-C (exit 143 instead of 130).
    """
    signals.raise_on_sigterm()
    try:
        exit_code = cli.main(standalone_mode=False)
    except Stopped as exc:
        stop(signals.message(exc.interrupt), signals.exit_code(exc.interrupt))
    except click.exceptions.Abort as exc:
        # an interrupt while click itself was busy (parsing, a prompt)
        if isinstance(exc.__cause__, signals.Terminated):
            stop(signals.message(exc.__cause__), signals.exit_code(exc.__cause__))
        stop("aborted", 130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "harness"
        stop(f"{exc.format_message()} (see '{command} --help')", exc.exit_code, as_error=True)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except HarnessError as exc:
        stop(str(exc), exc.exit_code, as_error=True)
    except KeyboardInterrupt as exc:
        stop(signals.message(exc), signals.exit_code(exc))
    # in non-standalone mode click returns the exit code of --help/--version, else None
    raise SystemExit(exit_code if isinstance(exit_code, int) else 0)


def stop(message: str, exit_code: int, *, as_error: bool = False) -> NoReturn:
    """Say ``message`` on stderr (as ``error: ...`` if ``as_error``) and exit with ``exit_code``."""
    # rich is imported only when there is something to say: `harness --help` needs click alone
    from harness.present.console import errors, print_error

    if as_error:
        print_error(message)
    else:
        errors.print(message)
    raise SystemExit(exit_code) from None
