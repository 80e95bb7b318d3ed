"""``harness doctor``: what on this machine will disturb measurements, with advice."""

from __future__ import annotations

import json

import click
from rich.table import Table

from harness.commands.common import FiniteRange
from harness.present.console import console, styled

VERDICT_STYLES = {"ok": "green", "warn": "yellow", "info": "", "unknown": "dim"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--sample",
    type=FiniteRange(0.1, 10),
    default=0.5,
    show_default=True,
    help="Seconds to watch the CPU use of other processes and the hypervisor's steal.",
)
def doctor_command(as_json: bool, sample: float) -> None:
    """Check what on this machine will disturb measurements, with advice.

    Load and the top CPU users, steal time, the CPU governor, turbo boost, SMT, a cgroup CPU
    quota, free memory and swap, the thread settings the frameworks will see, and GPU clocks
    and persistence mode where NVML can read them. Changes nothing. Exit code 0, whatever it
    finds; with --json, "warnings" counts the findings that need attention.
    """
    from harness.measure.doctor import diagnose

    findings = diagnose(sample)
    warnings = [finding for finding in findings if finding.verdict == "warn"]
    if as_json:
        payload = {"findings": [f.as_dict() for f in findings], "warnings": len(warnings)}
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    table = Table(title="what will disturb a measurement here", box=None, pad_edge=False)
    for column in ("check", "verdict", "value"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        verdict = styled((finding.verdict, VERDICT_STYLES[finding.verdict]))
        table.add_row(finding.check, verdict, finding.value)
        if finding.advice:
            table.add_row("", "", styled((f"→ {finding.advice}", "dim")))
    console.print(table)
    if warnings:
        console.print(f"{len(warnings)} warning(s): " + ", ".join(w.check for w in warnings))
    else:
        console.print("nothing here should disturb a measurement")
