"""Stopping a run from outside: SIGTERM ends it the way Ctrl-C does.

A ``kill`` (or a batch scheduler, or systemd) sends SIGTERM. Left to Python's default the
process would vanish at once with status 143, its cell still running and nothing said. Raised
as :class:`Terminated` instead, it unwinds like Ctrl-C's ``KeyboardInterrupt``: the running
cell's process group is killed, temporary folders are removed, and the command line prints one
line and exits 143. Code that reacts to an interrupt catches ``KeyboardInterrupt`` and so sees
both; :func:`exit_code` tells them apart.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

#: the exit status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it
INTERRUPTED_EXIT = 128 + signal.SIGINT
#: the exit status of a run stopped by SIGTERM (128 + SIGTERM)
TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM (see :func:`raise_on_sigterm`)."""

    exit_code = TERMINATED_EXIT
    message = "terminated"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status for an interrupt: 143 after SIGTERM, 130 after Ctrl-C."""
    return interrupt.exit_code if isinstance(interrupt, Terminated) else INTERRUPTED_EXIT


def message(interrupt: KeyboardInterrupt) -> str:
    """The one line printed for an interrupt: ``terminated`` or ``interrupted``."""
    return interrupt.message if isinstance(interrupt, Terminated) else "interrupted"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # a second SIGTERM while the first unwinds takes the default action: stop at once
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


def raise_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (a no-op from another thread,
    where Python can't install signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
