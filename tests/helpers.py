"""Small helpers shared by the end-to-end tests: read a warehouse file, run the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parent.parent


def query(path: Path, sql: str) -> pl.DataFrame:
    """A query's result from a read-only connection, closed at once (so a run can replace the file)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`transship ARGS` in a subprocess, quiet, without an analyst name from the environment."""
    env = {**os.environ, "TRANSSHIP_QUIET": "1"}
    env.pop("TRANSSHIP_ANALYST", None)
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)
