"""Progress lines for a person watching a run (stderr, timestamped); quiet when TRANSSHIP_QUIET=1."""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console

_console = Console(stderr=True, highlight=False)
_start = time.monotonic()


def step(message: str) -> None:
    if os.environ.get("TRANSSHIP_QUIET") != "1":
        _console.print(f"[dim]{time.monotonic() - _start:6.1f}s[/dim]  {message}")


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 160 columns when the output is a pipe or a file (so
    that identifiers are not broken across lines)."""
    return Console(width=None if sys.stdout.isatty() else 160)
