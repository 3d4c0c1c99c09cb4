"""Property-based fuzzing of `transship sql` (hypothesis): statements that write, attach, import, export,
install, profile or reach other files, however they are dressed (EXPLAIN [ANALYZE], options, comments between
words, any case, several statements in one), never change a byte of the warehouse or its folder; and reads
that only mention such words (in strings and comments) still run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import examples
from warehouse.analyst_sql import connect_analyst, run_query
from warehouse.connection import WarehouseError

# Each statement as words: keywords (any case) and literals (as they are). {w} the warehouse, {d} its folder.
WRITES = [
    ["COPY", "(", "SELECT", "1", ")", "TO", "'{d}/out.csv'"],
    ["COPY", "route_scores", "TO", "'{w}'", "(", "FORMAT", "csv", ")"],
    ["COPY", "(", "SELECT", "1", ")", "TO", "'{w}'", "(", "USE_TMP_FILE", "false", ")"],
    ["EXPORT", "DATABASE", "'{d}/export'"],
    ["IMPORT", "DATABASE", "'{d}/import'"],
    ["ATTACH", "'{d}/other.duckdb'", "AS", "o", "(", "READ_WRITE", ")", "/* (READ_ONLY) */"],
    ["ATTACH", "'{w}'", "AS", "again"],
    ["DETACH", "DATABASE", "w"],
    ["CREATE", "TABLE", "z", "AS", "SELECT", "1"],
    ["CREATE", "OR", "REPLACE", "VIEW", "route_scores", "AS", "SELECT", "1"],
    ["DROP", "TABLE", "review.decisions"],
    ["DELETE", "FROM", "review.decisions"],
    ["UPDATE", "review.decisions", "SET", "note", "=", "'gone'"],
    ["INSERT", "INTO", "review.decisions", "SELECT", "*", "FROM", "review.decisions"],
    ["ALTER", "TABLE", "review.decisions", "RENAME", "TO", "gone"],
    ["COMMENT", "ON", "TABLE", "route_scores", "IS", "'x'"],
    ["INSTALL", "httpfs"], ["LOAD", "httpfs"], ["FORCE", "INSTALL", "httpfs"],
    ["SET", "enable_external_access", "=", "true"], ["SET", "lock_configuration", "=", "false"],
    ["RESET", "enable_external_access"],
    ["PRAGMA", "enable_profiling", "=", "'json'"], ["SET", "profiling_output", "=", "'{d}/profile.json'"],
    ["SET", "temp_directory", "=", "'{d}/spill'"],
    ["CHECKPOINT"], ["FORCE", "CHECKPOINT"], ["VACUUM"], ["CALL", "checkpoint", "(", ")"],
    ["PREPARE", "p", "AS", "COPY", "(", "SELECT", "1", ")", "TO", "'{d}/p.csv'"], ["EXECUTE", "p"],
    ["BEGIN", "TRANSACTION"], ["USE", "o"],
    ["SELECT", "*", "FROM", "read_csv", "(", "'/etc/passwd'", ")"],
    ["SELECT", "*", "FROM", "read_text", "(", "'{w}'", ")"],
    ["SELECT", "*", "FROM", "'{d}/other.duckdb'"],
    ["SELECT", "*", "FROM", "glob", "(", "'{d}/*'", ")"],
]
READS = [
    ["SELECT", "'COPY (SELECT 1) TO ''{w}''' AS", "s"],
    ["SELECT", "count(*)", "FROM", "review.decisions", "/* DROP TABLE review.decisions */"],
    ["SELECT", "hub_iso3", "FROM", "route_scores", "WHERE", "hub_iso3", "<>", "'ATTACH'"],
    ["DESCRIBE", "route_scores"], ["SUMMARIZE", "route_scores"], ["SHOW", "TABLES"],
    ["PIVOT", "route_scores", "ON", "hub_iso3", "USING", "max(route_score)"],
    ["WITH", "t", "AS", "(", "SELECT", "1", "AS", "a", ")", "SELECT", "*", "FROM", "t"],
]
WRAPPERS = [[], ["EXPLAIN"], ["EXPLAIN", "ANALYZE"], ["EXPLAIN", "(", "FORMAT", "json", ")"],
            ["EXPLAIN", "ANALYZE", "(", "FORMAT", "json", ")"]]
GAPS = st.sampled_from([" ", "  ", "\n", "\t", " /* x */ ", " /* DROP; */\n", " -- note\n"])


@st.composite
def dressed(draw, cores: list[list[str]], wrap: bool) -> str:
    words = (draw(st.sampled_from(WRAPPERS)) if wrap else []) + draw(st.sampled_from(cores))
    out = []
    for word in words:
        keyword = word.replace("_", "").isalpha() and "'" not in word
        if keyword:
            word = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)
        out.append(word)
        out.append(draw(GAPS))
    statement = "".join(out)
    around = draw(st.sampled_from(["{s}", "{s};", "SELECT 1; {s}", "{s}; SELECT 1", "/* lead */ {s}"]))
    return around.replace("{s}", statement)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("guarded")
    path = folder / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE route_scores AS SELECT * FROM (VALUES ('THA', 0.8), ('MEX', 0.5)) t(hub_iso3, route_score)")
    con.execute("CREATE SCHEMA review; CREATE TABLE review.decisions AS SELECT 1 AS decision_id, 'kept' AS note")
    con.close()
    duckdb.connect(str(folder / "other.duckdb")).close()
    (folder / "import").mkdir()
    (folder / "import" / "schema.sql").write_text("DROP TABLE review.decisions;\n")
    (folder / "import" / "load.sql").write_text("")
    return path


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=dressed(WRITES, wrap=True))
def test_no_dressing_of_a_write_changes_a_byte(warehouse, query):
    folder = warehouse.parent
    before = _snapshot(folder)
    text = query.format(w=warehouse, d=folder)
    con = connect_analyst(warehouse)
    try:
        try:
            run_query(con, text)
        except (WarehouseError, duckdb.Error):
            pass
        assert con.sql("SELECT note FROM review.decisions").fetchall() == [("kept",)]
    finally:
        con.close()
    assert _snapshot(folder) == before, text


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=dressed(READS, wrap=False))
def test_reads_that_only_mention_writes_still_run(warehouse, query):
    con = connect_analyst(warehouse)
    try:
        assert run_query(con, query.format(w=warehouse, d=warehouse.parent)) is not None
    finally:
        con.close()
