"""The conformance kit's tests: subclass :class:`ConformanceSuite` and name your framework."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.api.adapter import (
    API_VERSION,
    DEVICE_KINDS,
    MODES,
    FrameworkAdapter,
    PluginAPIDeprecationWarning,
    api0_message,
    availability_of,
)
from harness.registry.plugins import get_registry
from harness.testing.probes import PROBES, Probe

#: how far a probe's output may be from the float64 reference (float32 arithmetic)
OUTPUT_RTOL = 1e-4
#: how far training losses (relative) and weights (relative to their scale) may drift from the
#: reference over the training probe's steps
TRAINING_LOSS_RTOL = 1e-4
TRAINING_WEIGHTS_RTOL = 1e-3

#: layer kinds that came with plugin API 1: an adapter of API 0 predates them, and may refuse
#: them with ``UnsupportedSpec`` without declaring so
LAYERS_SINCE_API_1 = frozenset(
    {"patches", "position_embedding", "mean_pool", "layer_norm", "transformer_encoder"}
)

#: probes of an older layer kind used in a way that came with plugin API 1
PROBES_SINCE_API_1 = frozenset({"dense_sequence"})

#: layer kinds that came with plugin API 2 (the ResNet's): an adapter of an older API may
#: refuse them with ``UnsupportedSpec`` (its cells of such a task are then skipped)
LAYERS_SINCE_API_2 = frozenset({"batch_norm", "global_avg_pool2d", "residual_block"})

#: a language model's (plugin API 3): the embedding, and the causal mask of an older kind
LAYERS_SINCE_API_3 = frozenset({"embedding"})
PROBES_SINCE_API_3 = frozenset({"causal_transformer_encoder", "small_gpt"})

#: how far the moving statistics may be from the task's update (float32 arithmetic); PyTorch's
#: momentum unconverted is off by about 1, its unbiased variance by about 1e-2
MOVING_STATISTICS_RTOL = 1e-5


def api_of(kinds: set[str], probe_name: str) -> int:
    """The plugin API that brought the layer kinds (or the use of them) a probe needs."""
    if kinds & LAYERS_SINCE_API_3 or probe_name in PROBES_SINCE_API_3:
        return 3
    if kinds & LAYERS_SINCE_API_2:
        return 2
    if kinds & LAYERS_SINCE_API_1 or probe_name in PROBES_SINCE_API_1:
        return 1
    return 0


_reports: dict[str, dict[str, Any]] = {}
#: why a framework's checks could not run, kept so the other tests fail at once with it
_failures: dict[str, str] = {}


def conformance_report(framework: str, timeout: float = 900) -> dict[str, Any]:
    """Run the framework's checks in a child process (once per test session) and return them.

    When the child can't even run them (an empty skeleton raising ``NotImplementedError``),
    every test fails at once with the same first thing to fix, instead of each starting a
    process to find it again.
    """
    if framework in _failures:
        raise AssertionError(_failures[framework])
    if framework not in _reports:
        try:
            _reports[framework] = _run_checks(framework, timeout)
        except AssertionError as exc:
            _failures[framework] = str(exc)
            raise
    return _reports[framework]


def _run_checks(framework: str, timeout: float) -> dict[str, Any]:
    from harness.runner.child_spec import ChildSpec
    from harness.runner.process import Limits, run_child

    spec = ChildSpec(entry="harness.testing.checks:run_conformance", framework=framework, threads=1)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "conformance.log"
        outcome = run_child(spec, threads=1, limits=Limits(timeout), log_path=log)
        failure = outcome.failure(Limits(timeout), log)
        log_text = log.read_text(errors="replace")[-4000:]
    if failure is not None:
        raise AssertionError(
            f"the conformance checks of {framework!r} failed: {failure[1]}\n{log_text}"
        )
    assert outcome.result is not None
    if outcome.result["status"] != "ok":  # e.g. no "eager" mode, no "cpu" device
        raise AssertionError(
            f"the conformance checks of {framework!r} could not run: "
            f"{outcome.result['status']}: {outcome.result.get('error')}"
        )
    runtime = next((e for e in outcome.events if e.get("event") == "runtime"), {})
    return {**outcome.result.get("metrics", {}), "runtime": runtime}


def _probe_id(probe: Probe) -> str:
    return probe.name


class ConformanceSuite:
    """The contract of a framework plugin. Set :attr:`framework` in a subclass named ``Test...``.

    :attr:`unsupported_layers` lists layer kinds the plugin deliberately can't express; their
    probes must then be refused with ``UnsupportedSpec``.
    """

    framework: ClassVar[str] = ""
    unsupported_layers: ClassVar[frozenset[str]] = frozenset()

    # -- fixtures ------------------------------------------------------------------

    @pytest.fixture
    def adapter(self) -> FrameworkAdapter:
        if not self.framework:
            pytest.fail(f'{type(self).__name__}: set `framework = "<name>"` on the class')
        return get_registry().framework(self.framework)

    @pytest.fixture
    def report(self, adapter: FrameworkAdapter) -> dict[str, Any]:
        availability = availability_of(adapter)
        assert availability.available, availability.reason
        return conformance_report(self.framework)

    # -- registration and metadata -------------------------------------------------

    def test_registers_under_its_name_with_metadata(self, adapter: FrameworkAdapter):
        assert adapter.name == self.framework
        for attribute in ("import_name", "distribution"):
            value = getattr(adapter, attribute, None)
            assert isinstance(value, str) and value, f"set the class attribute {attribute}"
        assert adapter.modes and set(adapter.modes) <= set(MODES), adapter.modes
        assert "eager" in adapter.modes
        assert availability_of(adapter).available, availability_of(adapter).reason
        assert adapter.version(), f"no installed distribution named {adapter.distribution!r}"

    def test_speaks_the_current_plugin_api(self, adapter: FrameworkAdapter):
        """An adapter of plugin API 0 passes, with a deprecation warning that says what moved."""
        version = getattr(adapter, "api_version", 0)
        assert version <= API_VERSION, (
            f"written for plugin API {version}; this harness speaks API {API_VERSION}"
        )
        if version < 1:  # API 0 is deprecated; API 1 is older, not deprecated
            warnings.warn(api0_message(adapter), PluginAPIDeprecationWarning, stacklevel=1)

    def test_keeps_per_cell_state_on_its_session(self, report: dict[str, Any]):
        """The registered adapter serves every cell of a process: setup() and the session's
        work must not store anything on it (plugin API 1)."""
        if report["api_version"] < 1:
            return  # API 0 kept its state on the adapter by design
        assert not report["adapter_state_added"], (
            f"setup() or the session set {report['adapter_state_added']} on the adapter: keep "
            "per-cell state on the Session that setup() returns"
        )

    def test_reports_its_devices_and_sets_up_the_cpu(self, report: dict[str, Any]):
        runtime = report["runtime"]
        assert runtime.get("device") == "cpu"
        assert runtime.get("device_name"), "RuntimeInfo.device_name is empty"
        assert isinstance(runtime.get("settings"), dict)
        assert set(report["devices"]) <= set(DEVICE_KINDS) and "cpu" in report["devices"]

    def test_reports_what_its_products_compute_in(self, report: dict[str, Any]):
        """Plugin API 4: the runtime's precision manifest (harness.api.precision) says the
        kit's float32 cell computes in float32, TF32 off."""
        if report["api_version"] < 4:
            pytest.skip("the precision manifest: plugin API 4, newer than the adapter's")
        manifest = report["runtime"].get("precision_manifest", {})
        assert manifest.get("precision") == "float32", manifest
        assert manifest.get("compute") == "float32", manifest
        assert manifest.get("tf32") is False, manifest

    def test_float32_products_keep_every_float32_bit(self, report: dict[str, Any]):
        """A float32 cell's dense product is exact in float32: no TF32 or bfloat16 rounding of
        its factors (a framework default that allows it must be switched off in setup)."""
        result = report["float32_products"]
        assert result["status"] == "ok", f"{result.get('error_type')}: {result.get('error')}"
        assert result["exact"], (
            f"(1 + 2**-11)**2 came out {result['output']!r}, not {result['expected']!r}: the "
            "factors were rounded to fewer than float32's bits (TF32 or bfloat16 left on)"
        )

    def test_reports_no_device_memory_on_the_cpu(self, report: dict[str, Any]):
        memory = report["memory"]
        assert memory["type"] in ("NoneType", "int"), memory
        assert memory["value"] is None or memory["value"] >= 0

    # -- layers --------------------------------------------------------------------

    def _probe(self, report: dict[str, Any], probe: Probe) -> dict[str, Any]:
        result = report["probes"][probe.name]
        kinds = {layer["kind"] for layer in probe.layers}
        since, declared = api_of(kinds, probe.name), report.get("api_version", 0)
        if result["status"] != "ok" and declared < since:
            # an adapter written before these layers (or uses of a layer) existed can't know
            # them: a task that needs them is one it can't run, which its cells say
            pytest.skip(f"{probe.name}: plugin API {since}, newer than the adapter's {declared}")
        if kinds & self.unsupported_layers:
            assert result["status"] == "unsupported", (
                f"{probe.name}: declared unsupported, so build must raise UnsupportedSpec"
            )
            pytest.skip(
                f"{', '.join(sorted(kinds & self.unsupported_layers))} declared unsupported"
            )
        assert result["status"] == "ok", (
            f"{probe.name}: {result.get('stage', 'build')} raised "
            f"{result.get('error_type', 'UnsupportedSpec')}: {result.get('error')}\n"
            f"{result.get('traceback', '')}"
        )
        return result

    @pytest.mark.parametrize("probe", PROBES, ids=_probe_id)
    def test_layer_output_matches_the_numpy_reference(self, report, probe):
        result = self._probe(report, probe)
        assert result["shape"] == result["expected_shape"]
        rtol = probe.rtol or OUTPUT_RTOL
        assert result["output_difference"] <= rtol, (
            f"{probe.name}: output differs from the reference by {result['output_difference']:.2e} "
            f"of its scale, more than {rtol:g} (largest absolute difference "
            f"{result['max_abs_difference']:.2e})"
        )

    @pytest.mark.parametrize("probe", PROBES, ids=_probe_id)
    def test_counts_the_tasks_parameters(self, report, probe):
        result = self._probe(report, probe)
        assert result["parameters"] == result["expected_parameters"]

    @pytest.mark.parametrize("probe", PROBES, ids=_probe_id)
    def test_returns_the_weights_it_was_given(self, report, probe):
        result = self._probe(report, probe)
        assert result["weights_difference"] == 0.0

    def test_refuses_a_layer_kind_it_does_not_know_with_unsupported_spec(self, report):
        unknown = report["unknown_layer"]
        assert unknown["raised"] == "UnsupportedSpec", (
            f"build raised {unknown['raised']} ({unknown['message']}) for an unknown layer kind"
        )

    def test_batch_norm_keeps_its_moving_statistics_as_the_task_says(self, report):
        """Keras's momentum convention and the biased batch variance (harness.workload.tasks
        .BatchNorm): a plugin converts its framework's own."""
        result = report["batch_norm_statistics"]
        if result["status"] != "ok" and report.get("api_version", 0) < 2:
            pytest.skip("batch_norm: plugin API 2, newer than the adapter's")
        if "batch_norm" in self.unsupported_layers:
            assert result["status"] == "unsupported", result
            pytest.skip("batch_norm declared unsupported")
        assert result["status"] == "ok", (
            f"{result.get('error_type', 'UnsupportedSpec')}: {result.get('error')}\n"
            f"{result.get('traceback', '')}"
        )
        for name, difference in result["differences"].items():
            assert difference <= MOVING_STATISTICS_RTOL, (
                f"{name} after one step is {difference:.2e} of its scale from "
                "momentum * old + (1 - momentum) * batch (Keras's momentum, the biased variance)"
            )

    # -- training ------------------------------------------------------------------

    def _training(self, report: dict[str, Any], kind: str) -> dict[str, Any]:
        result = report["training"][kind]
        assert result["status"] == "ok", (
            f"{result.get('error_type')}: {result.get('error')}\n{result.get('traceback', '')}"
        )
        return result

    @pytest.mark.parametrize("kind", ["classifier", "regressor"])
    def test_one_step_matches_the_reference(self, report, kind):
        result = self._training(report, kind)
        expected, got = result["expected_losses"][0], result["losses"][0]
        assert abs(got - expected) <= TRAINING_LOSS_RTOL * abs(expected), (got, expected)

    @pytest.mark.parametrize("kind", ["classifier", "regressor"])
    def test_several_steps_match_the_reference(self, report, kind):
        result = self._training(report, kind)
        for step, (got, expected) in enumerate(
            zip(result["losses"], result["expected_losses"], strict=True), 1
        ):
            assert abs(got - expected) <= TRAINING_LOSS_RTOL * abs(expected), (step, got, expected)
        assert result["weights_difference"] <= TRAINING_WEIGHTS_RTOL, result["weights_difference"]

    def test_follows_the_learning_rate_schedule(self, report):
        """Plugin API 4: with the recipe's warm-up and cosine schedule, every step's update uses
        the schedule's learning rate (an adapter that ignores it trains at the peak rate)."""
        result = report["schedule"]
        if report["api_version"] < 4:
            pytest.skip("the learning-rate schedule: plugin API 4, newer than the adapter's")
        assert result["status"] == "ok", (
            f"{result.get('error_type')}: {result.get('error')}\n{result.get('traceback', '')}"
        )
        for step, (got, expected) in enumerate(
            zip(result["losses"], result["expected_losses"], strict=True), 1
        ):
            assert abs(got - expected) <= TRAINING_LOSS_RTOL * abs(expected), (step, got, expected)
        assert result["weights_difference"] <= TRAINING_WEIGHTS_RTOL, (
            f"weights {result['weights_difference']:.2e} of their scale from the reference's "
            f"after steps at learning rates {result['learning_rates']}"
        )

    def test_profiles_its_steps_with_each_step_marked(self, report):
        """``Session.profiler`` (optional): three steps under the framework's profiler leave a
        trace with one marker per step the trainer timed, and operations the profiler's
        ``category`` recognises inside each; skipped, with the reason, without a profiler."""
        result = report["profiler"]
        if result["status"] == "not_profiled":
            pytest.skip(f"not profiled: {result['reason']}")
        assert result["status"] == "ok", (
            f"{result.get('error_type')}: {result.get('error')}\n{result.get('traceback', '')}"
        )
        assert result["timed"] == 3, "train_epoch must honour the step clock for every step"
        assert result["markers"] == [f"harness step {n}" for n in range(3)]
        assert result["unknown_categories"] == []
        assert all(share > 0 for share in result["operation_shares"]), (
            "a profiled step in which no event was recognised as an operation: "
            f"{result['operation_shares']}"
        )

    def test_train_epoch_and_evaluate_return_what_the_runner_reads(self, report):
        classifier = self._training(report, "classifier")
        assert classifier["train_epoch_returns"] in ("float", "float32", "float64")
        evaluation = classifier["evaluation"]
        assert evaluation["loss_finite"]
        assert evaluation["accuracy"] is not None and 0.0 <= evaluation["accuracy"] <= 1.0
        regression = self._training(report, "regressor")["evaluation"]
        assert regression["accuracy"] is None, "a mean_squared_error task has no accuracy"
        assert regression["loss_finite"]
