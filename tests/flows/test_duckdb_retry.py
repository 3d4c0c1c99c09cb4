"""The flagged lists survive one DuckDB internal error: they are written on a connection of their own, with
DuckDB's caching operators off (the operator that raised the error seen at 20 M), and, after such an error
(which invalidates the database in the process), written again on a fresh one."""

from __future__ import annotations

import shutil

import duckdb
import pytest

import warehouse.outputs as outputs
from flows.stages import flagged_lists
from tests.helpers import query

INJECTED = "INTERNAL Error: dict-surviving cache: global dictionary column 38 changed identity (injected)"


@pytest.fixture
def warehouse_copy(scored_warehouse, tmp_path):
    src, run = scored_warehouse
    path = tmp_path / "w.duckdb"
    shutil.copy(src, path)
    return path, run["run_id"]


def test_the_flagged_lists_are_written_again_after_a_duckdb_internal_error(warehouse_copy, monkeypatch):
    path, run_id = warehouse_copy
    before = query(path, "SELECT * FROM main.flagged_routes ORDER BY ALL")
    assert before.height > 0
    real, calls, caching = outputs.write_flag_lists, [], []

    def fails_once(con, run_id, dismissed_regrowth=0.5):
        calls.append(run_id)
        caching.append(con.sql("SELECT current_setting('enable_caching_operators')").fetchall()[0][0])
        if len(calls) == 1:  # part of the work committed, then the error
            con.execute("DELETE FROM main.flagged_routes")
            con.execute("DELETE FROM main.flag_history WHERE run_id = ?", [run_id])
            raise duckdb.InternalException(INJECTED)
        return real(con, run_id, dismissed_regrowth)

    monkeypatch.setattr(outputs, "write_flag_lists", fails_once)
    counts, retried = flagged_lists(path, run_id, 0.5)
    assert len(calls) == 2
    assert caching == [False, False]  # both attempts, the fresh connection too
    assert retried == [f"flagged lists, attempt 1: {INJECTED}"]
    assert counts["main.flagged_routes"] == before.height
    # The same lists as the fixture's run wrote with the caching operators on.
    assert query(path, "SELECT * FROM main.flagged_routes ORDER BY ALL").equals(before)
    assert query(path, f"SELECT count(*) AS n FROM main.flag_history WHERE run_id = '{run_id}'")["n"][0] == before.height


def test_a_second_internal_error_fails_the_step(warehouse_copy, monkeypatch):
    path, run_id = warehouse_copy
    calls = []

    def always_fails(con, run_id, dismissed_regrowth=0.5):
        calls.append(run_id)
        raise duckdb.InternalException(INJECTED)

    monkeypatch.setattr(outputs, "write_flag_lists", always_fails)
    with pytest.raises(duckdb.InternalException, match="dict-surviving"):
        flagged_lists(path, run_id, 0.5)
    assert len(calls) == 2
