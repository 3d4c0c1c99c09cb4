"""Small helpers shared by the end-to-end tests: read a warehouse file, run the command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
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
    """`transship ARGS` through the real entry point (flows.cli.main: its error handling and exit codes), in
    this process to save an interpreter start per call: quiet, without an analyst name from the
    environment, output captured. Use `cli_process` where a separate process matters."""
    from flows.cli import main

    saved = {k: os.environ.get(k) for k in ("TRANSSHIP_QUIET", "TRANSSHIP_ANALYST")}
    os.environ["TRANSSHIP_QUIET"] = "1"
    os.environ.pop("TRANSSHIP_ANALYST", None)
    argv, here = sys.argv, Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        sys.argv = ["transship", *args]
        os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(here)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["transship", *args], code, out.getvalue(), err.getvalue())


def cli_process(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`transship ARGS` in its own Python process."""
    env = {**os.environ, "TRANSSHIP_QUIET": "1"}
    env.pop("TRANSSHIP_ANALYST", None)
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)
