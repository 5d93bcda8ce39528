"""Ctrl-C and SIGTERM: what a command keeps when it is stopped.

The CLI turns SIGINT and SIGTERM into ``Interrupted`` (exit status 130, one line on stderr
that says what was kept). Work that must end in a consistent state, such as a training step,
runs inside ``deferred()``: the first signal only sets a flag that the loop reads between
steps (it then checkpoints and raises ``Interrupted`` itself); a second signal stops at once.

``Interrupted`` derives from ``BaseException``, like ``KeyboardInterrupt``, so ``except
Exception`` blocks do not swallow it and atomic writes remove their temporary files.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The user (SIGINT) or the system (SIGTERM) stopped the command; ``str()`` says what was kept."""

    def __init__(self, message: str = "interrupted", signum: int = signal.SIGINT):
        super().__init__(" ".join(message.split()))
        self.signum = signum


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


# what an interrupted command keeps, unless it says more: every write is atomic
KEPT = "every file is written whole or not at all, so none was left half-written"


def _raise(signum, _frame):
    raise Interrupted(f"interrupted ({signal_name(signum)}); {KEPT}", signum)


@contextlib.contextmanager
def _handling(handler) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM inside the block, the previous ones after it (main
    thread only: elsewhere signals cannot be handled, and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def raising():
    """Inside the block SIGINT and SIGTERM raise ``Interrupted`` (the CLI runs every command so)."""
    return _handling(_raise)


class Pending:
    """The signal that arrived inside ``deferred()``, or None."""

    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred() -> Iterator[Pending]:
    """Inside the block the first SIGINT/SIGTERM is recorded in the yielded ``Pending`` and a
    second one raises ``Interrupted`` at once. Outside the main thread signals cannot be
    handled here, and the block runs unchanged."""
    pending = Pending()

    def record(signum, frame):
        if pending:
            _raise(signum, frame)
        pending.signum = signum

    with _handling(record):
        yield pending
