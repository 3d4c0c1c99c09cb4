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


def examples(n: int) -> int:
    """How many examples a fuzz test tries: n in CI, forty times that with HYPOTHESIS_PROFILE=fuzz."""
    return n * 40 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else n


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


# Columns that say when something happened or which run did it: two runs over the same inputs differ there.
RUN_STAMPS = frozenset({"loaded_at", "created_at", "last_fitted_at", "rejected_at", "run_id", "started_at",
                        "finished_at"})


def table_differences(a: Path, b: Path, skip_schemas: tuple[str, ...] = ("raw", "build"),
                      skip_tables: frozenset[str] = frozenset({"main.runs"}),
                      same_run: dict[str, str] | None = None) -> dict[str, str]:
    """Every base table of two warehouses compared as sets of rows, without the run stamps: {table: what
    differs} (empty when the warehouses hold the same data). Floats must be equal, not close.
    same_run: {run id in b: run id in a}, replaced in b's text (batch ids and reasons that name them)."""
    ca, cb = duckdb.connect(str(a), read_only=True), duckdb.connect(str(b), read_only=True)
    try:
        listing = ("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                   "WHERE table_type = 'BASE TABLE' ORDER BY 1")
        names_a, names_b = ({r[0] for r in c.sql(listing).fetchall()} for c in (ca, cb))
        out = {t: "only in one warehouse" for t in names_a ^ names_b}
        for table in sorted(names_a & names_b):
            if table.split(".")[0] in skip_schemas or table in skip_tables:
                continue
            fa, fb = ca.sql(f"SELECT * FROM {table}").pl(), cb.sql(f"SELECT * FROM {table}").pl()
            if fa.columns != fb.columns:
                out[table] = f"columns differ: {fa.columns} vs {fb.columns}"
                continue
            cols = [c for c in fa.columns if c not in RUN_STAMPS]
            for old, new in (same_run or {}).items():
                fb = fb.with_columns(pl.col(pl.String).str.replace_all(old, new, literal=True))
            fa, fb = (f.select(cols).sort(cols, nulls_last=True) for f in (fa, fb))
            if fa.shape != fb.shape:
                out[table] = f"{fa.height} rows vs {fb.height}"
            elif not fa.equals(fb):
                out[table] = "values differ in " + ", ".join(c for c in cols if not fa[c].equals(fb[c]))
        return out
    finally:
        ca.close()
        cb.close()
