"""Errors a user can fix, each shown as one line and mapped to an exit code."""

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Bad input or environment: shown to the user as one line, never as a traceback."""

    #: The process exit code when this error ends a command (documented in ``harness --help``).
    exit_code = 2


class DataError(HarnessError):
    """A dataset file is missing, truncated, malformed or fails its checksum."""

    exit_code = 3


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown framework 'toch'; did you mean 'torch'? (known: jax, tensorflow, torch)``."""
    names = sorted(known)
    message = f"unknown {kind} {name!r}"
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + f" (known: {', '.join(names) or 'none'})"
