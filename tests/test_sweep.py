"""Sweeps through the CLI: `harness run --vary`, its rows, report, scaling section and errors.

The sweep trains mnist_mlp on 512 samples for two epochs at two batch sizes, with torch and
the numpy ``centroid`` framework of tests/support/harness_test_plugins.py: seconds of work.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from harness.registry.catalog import load_task
from harness.testing.fixtures import read_rows
from harness.workload.variants import VaryError, key_path, parse_vary, sweep, variant_name

from .conftest import harness_env, run_harness

PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")
SWEEP = [
    "--vary",
    "training.batch_size=32,128",
    "--vary",
    "training.epochs=2",
    "--vary",
    "dataset.train_samples=512",
]


def run_folders(out):
    return sorted(path for path in out.iterdir() if (path / "run.json").exists())


def make_swept_run(tmp_path_factory):
    """One small sweep, run through the CLI; its run folder."""
    out = tmp_path_factory.mktemp("sweep") / "results"
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "-f",
        "torch",
        *SWEEP,
        "--out",
        str(out),
        env=PLUGINS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [run_dir] = run_folders(out)
    return run_dir, result.stdout


def test_every_variant_is_run_by_every_framework_and_recorded_in_its_rows(swept_run):
    run_dir, _ = swept_run
    rows = read_rows(run_dir)
    # repeats outermost, then the variants, then the frameworks
    assert [(row["variant"], row["framework"]) for row in rows] == [
        ({"training.batch_size": 32}, "centroid"),
        ({"training.batch_size": 32}, "torch"),
        ({"training.batch_size": 128}, "centroid"),
        ({"training.batch_size": 128}, "torch"),
    ]
    assert rows[1]["cell_id"] == "mnist_mlp[batch_size=32]-torch-eager-auto-r0"
    assert all(row["task"] == "mnist_mlp" and row["status"] == "ok" for row in rows)
    assert {row["metrics"]["train_samples"] for row in rows} == {512}  # the single values apply
    assert {row["metrics"]["epochs"] for row in rows} == {2}
    config = json.loads((run_dir / "run.json").read_text())
    assert config["vary"] == [["training.batch_size", [32, 128]]]
    assert config["task"]["dataset"]["train_samples"] == 512
    # a log file per cell, under a safe name
    assert len(list((run_dir / "logs").glob("mnist_mlp_batch_size_*.log"))) == 4


def test_the_terminal_shows_each_variant_and_the_scaling_section(swept_run):
    _, stdout = swept_run
    # one key varied: it heads the variant column, its values below
    assert re.search(r"^batch_size\s+framework", stdout, flags=re.MULTILINE)
    assert re.search(r"^128\s+torch", stdout, flags=re.MULTILINE)
    assert "scaling over batch_size: steady throughput (samples/s), median" in stdout
    assert "log-log slope of steady throughput between neighbouring values" in stdout
    assert "32→128" in stdout
    # the one pair is either ordered, or tied, at each batch size: a sentence says which
    assert re.search(r"(is faster than|are tied|keep one order)", stdout)


#: steady throughput planted per (batch size, framework): centroid leads at 32, torch at 128
PLANTED_THROUGHPUT = {(32, "centroid"): 1000.0, (32, "torch"): 500.0}
PLANTED_THROUGHPUT |= {(128, "centroid"): 1000.0, (128, "torch"): 2000.0}


@pytest.fixture(scope="module")
def planted_sweep(swept_run, tmp_path_factory):
    """The swept run with its throughputs planted (a crossing between 32 and 128) and its machine
    quiet, reported again: what the report says then follows from the figures, not the machine."""
    run_dir, _ = swept_run
    copy = tmp_path_factory.mktemp("planted") / run_dir.name
    shutil.copytree(run_dir, copy)
    rows = read_rows(copy)
    for row in rows:
        throughput = PLANTED_THROUGHPUT[row["variant"]["training.batch_size"], row["framework"]]
        row["metrics"]["steady_samples_per_second"] = throughput
        row["noise"] = {"verdict": "quiet", "reason": "planted"}
    (copy / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_harness("report", str(copy), env=PLUGINS)
    assert result.returncode == 0, result.stdout + result.stderr
    return copy


def test_the_report_has_a_scaling_section_with_log_log_charts(planted_sweep):
    run_dir = planted_sweep
    markdown = (run_dir / "report.md").read_text()
    assert "## Scaling over batch_size" in markdown
    assert "### Crossovers: steady throughput" in markdown
    assert (
        "- **crosses**: centroid (eager) is faster than torch (eager) at batch_size 32; "
        "torch (eager) is faster than centroid (eager) at batch_size 128"
    ) in markdown
    assert "## Task mnist_mlp\\[batch_size=32\\]" in markdown  # a section per variant
    charts = sorted(path.name for path in (run_dir / "charts").glob("mnist_mlp-scaling-*.svg"))
    assert charts == [
        f"mnist_mlp-scaling-training.batch_size-{metric}.svg"
        for metric in (
            "achieved_flops_per_second",
            "peak_rss_bytes",
            "steady_samples_per_second",
            "step_seconds_mean",
        )
    ]
    html = (run_dir / "report.html").read_text()
    assert html.count('class="chart scaling-chart"') == 4
    assert "<script" not in html


def test_show_prints_the_scaling_section_and_its_json(swept_run):
    run_dir, _ = swept_run
    shown = run_harness("show", str(run_dir), env=PLUGINS)
    assert shown.returncode == 0 and "scaling over batch_size" in shown.stdout
    as_json = run_harness("show", str(run_dir), "--scaling", "--json", env=PLUGINS)
    [analysis] = json.loads(as_json.stdout)
    assert analysis["key"] == "training.batch_size" and analysis["values"] == [32, 128]
    throughput = analysis["metrics"][0]
    assert throughput["metric"] == "steady_samples_per_second"
    assert sorted(s["label"] for s in throughput["series"]) == ["centroid (eager)", "torch (eager)"]
    [pair] = analysis["crossovers"]
    assert pair["sentence"] and {s["order"] for s in pair["segments"]} <= {-1, 0, 1}
    rows = json.loads(run_harness("show", str(run_dir), "--json", env=PLUGINS).stdout)
    assert [row["variant"]["training.batch_size"] for row in rows] == [32, 32, 128, 128]


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        (
            "training.batchsize=32,64",
            "--vary training.batchsize: the task has no training.batchsize",
        ),
        ("training.batch_size=0,64", "training.batch_size: Input should be greater than 0"),
        ("training.batch_size=32.0", "is a decimal number"),
        ("training.batch_size", "write KEY=V1,V2,…"),
        ("training..batch_size=3", "not a key like training.batch_size"),
        ("model.layers[7].units=8", "model.layers[7] does not exist (3 entries)"),
        (
            "model.layers=8",
            "model.layers is a list: give lists ([8, 8]), or vary one of its values",
        ),
        ("training=8", "training is a table, or vary one of its values"),
        ("model.layers[1].units=64,64", "a value is given twice"),
        ("dataset.train_samples=60000", "dataset.train_samples is 60,000"),
    ],
)
def test_a_bad_vary_is_one_line_exit_2_and_no_run_folder(tmp_path, vary, message):
    out = tmp_path / "results"
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "--vary",
        vary,
        "--out",
        str(out),
        env=PLUGINS,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
    assert not out.exists() or run_folders(out) == []


def test_variants_are_the_product_of_the_values_validated_and_named():
    task = load_task("mnist_mlp")
    base, found = sweep(
        task,
        [
            parse_vary("model.layers[1].units=16,32"),
            parse_vary("training.optimizer.learning_rate=0.01"),
            parse_vary("training.batch_size=64,256"),
        ],
    )
    assert base.training.optimizer.learning_rate == 0.01  # a single value is an override
    assert [variant.name for variant in found] == [
        "mnist_mlp[layers[1].units=16,batch_size=64]",
        "mnist_mlp[layers[1].units=16,batch_size=256]",
        "mnist_mlp[layers[1].units=32,batch_size=64]",
        "mnist_mlp[layers[1].units=32,batch_size=256]",
    ]
    assert [variant.task.model.layers[1].units for variant in found] == [16, 16, 32, 32]
    assert all(variant.task.training.optimizer.learning_rate == 0.01 for variant in found)
    assert key_path("model.layers[1].units") == ("model", "layers", 1, "units")
    assert variant_name("t", {"training.optimizer.learning_rate": 0.001}) == (
        "t[optimizer.learning_rate=0.001]"
    )
    with pytest.raises(VaryError, match="given twice"):
        sweep(task, [parse_vary("training.epochs=1,2"), parse_vary("training.epochs=3,4")])


def test_check_agreement_gives_each_variant_its_own_verdict(tmp_path):
    """Each variant's verdict is cached apart, and a sweep's rows carry their own variant's."""
    env = harness_env(HARNESS_PLUGINS="harness_test_plugins", XDG_CACHE_HOME=str(tmp_path))
    common = ["--task", "mnist_mlp", "-f", "centroid", "-f", "tempfolder"]
    checked = run_harness(
        "check-agreement",
        *common,
        "--steps",
        "3",
        "--threads",
        "1",
        "--vary",
        "training.batch_size=32,64",
        env=env,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in ("mnist_mlp[batch_size=32]", "mnist_mlp[batch_size=64]"):
        assert f"{name}: the frameworks agree over 3 steps" in checked.stdout
    entries = json.loads((tmp_path / "harness" / "agreement.json").read_text())
    assert len(entries) == 2

    out = tmp_path / "results"
    ran = run_harness(
        "run",
        *common,
        "--vary",
        "training.batch_size=32,128",
        "--vary",
        "training.epochs=1",
        "--vary",
        "dataset.train_samples=256",
        "--out",
        str(out),
        "--no-report",
        env=env,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [run_dir] = run_folders(out)
    rows = json.loads(run_harness("show", str(run_dir), "--json", env=env).stdout)
    # batch size 32 was checked (with 256 samples trained it is another task: not vouched for)
    assert {row["agreement"] for row in rows} == {None}
    rechecked = run_harness(
        "check-agreement",
        *common,
        "--steps",
        "3",
        "--threads",
        "1",
        "--vary",
        "training.batch_size=32",
        "--vary",
        "dataset.train_samples=256",
        env=env,
    )
    assert rechecked.returncode == 0, rechecked.stdout + rechecked.stderr
    rows = json.loads(run_harness("show", str(run_dir), "--json", env=env).stdout)
    verdicts = {row["variant"]["training.batch_size"]: row["agreement"] for row in rows}
    assert verdicts == {32: "pass (3 steps)", 128: None}


def test_check_agreement_refuses_a_bad_vary_in_one_line(tmp_path):
    result = run_harness(
        "check-agreement",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "-f",
        "tempfolder",
        "--vary",
        "training.nope=1,2",
        env=PLUGINS,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --vary training.nope: the task has no training.nope")


def test_resume_finishes_a_sweep_with_its_recorded_variants(tmp_path):
    out = tmp_path / "results"
    first = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "--vary",
        "training.batch_size=32,64",
        "--vary",
        "dataset.train_samples=300",
        "--vary",
        "training.epochs=1",
        "--out",
        str(out),
        "--no-report",
        env=PLUGINS,
    )
    assert first.returncode == 0, first.stderr
    [run_dir] = run_folders(out)
    results = run_dir / "results.jsonl"
    results.write_text(results.read_text().splitlines()[0] + "\n")  # as if cut short

    resumed = run_harness("run", "--resume", str(run_dir), "--no-report", env=PLUGINS)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 cell(s) already have a result" in resumed.stdout
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["cell_id"] for row in rows] == [
        "mnist_mlp[batch_size=32]-centroid-eager-auto-r0",
        "mnist_mlp[batch_size=64]-centroid-eager-auto-r0",
    ]
    assert rows[1]["variant"] == {"training.batch_size": 64}
    assert rows[1]["metrics"]["train_samples"] == 300


@pytest.mark.parametrize("stop", ["TERM", "INT"])
def test_a_cell_stopped_from_outside_in_the_second_variant_is_run_again_by_resume(tmp_path, stop):
    """``kill`` of the cell's process is the run being stopped, not a result: no row for it."""
    out = tmp_path / "results"
    env = {
        **PLUGINS,
        "HARNESS_TEST_STOP_MARKER": str(tmp_path / "stopped"),
        "HARNESS_TEST_STOP_SIGNAL": stop,
    }
    sweep_options = ["--vary", "training.batch_size=32,64", "--vary", "training.epochs=1"]
    first = run_harness(
        "run", "--task", "mnist_mlp", "-f", "stopped-once", "--train-subset", "300",
        *sweep_options, "--out", str(out), "--no-report", env=env,
    )  # fmt: skip
    assert first.returncode == (143 if stop == "TERM" else 130), first.stderr
    assert "1 of 2 cell(s) done; finish the run with: harness run --resume" in first.stderr
    [run_dir] = run_folders(out)
    assert [row["variant"] for row in read_rows(run_dir)] == [{"training.batch_size": 32}]

    resumed = run_harness("run", "--resume", str(run_dir), "--no-report", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 cell(s) already have a result" in resumed.stdout
    rows = read_rows(run_dir)
    assert [row["variant"]["training.batch_size"] for row in rows] == [32, 64]
    assert {row["status"] for row in rows} == {"ok"}


def test_rows_with_variants_this_harness_cannot_apply_keep_what_they_carry():
    """A row from a foreign or damaged run folder: an unknown key, a value of the wrong kind."""
    from harness.analysis.annotate import annotate
    from harness.analysis.scaling import analyse

    task = load_task("mnist_mlp")
    base = {"framework": "torch", "status": "ok", "device": "cpu", "agreement": "pass (9 steps)"}
    rows = [
        {**base, "metrics": {"test_accuracy": 0.99}, "variant": {"training.batch_size": {"x": 1}}},
        {**base, "metrics": {"test_accuracy": 0.5}, "variant": {"../x[": 1}},
    ]
    annotated = annotate(rows, task, task.target)
    assert [row["met_target"] for row in annotated] == [True, False]  # judged all the same
    assert [row["agreement"] for row in annotated] == ["pass (9 steps)"] * 2  # kept
    assert analyse(annotated) == []  # no key with two numeric values: nothing to plot


def test_a_seed_sweep_makes_no_scaling_section():
    """a seed is a label, not an amount: rows varied over it get no curves or slopes."""
    from harness.analysis.scaling import analyse

    def row(seed, fit):
        metrics = {"fit_seconds": fit, "steady_samples_per_second": 100.0 / fit, "epochs": 1}
        metrics |= {"train_samples": 512, "steady_epoch_seconds": fit}
        return {"status": "ok", "framework": "torch", "mode": "eager", "task": "mnist_mlp",
                "variant": {"seed": seed}, "metrics": metrics}  # fmt: skip

    assert analyse([row(1, 2.0), row(2, 2.2), row(3, 2.1)]) == []
    assert [a.key for a in analyse([{**row(1, 2.0), "variant": {"training.batch_size": 32}},
                                    {**row(2, 2.2), "variant": {"training.batch_size": 64}}])] == [
        "training.batch_size"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ("name=other_task,mnist_mlp", "--vary name: the task's name labels every row"),
        ("dataset.name=mnist,fashion_mnist", "run once per dataset with --dataset NAME"),
        ("training.epochs=1\nfoo = 2", "a value holds a line break or a control character"),
    ],
)
def test_a_sweep_that_would_mislabel_or_smuggle_is_refused(vary, message):
    with pytest.raises(VaryError, match=re.escape(message)):
        parse_vary(vary)


def test_values_that_print_alike_never_share_a_cell_id():
    close = variant_name("mnist_mlp", {"training.optimizer.learning_rate": 0.0010000001})
    plain = variant_name("mnist_mlp", {"training.optimizer.learning_rate": 0.001})
    assert plain == "mnist_mlp[optimizer.learning_rate=0.001]" and close != plain


def test_a_list_value_can_be_varied_whole():
    """--vary model.input_shape=[28,28,1]: commas inside brackets belong to the list."""
    assert parse_vary("model.input_shape=[28,28,1],[28,28]") == (
        "model.input_shape",
        [[28, 28, 1], [28, 28]],
    )
    base, _ = sweep(load_task("mnist_mlp"), [parse_vary("model.input_shape=[28,28,1]")])
    assert list(base.model.input_shape) == [28, 28, 1]
