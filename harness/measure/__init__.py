"""What a cell's measurement is made of: its training log, the noise around it, energy, memory,
the environment it ran in, and the doctor that says whether the machine will disturb it."""

from typing import Any


def __getattr__(name: str) -> Any:
    # harness 0.2 had a module harness.measure holding TrainingLog
    if name == "TrainingLog":
        import warnings

        from harness.measure.training_log import TrainingLog

        warnings.warn(
            "harness.measure.TrainingLog moved to harness.measure.training_log",
            DeprecationWarning,
            stacklevel=2,
        )
        return TrainingLog
    raise AttributeError(f"module 'harness.measure' has no attribute {name!r}")
