"""Run folders as a hostile user would hand them over: names that are paths, links, markup,
two writers at once, damaged files and failing disks. Each ends in one line or a correct result,
and nothing is written outside the run folder."""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.analysis.compare import compare_runs
from harness.analysis.runs import latest_run, list_runs, load_run, open_run, scan_runs
from harness.errors import HarnessError
from harness.paths import MAX_NAME_LENGTH, safe_name
from harness.present import report
from harness.store.locking import run_folder_lock, update_json_file
from harness.store.results import RunDir

from .conftest import harness_env, run_harness

PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")
HOSTILE_NAMES = [
    "/abs/x",
    "../x",
    "../../../../tmp/x",
    "",
    ".",
    "..",
    "a" * 1000,
    "日本/../語",
    "x\x00y",
]


def tiny_run(out: Path, *frameworks: str, extra: tuple[str, ...] = ()):
    """A real run of the numpy test framework: one epoch on 500 samples, a few seconds."""
    args = ["run", "--task", "mnist_mlp", "--epochs", "1", "--train-subset", "500"]
    args += ["--out", str(out), "--no-report", *extra]
    for framework in frameworks:
        args += ["-f", framework]
    result = run_harness(*args, env=PLUGINS)
    runs = sorted(path for path in out.iterdir() if (path / "run.json").exists())
    return result, (runs[-1] if runs else None)


def assert_one_line(result, code: int, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def everything_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished two-cell run to copy and damage."""
    out = tmp_path_factory.mktemp("finished")
    result, run_dir = tiny_run(out, "centroid", "raises")
    assert result.returncode == 1, result.stderr  # `raises` fails, by design
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    target = tmp_path / "outer" / "results" / finished_run.name
    shutil.copytree(finished_run, target)
    return target


def rewrite_rows(run_dir: Path, change) -> None:
    path = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        change(row)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


# -- 2. names from files become paths ---------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_name_maps_every_name_to_one_plain_file_name(name):
    """names from files become paths: safe_name gives a plain, bounded, distinct file name."""
    safe = safe_name(name)
    assert safe not in ("", ".", "..") and not safe.startswith(".")
    assert "/" not in safe and "\x00" not in safe and len(safe) <= MAX_NAME_LENGTH
    assert safe.isascii()
    assert safe_name(name + "z") != safe  # two names never share a file


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_report_writes_charts_only_inside_the_run_folder(run_copy, name):
    """names from files become paths: a row's task name can't put a chart outside the run."""
    rewrite_rows(run_copy, lambda row: row.update(task=name))
    outer = run_copy.parent.parent
    before = everything_under(outer) - everything_under(run_copy)
    result = run_harness("report", str(run_copy), env=PLUGINS)
    assert result.returncode == 0, result.stderr
    assert everything_under(outer) - everything_under(run_copy) == before
    charts = list((run_copy / "charts").iterdir())
    assert charts and all(chart.parent == run_copy / "charts" for chart in charts)
    assert not Path("/tmp/x-to-target.svg").exists()


# -- 3. links in a run folder are not followed ----------------------------------------


@pytest.mark.parametrize("linked", ["logs/{cell}.log", "results.jsonl", "logs", "results.csv"])
def test_resume_refuses_a_run_folder_holding_a_link(run_copy, tmp_path, linked):
    """symbolic links in a run folder: --resume refuses it and writes through no link."""
    lines = (run_copy / "results.jsonl").read_text().splitlines()
    (run_copy / "results.jsonl").write_text(lines[0] + "\n")  # the second cell is to run again
    cell = json.loads(lines[1])["cell_id"]
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("precious\n")
    link = run_copy / linked.format(cell=cell)
    if link.is_dir():
        shutil.rmtree(link)
    else:
        link.unlink(missing_ok=True)
    link.symlink_to(victim if linked == "logs" else victim / "file")
    result = run_harness("run", "--resume", str(run_copy), env=PLUGINS)
    assert_one_line(result, 2, "symbolic link", "remove")
    assert (victim / "file").read_text() == "precious\n"
    assert [p.name for p in victim.iterdir()] == ["file"]


def test_writers_never_follow_a_link_planted_after_the_check(run_copy, tmp_path):
    """symbolic links in a run folder: a link planted while a run goes is not written through."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    results = run_copy / "results.jsonl"
    row = json.loads(results.read_text().splitlines()[0]) | {"cell_id": "x"}
    results.unlink()
    results.symlink_to(victim)
    with pytest.raises(HarnessError, match="symbolic link"):
        RunDir(run_copy).append_result(row)
    assert victim.read_text() == "precious\n"


def test_a_cells_log_is_never_written_through_a_link(tmp_path):
    """symbolic links in a run folder: a link planted at a cell's log is refused, not followed."""
    from harness.runner.child_spec import ChildSpec
    from harness.runner.process import Limits, run_child

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    log = tmp_path / "cell.log"
    log.symlink_to(victim)
    spec = ChildSpec(entry="harness.testing.checks:run_conformance", framework="x", threads=1)
    with pytest.raises(HarnessError, match="symbolic link"):
        run_child(spec, threads=1, limits=Limits(60), log_path=log)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status": "finished"}, "status: Input should be 'ok', 'failed' or 'skipped'"),
        (
            {"metrics": {"fit_seconds": "2.5"}},
            "metrics.fit_seconds: Input should be a valid number",
        ),
        (
            {"metrics": {"test_accuracy": True}},
            "metrics.test_accuracy: Input should be a valid number",
        ),
    ],
)
def test_a_row_that_readers_would_refuse_is_never_written(run_copy, change, problem):
    """rows are validated when written, as strictly as when read: nothing to find out later."""
    results = run_copy / "results.jsonl"
    before = results.read_bytes()
    row = json.loads(before.splitlines()[0]) | change
    with pytest.raises(
        HarnessError, match="not writing cell .*does not match the schema"
    ) as raised:
        RunDir(run_copy).append_result(row)
    assert problem in str(raised.value)
    assert results.read_bytes() == before


# -- 4. text is never rendered as markup --------------------------------------------


def test_rich_markup_in_a_cell_error_is_printed_as_text(tmp_path):
    """text rendered as rich markup: an error holding [/] and [jax] neither aborts nor loses text."""
    result, run_dir = tiny_run(tmp_path, "richmarkup", "centroid")
    assert result.returncode == 1, result.stderr  # the one cell failed; the run finished
    assert "Traceback" not in result.stdout + result.stderr
    assert "[/] closed nothing [bold]; pip install 'harness[jax]'" in result.stdout
    assert len(RunDir(run_dir).read_results()) == 2


# -- 6. one writer per run folder; caches updated whole -------------------------------


def test_a_second_resume_is_refused_naming_the_holder(run_copy):
    """concurrent use of one run folder: the second writer gets one line naming the holder."""
    with run_folder_lock(run_copy, "a test holding the folder"):
        resumed = run_harness("run", "--resume", str(run_copy), env=PLUGINS)
        reported = run_harness("report", str(run_copy), env=PLUGINS)
    assert_one_line(resumed, 2, "in use by another harness", f"pid {os.getpid()}")
    assert_one_line(reported, 2, "in use by another harness", "a test holding the folder")
    rows_before = len(RunDir(run_copy).read_results())
    assert run_harness("run", "--resume", str(run_copy), env=PLUGINS).returncode in (0, 1)
    assert len(RunDir(run_copy).read_results()) == rows_before  # nothing left to run twice


def _add_keys(path: str, prefix: str) -> None:
    for number in range(40):
        update_json_file(Path(path), lambda data, n=number: data.__setitem__(f"{prefix}{n}", n))


def test_cache_updates_from_two_processes_keep_each_others_entries(tmp_path):
    """concurrent use of one run folder: per-user caches are read-modify-written under a lock."""
    cache = tmp_path / "cache.json"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_keys, args=(str(cache), p)) for p in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(json.loads(cache.read_text())) == 80


# -- 10. damaged run folders -------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"cell_id": "x", "task": "t", "framework": "f", "device": "cpu"}', "status"),
        ('{"status": "ok"}', "cell_id"),
        (
            '{"cell_id": "x", "task": "t", "framework": "f", "device": "cpu", "status": "ok", '
            '"metrics": "fast"}',
            "metrics",
        ),
        (
            '{"cell_id": "x", "task": "t", "framework": "f", "device": "cpu", "status": "ok", '
            '"metrics": {"fit_seconds": "soon"}}',
            "metrics.fit_seconds",
        ),
    ],
)
@pytest.mark.parametrize("command", [["report"], ["compare", "SELF"], ["run", "--resume"]])
def test_a_damaged_result_line_is_one_line_naming_file_and_line(
    run_copy, damage, fragment, command
):
    """damaged run folders: a line that isn't a result row is named by file and line."""
    with (run_copy / "results.jsonl").open("a") as handle:
        handle.write(damage + "\n")
    args = [str(run_copy) if part == "SELF" else part for part in command] + [str(run_copy)]
    result = run_harness(*args, env=PLUGINS)
    assert_one_line(result, 2, "results.jsonl:3", fragment)


def test_invalid_utf8_and_torn_lines_are_skipped_with_a_warning(run_copy):
    """damaged run folders: bytes that aren't a line of text are skipped, with a warning."""
    with (run_copy / "results.jsonl").open("ab") as handle:
        handle.write(b'\xff\xfe{"cell_id": \n{"schema": 1, "cell_id": "torn')
    assert len(open_run(run_copy).rows) == 2


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ({"repeats": None}, "repeats"),
        ({"frameworks": "torch"}, "frameworks"),
        ({"device": "tpu"}, "device"),
        ({"timeout": -1}, "timeout"),
        ({"task": {"title": "no name"}}, "task.name"),
    ],
)
def test_a_damaged_run_record_is_one_line(run_copy, damage, fragment):
    """damaged run folders: run.json with missing keys or wrong types is one line."""
    record = json.loads((run_copy / "run.json").read_text())
    record.update(damage)
    (run_copy / "run.json").write_text(json.dumps(record))
    for args in (["report", str(run_copy)], ["run", "--resume", str(run_copy)]):
        assert_one_line(run_harness(*args, env=PLUGINS), 2, "run.json", fragment)


def test_results_file_that_is_a_folder_is_one_line(run_copy):
    """damaged run folders: results.jsonl being a directory is one line."""
    (run_copy / "results.jsonl").unlink()
    (run_copy / "results.jsonl").mkdir()
    assert_one_line(run_harness("report", str(run_copy), env=PLUGINS), 2, "results.jsonl")


def test_runs_lists_the_others_and_marks_the_broken_one(run_copy, finished_run):
    """damaged run folders: `harness runs` marks the broken run; report takes the latest readable."""
    results = run_copy.parent
    broken = results / "99999999-999999-broken"
    shutil.copytree(run_copy, broken)
    (broken / "run.json").write_text("{not json")
    listed = run_harness("runs", "--results", str(results), env=PLUGINS)
    assert listed.returncode == 0, listed.stderr
    assert run_copy.name in listed.stdout and "unreadable" in listed.stdout
    assert "99999999-999999-broken" in listed.stderr and "Traceback" not in listed.stderr
    assert latest_run(results).run_id == run_copy.name
    reported = run_harness("report", "--results", str(results), env=PLUGINS)
    assert reported.returncode == 0, reported.stderr
    assert (run_copy / "report.md").exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
row_fields = st.fixed_dictionaries(
    {},
    optional={
        "schema": st.sampled_from([1, 2, 0, "1", None]),
        "cell_id": st.text(max_size=5) | json_values,
        "task": st.sampled_from(["mnist_mlp", "../x", ""]) | json_values,
        "framework": st.sampled_from(["centroid", "a|b"]) | json_values,
        "status": st.sampled_from(["ok", "failed", "skipped", "OK"]) | json_values,
        "kind": st.sampled_from([None, "target_missed", "crash"]) | json_values,
        "device": st.sampled_from(["cpu", "gpu"]) | json_values,
        "mode": st.sampled_from(["eager", "compiled"]) | json_values,
        "met_target": json_values,
        "agreement": json_values,
        "metrics": st.dictionaries(
            st.sampled_from(
                [
                    "fit_seconds",
                    "epoch_seconds",
                    "validation_scores",
                    "peak_rss_bytes",
                    "test_accuracy",
                    "samples_per_second",
                    "step_seconds_p50",
                    "utilisation",
                ]
            ),
            json_values | st.lists(st.floats(0, 10) | st.none(), max_size=3),
        )
        | json_values,
    },
)
line_contents = st.one_of(
    row_fields.map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(line_contents, max_size=4), record=st.none() | row_fields)
def test_no_damaged_results_file_gives_a_traceback(finished_run, tmp_path_factory, lines, record):
    """damaged run folders: every reader gives rows or one HarnessError, never another exception."""
    run_dir = tmp_path_factory.mktemp("fuzz") / finished_run.name
    shutil.copytree(finished_run, run_dir)
    with (run_dir / "results.jsonl").open("a", encoding="utf-8", errors="surrogateescape") as f:
        f.write("".join(line.replace("\n", " ") + "\n" for line in lines))
    if record is not None:
        config = json.loads((run_dir / "run.json").read_text())
        config.update({key: value for key, value in record.items() if key in ("schema", "task")})
        (run_dir / "run.json").write_text(json.dumps(config))
    readers = [
        lambda: open_run(run_dir),
        lambda: load_run(run_dir),
        lambda: list_runs(run_dir.parent),
        lambda: scan_runs(run_dir.parent),
        lambda: report.build(open_run(run_dir)),
        lambda: compare_runs(open_run(finished_run), open_run(run_dir)),
    ]
    for read in readers:
        with contextlib.suppress(HarnessError):
            read()


# -- 11. write failures ------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(run_copy, monkeypatch, failing):
    """write failures: disk full is a HarnessError, no *.tmp is left, and the rows stay readable."""
    run_dir, _ = RunDir.open(run_copy)
    before = (run_copy / "results.jsonl").read_bytes()
    row = json.loads(before.splitlines()[0]) | {"cell_id": "another"}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, full)
    with pytest.raises(HarnessError, match="No space left on device.*--resume"):
        if failing == "fsync":
            run_dir.append_result(row)
        else:
            run_dir.write_table()
    monkeypatch.undo()
    assert not [p for p in run_copy.rglob("*") if p.name.endswith(".tmp")]
    assert (run_copy / "results.jsonl").read_bytes()[: len(before)] == before
    assert len(open_run(run_copy).rows) in (2, 3)  # the line may have reached the disk


# -- 15. reports ---------------------------------------------------------------------------


def test_report_markdown_escapes_every_value_and_shows_no_none(run_copy):
    """reports: status, kind, task names are escaped in report.md; no None; agreement as rows say."""
    hostile = "t|<b>[x](http://e.vil)"

    def damage(row):
        row.update(task=hostile, kind="k|<i>", framework_version=None, agreement="pass (9 steps)")

    rewrite_rows(run_copy, damage)
    result = run_harness("report", str(run_copy), env=PLUGINS)
    assert result.returncode == 0, result.stderr
    markdown = (run_copy / "report.md").read_text()
    html = (run_copy / "report.html").read_text()
    assert "<b>" not in markdown and "<i>" not in markdown and "[x](http" not in markdown
    assert "t\\|&lt;b&gt;\\[x\\](http://e.vil)" in markdown
    assert "None" not in markdown and ">None<" not in html and " None " not in html
    assert "not checked" not in markdown
    assert "centroid: pass (9 steps)" in markdown
    for link in [line for line in markdown.splitlines() if line.startswith("![")]:
        target = link[link.index("](") + 2 : -1]
        assert (run_copy / target).is_file(), link


def test_report_against_an_earlier_run_lists_the_cells_it_lost(run_copy, finished_run):
    """reports: `report --against` shows a cell ok there and missing here as a regression."""
    lines = (run_copy / "results.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["framework"] != "centroid"]
    (run_copy / "results.jsonl").write_text("\n".join(kept) + "\n")
    result = run_harness("report", str(run_copy), "--against", str(finished_run), env=PLUGINS)
    assert result.returncode == 0, result.stderr
    markdown = (run_copy / "report.md").read_text()
    assert "Cells lost since" in markdown
    assert "mnist_mlp/centroid/eager/cpu: 1/1 ok there, missing here" in markdown


def test_when_every_name_of_the_second_is_taken_no_existing_folder_is_used(tmp_path):
    """the 999th name of a second was used whether or not it existed (a planted link, say)."""
    from datetime import datetime

    now = datetime(2026, 1, 2, 3, 4, 5)
    out = tmp_path / "results"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    base = "20260102-030405-mnist_mlp"
    (out / base).mkdir()
    for attempt in range(2, 999):
        (out / f"{base}-{attempt}").mkdir()
    (out / f"{base}-999").symlink_to(victim)
    with pytest.raises(HarnessError, match="998 more names of this second are taken"):
        RunDir.create(out, "mnist_mlp", now=now)
    assert list(victim.iterdir()) == []


PIPE = "is not a regular file (a pipe, a device or a socket); remove it"


@pytest.mark.parametrize(
    ("name", "command", "message"),
    [
        ("results.jsonl", "show", PIPE),
        ("environment.json", "show", PIPE),
        (".harness.lock", "report", PIPE),
        ("run.json", "show", "is not a harness run folder (no run.json)"),
    ],
)
def test_a_pipe_in_place_of_a_file_is_one_line_not_a_hang(run_copy, name, command, message):
    """a FIFO in place of a file harness reads (or locks) would wait for a writer forever."""
    target = run_copy / name
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    result = run_harness(command, str(run_copy), env=PLUGINS, timeout=120)
    assert_one_line(result, 2, message)


def test_a_row_from_a_newer_harness_is_refused_not_read_silently(run_copy):
    results = run_copy / "results.jsonl"
    rows = results.read_text().splitlines()
    future = json.loads(rows[0]) | {"schema": 99}
    results.write_text("\n".join([json.dumps(future), *rows[1:]]) + "\n")
    result = run_harness("show", str(run_copy), env=PLUGINS)
    assert_one_line(result, 2, "written by a newer harness (row schema 99", "upgrade harness")


def test_a_huge_repeats_in_run_json_is_refused_before_planning(run_copy):
    record = run_copy / "run.json"
    config = json.loads(record.read_text()) | {"repeats": 10**12}
    record.write_text(json.dumps(config))
    result = run_harness("run", "--resume", str(run_copy), env=PLUGINS, timeout=120)
    assert_one_line(result, 2, "damaged run record", "repeats")


@pytest.mark.parametrize(
    ("metric", "value"),
    [("fit_seconds", 1e308), ("peak_rss_bytes", 10**300), ("steady_samples_per_second", -1e300)],
)
def test_a_figure_no_measurement_could_have_is_refused_in_one_line(run_copy, metric, value):
    """huge finite figures made show --json and the scaling analysis overflow and raise."""
    results = run_copy / "results.jsonl"
    rows = results.read_text().splitlines()
    row = json.loads(rows[0])
    row["metrics"][metric] = value
    results.write_text("\n".join([json.dumps(row), *rows[1:]]) + "\n")
    for command in (["show", "--json"], ["show", "--scaling", "--json"], ["report"]):
        result = run_harness(command[0], str(run_copy), *command[1:], env=PLUGINS)
        assert_one_line(result, 2, f"metrics.{metric}: Input should be")


def test_slopes_between_vanishing_figures_are_unknown_not_an_error():
    from harness.analysis.scaling import Point, Series

    series = Series(
        "torch (eager)", (Point(32, (1e-308,)), Point(64, (1e300,)), Point(128, (2e300,)))
    )
    slopes = series.slopes()
    assert slopes[0] == (32, 64, None) and slopes[1][2] == pytest.approx(1.0)
