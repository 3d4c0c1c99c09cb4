"""Progress lines for a person watching a run (stderr, timestamped); quiet when TRANSSHIP_QUIET=1."""

from __future__ import annotations

import os
import time

from rich.console import Console

_console = Console(stderr=True, highlight=False)
_start = time.monotonic()


def step(message: str) -> None:
    if os.environ.get("TRANSSHIP_QUIET") != "1":
        _console.print(f"[dim]{time.monotonic() - _start:6.1f}s[/dim]  {message}")
