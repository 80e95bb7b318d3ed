"""Whatever a task file holds, the loader answers with a TaskError or a Task, nothing else."""

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.registry.catalog import load_task
from harness.workload.tasks import Task, TaskError, _validate

MLP = (Path(__file__).parent.parent / "tasks" / "mnist_mlp.toml").read_text()
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def load_text(tmp_path, text: str) -> None:
    path = tmp_path / "fuzzed.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(load_task(str(path)), Task)
    except TaskError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text(tmp_path, text):
    load_text(tmp_path, text)


@FUZZ
@given(data=st.data())
def test_mutated_task_files(tmp_path, data):
    """Cut, duplicate or change characters of the real task file."""
    position = data.draw(st.integers(0, len(MLP)))
    replacement = data.draw(st.text(max_size=8))
    cut = data.draw(st.integers(0, 20))
    load_text(tmp_path, MLP[:position] + replacement + MLP[position + cut :])


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=10),
)


@FUZZ
@given(data=st.data())
def test_values_replaced_by_anything(tmp_path, data):
    """Replace one value anywhere in the parsed task with an arbitrary one."""
    document = tomllib.loads(MLP)
    node = document
    while True:
        key = data.draw(
            st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
        )
        if isinstance(node[key], dict | list) and node[key] and data.draw(st.booleans()):
            node = node[key]
            continue
        node[key] = data.draw(
            st.one_of(
                scalars,
                st.lists(scalars, max_size=3),
                st.dictionaries(st.text(max_size=5), scalars, max_size=2),
            )
        )
        break
    try:
        Task.model_validate(document)
    except Exception as exc:  # validation errors only, and the loader turns them into one line
        assert isinstance(exc, ValidationError), repr(exc)
    try:
        _validate(document, origin="fuzz")
    except TaskError as exc:
        assert str(exc).startswith("fuzz: ") and "\n" not in str(exc)
