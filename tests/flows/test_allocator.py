"""Polars' allocator gives freed memory straight back to the system in a process of the command
(flows/__init__.py), and an operator's own setting still wins; DuckDB's keeps its own defaults. Read from
jemalloc itself: the options it prints at exit with stats_print."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import ROOT

# The command's entry point (the `transship` script imports flows.cli), then a Polars expression.
PROGRAM = "import flows.cli, polars as pl; pl.DataFrame({'a': [1, 2]}).select(pl.col('a') * 2)"


def jemalloc_option(name: str, given: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    env["_RJEM_MALLOC_CONF"] = ",".join(p for p in (given, "stats_print:true") if p)
    # stats_print is the operator's here: a setting given before the command starts, as theirs would be.
    out = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    found = re.search(rf"opt\.{name}: (-?\d+)", out.stdout + out.stderr)
    assert found, f"jemalloc printed no opt.{name}:\n{(out.stdout + out.stderr)[-2000:]}"
    return found.group(1)


def test_freed_pages_go_back_soon_and_straight_to_the_system_in_the_command():
    """Kept 100 ms for reuse (at 0 the features took 40 % longer: flows/__init__.py), then given back."""
    assert jemalloc_option("dirty_decay_ms", None) == "100"
    assert jemalloc_option("muzzy_decay_ms", None) == "0"


def test_an_operators_setting_wins():
    assert jemalloc_option("muzzy_decay_ms", "muzzy_decay_ms:250") == "250"
    assert jemalloc_option("dirty_decay_ms", "dirty_decay_ms:250") == "250"


def test_a_child_process_does_not_add_them_twice():
    """A worker process imports the package again, with the variable it inherited."""
    program = ("import os, flows, subprocess, sys; print(subprocess.run([sys.executable, '-c', "
               "'import os, flows; print(os.environ[\"_RJEM_MALLOC_CONF\"])'], capture_output=True, text=True,"
               " check=True).stdout)")
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    env["_RJEM_MALLOC_CONF"] = "narenas:2"
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "dirty_decay_ms:100,muzzy_decay_ms:0,narenas:2"


def test_duckdb_keeps_its_own_allocator_defaults():
    """Freeing DuckDB's pages at once was measured to slow the build by two thirds (flows/__init__.py)."""
    env = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    env["DUCKDB_JE_MALLOC_CONF"] = "stats_print:true"
    out = subprocess.run([sys.executable, "-c", "import flows.cli, duckdb; duckdb.sql('SELECT 1').fetchall()"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    # DuckDB's own default (1000 in 1.5 and 2.0), whatever a later version makes it: not the command's 0.
    assert re.search(r"opt\.dirty_decay_ms: (\d+)", out.stdout + out.stderr).group(1) != "0"


def test_polars_alone_keeps_its_default():
    """The check above can fail: without the command's package first, Polars' default holds."""
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    env["_RJEM_MALLOC_CONF"] = "stats_print:true"
    out = subprocess.run([sys.executable, "-c", "import polars as pl; pl.DataFrame({'a': [1]})"], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=True)
    assert re.search(r"opt\.muzzy_decay_ms: (\d+)", out.stdout + out.stderr).group(1) != "0"
