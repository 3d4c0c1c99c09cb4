"""`transship sql` on a real warehouse, as a hostile analyst would type it: nothing written, nothing else read.

Two layers, each tested on its own: DuckDB's own settings on the analyst's connection (the guard bypassed:
the engine refuses), and the statement guard (readable refusals, EXPLAIN unwrapped)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tests.helpers import cli
from warehouse.analyst_sql import SqlAccess, WriteRefused, check_statement, connect_analyst


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A warehouse with a route table, the review decisions, and a folder beside it to watch."""
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE route_scores AS SELECT 'THA' AS hub_iso3, 'antimony' AS mineral, 0.82 AS route_score "
                "UNION ALL SELECT 'MEX', 'antimony', 0.5")
    con.execute("CREATE SCHEMA review; CREATE TABLE review.decisions AS SELECT 1 AS decision_id, 'kept' AS note")
    con.close()
    (tmp_path / "other.duckdb").hardlink_to(path)  # the same file under another name
    (tmp_path / "import").mkdir()
    (tmp_path / "import" / "schema.sql").write_text("DROP TABLE review.decisions;\n")
    (tmp_path / "import" / "load.sql").write_text("")
    return path


HOSTILE = [
    "EXPLAIN ANALYZE COPY (SELECT 'x') TO '{w}' (FORMAT csv)",
    "explain analyze (format json) copy (select 1) to '{w}'",
    "/* hi */ EXPLAIN   ANALYZE -- x\n COPY (SELECT 'x') TO '{w}'",
    "COPY (SELECT 'x') TO '{d}/out.csv'",
    "COPY (SELECT 'x') TO '{w}' (FORMAT csv, USE_TMP_FILE false)",
    "ATTACH '{d}/other.duckdb' AS a (READ_WRITE) /* (READ_ONLY) */",
    "EXPLAIN ANALYZE ATTACH '{d}/other.duckdb' AS a",
    "IMPORT DATABASE '{d}/import'",
    "EXPORT DATABASE '{d}/export'",
    "PRAGMA enable_profiling='json'; SET profiling_output='{d}/profile.json'; SELECT 1",
    "SET enable_external_access = true; COPY (SELECT 1) TO '{d}/out.csv'",
    "DROP TABLE review.decisions",
    "EXPLAIN ANALYZE DROP TABLE review.decisions",
    "select 1; delete from review.decisions",
    "PREPARE p AS COPY (SELECT 1) TO '{d}/out.csv'; EXECUTE p",
    "CALL checkpoint()",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('{w}')",
    "SELECT * FROM glob('{d}/*')",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_a_hostile_statement_changes_nothing_and_says_why(warehouse, template):
    folder = warehouse.parent
    before = {p.name: _sha(p) for p in folder.rglob("*") if p.is_file()}
    result = cli("sql", "--warehouse", str(warehouse), template.format(w=warehouse, d=folder))
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1  # one line: no traceback
    after = {p.name: _sha(p) for p in folder.rglob("*") if p.is_file()}
    assert after == before  # no file written, none changed
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.sql("SELECT note FROM review.decisions").fetchall() == [("kept",)]
    finally:
        con.close()


@pytest.mark.parametrize("query", [
    "COPY (SELECT 'x') TO '{w}' (FORMAT csv)",
    "COPY (SELECT 'x') TO '{d}/out.csv'",
    "EXPORT DATABASE '{d}/export'",
    "ATTACH '{d}/other.duckdb' AS a (READ_WRITE)",
    "IMPORT DATABASE '{d}/import'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "PRAGMA enable_profiling = 'json'",
    "SET profiling_output = '{d}/profile.json'",
    "SET allowed_directories = ['/']",
    "INSTALL httpfs",
    "LOAD httpfs",
])
def test_the_connection_itself_refuses_without_the_guard(warehouse, query):
    # Read-only by construction: the engine refuses even what the guard would have let through.
    folder = warehouse.parent
    before = {p.name: _sha(p) for p in folder.rglob("*") if p.is_file()}
    con = connect_analyst(warehouse)
    try:
        with pytest.raises(duckdb.Error):
            con.execute(query.format(w=warehouse, d=folder))
        assert con.sql("SELECT count(*) FROM review.decisions").fetchall() == [(1,)]
    finally:
        con.close()
    assert {p.name: _sha(p) for p in folder.rglob("*") if p.is_file()} == before


def test_named_files_and_warehouses_are_readable_and_nothing_else(warehouse, tmp_path):
    listing = tmp_path / "entities.csv"
    listing.write_text("hub_iso3,owner\nTHA,Example Co\n")
    other = tmp_path / "last_month.duckdb"
    c = duckdb.connect(str(other))
    c.execute("CREATE TABLE route_scores AS SELECT 'THA' AS hub_iso3, 0.5 AS route_score")
    c.close()
    con = connect_analyst(warehouse, SqlAccess(attach=(("old", other),), read_files=(listing,)))
    try:
        joined = con.sql(f"""SELECT r.hub_iso3, e.owner, (r.route_score - o.route_score)::DOUBLE AS change
                             FROM route_scores r JOIN read_csv('{listing}') e USING (hub_iso3)
                             JOIN old.route_scores o USING (hub_iso3)""").fetchall()
        assert joined == [("THA", "Example Co", pytest.approx(0.32))]
        before = _sha(listing), _sha(other)
        # The engine: another file stays out of reach, the named ones cannot be written (COPY writes through a
        # temporary file beside its target, which is not named), the attached warehouse is read-only.
        for query in (f"SELECT * FROM read_csv('{tmp_path}/../etc/passwd')", f"COPY (SELECT 1) TO '{listing}'",
                      "CREATE TABLE old.x AS SELECT 1", f"SELECT * FROM read_text('{tmp_path / 'w.duckdb'}')"):
            with pytest.raises(duckdb.Error):
                con.execute(query)
        # The guard: every COPY, however it is written (with USE_TMP_FILE false DuckDB would write a named file
        # in place: the guard is what refuses that one).
        for query in (f"COPY (SELECT 1) TO '{listing}' (USE_TMP_FILE false)",
                      f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{listing}' (USE_TMP_FILE false)"):
            with pytest.raises(WriteRefused):
                check_statement(query)
        assert (_sha(listing), _sha(other)) == before
    finally:
        con.close()


@pytest.mark.parametrize("query", [
    "select 1", "from route_scores", "explain select 1", "explain analyze select 1", "explain (select 1)",
    "EXPLAIN (FORMAT json) SELECT 1", "describe route_scores", "show tables", "summarize route_scores",
    "pragma table_info('route_scores')", "pragma version", "set variable x = 1", "set search_path = 'main'",
    "with t as (select 1 as a) select * from t", "pivot route_scores on mineral using max(route_score)",
    "select 'COPY (SELECT 1) TO ''x''' as not_a_copy -- copy to",
])
def test_reads_pass_the_guard(query):
    check_statement(query)


@pytest.mark.parametrize(("query", "shown"), [
    ("drop table route_scores", "DROP would write"), ("insert into t values (1)", "INSERT would write"),
    ("attach 'x.duckdb' as x (READ_ONLY)", "ATTACH opens another file"),
    ("explain analyze copy (select 1) to 'out.csv'", "COPY would write"),
    ("explain analyze (format json) create table t as select 1", "CREATE would write"),
    ("EXPLAIN ANALYZE UPDATE t SET a = 1", "UPDATE would write"),
    ("import database 'dir'", "IMPORT DATABASE runs the statements"),
    ("select 1; drop table t", "DROP would write"), ("call checkpoint()", "CALL"),
    ("detach x", "DETACH"), ("load httpfs", "LOAD"),
])
def test_everything_else_is_refused_by_name(query, shown):
    with pytest.raises(WriteRefused, match="transship sql only reads") as refused:
        check_statement(query)
    assert shown in str(refused.value)


def test_data_is_printed_as_it_is_never_as_markup(warehouse):
    result = cli("sql", "--warehouse", str(warehouse),
                 "select 'root:x:0' as a, '[bold red]b[/bold red]' as b, ':warning:' as c")
    assert result.returncode == 0, result
    assert "root:x:0" in result.stdout and "[bold red]b[/bold red]" in result.stdout and ":warning:" in result.stdout
    assert "❌" not in result.stdout and "⚠" not in result.stdout


def test_a_pivot_runs(warehouse):
    result = cli("sql", "--warehouse", str(warehouse), "--csv",
                 "pivot route_scores on hub_iso3 using max(route_score) order by mineral")
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["mineral,MEX,THA", "antimony,0.50,0.82"]


def test_a_query_can_come_on_standard_input(warehouse):
    """`transship sql < query.sql` and `echo ... | transship sql`: a pipe is read as the query (a separate
    process, a real pipe); an empty one is an error that says how to give the query."""
    import subprocess
    import sys

    def piped(text: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flows.cli", "sql", "--warehouse", str(warehouse), "--csv"],
                              input=text, capture_output=True, text=True, timeout=120,
                              env={**__import__("os").environ, "TRANSSHIP_QUIET": "1"})

    ok = piped("select hub_iso3, route_score\nfrom route_scores\norder by route_score desc;\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["hub_iso3,route_score", "THA,0.82", "MEX,0.50"]
    empty = piped("   \n")
    assert empty.returncode == 2 and "standard input is empty" in empty.stderr
    refused = piped("drop table review.decisions")
    assert refused.returncode == 2 and "only reads" in refused.stderr


def test_numbers_print_in_full_and_wide_results_one_row_at_a_time(warehouse):
    result = cli("sql", "--warehouse", str(warehouse),
                 "select 894000.0 as kg, 1234567 as n, 0.000012 as tiny, 3.14159 as pi, 1369661.54 as excess")
    assert result.returncode == 0, result
    line = next(x for x in result.stdout.splitlines() if "894,000" in x)
    assert [c.strip() for c in line.strip("│ ").split("│")] == ["894,000", "1,234,567", "1.2e-05", "3.1416",
                                                                  "1,369,661.54"]
    assert "e+" not in result.stdout
    # 30 columns do not fit 160 characters: one "column  value" line each, rows one below the other.
    wide = ", ".join(f"'value {i:02d}' as a_rather_long_column_name_{i:02d}" for i in range(30))
    shown = cli("sql", "--warehouse", str(warehouse), f"select {wide} from route_scores")
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("-[ row 1 ]") and any(x.startswith("-[ row 2 ]") for x in lines)
    assert any(x.split() == ["a_rather_long_column_name_29", "value", "29"] for x in lines)
    # --layout table keeps the table; --layout vertical turns even a narrow result.
    assert "┏" in cli("sql", "--warehouse", str(warehouse), "--layout", "table", f"select {wide}").stdout
    narrow = cli("sql", "--warehouse", str(warehouse), "--layout", "vertical", "select 1 as one").stdout.splitlines()
    assert narrow[0].startswith("-[ row 1 ]") and narrow[1].split() == ["one", "1"]


def test_a_query_naming_a_renamed_relation_is_told_its_new_name():
    """Saved queries of before the intermediate layer name staging.stg_flows: the error says where it went."""
    import duckdb as db

    from warehouse.analyst_sql import failure_text

    con = db.connect()
    con.execute("CREATE SCHEMA staging")
    said = {}
    for old in ("staging.stg_flows", "stg_flows_excluded", "staging.stg_revisions", "staging.nothing_here"):
        try:
            con.sql(f"SELECT * FROM {old}").fetchall()
        except db.Error as exc:
            said[old] = failure_text(exc)
    con.close()
    assert said["staging.stg_flows"].endswith("(staging.stg_flows is now intermediate.int_flows: same rows, new layer)")
    assert "is now intermediate.int_flows_excluded" in said["stg_flows_excluded"]
    assert "is now intermediate.int_revisions" in said["staging.stg_revisions"]
    assert "is now" not in said["staging.nothing_here"]
