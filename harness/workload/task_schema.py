"""The task file format, published from the task model: a JSON Schema for editors
(``docs/task.schema.json``) and a reference of every section and key (``docs/task-reference.md``).

    python -m harness.workload.task_schema json > docs/task.schema.json
    python -m harness.workload.task_schema markdown > docs/task-reference.md

Both are generated, never written by hand; ``tests/test_task_schema.py`` fails when either
differs from what the model gives.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from harness.workload.tasks import Task

TITLE = "harness task file"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a task file (its TOML read as JSON)."""
    schema = Task.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = TITLE
    schema["description"] = (
        "A harness task: the dataset, model, training recipe and target, named by no framework. "
        "Written in TOML (tasks/mnist_mlp.toml); this schema checks it read as JSON."
    )
    return schema


def reference_markdown() -> str:
    """Every section and key of a task file, with its type, and its default or that it must
    be given, as the model says."""
    schema = json_schema()
    definitions = schema.get("$defs", {})
    lines = [
        "# Task files: the reference",
        "",
        "Generated from the task model (`python -m harness.workload.task_schema markdown`);",
        "[tasks.md](tasks.md) explains what each layer computes. A key without a default must be",
        "given. The same rules as a JSON Schema for editors: [task.schema.json](task.schema.json).",
        "",
        *_section("top level", schema, definitions),
    ]
    for name, definition in sorted(definitions.items()):
        lines += _section(name, definition, definitions)
    return "\n".join(lines).rstrip() + "\n"


def _section(name: str, schema: dict[str, Any], definitions: dict[str, Any]) -> list[str]:
    properties = schema.get("properties")
    if not properties:
        return []
    required = set(schema.get("required", []))
    lines = [f"## {name}", ""]
    if schema.get("description") and name != "top level":
        lines += [" ".join(schema["description"].split()), ""]
    lines += ["| key | type | default |", "| --- | --- | --- |"]
    for key, spec in properties.items():
        default = "*(must be given)*" if key in required else _shown(spec.get("default"))
        lines.append(f"| `{key}` | {_type(spec)} | {default} |")
    return [*lines, ""]


def _type(spec: dict[str, Any]) -> str:
    """A property's type in a few words: ``integer > 0``, ``one of: relu, tanh``, ``Dense``."""
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "enum" in spec:
        return "one of: " + ", ".join(f"`{value}`" for value in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    for key in ("anyOf", "oneOf"):
        if key in spec:
            kinds = [_type(option) for option in spec[key]]
            return " or ".join(kind for kind in kinds if kind != "null") + (
                " (or absent)" if "null" in kinds else ""
            )
    kind = spec.get("type", "any")
    if kind == "array" and "prefixItems" in spec:
        return "[" + ", ".join(_type(item) for item in spec["prefixItems"]) + "]"
    if kind == "array":
        items = spec.get("items") or {}
        return f"list of {_type(items)}" if items else "list"
    bounds = [
        f"{symbol} {spec[name]}"
        for name, symbol in (
            ("exclusiveMinimum", ">"),
            ("minimum", "≥"),
            ("exclusiveMaximum", "<"),
            ("maximum", "≤"),
        )
        if name in spec
    ]
    return " ".join([kind, *bounds])


def _shown(value: Any) -> str:
    return "*(none)*" if value is None else f"`{json.dumps(value)}`"


def main(argv: list[str]) -> int:
    if argv == ["json"]:
        print(json.dumps(json_schema(), indent=2))
    elif argv == ["markdown"]:
        print(reference_markdown(), end="")
    else:
        print("usage: python -m harness.workload.task_schema json|markdown", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
