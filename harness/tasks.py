"""Tasks: framework-neutral definitions of a training job, read from TOML files.

A task names no framework. It says which dataset and preprocessing, which model (a small layer
vocabulary), which loss and optimizer with which hyperparameters, the batch size, the epochs,
the seed and the quality target. Built-in tasks live in the top-level ``tasks/`` folder
(installed as the ``harness_tasks`` package); ``--task`` also accepts a path to a file.
"""

from __future__ import annotations

import math
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.data.datasets import DATASETS
from harness.errors import HarnessError, unknown_name_message

Activation = Literal["linear", "relu", "softmax"]


class TaskError(HarnessError):
    """A task file is missing, malformed, or describes something impossible."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- model ------------------------------------------------------------------


class Flatten(_Spec):
    kind: Literal["flatten"]


class Dense(_Spec):
    kind: Literal["dense"]
    units: int = Field(gt=0, le=1_000_000)
    activation: Activation = "linear"
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"
    bias_initializer: Literal["zeros"] = "zeros"


Layer = Annotated[Flatten | Dense, Field(discriminator="kind")]


class ModelSpec(_Spec):
    input_shape: tuple[Annotated[int, Field(gt=0)], ...]
    layers: list[Layer] = Field(min_length=1)

    def output_shapes(self) -> list[tuple[int, ...]]:
        """The output shape of each layer (without the batch axis); raises on a misfit."""
        shape: tuple[int, ...] = self.input_shape
        shapes: list[tuple[int, ...]] = []
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Flatten):
                shape = (math.prod(shape),)
            elif len(shape) != 1:
                raise ValueError(
                    f"layers[{index}] ({layer.kind}) needs a flat input but gets shape "
                    f"{shape}; put a flatten layer before it"
                )
            else:
                shape = (layer.units,)
            shapes.append(shape)
        return shapes


# -- training ---------------------------------------------------------------


class Adam(_Spec):
    name: Literal["adam"]
    learning_rate: float = Field(default=0.001, gt=0, le=10)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0, le=1)


class Training(_Spec):
    loss: Literal["sparse_categorical_crossentropy"]
    optimizer: Adam
    batch_size: int = Field(gt=0, le=1_000_000)
    epochs: int = Field(gt=0, le=10_000)
    eval_batch_size: int = Field(default=1000, gt=0, le=1_000_000)
    #: training samples held out (the last ones) to measure accuracy after every epoch
    validation_samples: int = Field(default=0, ge=0, le=1_000_000)


# -- data and target ----------------------------------------------------------


class DatasetSpec(_Spec):
    name: str

    @model_validator(mode="after")
    def _known(self) -> DatasetSpec:
        if self.name not in DATASETS:
            raise ValueError(unknown_name_message("dataset", self.name, DATASETS))
        return self


class Preprocessing(_Spec):
    #: Inputs are divided by this (255 scales 8-bit pixels to [0, 1]).
    divide_by: float = Field(default=1.0, gt=0)


class Target(_Spec):
    metric: Literal["test_accuracy"] = "test_accuracy"
    min: float = Field(ge=0, le=1)
    #: the target when the task runs on another dataset (``--dataset``), by dataset name
    by_dataset: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}


class Task(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    description: str = ""
    source: str = ""
    seed: int = Field(ge=0, lt=2**32)
    dataset: DatasetSpec
    preprocessing: Preprocessing = Preprocessing()
    model: ModelSpec
    training: Training
    target: Target

    @model_validator(mode="after")
    def _shapes_fit(self) -> Task:
        dataset = DATASETS[self.dataset.name]
        if tuple(self.model.input_shape) != dataset.input_shape:
            raise ValueError(
                f"model.input_shape {tuple(self.model.input_shape)} does not match dataset "
                f"{dataset.name!r}, whose inputs have shape {dataset.input_shape}"
            )
        try:
            output = self.model.output_shapes()[-1]
        except ValueError as exc:
            raise ValueError(f"model.{exc}") from None
        if output != (dataset.num_classes,):
            raise ValueError(
                f"the last layer outputs shape {output}, but dataset {dataset.name!r} has "
                f"{dataset.num_classes} classes"
            )
        return self

    def with_epochs(self, epochs: int) -> Task:
        """This task with another epoch count (``--epochs``), validated."""
        data = self.model_dump()
        data["training"]["epochs"] = epochs
        return _validate(data, origin=f"task {self.name!r} with --epochs {epochs}")

    def with_dataset(self, name: str) -> Task:
        """This task on another dataset of the same shape (``--dataset``), with that dataset's
        target from ``target.by_dataset`` when the task gives one."""
        data = self.model_dump()
        data["dataset"]["name"] = name
        data["target"]["min"] = self.target.by_dataset.get(name, self.target.min)
        return _validate(data, origin=f"task {self.name!r} with --dataset {name}")


# -- loading ----------------------------------------------------------------


def builtin_task_files() -> dict[str, Path]:
    """The task files that ship with harness, by task name (the file's stem)."""
    folder = files("harness_tasks")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def load_task(name_or_path: str) -> Task:
    """Load a built-in task by name, or a task file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_task_file(path)
    builtin = builtin_task_files()
    if name_or_path not in builtin:
        raise TaskError(
            unknown_name_message("task", name_or_path, builtin)
            + "; or give the path of a .toml task file"
        )
    return load_task_file(builtin[name_or_path])


def load_task_file(path: Path) -> Task:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: task file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read task file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{path}: not valid TOML: {exc}") from None
    return _validate(data, origin=str(path))


def _validate(data: dict, origin: str) -> Task:
    try:
        return Task.model_validate(data)
    except ValidationError as exc:
        raise TaskError(f"{origin}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    """One line for the first problem pydantic found (and how many more there are)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif first["type"] == "union_tag_invalid":
        message = f"unknown layer kind {first['input'].get('kind')!r} (known: dense, flatten)"
    line = f"{where}: {message}" if where else message
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def _is_union_tag(part: object) -> bool:
    return part in ("flatten", "dense")
