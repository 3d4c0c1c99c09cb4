"""The README's analyst queries run as written, read-only, in DuckDB 2.0 (what transship uses) and in the
DuckDB 1.5 command-line tool analysts have (the warehouse is written in the v1.5.0 storage format)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.analyst_sql import connect_analyst, run_query

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_queries() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    # Each query with the comment line that asks its question (statements end with ';' at a line's end).
    return [q.strip() + ";" for block in blocks for q in re.split(r";\s*$", block, flags=re.MULTILINE) if q.strip()]


def test_the_readme_has_the_analysts_questions():
    queries = readme_queries()
    assert len(queries) >= 5
    assert any("Which hubs are new this month?" in q for q in queries)


@pytest.fixture(scope="module")
def warehouse_with_history(scored_warehouse, tmp_path_factory) -> Path:
    """The scored warehouse with what a month of use adds: an earlier run whose flagged list held Thailand
    alone, at half its score (so this run's list has new and escalated routes), and an analyst's decision,
    both written through the project's own functions."""
    from warehouse.connection import connect_read_write
    from warehouse.outputs import write_flag_lists
    from warehouse.review import RouteRef, record_decision

    path = tmp_path_factory.mktemp("history") / "w.duckdb"
    shutil.copy(scored_warehouse[0], path)
    run_id = scored_warehouse[1]["run_id"]
    con = connect_read_write(path)
    try:
        con.execute("""INSERT INTO main.runs BY NAME
                       SELECT * REPLACE ('20250601T000000Z-prev00' AS run_id, started_at - INTERVAL 30 DAY AS started_at,
                                         finished_at - INTERVAL 30 DAY AS finished_at)
                       FROM main.runs WHERE run_id = ?""", [run_id])
        con.execute("""INSERT INTO main.flag_history SELECT '20250601T000000Z-prev00', frequency, mineral, hs_code,
                           hub_iso3, rank, peak_period, peak_score, peak_route_score / 2
                       FROM main.flag_history WHERE run_id = ? AND hub_iso3 = 'THA'""", [run_id])
        write_flag_lists(con, run_id)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    record_decision(path, RouteRef.parse("MEX:282580"), "watching", "A. Analyst", "checking the bills of lading")
    return path


@pytest.mark.parametrize("query", readme_queries(), ids=lambda q: q.splitlines()[0][3:60])
def test_each_readme_query_runs_read_only_and_answers(warehouse_with_history, query):
    con = connect_analyst(warehouse_with_history)  # as `transship sql` runs it: the guard, the locked connection
    try:
        answer = run_query(con, query)
    finally:
        con.close()
    assert answer is not None and answer.height > 0  # every question has an answer on a warehouse in use


def test_new_hubs_this_month_are_every_hub_of_a_first_run(scored_warehouse):
    query = next(q for q in readme_queries() if "Which hubs are new this month?" in q)
    con = duckdb.connect(str(scored_warehouse[0]), read_only=True)
    try:
        hubs = con.sql(query).pl()
    finally:
        con.close()
    assert hubs["hub_iso3"].to_list() == ["THA", "MEX", "MYS", "VNM"]
    assert hubs["hub"][0] == "Thailand" and hubs["products"][0] == "antimony 282580"


def _duckdb_cli() -> str:
    found = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    if not found:
        pytest.skip("the DuckDB command-line tool is not installed (pip install 'duckdb-cli>=1.5,<1.6'; "
                    "`make test` installs it)")
    return found


def test_the_duckdb_15_command_line_tool_opens_the_warehouse_and_answers_the_same(scored_warehouse):
    cli = _duckdb_cli()
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30).stdout
    query = next(q for q in readme_queries() if "Which hubs are new this month?" in q)
    done = subprocess.run([cli, "-readonly", "-csv", str(scored_warehouse[0]), "-c", query],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{version}: {done.stderr}"
    from io import StringIO

    via_cli = pl.read_csv(StringIO(done.stdout))
    assert via_cli["hub_iso3"].to_list() == ["THA", "MEX", "MYS", "VNM"], version
    comment = subprocess.run([cli, "-readonly", "-csv", "-noheader", str(scored_warehouse[0]), "-c",
                              "SELECT comment FROM duckdb_tables() WHERE table_name = 'flagged_routes'"],
                             capture_output=True, text=True, timeout=60)
    assert comment.returncode == 0 and "rank 1 = most suspicious" in comment.stdout
