"""Every relation keeps its contract (warehouse/sql/contracts.toml) on a scored warehouse: listed there and
present in the warehouse, its key unique and never null, not empty unless a run may leave it so, and its
comment naming the key the checks use."""

from __future__ import annotations

import re

import duckdb
import pytest

from warehouse.contracts import contracts


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {f"{s}.{t}" for s, t in con.sql(
        "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
        "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
        "AND schema_name NOT IN ('information_schema', 'pg_catalog')").fetchall()}


@pytest.fixture(scope="module")
def warehouse(scored_warehouse):
    path, _ = scored_warehouse
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def test_every_relation_has_a_contract_and_every_contract_a_relation(warehouse):
    present, promised = _relations(warehouse), set(contracts())
    assert present - promised == set(), "relations with no contract in warehouse/sql/contracts.toml"
    assert promised - present == set(), "contracts of relations a run does not write"


def test_every_key_is_unique_and_not_null_and_every_relation_holds_rows(warehouse):
    broken = []
    for name, c in contracts().items():
        n = warehouse.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        if n == 0 and not c.may_be_empty:
            broken.append(f"{name}: empty")
        if not c.key:
            continue
        cols = ", ".join(c.key)
        nulls = " OR ".join(f"{k} IS NULL" for k in c.key)
        dupes = warehouse.sql(f"SELECT count(*) FROM (SELECT {cols} FROM {name} GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
        missing = warehouse.sql(f"SELECT count(*) FROM {name} WHERE {nulls}").fetchall()[0][0]
        if dupes or missing:
            broken.append(f"{name}: {dupes} duplicated keys, {missing} rows with a null key part ({cols})")
    assert not broken, "\n".join(broken)


def test_each_comment_names_the_key_the_checks_use():
    wrong = []
    for name, c in contracts().items():
        said = re.search(r"Key: \(([^)]*)\)\.|Key: ([a-z_0-9]+)\.", c.comment)
        if c.key and not said:
            wrong.append(f"{name}: key {c.key} not in its comment")
        elif said and tuple(k.strip() for k in (said.group(1) or said.group(2)).split(",")) != c.key:
            wrong.append(f"{name}: comment says {said.group(0)!r}, contract {c.key}")
    assert not wrong, "\n".join(wrong)


def test_a_duplicated_key_is_caught(tmp_path):
    """The check above can fail: the same query on a table with a repeated key finds it."""
    con = duckdb.connect(str(tmp_path / "k.duckdb"))
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (1, 'a'), (2, NULL)) AS v(k, s)")
    assert con.sql("SELECT count(*) FROM (SELECT k, s FROM t GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0] == 1
    assert con.sql("SELECT count(*) FROM t WHERE k IS NULL OR s IS NULL").fetchall()[0][0] == 1
    con.close()


def test_the_build_refuses_a_relation_whose_key_repeats_or_is_null():
    from warehouse.build import KeyViolation, check_key

    con = duckdb.connect()
    # 2,000 distinct keys and one repeated (with a NULL in a column that is not part of the key).
    con.execute("CREATE TABLE t AS SELECT 'M' AS f, i AS n, i * 2 AS v FROM range(2000) AS r(i)")
    check_key(con, "t", ("f", "n"))
    con.execute("INSERT INTO t VALUES ('M', 1234, NULL)")
    with pytest.raises(KeyViolation, match=r"t: key \(f, n\) is not unique, e.g. \('M', 1234\) appears 2 times"):
        check_key(con, "t", ("f", "n"))
    con.execute("DELETE FROM t WHERE v IS NULL; INSERT INTO t VALUES (NULL, 5000, 1)")
    with pytest.raises(KeyViolation, match="has NULLs"):
        check_key(con, "t", ("f", "n"))
