"""Bookkeeping of one cell's training: epoch times, losses, time-to-target, step times."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from harness.stats import percentiles
from harness.workload.tasks import Target


@dataclass
class TrainingLog:
    """What the runner records epoch by epoch while a cell trains.

    :param target: the task's target; its threshold, applied to the validation figure
        (accuracy or mean squared error), counts as "reached" for time-to-target.
    """

    target: Target
    epoch_seconds: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    #: validation accuracy (or mean squared error) after each epoch
    validation_scores: list[float | None] = field(default_factory=list)
    validation_seconds: list[float] = field(default_factory=list)
    #: how many step-time samples the first epoch produced (they include compilation)
    first_epoch_steps: int = 0

    def add_epoch(
        self, seconds: float, loss: float, score: float | None, eval_seconds: float
    ) -> None:
        self.epoch_seconds.append(seconds)
        self.train_losses.append(loss)
        self.validation_scores.append(score)
        self.validation_seconds.append(eval_seconds)

    def time_to_target(self) -> tuple[float | None, int | None]:
        """Training seconds (evaluation excluded) and epoch at which the validation figure first
        reached the target; ``(None, None)`` if it never did."""
        elapsed = 0.0
        for epoch, (seconds, score) in enumerate(
            zip(self.epoch_seconds, self.validation_scores, strict=True), start=1
        ):
            elapsed += seconds
            if self.target.met(score):
                return elapsed, epoch
        return None, None

    def metrics(self, train_samples: int, step_samples: list[float]) -> dict[str, Any]:
        fit = sum(self.epoch_seconds)
        steady = self.epoch_seconds[1:]
        # step percentiles describe the steady state: leave out the first epoch's samples
        # (compilation) whenever later epochs gave some
        steady_steps = step_samples[self.first_epoch_steps :] or step_samples
        seconds_to_target, epoch_to_target = self.time_to_target()
        return {
            "train_loss": self.train_losses[-1],
            "train_losses": self.train_losses,
            "fit_seconds": fit,
            "epoch_seconds": self.epoch_seconds,
            "first_epoch_seconds": self.epoch_seconds[0],
            "steady_epoch_seconds": statistics.median(steady) if steady else None,
            # how much longer the first epoch took than a steady one: tracing, compilation
            "first_epoch_extra_seconds": (
                self.epoch_seconds[0] - statistics.median(steady) if steady else None
            ),
            "samples_per_second": train_samples * len(self.epoch_seconds) / fit
            if fit > 0
            else None,
            "steady_samples_per_second": train_samples / statistics.median(steady)
            if steady
            else None,
            "validation_metric": self.target.validation_metric,
            "validation_scores": self.validation_scores,
            "validation_seconds": self.validation_seconds,
            "time_to_target_seconds": seconds_to_target,
            "target_reached_epoch": epoch_to_target,
            "step_seconds_sampled": step_samples,
            **{f"step_seconds_{name}": value for name, value in percentiles(steady_steps).items()},
        }
