"""The shape of what a run folder holds: one result row (``results.jsonl``) and ``run.json``.

Every reader of a run folder (``harness runs``, ``report``, ``compare``, ``--resume`` and the
pandas API) validates what it reads against these models, so a damaged or foreign file is one
line naming the file, the line and the field, never a traceback deep inside a report. The
models accept what earlier versions of harness wrote (fields added since have defaults) and
keep keys they don't know, so a newer writer's extra fields survive a round trip.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.workload.precision import Precision
from harness.workload.tasks import Target

#: the version written into every row (``schema``) and ``run.json``; readers accept this one
#: and every earlier one
SCHEMA_VERSION = 1
#: most repeats of a cell one run may ask for (``--repeats``, run.json)
MAX_REPEATS = 1000

#: a measured figure: finite (``allow_inf_nan=False`` below refuses NaN and infinities) and of
#: a size some measurement could have (no second, byte or FLOP count past 10**18), so that the
#: readers' arithmetic (ratios, logarithms, sums) can't overflow on a damaged row
FiniteFloat = Annotated[float, Field(ge=-1e18, le=1e18)]
#: a count (samples, epochs, bytes): as bounded
Count = Annotated[int, Field(ge=0, le=10**18)]


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=False)


class Metrics(_Record):
    """The figures the readers compute with; a plugin's or a newer harness's extras pass through."""

    epoch_seconds: list[FiniteFloat] = []
    validation_scores: list[FiniteFloat | None] | None = None
    validation_accuracies: list[FiniteFloat | None] | None = None  # the name before 0.1
    fit_seconds: FiniteFloat | None = None
    first_epoch_seconds: FiniteFloat | None = None
    steady_epoch_seconds: FiniteFloat | None = None
    samples_per_second: FiniteFloat | None = None
    time_to_target_seconds: FiniteFloat | None = None
    step_seconds_p50: FiniteFloat | None = None
    step_seconds_p90: FiniteFloat | None = None
    step_seconds_p99: FiniteFloat | None = None
    test_accuracy: FiniteFloat | None = None
    test_mse: FiniteFloat | None = None
    test_bits_per_char: FiniteFloat | None = None
    test_loss: FiniteFloat | None = None
    peak_rss_bytes: FiniteFloat | None = None
    steady_samples_per_second: FiniteFloat | None = None
    train_samples: Count | None = None
    epochs: Count | None = None
    batch_size: Count | None = None
    achieved_flops_per_second: FiniteFloat | None = None
    utilisation: FiniteFloat | None = None
    energy_joules: FiniteFloat | None = None
    joules_per_sample: FiniteFloat | None = None


class Noise(_Record):
    """What other work did to the machine while the cell trained (:mod:`harness.measure.noise`)."""

    verdict: Literal["quiet", "busy", "unmeasured"]
    reason: str = ""
    window_seconds: FiniteFloat | None = None
    samples: int = Field(0, ge=0)
    other_cores_mean: FiniteFloat | None = None
    busy_share: FiniteFloat | None = None
    other_cores_when_busy: FiniteFloat | None = None
    steal_share: FiniteFloat | None = None
    load_average: list[FiniteFloat] | None = None
    cpu_mhz: list[FiniteFloat] | None = None
    cores: int | None = None
    runner_cores: FiniteFloat | None = None


class Energy(_Record):
    """Joules over the fit from a hardware counter, or why there are none (:mod:`harness.measure.energy`)."""

    joules: FiniteFloat | None = None
    source: Literal["nvml", "rapl"] | None = None
    reason: str | None = None


class DatasetRecord(_Record):
    """Which data a cell trained on: the dataset's name and who provides it."""

    name: str
    #: ``harness`` for a built-in dataset; a plugin's name and distribution otherwise
    provider: str
    #: SHA-256 identifying what the cell loaded (its files' verified sums combined, or a
    #: generated dataset's arrays); absent when the cell stopped before loading
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class EnvironmentRecord(_Record):
    """The environment a cell ran in: harness's own, or one built for ``--with`` pins."""

    #: the ``--with`` requirements joined (``jax==0.9.2``); ``""`` for harness's own
    name: str = ""
    requirements: list[str] = []
    #: every package the cell could import, ``{name: version}`` (the first of a name on its
    #: path), and the SHA-256 of those sorted ``name==version`` lines; absent where the cell
    #: never set up, and in rows from before they were recorded
    packages: dict[str, str] | None = None
    lock_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    #: seconds until the environment was ready: its build, or finding it built
    seconds_to_ready: FiniteFloat | None = None


class ResultRow(_Record):
    """One cell's line in ``results.jsonl``."""

    schema_: int = Field(SCHEMA_VERSION, alias="schema", ge=1)
    cell_id: str
    task: str
    #: a sweep's values for this cell's task, by key (``{"training.batch_size": 256}``);
    #: ``None`` outside a sweep and in rows written before sweeps existed
    variant: dict[str, Any] | None = None
    framework: str
    #: absent in rows from before ``--with`` (they ran in harness's own environment)
    environment: EnvironmentRecord | None = None
    status: Status
    kind: str | None = None
    error: str | None = None
    framework_version: str | None = None
    mode: str = "eager"
    #: the numeric precision the cell trained in (harness.workload.precision); rows from before
    #: precisions existed trained in float32 with each framework's default TF32 setting
    precision: Precision = "float32"
    #: what the framework reported its products computed in (``{"reported": False}`` from an
    #: adapter older than plugin API 4); absent where the cell never set up or from older rows
    precision_manifest: dict[str, Any] | None = None
    device: str
    device_name: str | None = None
    host: str | None = None
    repeat: int = Field(0, ge=0)
    met_target: bool | None = None
    agreement: str | None = None
    #: absent in rows of harness 0.2 and earlier
    dataset: DatasetRecord | None = None
    #: absent in rows from before it was measured, and in cells that never trained
    noise: Noise | None = None
    energy: Energy | None = None
    metrics: Metrics = Metrics()
    settings: dict[str, Any] = {}


class TaskRecord(_Record):
    """The resolved task as ``run.json`` recorded it (fully validated again on ``--resume``)."""

    name: str
    #: checked as a target (the reports judge every row against it); ``None`` in some test runs
    target: Target | None = None


class RunConfig(_Record):
    """``run.json``: what a run was asked to do, so that ``--resume`` can finish it."""

    schema_: int = Field(alias="schema", ge=1)
    run_id: str | None = None
    task: TaskRecord
    frameworks: list[str] = Field(min_length=1)
    device: Literal["cpu", "gpu", "auto"]
    modes: list[Literal["eager", "compiled"]] = Field(["eager"], min_length=1)
    precisions: list[Precision] = Field(["float32"], min_length=1)
    #: the same bound as ``--repeats``: a damaged record can't make planning exhaust memory
    repeats: int = Field(ge=1, le=MAX_REPEATS)
    threads: int = Field(ge=1)
    timeout: FiniteFloat = Field(gt=0)
    memory_limit: int | None = Field(None, ge=1)
    train_subset: int | None = Field(None, ge=1)
    data_dir: str | None = None
    executor: Literal["local", "ray", "inline"] = "local"
    ray_address: str | None = None
    #: ``--vary``: each key with its values, in the order given; ``None`` without a sweep
    vary: list[tuple[str, list[Any]]] | None = None
    #: ``--with``: the requirements of each environment the cells run in; ``None`` for
    #: harness's own environment alone
    environments: list[list[str]] | None = None
    index_url: str | None = None
    find_links: list[str] = []
    offline: bool = False


def validate_row(data: object) -> dict[str, Any]:
    """``data`` checked as a result row and returned as a plain dict, defaults filled in.

    The metrics are returned as written (checked, not rewritten), so a row reads back as it was.
    :raises ValueError: with a one-line reason naming the first field that is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    schema = data.get("schema")
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
        raise ValueError(
            f"written by a newer harness (row schema {schema}; this one reads up to "
            f"{SCHEMA_VERSION}): upgrade harness to read it"
        )
    # checked as JSON, strictly, as the published schema reads it: "2.0" is not a number and
    # true is not 1.0 (pydantic's lax mode would take both)
    row = validate_row_json(json.dumps(data))
    plain = row.model_dump(mode="json", by_alias=True, exclude={"metrics"})
    plain["metrics"] = dict(data["metrics"]) if isinstance(data, dict) and "metrics" in data else {}
    return plain


def validate_run_config(data: object) -> dict[str, Any]:
    """``run.json`` checked and returned as a plain dict with defaults filled in."""
    config = _validate(RunConfig, data)
    plain = config.model_dump(mode="json", by_alias=True, exclude={"task"})
    plain["task"] = data["task"]  # type: ignore[index]  # validated above; kept as written
    return plain


def validate_row_json(text: str) -> ResultRow:
    """A row as it is about to be written (one JSON line), checked as strictly as a reader
    checks it: numbers are numbers, true is not 1.0.

    :raises ValueError: with a one-line reason naming the first field that is wrong.
    """
    try:
        return ResultRow.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ValueError(first_problem(exc)) from None


def _validate(model: type[BaseModel], data: object) -> BaseModel:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(first_problem(exc)) from None


def first_problem(exc: ValidationError) -> str:
    """``metrics.fit_seconds: Input should be a valid number`` (and how many more)."""
    errors = exc.errors()
    error = errors[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {error['msg']}{more}"


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a result row (``docs/results.schema.json``)."""
    schema = ResultRow.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        f"One line of results.jsonl (schema version {SCHEMA_VERSION}); "
        "`harness show --json` prints an array of these."
    )
    return schema


if __name__ == "__main__":  # python -m harness.store.schema > docs/results.schema.json
    import json

    print(json.dumps(json_schema(), indent=2))
