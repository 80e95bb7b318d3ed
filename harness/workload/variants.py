"""Sweeps: ``--vary KEY=V1,V2,…`` turns one task into variants, one per combination of values.

KEY is a dotted path into the task as its file spells it (``training.batch_size``,
``dataset.train_samples``, ``model.layers[1].units``); each value is read as a TOML value
(``256``, ``0.01``, ``"relu"``; a bare word is text). Every variant is validated as a task
file is, so a bad key or value is one line before anything runs. A variant is named for its
values, ``mnist_mlp[batch_size=256]``, and every row of its cells carries them in ``variant``.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.workload.tasks import DatasetFacts, Task, TaskError, validate_task_data

#: one segment of a key: a name, then any number of list indexes
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")
#: more variants than this is a typo in a value list, not a sweep
MAX_VARIANTS = 1000

Path = tuple[str | int, ...]
Values = tuple[tuple[str, Any], ...]  # (key, value) in the order the keys were given


class VaryError(TaskError):
    """A ``--vary`` that can't make a task: a malformed option, an unknown key, a bad value."""


@dataclass(frozen=True)
class Variant:
    """One task of a sweep and the values that made it from the base task."""

    task: Task
    values: Values

    @property
    def name(self) -> str:
        return variant_name(self.task.name, dict(self.values))


def parse_vary(option: str) -> tuple[str, list[Any]]:
    """``"training.batch_size=32,64"`` → ``("training.batch_size", [32, 64])``."""
    key, sep, raw = option.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise VaryError(f"--vary {option!r}: write KEY=V1,V2,… (e.g. training.batch_size=32,64)")
    key_path(key)  # the key's spelling is checked here; whether the task has it, later
    if key in _NOT_VARIED:
        raise VaryError(f"--vary {key}: {_NOT_VARIED[key]}")
    if any(not character.isprintable() for character in raw):
        raise VaryError(f"--vary {key}: a value holds a line break or a control character")
    texts = _split_values(raw)
    values = [_value(text.strip()) for text in texts]
    if any(text.strip() == "" for text in texts):
        raise VaryError(f"--vary {option!r}: an empty value in the list")
    if len(set(map(repr, values))) != len(values):
        raise VaryError(f"--vary {option!r}: a value is given twice")
    if key == "dataset.name" and len(values) > 1:
        raise VaryError(
            "--vary dataset.name: a run trains on one dataset (its files are found and checked "
            "once); run once per dataset with --dataset NAME, then `harness compare` the runs"
        )
    return key, values


#: keys a sweep may not vary, and why
_NOT_VARIED = {
    "name": "the task's name labels every row; it would relabel them as another task",
    "description": "the description changes nothing that is measured",
    "source": "the source changes nothing that is measured",
}


def _split_values(raw: str) -> list[str]:
    """``"32,64"`` → ``["32", "64"]``; commas inside brackets belong to a list value
    (``"[8,8],[16,4]"`` → ``["[8,8]", "[16,4]"]``)."""
    texts, depth, start = [], 0, 0
    for index, character in enumerate(raw):
        depth += {"[": 1, "]": -1}.get(character, 0)
        if character == "," and depth == 0:
            texts.append(raw[start:index])
            start = index + 1
    return [*texts, raw[start:]]


def key_path(key: str) -> Path:
    """``"model.layers[1].units"`` → ``("model", "layers", 1, "units")``."""
    path: list[str | int] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise VaryError(
                f"--vary {key}: not a key like training.batch_size or model.layers[1].units"
            )
        path.append(match.group(1))
        path.extend(int(index) for index in _INDEX.findall(match.group(2)))
    return tuple(path)


def _value(text: str) -> Any:
    """A TOML value (``256`` an integer, ``2.0`` a decimal, ``"x"`` text), else the text itself."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def variants(
    base: Task, varied: Sequence[tuple[str, list[Any]]], datasets: DatasetFacts | None = None
) -> list[Variant]:
    """Every combination of the values (the first key varies slowest), each validated against
    ``datasets`` (by default the built-in ones and ``base``'s).

    :raises VaryError: one line for the first key or value that makes no valid task
    """
    keys = [key for key, _ in varied]
    if len(set(keys)) != len(keys):
        raise VaryError(f"--vary: key {next(k for k in keys if keys.count(k) > 1)} given twice")
    count = 1
    for _, values in varied:
        count *= len(values)
    if count > MAX_VARIANTS:
        raise VaryError(f"--vary: {count:,} variants; at most {MAX_VARIANTS:,} in one run")
    data = base.model_dump(mode="json")
    found: list[Variant] = []
    for combination in itertools.product(*(values for _, values in varied)):
        chosen = tuple(zip(keys, combination, strict=True))
        changed = _deep_copy(data)
        for key, value in chosen:
            _set(changed, key, value)
        shown = ", ".join(f"{key}={value!r}" for key, value in chosen)
        origin = f"task {base.name!r} with --vary {shown}"
        task = validate_task_data(changed, origin, datasets or base.known_datasets())
        found.append(Variant(task, chosen))
    return found


def with_values(
    base: Task, values: Mapping[str, Any], datasets: DatasetFacts | None = None
) -> Task:
    """``base`` with a row's ``variant`` values applied (the task that row's cell trained).

    :raises VaryError: when the values no longer make a valid task
    """
    changed = _deep_copy(base.model_dump(mode="json"))
    for key, value in values.items():
        _set(changed, key, value)
    origin = variant_name(base.name, values)
    return validate_task_data(changed, origin, datasets or base.known_datasets())


def sweep(
    base: Task, varied: Sequence[tuple[str, list[Any]]], datasets: DatasetFacts | None = None
) -> tuple[Task, list[Variant]]:
    """The task with every single-valued ``--vary`` applied, and the variants of the keys given
    several values (none when no key was): a key with one value is an override, not a sweep,
    and stays out of the variants' names.

    :raises VaryError: one line for the first key or value that makes no valid task
    """
    fixed = [(key, values) for key, values in varied if len(values) == 1]
    swept = [(key, values) for key, values in varied if len(values) > 1]
    keys = [key for key, _ in varied]
    if len(set(keys)) != len(keys):
        raise VaryError(f"--vary: key {next(k for k in keys if keys.count(k) > 1)} given twice")
    task = variants(base, fixed, datasets)[0].task if fixed else base
    return task, variants(task, swept, datasets) if swept else []


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _deep_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_deep_copy(value) for value in data]
    return data


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in the task's data; only a key the task has (its defaults included)."""
    path = key_path(key)
    node: Any = data
    for depth, part in enumerate(path):
        where = _spell(path[: depth + 1])
        last = depth == len(path) - 1
        if isinstance(part, int):
            if not isinstance(node, list):
                raise VaryError(f"--vary {key}: {_spell(path[:depth])} is not a list")
            if part >= len(node):
                raise VaryError(f"--vary {key}: {where} does not exist ({len(node)} entries)")
        elif not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            raise VaryError(f"--vary {key}: the task has no {where} (known here: {known})")
        if last:
            if isinstance(node[part], dict) or (
                isinstance(node[part], list) and not isinstance(value, list)
            ):
                kind = "a table" if isinstance(node[part], dict) else "a list: give lists ([8, 8])"
                raise VaryError(f"--vary {key}: {where} is {kind}, or vary one of its values")
            node[part] = value
        else:
            node = node[part]


def _spell(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def short_key(key: str) -> str:
    """The key as a variant's name shows it: without its table (``batch_size``, ``layers[1].units``)."""
    head, sep, rest = key.partition(".")
    return rest if sep else head


def variant_name(task: str, values: Mapping[str, Any] | None) -> str:
    """``mnist_mlp[batch_size=256,epochs=1]``; the task's own name when nothing was varied."""
    return f"{task}[{variant_label(values)}]" if values else task


def variant_label(values: Mapping[str, Any] | None) -> str:
    """``batch_size=256,epochs=1``; ``""`` when nothing was varied."""
    return ",".join(f"{short_key(key)}={_show(value)}" for key, value in (values or {}).items())


def _show(value: Any) -> str:
    """A value as a variant's name shows it: short (``0.001``, ``1e-05``), yet never the same
    for two different values (``0.0010000001`` keeps every digit), so cells never share an id."""
    if not isinstance(value, float):
        return str(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def row_name(row: Mapping[str, Any]) -> str:
    """The name of the task a result row belongs to, its variant included."""
    return variant_name(row["task"], row.get("variant"))
