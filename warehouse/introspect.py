"""What a warehouse holds, read from DuckDB's own catalogue: its relations with their comments and exact
row counts, one relation's columns, and the names an interactive prompt completes."""

from __future__ import annotations

import duckdb

from warehouse.connection import rows

# The `.tables` line of the interactive prompt: every table with its comment.
LIST_TABLES_SQL = ("SELECT schema_name || '.' || table_name AS table_name, comment FROM duckdb_tables() "
                   "WHERE schema_name <> 'information_schema' ORDER BY 1;")


def relation_columns(con: duckdb.DuckDBPyConnection, schema_name: str, name: str) -> list[tuple[str, str, str]]:
    """A table's or view's columns in order: name, type, comment ('' when none)."""
    return con.execute("""
        SELECT column_name, data_type, coalesce(comment, '') FROM duckdb_columns()
        WHERE schema_name = ? AND table_name = ? ORDER BY column_index""", [schema_name, name]).fetchall()


def relations(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, int | None]]:
    """Every table and view, the main schema first: schema.name, 'table' or 'view', comment, and the exact
    row count of a table (DuckDB's estimated_size can be twice the truth; views are not run: None)."""
    found = con.execute("""
        SELECT schema_name || '.' || table_name AS name, 'table', coalesce(comment, ''), schema_name,
               table_name FROM duckdb_tables() WHERE schema_name <> 'information_schema'
        UNION ALL
        SELECT schema_name || '.' || view_name, 'view', coalesce(comment, ''), schema_name, view_name
        FROM duckdb_views() WHERE NOT internal AND schema_name NOT IN ('information_schema', 'pg_catalog')
        ORDER BY schema_name = 'main' DESC, name""").fetchall()
    tables = [(schema_name, name) for _, kind, _, schema_name, name in found if kind == "table"]
    counts: dict[tuple[str, str], int] = {}
    if tables:
        quoted = [".".join('"' + part.replace('"', '""') + '"' for part in key) for key in tables]
        union = " UNION ALL ".join(f"SELECT {i} AS i, count(*) AS n FROM {q}" for i, q in enumerate(quoted))
        counts = {tables[i]: n for i, n in con.execute(union).fetchall()}
    return [(name, kind, comment, counts.get((schema_name, bare)) if kind == "table" else None)
            for name, kind, comment, schema_name, bare in found]


def completion_names(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple[str, str]], set[str]]:
    """(schema, table) of every table, and every column name."""
    tables = rows(con, "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> 'information_schema'")
    columns = {c for (c,) in rows(con, "SELECT DISTINCT column_name FROM duckdb_columns()")}
    return tables, columns
