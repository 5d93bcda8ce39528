"""Progress lines for long stages (structure from motion, image loading, training, evaluation).

One owner for how the product shows a long job: a label, done/total, a bar, the rate and an
ETA. On a terminal the line is redrawn in place; on a pipe or a log file a line is written
every ``every`` seconds (and at the end), so a captured log stays short.
"""

from __future__ import annotations

import sys
import threading
import time


def format_duration(seconds: float) -> str:
    """M:SS below an hour, H:MM:SS above (hours are not dropped), "--:--" when unknown."""
    if not seconds == seconds or seconds in (float("inf"), float("-inf")):
        return "--:--"
    s = max(int(round(seconds)), 0)
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def bar(fraction: float, width: int = 24) -> str:
    done = int(width * min(max(fraction, 0.0), 1.0))
    return f"[{'#' * done}{'.' * (width - done)}]"


class Progress:
    """A progress line for one stage of ``total`` items.

    ``update(done, note)`` may be called from any thread (the structure-from-motion stages
    are followed from COLMAP's log by a watcher thread); ``close(note)`` ends the line.
    """

    def __init__(self, label: str, total: int, stream=None, every: float | None = None):
        self.label, self.total = label, max(int(total), 1)
        self.stream = stream or sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.every = every if every is not None else (0.2 if self.tty else 10.0)
        self.t0 = time.perf_counter()
        self.done, self.note = 0, ""
        self._last = 0.0
        self._lock = threading.Lock()
        self._closed = False

    def line(self) -> str:
        elapsed = time.perf_counter() - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = format_duration((self.total - self.done) / rate if rate > 0 else float("nan"))
        note = f"  {self.note}" if self.note else ""
        return (f"{self.label} {bar(self.done / self.total)} {self.done}/{self.total}  "
                f"{format_duration(elapsed)} elapsed, eta {eta}{note}")

    def update(self, done: int, note: str = "") -> None:
        with self._lock:
            if self._closed:
                return
            self.done, self.note = min(int(done), self.total), note or self.note
            now = time.perf_counter()
            if now - self._last < self.every:
                return
            self._last = now
            self._write(final=False)

    def close(self, note: str = "", done: int | None = None) -> None:
        """End the line (``done``: where the stage ended, default all of it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.done = self.total if done is None else min(int(done), self.total)
            self.note = note or self.note
            self._write(final=True)

    def _write(self, final: bool) -> None:
        text = self.line()
        if self.tty:
            print("\r" + text + "\033[K", end="\n" if final else "", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)
