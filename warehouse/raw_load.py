"""The one way a checked file goes into the raw layer: good rows to their raw table, the rest to
`raw.rejects` with column, value and reason, in one transaction-free pass over a temp table.

Every loader builds a frame (`incoming`, with `source_row`, `record` and, where a line holds several
records, `part`) and a check query that adds `problem` = [column, value, reason] or NULL per row.
rows_read = rows_loaded + rows_rejected, always.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import ROW_GROUP_ROWS, rows


# Limits every loader applies to its typed values, written once so that every source refuses the same things
# with the same reasons (a rejected row keeps its column, value and reason in raw.rejects).
FIRST_PERIOD = "1988-01-01"  # the Harmonized System began in January 1988
MAX_AMOUNT = 1e14  # a value in its currency (after any scale): more than a year of world trade
MAX_QUANTITY = 1e13  # a quantity in its unit: ten billion tonnes when in kg


def period_problems(period: str, shown: str) -> str:
    """CASE branches refusing a period (a DATE expression; `shown` is the text to quote) before 1988 or
    after the month the load runs in: a period from the future is a typo or a corrupt file, never data."""
    return f"""
            WHEN {period} IS NULL THEN ['period', {shown}, 'not a valid date']
            WHEN {period} < DATE '{FIRST_PERIOD}'
                THEN ['period', {shown}, 'period before 1988: HS codes, which these figures are classified by, began in 1988']
            WHEN {period} > date_trunc('month', current_date)
                THEN ['period', {shown}, 'period after the month of this run (' || strftime(current_date, '%Y-%m')
                                         || '): trade figures cannot come from the future']"""


def amount_problems(column: str, value: str, shown: str, what: str, limit: float = MAX_AMOUNT) -> str:
    """CASE branches refusing a number (a DOUBLE expression, NULL passes) that is not finite or is beyond
    `limit` in size: such a figure is a unit or scale error, and it would overflow the exact sums downstream."""
    return f"""
            WHEN NOT isfinite({value}) THEN ['{column}', {shown}, '{what} is not a finite number']
            WHEN abs({value}) > {limit:.0e}
                THEN ['{column}', {shown}, '{what} is larger than {limit:.0e}: not a plausible customs figure (a unit or scale error?)']"""


def period_date(year: str, month: str) -> str:
    """A DATE from integer year and month expressions, NULL (never an error) when they make no date."""
    return (f"try_cast(lpad(({year})::VARCHAR, 4, '0') || '-' || lpad(({month})::VARCHAR, 2, '0') || '-01' AS DATE)")


@dataclass(frozen=True)
class LoadResult:
    source_file: str
    file_sha256: str
    file_format: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    notes: str


@dataclass
class Prepared:
    """A file read and turned into its loader's frame, not yet written: the half of loading that needs only
    the file, which can run anywhere (a Dask worker: flows/fanout.py). `write(con, prepared, batch_id=,
    file_sha256=, loaded_at=)` is the other half, in the process that holds the warehouse. `write` is a
    module-level function and `extra` plain values, so a Prepared pickles."""
    path: Path
    file_format: str
    frame: pl.DataFrame
    write: Callable[..., LoadResult]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# append_checked checks and writes a file's rows in slices of this many: DuckDB holds one slice's checked
# rows (a temp table of typed columns) at a time, not the whole file's beside the frame Python holds. Two
# row groups: each slice's insert then fills whole row groups, where 250,000 left one of 4,240 rows to be
# filled, written and read back by the next slice's insert (the 5 M world's 14 Comtrade files: inserts 7.6 s
# -> 5.1 s, the same rows).
CHECK_SLICE_ROWS = 2 * ROW_GROUP_ROWS


def append_checked(
    con: duckdb.DuckDBPyConnection,
    incoming: pl.DataFrame,
    *,
    check_sql: str,
    insert_sql: str,
    insert_params: list[Any],
    path: Path,
    file_sha256: str,
    batch_id: str,
    loaded_at: str,
    slice_rows: int | None = None,
    checked_columns: Sequence[str] | None = None,
) -> tuple[int, int]:
    """Run `check_sql` over `incoming` into the temp table `_checked`, run `insert_sql` (which reads the
    rows of `_checked` WHERE problem IS NULL), and append the others to raw.rejects; slice by slice of
    `slice_rows` rows (CHECK_SLICE_ROWS), in order (a check reads one row at a time: the slices give the same
    tables). `checked_columns`: the check's columns `insert_sql` reads, the only ones `_checked` keeps besides
    source_row, part and problem (default: all of them; the text columns a check types are most of its
    width, and the 5 M world's checks wrote them for nothing: 8.5 s -> 6.6 s). Returns (rows_loaded,
    rows_rejected)."""
    slice_rows = slice_rows or CHECK_SLICE_ROWS
    keep = None
    if checked_columns is not None:
        always = ["source_row", "problem", *(["part"] if "part" in incoming.columns else [])]
        keep = ", ".join(dict.fromkeys([*always, *checked_columns]))
    loaded = rejected = 0
    for start in range(0, max(incoming.height, 1), max(1, slice_rows)):
        part = incoming.slice(start, slice_rows)
        counts = _append_checked_slice(con, part, check_sql, insert_sql, insert_params, path, file_sha256,
                                       batch_id, loaded_at, keep)
        loaded, rejected = loaded + counts[0], rejected + counts[1]
    return loaded, rejected


def _append_checked_slice(con: duckdb.DuckDBPyConnection, incoming: pl.DataFrame, check_sql: str, insert_sql: str,
                          insert_params: list[Any], path: Path, file_sha256: str, batch_id: str,
                          loaded_at: str, keep: str | None = None) -> tuple[int, int]:
    """append_checked for one slice of the rows; `keep`: the columns `_checked` keeps (all when None)."""
    has_part = "part" in incoming.columns
    # The original record (a struct of every column as read) is needed only for the rejects: the check reads
    # the frame without it, and it is handed to DuckDB only when a row was rejected (Polars converts what is
    # registered, and the struct is as wide as the file).
    con.register("incoming", incoming.drop("record"))
    records = False
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _checked AS SELECT {keep or '*'} FROM ({check_sql})")
        con.execute(insert_sql, insert_params)
        ((loaded, rejected),) = rows(
            con, "SELECT count(*) FILTER (WHERE problem IS NULL), count(*) FILTER (WHERE problem IS NOT NULL) FROM _checked"
        )
        if rejected:
            con.register("incoming_records", incoming.select("source_row", *(["part"] if has_part else []), "record"))
            records = True
            con.execute(
                f"""
                INSERT INTO raw.rejects BY NAME
                SELECT ? AS batch_id, ? AS source_file, ? AS file_sha256, c.source_row, {"c.part" if has_part else "1"} AS part,
                       c.problem[1] AS column_name, c.problem[2] AS bad_value, c.problem[3] AS reason,
                       i.record::JSON AS record, ?::TIMESTAMP AS rejected_at
                FROM _checked AS c
                JOIN incoming_records AS i ON i.source_row = c.source_row {"AND i.part = c.part" if has_part else ""}
                WHERE c.problem IS NOT NULL ORDER BY c.source_row{", c.part" if has_part else ""}
                """,
                [batch_id, str(path), file_sha256, loaded_at],
            )
    finally:
        con.execute("DROP TABLE IF EXISTS _checked")
        con.unregister("incoming")
        if records:
            con.unregister("incoming_records")
    return int(loaded), int(rejected)
