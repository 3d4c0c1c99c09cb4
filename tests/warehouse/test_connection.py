"""The warehouse's connections: the operator's memory cap on every one, and memory handed back between reads."""

from __future__ import annotations

import pytest


def test_the_operators_memory_cap_holds_for_read_only_connections_too(tmp_path, monkeypatch):
    # The report reads the published warehouse read-only; uncapped, DuckDB takes up to 80 % of the machine.
    from warehouse.connection import connect_read_only, connect_read_write

    path = tmp_path / "w.duckdb"
    uncapped = connect_read_write(path)
    default = uncapped.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    uncapped.close()
    monkeypatch.setenv("TRANSSHIP_DUCKDB_MEMORY_LIMIT", "300MB")
    for connect in (connect_read_write, connect_read_only):
        con = connect(path)
        try:
            limit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        finally:
            con.close()
        assert limit != default and limit.startswith(("286", "300")), (connect.__name__, limit)


def _base_table_bytes(con) -> int:
    return con.sql("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'BASE_TABLE'").fetchall()[0][0]


@pytest.mark.parametrize("cap", ["300MB", None])
def test_release_memory_evicts_cached_blocks_and_keeps_the_operators_cap(tmp_path, monkeypatch, cap):
    # The score step reads a product group, then works on it in Python for a while: DuckDB's cache of the
    # table's blocks is let go first, and its memory_limit is afterwards what it was (the operator's, or
    # DuckDB's default).
    from warehouse.connection import connect_read_only, connect_read_write, release_memory

    if cap:
        monkeypatch.setenv("TRANSSHIP_DUCKDB_MEMORY_LIMIT", cap)
    else:
        monkeypatch.delenv("TRANSSHIP_DUCKDB_MEMORY_LIMIT", raising=False)
    path = tmp_path / "w.duckdb"
    con = connect_read_write(path)
    con.execute("CREATE TABLE t AS SELECT i, hash(i) AS h, random() AS r FROM range(8000000) AS r(i)")
    con.close()
    con = connect_read_only(path)
    try:
        limit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        # Read every column's blocks, and check what was read.
        total, _, mean = con.sql("SELECT sum(i), sum(h), avg(r) FROM t").fetchall()[0]
        assert total == 8_000_000 * 7_999_999 // 2 and 0.49 < mean < 0.51
        cached = _base_table_bytes(con)
        assert cached > 100_000_000, cached  # the table's blocks, kept after the query
        release_memory(con)
        assert _base_table_bytes(con) <= 64 * 1024 ** 2 < cached  # down to what release_memory keeps
        assert con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0] == limit
        assert con.sql("SELECT count(*) FROM t").fetchall()[0][0] == 8_000_000  # and it still reads
    finally:
        con.close()
