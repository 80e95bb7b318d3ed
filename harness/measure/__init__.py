"""What a cell's measurement is made of: its training log, the noise around it, energy, memory,
the environment it ran in, and the doctor that says whether the machine will disturb it."""

from typing import Any

from harness._moved import moved_attribute


def __getattr__(name: str) -> Any:
    if name == "TrainingLog":  # harness 0.2's module harness.measure held it
        return moved_attribute(__name__, name, "harness.measure.training_log")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
