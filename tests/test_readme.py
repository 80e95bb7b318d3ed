"""The README stays a front door, and it and docs/ stay true to the repository.

The README is short and keeps the Quickstart's commands exactly as CI runs them; every relative
link in it and in docs/ reaches a file (and a heading, for ``file.md#anchor``); docs/results.md
describes every field of the published row schema; and no tracked file speaks of the work on the
project instead of the project.
"""

from __future__ import annotations

import json
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]

MAX_README_BYTES = 12 * 1024

#: the Quickstart's first command, which the README's output section shows the result of
RUN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e '.[all]' "
    "-e plugins/harness_keras && harness run --task mnist_mlp --all-frameworks"
)

FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: markup dropped, lower case, punctuation removed
    (letters, digits, ``_`` and ``-`` kept), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = text.strip().lower()
    kept = "".join(
        char
        for char in text
        if char in " -_"
        or unicodedata.category(char)[0] in ("L", "N")
        or unicodedata.category(char) == "Mn"
    )
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's ``-1``, ``-2`` for repeats."""
    seen: dict[str, int] = {}
    result = set()
    for _, heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(prose(path.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.IGNORECASE)]


def section(text: str, title: str) -> str:
    match = re.search(
        rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL
    )
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def code_blocks(text: str, language: str = "") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_is_a_front_door_not_a_manual():
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size:,} bytes; move detail into docs/"


def test_the_link_checker_finds_links_and_anchors():
    assert len(relative_links(README)) >= 5
    assert slug("A five-framework run of `mnist_mlp`") == "a-five-framework-run-of-mnist_mlp"
    assert slug("How close to the roofline?") == "how-close-to-the-roofline"
    assert slug("`harness check-agreement`") == "harness-check-agreement"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path):
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}: link {target!r}"
        assert destination.exists(), f"{where}: no such file"
        if anchor:
            assert destination.suffix == ".md", (
                f"{where}: an anchor into a file that isn't Markdown"
            )
            assert anchor in anchors(destination), f"{where}: no heading with that anchor"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_code_block_is_closed(path):
    fences = re.findall(r"^```", path.read_text(), flags=re.MULTILINE)
    assert len(fences) % 2 == 0, f"{path.relative_to(ROOT)}: a code block is never closed"


def test_the_quickstart_commands_are_the_ones_ci_runs():
    quickstart = section(README.read_text(), "Quickstart")
    blocks = [block.strip("\n") for block in code_blocks(quickstart, "bash")]
    assert len(blocks) == 2, "the Quickstart has two commands, one to run and one to test"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert blocks[0] == RUN_COMMAND
    assert blocks[1] == ci[-1], ".ci/run runs the README's test command verbatim"
    assert "\n" not in blocks[0] and "\n" not in blocks[1], "each command is one line to copy"


def test_the_output_shown_fits_100_columns():
    shown = code_blocks(section(README.read_text(), "What you get"))
    assert shown, "the README shows a run's output"
    lines = shown[0].splitlines()
    assert lines[0].startswith("run "), "from the run's first line"
    assert any(line.startswith("report:") for line in lines), "to the report's paths"
    assert max(len(line) for line in lines) <= 100


def test_results_md_describes_every_field_of_the_schema():
    schema = json.loads((DOCS / "results.schema.json").read_text())
    fields = list(schema["properties"]) + list(schema["$defs"]["Metrics"]["properties"])
    assert len(fields) > 20
    page = (DOCS / "results.md").read_text()
    missing = [name for name in fields if f"`{name}`" not in page]
    assert not missing, f"docs/results.md does not describe {missing}"


#: words about the work on the project, not the project (built here so this file holds none)
PHRASES = [
    " ".join(words)
    for words in (
        ("previous", "session"),
        ("this", "session"),
        ("earlier", "session"),
        ("earlier", "run", "of", "ours"),
    )
]
#: a POSIX process session (``start_new_session``, ``setsid``) is a session of another kind
PROCESS_SESSION = re.compile(r"new_session|setsid")


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listing.split("\0") if name]


def test_no_tracked_file_speaks_of_the_work_instead_of_the_project():
    found = []
    for path in sorted(set(tracked_files()) | set(MARKDOWN)):
        try:
            data = path.read_bytes()
        except OSError:  # listed but deleted in the work tree
            continue
        if b"\0" in data:
            continue
        lines = data.decode("utf-8", errors="replace").splitlines()
        # words wrapped onto the next line count too: compare with the whitespace folded
        text = " ".join(
            " ".join(line for line in lines if not PROCESS_SESSION.search(line)).split()
        )
        found += [
            f"{path.relative_to(ROOT)}: {phrase!r}" for phrase in PHRASES if phrase in text.lower()
        ]
    assert not found, "say which version or commit, not which session:\n" + "\n".join(found)
