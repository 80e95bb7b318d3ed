import subprocess
import sys

import pytest

import harness
from harness.api.adapter import FrameworkAdapter, RuntimeInfo
from harness.registry.plugins import PluginError, Registry, UnknownFramework
from harness.testing.fixtures import read_rows

from .conftest import harness_env, run_harness


class NothingAdapter(FrameworkAdapter):
    """The smallest adapter: registered and listed, never trained."""

    name = "nothing"
    import_name = "json"
    distribution = "harness"

    def devices(self):
        return ["cpu"]

    def setup(self, *, device, threads):
        return RuntimeInfo(device=device, device_name="cpu")

    def build(self, task, weights, x, y):
        raise NotImplementedError


class NothingPlugin:
    @harness.hookimpl
    def harness_register_frameworks(self, register):
        register(NothingAdapter())


def test_builtin_plugins_come_through_entry_points(registry):
    for name in ("tensorflow", "torch", "jax"):
        entry = registry.frameworks[name]
        assert entry.source == "built-in"
        assert entry.plugin == name
        assert entry.adapter.name == name


def test_listing_frameworks_imports_none_of_them():
    code = (
        "import sys; from harness.registry.plugins import get_registry; r = get_registry();"
        "[e.adapter.version() for e in r.frameworks.values()];"
        "[e.adapter.availability() for e in r.frameworks.values()];"
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_plugin_registered_in_process_is_looked_up_by_name(registry, register_plugin):
    register_plugin(NothingPlugin(), "nothing-plugin")
    assert isinstance(registry.framework("nothing"), NothingAdapter)
    assert registry.frameworks["nothing"].source == "in-process"
    registry.remove_plugin("nothing-plugin")
    assert "nothing" not in registry.frameworks


def test_two_plugins_claiming_one_name_is_an_error_naming_both(register_plugin):
    register_plugin(NothingPlugin(), "first")
    with pytest.raises(
        PluginError, match="'nothing' is registered by two plugins: 'first'.* and 'second'"
    ):
        register_plugin(NothingPlugin(), "second")


def test_a_plugin_that_raises_while_registering_is_contained(registry, register_plugin):
    class Broken:
        @harness.hookimpl
        def harness_register_frameworks(self, register):
            raise RuntimeError("no licence server")

    register_plugin(Broken(), "broken")
    assert "torch" in registry.frameworks  # the others still registered
    assert registry.failure("broken").reason == "RuntimeError: no licence server"


def test_a_strict_registry_re_raises():
    registry = Registry(strict=True)

    class Broken:
        @harness.hookimpl
        def harness_register_frameworks(self, register):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        registry.add_plugin(Broken(), name="broken")


def test_an_unknown_framework_suggests_the_closest(registry):
    with pytest.raises(UnknownFramework, match="unknown framework 'toch'; did you mean 'torch'"):
        registry.framework("toch")


def test_harness_list_shows_a_plugin_that_fails_to_import():
    result = run_harness("list", env=harness_env(HARNESS_PLUGINS="harness_missing_plugin"))
    assert result.returncode == 0, result.stderr
    assert "harness_missing_plugin" in result.stdout
    assert "broken" in result.stdout and "ModuleNotFoundError" in result.stdout
    assert "torch" in result.stdout and "mnist_mlp" in result.stdout


def test_strict_mode_makes_a_broken_plugin_fatal():
    env = harness_env(HARNESS_PLUGINS="harness_missing_plugin", HARNESS_STRICT_PLUGINS="1")
    result = run_harness("list", env=env)
    assert result.returncode != 0
    assert "harness_missing_plugin" in result.stderr


def test_a_plugin_that_raises_on_import_is_listed_and_every_other_framework_still_runs(tmp_path):
    env = harness_env(HARNESS_PLUGINS="harness_broken_plugin,harness_test_plugins")
    listing = run_harness("list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "harness_broken_plugin" in listing.stdout and "broken" in listing.stdout
    assert "RuntimeError: this plugin is broken on purpose" in listing.stdout

    run = run_harness(
        "run", "--task", "mnist_mlp", "-f", "centroid", "-f", "torch", "--epochs", "1",
        "--train-subset", "2000", "--out", str(tmp_path), "--no-report", env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    rows = read_rows(tmp_path)
    assert [(row["framework"], row["status"]) for row in rows] == [
        ("centroid", "ok"),
        ("torch", "ok"),
    ]


class Registers:
    """A plugin whose framework hook registers ``item`` (or raises it, if an exception)."""

    def __init__(self, item):
        self.item = item

    @harness.hookimpl
    def harness_register_frameworks(self, register):
        if isinstance(self.item, BaseException):
            raise self.item
        register(self.item)


class StringApi(NothingAdapter):
    name = "stringapi"
    api_version = "1"


class RaisingAvailability(NothingAdapter):
    name = "raising"
    api_version = 1

    def availability(self):
        raise OSError("licence server down")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (SystemExit(3), "SystemExit: 3"),
        ("not an adapter", "registered 'not an adapter', which is not a FrameworkAdapter"),
        (StringApi(), "declares api_version '1'; it must be a whole number"),
    ],
)
def test_a_misbehaving_plugin_is_its_own_failure_and_the_others_still_register(
    registry, register_plugin, item, reason
):
    register_plugin(Registers(item), "misbehaving")
    assert reason in registry.failure("misbehaving").reason
    assert "torch" in registry.frameworks and "stringapi" not in registry.frameworks


def test_an_availability_check_that_raises_makes_its_framework_unavailable(register_plugin):
    from harness.api.adapter import availability_of

    register_plugin(Registers(RaisingAvailability()), "raising_plugin")
    found = availability_of(RaisingAvailability())
    assert not found.available
    assert found.reason == "its availability check raised OSError: licence server down"


def test_a_distribution_cannot_take_a_built_in_plugins_name(registry):
    registry._load("torch", "evil-dist 6.6", lambda: Registers(NothingAdapter()))
    assert registry.failure("torch").reason.startswith(
        "PluginError: the plugin name 'torch' is taken by built-in"
    )
    assert registry.frameworks["torch"].source == "built-in"
    assert "nothing" not in registry.frameworks


def test_harness_list_lists_a_plugin_whose_hook_exits(tmp_path):
    (tmp_path / "harness_exits.py").write_text(
        "import harness, sys\n\n"
        "@harness.hookimpl\n"
        "def harness_register_frameworks(register):\n"
        "    sys.exit('bye')\n"
    )
    env = harness_env(HARNESS_PLUGINS="harness_exits", PYTHONPATH=str(tmp_path))
    listed = run_harness("list", env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "harness_exits" in listed.stdout and "SystemExit: bye" in listed.stdout
    assert "torch" in listed.stdout
