"""The one place that opens the warehouse, plus small query helpers.

Analysts get read-only connections; a pipeline run writes into a private copy that is published over the
live file only when the run has finished (see `warehouse.publish`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import duckdb

# Files stay readable by the DuckDB command-line tool that analysts install from PyPI (1.5.x).
STORAGE_VERSION = "v1.5.0"


class WarehouseError(RuntimeError):
    """The warehouse file cannot be opened as asked; the message says what to do."""


class WarehouseLocked(WarehouseError):
    """Another program has the warehouse open for writing."""


class WarehouseDamaged(WarehouseError):
    """The file is not a readable DuckDB warehouse: damaged, cut short, or not a warehouse at all."""


class ForeignWal(WarehouseError):
    """The write-ahead log beside the warehouse belongs to another version of the file."""


def decisions_backup(path: Path) -> Path:
    """Where the analysts' decisions are kept beside the warehouse (warehouse.review writes it)."""
    return Path(path).with_name(Path(path).name + ".decisions.json")


def wal_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".wal")


def open_error(path: Path, exc: BaseException, writing: bool) -> WarehouseError:
    """What a failure to open (or read) the warehouse means, as advice: locked, a foreign write-ahead log,
    or a damaged file. DuckDB says which in its message; anything else is reported as it is."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    holder = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", text)
    if "Could not set lock" in text or holder:
        who = f"{holder.group(1)}, process {holder.group(2)}" if holder else "another process"
        return WarehouseLocked(
            f"{path}: another program has it open for writing ({who}). Wait for it to finish, or close it "
            "(a DuckDB shell opened without -readonly holds the file); readers never block each other.")
    if "WAL" in text:
        return ForeignWal(
            f"{path}: its write-ahead log {wal_path(path).name} belongs to another version of the file and cannot "
            f"be applied ({first}). It was left by a program that wrote to the warehouse while it was being "
            f"replaced. `transship run` sets it aside by itself; or move it aside: mv {wal_path(path)} "
            f"{wal_path(path)}.old")
    if any(m in text for m in ("not a valid DuckDB database file", "Could not read enough bytes", "Corrupt database",
                               "checksum", "truncated", "cut short")):
        backup = decisions_backup(path)
        kept = (f"the analysts' decisions are kept beside it in {backup.name}: after the rebuild, "
                f"`transship review --import {backup}` brings them back" if backup.exists() else
                f"no copy of the analysts' decisions ({backup.name}) was found beside it")
        return WarehouseDamaged(
            f"{path}: not a readable DuckDB warehouse ({first}): the file is damaged or cut short. Restore it from "
            f"a backup, or move it aside and run again to build a new one; {kept}.")
    verb = "for writing" if writing else "read-only"
    return WarehouseError(f"{path}: cannot open {verb} ({first})")


def damage_in(exc: BaseException, path: Path) -> WarehouseError | None:
    """`exc` as advice when it says the data read from `path` are damaged (a checksum, a block cut short);
    None when it is another failure."""
    if isinstance(exc, WarehouseDamaged):
        return exc
    if isinstance(exc, duckdb.Error) and any(m in str(exc) for m in ("Corrupt database", "Could not read enough bytes")):
        return open_error(path, exc, writing=False)
    return None


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
        con = duckdb.connect(str(path), read_only=True, config={**_memory_config(), **(extra_config or {})})
    except duckdb.Error as exc:
        raise open_error(path, exc, writing=False) from None
    try:
        check_whole_blocks(con, path)
    except BaseException:
        con.close()
        raise
    return con


DUCKDB_HEADER_BYTES = 3 * 4096  # the file header and the two database headers before the first block


def check_whole_blocks(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A DuckDB file is its 12 KiB of headers and whole blocks: a file of any other size was cut short (DuckDB
    itself opens it, and fails only when a query reaches the missing blocks)."""
    ((block_size,),) = con.execute("SELECT block_size FROM pragma_database_size()").fetchall()
    size = Path(path).stat().st_size
    if block_size and (size - DUCKDB_HEADER_BYTES) % int(block_size):
        raise open_error(path, OSError(f"cut short: {size:,} bytes is not its headers and whole blocks of "
                                       f"{int(block_size):,}"), writing=False)


def connect_read_write(path: Path) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"storage_compatibility_version": STORAGE_VERSION, **_memory_config()}
    try:
        return duckdb.connect(str(path), config=config)
    except duckdb.Error as exc:
        raise open_error(path, exc, writing=True) from None


# DuckDB's row group: a table's rows are stored, compressed, in groups of this many. An insert of a number of
# rows that is not a multiple leaves a partial group, which the next insert fills, rewriting it.
ROW_GROUP_ROWS = 122_880


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


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Write what this connection committed into the database file (out of the write-ahead log)."""
    con.execute("CHECKPOINT")
