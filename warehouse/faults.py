"""Fault injection for crash drills and tests: TRANSSHIP_FAULT=POINT[:ACTION] makes a run misbehave at a
named point of its work, as a power cut or an operator's `kill -9` would, or as a bug would (raise).

Points: ingest (after the first new file is loaded into the build), build (staging built, marts not yet),
score (features written, scores not yet), publish (the build finished and closed, not yet renamed over the
live file), report (published, report not yet written). Actions: kill (the default: SIGKILL to this
process, no clean-up runs), raise (a RuntimeError, as a fault in transship's own code would), sleep=SECONDS
(hold the run there), or wait=PATH (hold it until PATH exists, at most ten minutes: a drill starts a second
run meanwhile, then creates PATH; the run creates PATH.reached when it gets there, for the drill to wait on). Unset, it does nothing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "TRANSSHIP_FAULT"
POINTS = ("ingest", "build", "score", "publish", "report")


def at(point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    where, _, action = spec.partition(":")
    if where != point:
        return
    if action in ("", "kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise RuntimeError(f"injected fault at {point} (TRANSSHIP_FAULT)")
    elif action.startswith("sleep="):
        time.sleep(float(action.removeprefix("sleep=")))
    elif action.startswith("wait="):
        gate, deadline = Path(action.removeprefix("wait=")), time.monotonic() + 600
        gate.with_name(gate.name + ".reached").touch()
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
