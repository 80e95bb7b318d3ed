"""Reports, run history and comparison, on real (small) runs made through the CLI."""

import json
import shutil
from pathlib import Path

import pytest

from harness.analysis.runs import load_run, load_runs

from .conftest import harness_env, run_harness

TASKS = Path(__file__).parent.parent / "tasks"
PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")
HOSTILE = "<img src=x onerror=alert('task')>"


def small_run(out, *frameworks, task="mnist_mlp", extra=()):
    args = [
        "run",
        "--task",
        task,
        "--epochs",
        "2",
        "--train-subset",
        "2000",
        "--out",
        str(out),
        *extra,
    ]
    for framework in frameworks:
        args += ["-f", framework]
    result = run_harness(*args, env=PLUGINS)
    runs = sorted(path for path in out.iterdir() if (path / "run.json").exists())
    return result, runs[-1]


def make_reported_run(tmp_path_factory):
    """A run with a framework that finished, one that failed with markup in its message, and a
    task whose description is markup; `harness run` writes the report at its end."""
    folder = tmp_path_factory.mktemp("report")
    task = folder / "escape_check.toml"
    text = (TASKS / "mnist_mlp.toml").read_text()
    task.write_text(
        text.replace('name = "mnist_mlp"', 'name = "escape_check"').replace(
            'description = "', f'description = "{HOSTILE} '
        )
    )
    result, run_dir = small_run(
        folder / "results", "centroid", "markup", task=str(task), extra=["--repeats", "2"]
    )
    assert result.returncode == 1, result.stderr  # the markup cell failed
    return run_dir


def test_run_writes_both_reports_and_the_charts(reported_run):
    assert (reported_run / "report.md").exists() and (reported_run / "report.html").exists()
    charts = sorted(path.name for path in (reported_run / "charts").iterdir())
    assert charts == [
        f"escape_check-{name}.svg" for name in ("epochs", "memory", "throughput", "to-target")
    ]


def test_html_is_self_contained_and_escapes_what_plugins_and_tasks_say(reported_run):
    html = (reported_run / "report.html").read_text()
    assert "<script" not in html and "onerror=" not in html.replace("onerror=alert", "")  # noqa
    assert "&lt;script&gt;alert(&#39;from a plugin&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(&#39;task&#39;)&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert html.count("<svg") == 4


def test_markdown_shows_the_summary_failures_and_environment(reported_run):
    markdown = (reported_run / "report.md").read_text()
    assert "| centroid 2." in markdown and "2/2 ok" in markdown
    assert "&lt;script&gt;" in markdown and "<script>" not in markdown
    assert "| mnist_mlp" not in markdown and "## Task escape_check" in markdown
    assert "](charts/escape_check-to-target.svg)" in markdown
    assert "| cpu_model |" in markdown and "target_missed" in markdown


def test_html_keeps_step_times_on_one_line_and_shows_memory_in_gib(reported_run, tmp_path):
    copy = tmp_path / "steps"
    shutil.copytree(reported_run, copy)
    rows = [json.loads(line) for line in (copy / "results.jsonl").read_text().splitlines()]
    for row in rows:
        if row["status"] == "ok":  # planted: the test plugin samples no steps
            row["metrics"] |= {
                f"step_seconds_p{p}": s for p, s in ((50, 5e-4), (90, 6e-4), (99, 8e-4))
            }
    (copy / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert run_harness("report", str(copy)).returncode == 0
    html = (copy / "report.html").read_text()
    # p50 / p90 / p99 in a cell that doesn't wrap
    assert '<td class="nowrap">0.50 / 0.60 / 0.80</td>' in html
    assert "td.nowrap { white-space: nowrap; }" in html
    environment = json.loads((copy / "environment.json").read_text())
    gib = f"{environment['memory_bytes'] / 2**30:,.1f} GiB"
    assert f'<th class="text">memory</th><td class="text">{gib}</td>' in html
    assert str(environment["memory_bytes"]) not in html
    markdown = (copy / "report.md").read_text()
    assert f"| memory | {gib} |" in markdown and str(environment["memory_bytes"]) not in markdown


def test_load_run_gives_pandas_a_row_per_cell(reported_run):
    frame = load_run(reported_run)
    assert len(frame) == 4 and set(frame["framework"]) == {"centroid", "markup"}
    ok = frame[frame["status"] == "ok"]
    assert (ok["metrics.test_accuracy"] > 0.5).all()
    assert isinstance(ok["metrics.epoch_seconds"].iloc[0], list)  # raw values kept as values
    assert len(load_runs(reported_run.parent)) == 4


def test_runs_lists_past_runs(reported_run):
    result = run_harness("runs", "--results", str(reported_run.parent))
    assert result.returncode == 0, result.stderr
    assert reported_run.name in result.stdout and "centroid, markup" in result.stdout
    assert "2 ok, 2 failed" in result.stdout


def test_report_against_an_earlier_run_adds_the_comparison(reported_run, tmp_path):
    earlier = tmp_path / "earlier"
    shutil.copytree(reported_run, earlier)
    result = run_harness("report", str(reported_run), "--against", str(earlier))
    assert result.returncode == 0, result.stderr
    html = (reported_run / "report.html").read_text()
    assert "Compared with earlier" in html and "no change" in html


def slowed_copy(run_dir, folder, factor, version="9.9"):
    """The same run with every fit time set to 2 s × ``factor`` (a planted slowdown) and,
    unless ``version`` is None, another centroid version. Its rows say the machine was quiet,
    so the figures alone decide the comparison, whatever the machine did during the tests."""
    copy = folder / f"slowed-{factor}-{version}"
    shutil.copytree(run_dir, copy)
    lines = []
    for line in (copy / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["metrics"].get("fit_seconds"):
            # every repeat the same: the measured ones vary with the machine's load
            row["metrics"]["fit_seconds"] = 2.0 * factor
        if row.get("noise"):
            row["noise"] = {"verdict": "quiet", "reason": "planted"}
        lines.append(json.dumps(row))
    (copy / "results.jsonl").write_text("\n".join(lines) + "\n")
    if version is not None:
        environment = json.loads((copy / "environment.json").read_text())
        environment["framework_versions"]["centroid"] = version
        (copy / "environment.json").write_text(json.dumps(environment))
    return copy


def busy_copy(run_dir, folder):
    """The run with the first finished repeat of centroid planted as trained on a busy machine
    and the others as quiet, whatever the machine did while the tests ran."""
    copy = folder / "busy"
    shutil.copytree(run_dir, copy)
    rows = [json.loads(line) for line in (copy / "results.jsonl").read_text().splitlines()]
    finished = [row for row in rows if row["status"] == "ok"]
    for row in finished:
        row["noise"] = {"verdict": "quiet", "reason": "planted"}
    finished[0]["noise"] = {"verdict": "busy", "reason": "planted: others used 1.0 of 2 cores"}
    (copy / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return copy


def test_the_reports_show_a_busy_row_as_the_table_does(reported_run, tmp_path):
    busy = busy_copy(reported_run, tmp_path)
    result = run_harness("report", str(busy))
    assert result.returncode == 0, result.stderr
    html = (busy / "report.html").read_text()
    [row] = [line for line in html.splitlines() if '<td class="text">centroid</td>' in line]
    assert row.count("<td>busy</td>") == 2 and "busy 1/2" in row and "×" not in row
    assert "fastest" not in row and "leanest" not in row
    markdown = (busy / "report.md").read_text()
    [line] = [line for line in markdown.splitlines() if line.startswith("| centroid ")]
    assert line.count("| busy |") == 2 and "busy 1/2" in line and "×" not in line


def test_compare_flags_a_planted_slowdown_and_fails_on_request(reported_run, tmp_path):
    baseline = slowed_copy(reported_run, tmp_path, 1.0, version=None)
    slowed = slowed_copy(reported_run, tmp_path, 1.5)
    result = run_harness("compare", str(baseline), str(slowed), "--fail-on-regression")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "regression" in result.stdout and "1.500" in result.stdout
    assert "framework_versions.centroid" in result.stdout  # what differs between environments
    assert run_harness("compare", str(baseline), str(slowed)).returncode == 0  # just reports


def test_compare_json_gives_the_verdicts_and_the_same_exit_code(reported_run, tmp_path):
    baseline = slowed_copy(reported_run, tmp_path, 1.0, version=None)
    slowed = slowed_copy(reported_run, tmp_path, 1.5)
    result = run_harness("compare", str(baseline), str(slowed), "--json", "--fail-on-regression")
    assert result.returncode == 4, result.stdout + result.stderr
    comparison = json.loads(result.stdout)
    assert comparison["run_a"] == baseline.name and comparison["regressions"] >= 1
    [fit] = [
        metric
        for cell in comparison["cells"]
        for metric in cell["metrics"]
        if metric["metric"] == "fit_seconds"
    ]
    assert fit["verdict"] == "regression" and fit["ratio"] == pytest.approx(1.5)
    assert comparison["environment_differences"]["framework_versions.centroid"][1] == "9.9"
    assert comparison["inconclusive_busy"] == 0


def test_compare_passes_when_nothing_changed_beyond_the_threshold(reported_run, tmp_path):
    baseline = slowed_copy(reported_run, tmp_path, 1.0, version=None)
    same = slowed_copy(reported_run, tmp_path, 1.02)
    result = run_harness("compare", str(baseline), str(same), "--fail-on-regression")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no change" in result.stdout and "regression(s)" not in result.stdout


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_harness("report", str(tmp_path))
    assert result.returncode == 2 and "is not a harness run folder" in result.stderr
