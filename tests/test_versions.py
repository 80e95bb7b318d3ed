"""One task across framework versions, each in an environment of its own (``harness run --with``),
and the results followed over time (``harness history``).

Offline: the "framework" is ``toyframe``, built here as wheels of two versions (1.0, and a 2.0
that spends three times as long on an epoch), installed by uv from a ``--find-links`` folder
with ``--offline``; its plugin, ``toy``, is one of the test plugins. Building from the real
package index is in the slow tests at the end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from harness.analysis.history import Point, find_changes, history
from harness.errors import HarnessError
from harness.runner.environments import (
    BUILT_MARKER,
    IndexOptions,
    ensure_environment,
    environment_key,
    environment_matrix,
    uv_error,
)
from harness.store.results import RunDir

from .conftest import harness_env, run_harness

#: seconds each version of toyframe spends on an epoch
EPOCH_SECONDS = {"1.0": 0.05, "2.0": 0.15}
TASK = ["--task", "tiny_blobs_mlp", "-f", "toy", "--no-report", "--json"]


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel of ``files`` (path in the wheel → text), written by hand so that
    building it needs no build backend and no network."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: harness-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    records = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        records.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    records.append(f"{dist_info}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def toyframe_wheels(folder: Path) -> list[Path]:
    """toyframe 1.0 and 2.0 as wheels in ``folder`` (for ``--find-links``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        build_wheel(
            folder,
            "toyframe",
            version,
            {"toyframe.py": f'__version__ = "{version}"\nEPOCH_SECONDS = {seconds}\n'},
        )
        for version, seconds in EPOCH_SECONDS.items()
    ]


def make_wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    toyframe_wheels(folder)
    return folder


def make_toy_env(tmp_path_factory) -> dict[str, str]:
    """The test plugins, and a folder of built environments of this module's own."""
    return harness_env(
        HARNESS_PLUGINS="harness_toy_plugin,harness_tiny_plugin",
        HARNESS_ENV_DIR=str(tmp_path_factory.mktemp("environments")),
    )


def run_versions(wheels: Path, env: dict[str, str], out: Path, *pins: str, extra=()):
    """``harness run`` of the toy task in an environment per pin, from the wheels alone."""
    with_options = [option for pin in pins for option in ("--with", pin)]
    result = run_harness(
        "run", *TASK, *with_options, "--find-links", str(wheels), "--offline",
        "--out", str(out), *extra, env=env,
    )  # fmt: skip
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, rows


def make_two_versions(wheels, toy_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result, rows = run_versions(
        wheels, toy_env, out, "toyframe==1.0", "toyframe==2.0", extra=["--repeats", "2"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result, rows


def test_each_version_runs_in_its_own_environment_and_its_rows_say_which(two_versions):
    _, result, rows = two_versions
    assert [row["status"] for row in rows] == ["ok"] * 4
    by_version = {}
    for row in rows:
        by_version.setdefault(row["framework_version"], []).append(row)
    assert by_version.keys() == {"1.0", "2.0"}
    for version, found in by_version.items():
        environment = found[0]["environment"]
        assert environment["name"] == f"toyframe=={version}"
        assert environment["requirements"] == [f"toyframe=={version}"]
        # the lock: every package the cell could import, harness's own environment included
        assert environment["packages"]["toyframe"] == version
        assert environment["packages"]["harness"] and environment["packages"]["numpy"]
        assert {row["environment"]["lock_sha256"] for row in found} == {environment["lock_sha256"]}
    locks = {
        version: found[0]["environment"]["lock_sha256"] for version, found in by_version.items()
    }
    assert locks["1.0"] != locks["2.0"]
    assert {row["cell_id"] for row in rows} == {
        f"tiny_blobs_mlp-toy[toyframe=={v}]-eager-auto-r{r}" for v in ("1.0", "2.0") for r in (0, 1)
    }
    # each built once, before any cell ran, and said so
    assert "environment toyframe==1.0: built in" in result.stderr
    assert "environment toyframe==2.0: built in" in result.stderr


def test_the_table_labels_each_row_with_its_version(two_versions):
    _, result, _ = two_versions
    lines = result.stderr.splitlines()
    assert any(line.startswith("toy 1.0 ") for line in lines), result.stderr
    assert any(line.startswith("toy 2.0 ") for line in lines), result.stderr


def test_a_second_run_reuses_the_built_environments(two_versions, wheels, toy_env, tmp_path):
    result, rows = run_versions(wheels, toy_env, tmp_path, "toyframe==1.0", "toyframe==2.0")
    assert result.returncode == 0, result.stderr
    assert "environment toyframe==1.0: reused from the cache" in result.stderr
    assert "environment toyframe==2.0: reused from the cache" in result.stderr
    built = sorted(Path(toy_env["HARNESS_ENV_DIR"]).glob(f"*/{BUILT_MARKER}"))
    assert len(built) == 2
    first_locks = {row["environment"]["lock_sha256"] for row in two_versions[2]}
    assert {row["environment"]["lock_sha256"] for row in rows} == first_locks


def test_a_pin_that_does_not_install_is_a_failed_row_and_the_others_run(wheels, toy_env, tmp_path):
    result, rows = run_versions(wheels, toy_env, tmp_path, "toyframe==9.9", "toyframe==1.0")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    failed, ok = rows
    assert (failed["status"], failed["kind"]) == ("failed", "environment")
    assert failed["error"].startswith("toyframe==9.9 does not install:")
    assert "no version of toyframe==9.9" in failed["error"]
    assert "\n" not in failed["error"]
    assert (ok["status"], ok["framework_version"]) == ("ok", "1.0")


def test_without_the_pin_the_framework_is_not_installed(toy_env, tmp_path):
    result = run_harness("run", *TASK, "--out", str(tmp_path), env=toy_env)
    [row] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert (row["status"], row["kind"]) == ("skipped", "not_installed")
    assert (row["environment"]["name"], row["environment"]["requirements"]) == ("", [])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--with", "toyframe=1.0"], "--with 'toyframe=1.0' is not a requirement in pip's syntax"),
        (["--with", "toyframe==1.0", "--executor", "inline"], "can't use --with environments"),
    ],
)
def test_a_bad_with_is_one_line(options, message, toy_env, tmp_path):
    result = run_harness("run", *TASK, *options, "--out", str(tmp_path), env=toy_env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


def test_pins_of_one_package_are_alternatives_and_of_several_combine():
    assert environment_matrix(["jax==0.9.2", "jax==0.10.2"]) == [("jax==0.9.2",), ("jax==0.10.2",)]
    assert environment_matrix(["JAX==0.9.2", "numpy<2", "jax==0.10.2", "NumPy>=2"]) == [
        ("JAX==0.9.2", "numpy<2"),
        ("JAX==0.9.2", "NumPy>=2"),
        ("jax==0.10.2", "numpy<2"),
        ("jax==0.10.2", "NumPy>=2"),
    ]
    with pytest.raises(HarnessError, match="not a requirement"):
        environment_matrix(["jax 0.9"])


def test_an_environment_overlays_harness_and_a_build_cut_short_is_built_again(
    wheels, tmp_path, monkeypatch
):
    monkeypatch.setenv("HARNESS_ENV_DIR", str(tmp_path))
    index = IndexOptions(find_links=(str(wheels),), offline=True)
    first = ensure_environment(("toyframe==1.0",), index)
    assert first.built and first.folder.parent == tmp_path
    # its Python imports the pinned package, and harness from the environment behind it
    code = "import harness, toyframe; print(toyframe.__version__, harness.__file__)"
    shown = subprocess.run([first.python, "-c", code], capture_output=True, text=True, check=True)
    version, harness_file = shown.stdout.split()
    assert version == "1.0" and not harness_file.startswith(str(tmp_path))

    again = ensure_environment(("toyframe==1.0",), index)
    assert (again.built, again.folder) == (False, first.folder)
    (first.folder / BUILT_MARKER).unlink()  # as a build killed halfway leaves it
    assert ensure_environment(("toyframe==1.0",), index).built

    # what it holds names it: other pins, or another index, are another environment
    key = environment_key(("toyframe==1.0",), index)
    assert first.folder.name == key
    assert environment_key(("toyframe==2.0",), index) != key
    assert environment_key(("toyframe==1.0",), IndexOptions()) != key


def test_uvs_error_becomes_one_line_with_its_reason():
    output = (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because there is no version of jax==0.0.1 and you require jax==0.0.1, we can "
        "conclude that your requirements are unsatisfiable.\n\nhint: something\n"
    )
    assert uv_error(output) == "there is no version of jax==0.0.1"
    assert uv_error("error: Failed to fetch: `https://pypi.org/simple/jax/`\n") == (
        "Failed to fetch: `https://pypi.org/simple/jax/`"
    )


def test_compare_between_two_versions_of_one_run(two_versions, toy_env, tmp_path):
    out, _, _ = two_versions
    [run_dir] = out.iterdir()
    result = run_harness(
        "compare", str(run_dir), "--between", "toyframe==1.0", "toyframe==2.0", "--json",
        env=toy_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    [cell] = payload["cells"]
    assert (cell["task"], cell["framework"], cell["device"]) == ("tiny_blobs_mlp", "toy", "cpu")
    assert payload["run_a"].endswith("[toyframe==1.0]")
    assert {m["metric"] for m in cell["metrics"]} >= {"steady_epoch_seconds", "test_accuracy"}
    assert payload["environment_differences"]["packages.toyframe"] == ["1.0", "2.0"]

    # a package in one lock only reads "absent" on the other side, in the terminal
    def drop_from_v2(row):
        environment = row.get("environment") or {}
        if environment.get("name") == "toyframe==2.0":
            packages = {k: v for k, v in environment["packages"].items() if k != "toyframe"}
            row = {**row, "environment": {**environment, "packages": packages}}
        return row

    lacking = plant(tmp_path, run_dir, "lacking", drop_from_v2)
    shown = run_harness(
        "compare", str(lacking), "--between", "toyframe==1.0", "toyframe==2.0", env=toy_env
    )
    assert shown.returncode == 0, shown.stderr
    assert "packages.toyframe: 1.0 → absent" in shown.stdout

    unknown = run_harness("compare", str(run_dir), "--between", "toyframe==1.0", "base")
    assert unknown.returncode == 2
    assert "has no cells in the environment 'base'" in unknown.stderr


# -- history ----------------------------------------------------------------------------------


def plant(results: Path, run_dir: Path, name: str, change) -> Path:
    """A copy of ``run_dir`` under ``results`` as run ``name``, each row passed through ``change``."""
    copy = results / name
    shutil.copytree(run_dir, copy)
    rows = [json.loads(line) for line in (copy / "results.jsonl").read_text().splitlines()]
    planted = [changed for row in rows if (changed := change(row)) is not None]
    text = "".join(json.dumps(row) + "\n" for row in planted)
    (copy / "results.jsonl").write_text(text)
    config = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**config, "run_id": name}))
    return copy


def quiet(row):
    """The row as if its machine had been quiet (the toy's times are its sleeps either way)."""
    return {**row, "noise": {**(row.get("noise") or {}), "verdict": "quiet"}}


def make_planted_history(two_versions, tmp_path_factory):
    """Three runs: the two versions (1.0 then 2.0, the regression), then 2.0 again with one
    repeat planted ten times slower on a busy machine, which must not count."""
    out, _, _ = two_versions
    [run_dir] = out.iterdir()
    results = tmp_path_factory.mktemp("history")
    plant(results, run_dir, "20300101-000000-tiny_blobs_mlp", quiet)

    def busy_and_slow(row):
        if row["framework_version"] != "2.0":
            return None
        row = quiet(row)
        row["started_at"] = "2030-01-02T00:00:00+00:00"
        if row["repeat"] == 0:
            row["metrics"]["steady_epoch_seconds"] *= 10
            row["noise"]["verdict"] = "busy"
        return row

    plant(results, run_dir, "20300102-000000-tiny_blobs_mlp", busy_and_slow)
    return results


def test_history_finds_the_planted_regression_and_not_the_busy_row(planted_history):
    [series] = history([planted_history])
    assert series.label == "tiny_blobs_mlp/toy/eager/cpu"
    assert [(p.version, len(p.seconds), p.busy) for p in series.points] == [
        ("1.0", 2, 0),
        ("2.0", 2, 0),
        ("2.0", 1, 1),
    ]
    [change] = series.changes
    assert (change.before.version, change.after.version, change.verdict) == (
        "1.0",
        "2.0",
        "regression",
    )
    assert change.after.run_id == "20300101-000000-tiny_blobs_mlp"
    assert series.regressed


def test_history_command_json_and_exit_code(planted_history, toy_env):
    result = run_harness(
        "history", "--results", str(planted_history), "--json", "--fail-on-regression",
        env=toy_env,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    [series] = json.loads(result.stdout)["series"]
    changes = [point["change"] for point in series["points"]]
    assert changes[0] is None and changes[2] is None
    assert changes[1]["verdict"] == "regression" and changes[1]["ratio"] > 1.1


def test_history_command_table_at_each_width(planted_history, toy_env, tmp_path):
    for columns in ("80", "100", "120"):
        result = run_harness(
            "history", "--results", str(planted_history), "--html", str(tmp_path / "h.html"),
            env={**toy_env, "COLUMNS": columns},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= int(columns)
        [marked] = [line for line in lines if "regression ×" in line]
        assert " 2.0 " in marked
    assert "<svg" in (tmp_path / "h.html").read_text()


def test_no_change_is_found_in_noise_below_the_threshold():
    def point(name, *seconds, busy=0):
        return Point(name, name, "1", "", tuple(seconds), busy, None)

    flat = [point("a", 1.0, 1.02), point("b", 1.05, 0.99), point("c", 1.01, 1.03)]
    assert find_changes(flat) == []
    # a point with only busy repeats is skipped: its neighbours are compared with each other
    gap = [point("a", 1.0, 1.0), point("b", busy=2), point("c", 0.5, 0.5)]
    [change] = find_changes(gap)
    assert (change.before.run_id, change.after.run_id, change.verdict) == ("a", "c", "improvement")


def test_history_of_an_empty_folder_says_so(tmp_path, toy_env):
    result = run_harness("history", "--results", str(tmp_path), env=toy_env)
    assert result.returncode == 0, result.stderr
    assert "0 series, 0 change point(s)" in result.stdout


def test_rows_of_environments_survive_the_reader(two_versions):
    out, _, rows = two_versions
    [run_dir] = out.iterdir()
    read = RunDir(run_dir).read_results()
    assert [row["environment"]["lock_sha256"] for row in read] == [
        row["environment"]["lock_sha256"] for row in rows
    ]


# -- the real package index (network) ------------------------------------------------------------


@pytest.mark.slow
def test_two_real_jax_releases_from_the_index(tmp_path):
    """Needs the package index (PyPI) and about a minute: ``pytest -m slow -k real_jax``."""
    env = harness_env(HARNESS_ENV_DIR=str(tmp_path / "environments"))
    result = run_harness(
        "run", "--task", "mnist_mlp", "-f", "jax", "--with", "jax==0.9.2", "--with", "jax==0.10.2",
        "--epochs", "1", "--train-subset", "2000", "--no-report", "--json",
        "--out", str(tmp_path / "results"), env=env,
    )  # fmt: skip
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["framework_version"] for row in rows] == ["0.9.2", "0.10.2"], result.stderr
    assert [row["environment"]["packages"]["jaxlib"] for row in rows] == ["0.9.2", "0.10.2"]
    assert rows[0]["environment"]["lock_sha256"] != rows[1]["environment"]["lock_sha256"]
