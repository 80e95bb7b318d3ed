"""The front door: the command list is right without importing the commands, `--help` imports
no heavy library, and `harness show --json` prints rows of the published schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.cli import COMMANDS, cli
from harness.store.schema import json_schema

from .conftest import harness_env, run_harness

ROOT = Path(__file__).parent.parent
PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")
HEAVY = ("pandas", "scipy", "matplotlib", "jinja2", "numpy", "harness.runner")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_help_line_is_the_commands_own(name):
    command = cli.get_command(None, name)  # type: ignore[arg-type]
    assert command is not None and command.name == name
    assert COMMANDS[name][1] == (command.help or "").strip().splitlines()[0]


def test_help_imports_no_heavy_library():
    code = (
        "import sys\nfrom harness.cli import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
    assert "show" in out.stdout and "check-agreement" in out.stdout


def test_the_published_schema_is_generated_from_the_row_model():
    published = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    assert published == json_schema(), (
        "regenerate: python -m harness.store.schema > docs/results.schema.json"
    )


def test_show_prints_tables_and_json_rows_of_the_published_schema(tmp_path):
    ran = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--out",
        str(tmp_path),
        "-f",
        "centroid",
        "-f",
        "raises",
        "--no-report",
        env=PLUGINS,
    )
    assert ran.returncode == 1, ran.stderr  # `raises` fails by design
    [run_dir] = tmp_path.iterdir()
    before = sorted(path.name for path in run_dir.rglob("*"))
    shown = run_harness("show", str(run_dir), env=PLUGINS)
    assert shown.returncode == 0, shown.stderr
    assert "centroid" in shown.stdout and "loss went sideways" in shown.stdout
    as_json = run_harness("show", "--results", str(tmp_path), "--json", env=PLUGINS)
    rows = json.loads(as_json.stdout)
    assert [row["framework"] for row in rows] == ["centroid", "raises"]
    for row in rows:
        jsonschema.validate(row, json.loads((ROOT / "docs" / "results.schema.json").read_text()))
    assert sorted(path.name for path in run_dir.rglob("*")) == before  # show writes nothing


def test_list_and_runs_speak_json_for_scripts(tmp_path):
    listed = json.loads(run_harness("list", "--json", env=PLUGINS).stdout)
    assert {task["name"] for task in listed["tasks"]} >= {"mnist_mlp", "mnist_cnn"}
    centroid = next(f for f in listed["frameworks"] if f["name"] == "centroid")
    assert centroid["available"] is True and centroid["source"]
    assert any(p["plugin"] for p in listed["broken_plugins"]) or listed["broken_plugins"] == []

    run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--out",
        str(tmp_path),
        "-f",
        "centroid",
        "--no-report",
        env=PLUGINS,
    )
    (tmp_path / "20000101-000000-broken").mkdir()
    (tmp_path / "20000101-000000-broken" / "run.json").write_text("[]")
    runs = json.loads(run_harness("runs", "--results", str(tmp_path), "--json", env=PLUGINS).stdout)
    assert [run["readable"] for run in runs] == [False, True]
    assert "not a harness run record" in runs[0]["reason"]
    assert runs[1]["task"] == "mnist_mlp" and runs[1]["cells"] == {
        "ok": 1,
        "failed": 0,
        "skipped": 0,
    }


def test_run_json_prints_the_rows_alone_on_stdout(tmp_path):
    result = run_harness(
        "run", "--task", "mnist_mlp", "-f", "centroid", "-f", "missing", "--epochs", "1",
        "--train-subset", "500", "--no-report", "--json", "--out", str(tmp_path), env=PLUGINS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["framework"], row["status"]) for row in rows] == [
        ("centroid", "ok"),
        ("missing", "skipped"),
    ]
    schema = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    for row in rows:
        jsonschema.validate(row, schema)
    assert "centroid" in result.stderr and "results:" in result.stderr  # the table, elsewhere
    # a CPU cell's energy: a RAPL figure where the kernel shows one, else the reason
    energy = rows[0]["energy"]
    assert (
        energy["source"] == "rapl" if energy["joules"] is not None else "RAPL" in energy["reason"]
    )
