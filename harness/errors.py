"""Errors a user can fix, each shown as one line and mapped to an exit code."""


class HarnessError(Exception):
    """Bad input or environment: shown to the user as one line, never as a traceback."""

    #: The process exit code when this error ends a command (documented in ``harness --help``).
    exit_code = 2


class DataError(HarnessError):
    """A dataset file is missing, truncated, malformed or fails its checksum."""

    exit_code = 3
