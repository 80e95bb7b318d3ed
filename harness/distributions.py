"""Installed distributions' names and versions, read quickly.

``importlib.metadata`` parses a distribution's whole ``METADATA`` file with the ``email``
package to answer ``.version``, a few milliseconds each; ``harness list`` asks for a dozen.
The fields needed here are in the file's first lines, so they are read as lines instead.
"""

from __future__ import annotations

import importlib.metadata


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None if it isn't installed."""
    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    return name_and_version(found)[1]


def name_and_version(distribution: importlib.metadata.Distribution) -> tuple[str, str]:
    """A distribution's ``Name`` and ``Version`` from the head of its metadata file."""
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():  # the headers end at the first blank line
            break
        key, colon, value = line.partition(":")
        if colon and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
        if len(fields) == 2:
            return fields["Name"], fields["Version"]
    # an unusual file: let importlib.metadata parse it
    return distribution.metadata["Name"], distribution.version
