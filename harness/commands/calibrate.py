"""``harness calibrate``: each framework's peak matrix-product FLOP/s on this machine."""

from __future__ import annotations

import click
from rich.table import Table

from harness.api.adapter import availability_of
from harness.checks import calibration
from harness.commands.common import (
    device_option,
    framework_option,
    require_gpu_if_asked,
    resolve_threads,
    threads_option,
)
from harness.present.console import console
from harness.registry.plugins import get_registry


@click.command()
@framework_option
@device_option("Where to measure; auto prefers a GPU when the framework sees one.")
@threads_option
@click.option(
    "--size",
    type=click.IntRange(64, 65536),
    default=None,
    help="Matrix size  [default: 2048 on a CPU, 8192 on a GPU]",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 10_000),
    default=5,
    show_default=True,
    help="Matrix products per timed round (the best of 3 rounds counts).",
)
def calibrate(frameworks, device, threads, size, repeats) -> None:
    """Measure each framework's peak float32 matrix-product FLOP/s here, and cache it.

    Every available framework unless --framework names some.

    `harness run` divides each cell's achieved FLOP/s by this peak (same framework, version,
    device and thread count) to report its model-FLOP utilisation.
    """
    registry = get_registry()
    names = list(dict.fromkeys(frameworks)) or sorted(
        name
        for name, entry in registry.frameworks.items()
        if availability_of(entry.adapter).available
    )
    for name in names:
        registry.framework(name)
    require_gpu_if_asked(device)
    threads = resolve_threads(threads)
    table = Table(title=f"float32 matrix products, {threads} thread(s)")
    for column in ("framework", "version", "device", "GFLOP/s", "note"):
        table.add_column(column)
    entries: dict = {}
    for name in names:
        adapter = registry.framework(name)
        with console.status(f"calibrating {name}"):
            outcome = calibration.measure(
                name, device=device, threads=threads, size=size, repeats=repeats
            )
        if outcome["status"] != "ok":
            table.add_row(name, adapter.version() or "", device, "", outcome["error"] or "")
            continue
        entries.update(
            calibration.record(
                name,
                adapter.version(),
                outcome["device"],
                threads,
                outcome["flops_per_second"],
                outcome["size"],
            )
        )
        table.add_row(
            name,
            adapter.version() or "",
            outcome["device_name"],
            f"{outcome['flops_per_second'] / 1e9:,.1f}",
            f"{outcome['size']}² matrices",
        )
    console.print(table)
    if entries:
        console.print(f"cached in {calibration.save(entries)}", highlight=False)
    if len(entries) < len(names):
        raise SystemExit(1)
