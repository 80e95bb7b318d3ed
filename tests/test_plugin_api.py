"""Plugin API versions: API 1 adapters return a Session from setup(); API 0 adapters keep working
behind a session of the runner's, with a deprecation warning; a newer API is refused politely."""

from __future__ import annotations

import numpy as np
import pytest

import harness
from harness.api.adapter import (
    API_VERSION,
    FrameworkAdapter,
    PluginAPIDeprecationWarning,
    RuntimeInfo,
    Session,
    StepClock,
    open_session,
)
from harness.commands.listing import framework_summaries


class CountingTrainer:
    """Records what train_epoch was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def train_epoch(self, batch_order):  # an API 0 trainer: no clock argument
        self.calls.append(tuple(batch_order))
        return 0.5


class Api0Adapter(FrameworkAdapter):
    """Written against plugin API 0: setup() takes no mode and returns RuntimeInfo."""

    name = "api0"
    import_name = "json"
    distribution = "harness"

    def devices(self):
        return ["cpu"]

    def setup(self, *, device, threads):
        self.device = device  # API 0 kept per-cell state on the adapter
        return RuntimeInfo(device=device, device_name="cpu", settings={"threads": threads})

    def build(self, task, weights, x, y):
        return CountingTrainer()

    def peak_device_memory_bytes(self):
        return 7


class Api1Session(Session):
    def build(self, task, weights, x, y):
        return CountingTrainer()


class Api1Adapter(Api0Adapter):
    name = "api1"
    api_version = 1

    def setup(self, *, device, threads, mode="eager"):
        return Api1Session(RuntimeInfo(device=device, device_name="cpu", settings={"mode": mode}))


class MisdeclaredAdapter(Api0Adapter):
    """Declares API 1 but still returns RuntimeInfo."""

    name = "misdeclared"
    api_version = 1

    def setup(self, *, device, threads, mode="eager"):
        return RuntimeInfo(device=device, device_name="cpu")


class FutureAdapter(Api1Adapter):
    name = "future"
    api_version = API_VERSION + 1


def test_an_api1_adapter_returns_its_own_session():
    session = open_session(Api1Adapter(), device="cpu", threads=2, mode="eager")
    assert isinstance(session, Api1Session)
    assert session.runtime.settings == {"mode": "eager"}
    assert session.peak_device_memory_bytes() is None  # Session's default


def test_an_api0_adapter_is_wrapped_in_a_session_and_warned_about():
    adapter = Api0Adapter()
    with pytest.warns(PluginAPIDeprecationWarning, match="'api0' adapter speaks plugin API 0"):
        session = open_session(adapter, device="cpu", threads=2, mode="eager")

    assert isinstance(session, Session)
    assert session.runtime.settings == {"threads": 2}  # setup() got only what it accepts
    assert session.peak_device_memory_bytes() == 7  # the adapter's own method
    trainer = session.build(None, [], np.zeros((4, 1)), np.zeros(4))
    # the clock is left out for a train_epoch that doesn't take it
    assert trainer.train_epoch(np.arange(3), clock=StepClock()) == 0.5
    assert trainer.calls == [(0, 1, 2)]


def test_an_adapter_that_declares_api1_but_returns_runtime_info_is_told_what_to_return():
    with pytest.raises(TypeError, match="returned RuntimeInfo; an adapter of plugin API 1"):
        open_session(MisdeclaredAdapter(), device="cpu", threads=1, mode="eager")


class ApiPlugin:
    @harness.hookimpl
    def harness_register_frameworks(self, register):
        register(Api0Adapter())
        register(Api1Adapter())
        register(FutureAdapter())


def test_harness_list_gives_each_frameworks_api_and_refuses_a_newer_one(register_plugin):
    register_plugin(ApiPlugin(), "api-plugin")
    listed = {entry["name"]: entry for entry in framework_summaries()["frameworks"]}

    assert listed["api1"]["api_version"] == 1 and listed["api1"]["available"]
    assert listed["api1"]["reason"] == ""
    assert listed["api0"]["api_version"] == 0 and listed["api0"]["available"]
    assert "plugin API 0, deprecated" in listed["api0"]["reason"]
    assert not listed["future"]["available"]
    assert f"written for plugin API {API_VERSION + 1}" in listed["future"]["reason"]
    for builtin in ("tensorflow", "torch", "jax"):
        assert listed[builtin]["api_version"] == API_VERSION


class Api0MinimalAdapter(Api0Adapter):
    """An API 0 adapter that relied on the adapter's defaults for the optional methods."""

    name = "api0-minimal"
    peak_device_memory_bytes = FrameworkAdapter.peak_device_memory_bytes


def test_an_api0_adapter_keeps_the_defaults_it_inherited():
    with pytest.warns(PluginAPIDeprecationWarning):
        session = open_session(Api0MinimalAdapter(), device="cpu", threads=1, mode="eager")
    assert session.peak_device_memory_bytes() is None
    with pytest.raises(NotImplementedError):
        session.matmul_seconds(8, 1)
