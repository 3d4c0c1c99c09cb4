"""Progress lines for a person watching a run (stderr, timestamped); quiet when TRANSSHIP_QUIET=1."""

from __future__ import annotations

import os
import resource
import sys
import time

from rich.console import Console

_console = Console(stderr=True, highlight=False, emoji=False)
_start = time.monotonic()


def quiet(_: str) -> None:
    """Progress that says nothing (a caller with no one watching)."""


def step(message: str) -> None:
    """One progress line. The message is plain text: file names and data in it are never read as markup.
    Inside a Prefect flow or task run it also goes to that run's log (run_log)."""
    if os.environ.get("TRANSSHIP_QUIET") != "1":
        from rich.text import Text

        _console.print(Text.assemble((f"{time.monotonic() - _start:6.1f}s", "dim"), "  ", message), emoji=False)
    run_log(message)


class Countdown:
    """The items of a long stage (feature batches, model groups): each call prints "<label> i of n" and, from
    the second item on, the time left, estimated from the items done so far."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self._start = label, total, time.monotonic()

    def __call__(self, i: int, detail: str = "") -> None:
        """Item i (from 0) starts."""
        step(f"{self.label} {i + 1} of {self.total}{detail}{time_left(time.monotonic() - self._start, i, self.total)}")


def time_left(elapsed: float, done: int, total: int) -> str:
    """", about 1 min 40 s left" after `done` of `total` items took `elapsed` seconds; "" before the first is
    done (nothing to estimate from) or after the last."""
    if done <= 0 or done >= total:
        return ""
    left = round(elapsed / done * (total - done))
    return f", about {left // 60} min {left % 60} s left" if left >= 60 else f", about {left} s left"


_run_logger = None


def run_log(message: str) -> None:
    """`message` into the current Prefect flow or task run's log (Prefect's UI, `prefect flow-run logs`), at
    INFO whatever Prefect's own log level (the command line keeps Prefect's console output quiet; a run's
    progress still belongs in its log). Nothing outside a run, and Prefect is never imported for it."""
    if "prefect" not in sys.modules:
        return
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    try:
        get_run_context()
    except MissingContextError:
        return
    global _run_logger
    if _run_logger is None:
        import logging

        from prefect.logging.handlers import APILogHandler

        logger = logging.getLogger("transship.progress")
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not to the console: step() printed it there already
        logger.addHandler(APILogHandler())
        _run_logger = logger
    _run_logger.info(message)


class Laps:
    """Wall time of each stage as it ends (`seconds`, s) and, with `rss`, this process's peak memory so far
    (`peak_rss_gb`, in GiB, 2^30 bytes, as the kernel counts it: ru_maxrss KiB / 1024²; the key keeps its
    name of before): where the peak first reaches its final value is the stage that set it."""

    def __init__(self, rss: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_gb: dict[str, float] = {}
        self._rss = rss
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, 2)
        self._clock = now
        if self._rss:
            self.peak_rss_gb[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 3)


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 160 columns when the output is a pipe or a file (so
    that identifiers are not broken across lines)."""
    return Console(width=None if sys.stdout.isatty() else 160, emoji=False)
