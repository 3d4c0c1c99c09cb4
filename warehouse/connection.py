"""The one place that opens the warehouse, plus small query helpers.

Analysts get read-only connections; a pipeline run writes into a private copy that is published over the
live file only when the run has finished (see `warehouse.publish`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb

# Files stay readable by the DuckDB command-line tool that analysts install from PyPI (1.5.x).
STORAGE_VERSION = "v1.5.0"


class WarehouseError(RuntimeError):
    """The warehouse file cannot be opened as asked; the message says what to do."""


def _memory_config() -> dict[str, str]:
    """An operator's cap on DuckDB's memory (e.g. "4GB"), for every connection the process opens, the
    read-only ones (the report's) too: beyond it, DuckDB spills to <warehouse>.tmp. Unset, DuckDB takes up
    to 80 % of the machine's memory."""
    limit = os.environ.get("TRANSSHIP_DUCKDB_MEMORY_LIMIT")
    return {"memory_limit": limit} if limit else {}


def release_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Give the memory DuckDB holds between queries back to the system: the table blocks it keeps cached
    and what its allocator keeps of finished queries, up to its whole memory_limit. Called before Python
    works on a large result (a product group being scored, a file being read): otherwise the process holds
    both. Done by lowering memory_limit for a moment, which makes DuckDB evict and flush (there is no
    statement for it); the limit is then set back as configured. Measured on the 20 M world: reading the
    largest section's rows left 2.36 GB resident, 1.22 GB after this."""
    try:
        con.execute("SET memory_limit = '64MB'")
    except duckdb.Error:  # more than that is pinned (a query's state): it stays, and so does the limit
        pass
    finally:
        limit = _memory_config().get("memory_limit")
        con.execute("SET memory_limit = '" + limit.replace("'", "''") + "'" if limit else "RESET memory_limit")


def connect_read_only(path: Path, extra_config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if not path.exists():
        raise WarehouseError(
            f"{path}: no warehouse here yet. Run `transship demo` or `transship run --data DIR` first, "
            "or point --warehouse at an existing file."
        )
    try:
        return duckdb.connect(str(path), read_only=True, config={**_memory_config(), **(extra_config or {})})
    except duckdb.IOException as exc:
        raise WarehouseError(f"{path}: cannot open read-only ({exc})") from None


def connect_read_write(path: Path) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"storage_compatibility_version": STORAGE_VERSION, **_memory_config()}
    try:
        return duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        raise WarehouseError(
            f"{path}: cannot open for writing ({exc}). Another process may hold it: wait for it to finish."
        ) from None


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """All rows of a query (fetching everything, so the connection is free for the next statement)."""
    return con.execute(sql, params or []).fetchall()


def execute_script(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run several statements, giving each the named parameters ($name) it uses (DuckDB binds parameters
    to the last statement of a multi-statement string only)."""
    for statement in duckdb.extract_statements(sql):
        used = {k: v for k, v in (params or {}).items() if f"${k}" in statement.query}
        con.execute(statement.query, used) if used else con.execute(statement.query)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    result = rows(con, sql, params)
    return result[0][0] if result else None
