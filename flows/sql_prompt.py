"""`transship sql` without a query: an interactive, read-only SQL prompt on the warehouse.

prompt_toolkit gives line editing, a history kept in ~/.transship_sql_history and tab completion of table
names, column names and SQL keywords. A statement runs when it ends with `;` (it may span lines); every
statement is checked by warehouse.analyst_sql.check_statement and runs on the sandboxed connection
warehouse.analyst_sql.connect_analyst gives. `.tables` lists the tables,
`.quit` (or Ctrl-D) leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from warehouse.analyst_sql import failure_text, run_query
from warehouse.connection import WarehouseError
from warehouse.introspect import LIST_TABLES_SQL, completion_names

KEYWORDS = ("select", "from", "where", "group by", "order by", "limit", "join", "left join", "on", "using", "as",
            "and", "or", "not", "in", "between", "like", "ilike", "distinct", "count", "sum", "avg", "min", "max",
            "round", "desc", "asc", "having", "with", "case", "when", "then", "else", "end", "describe", "summarize",
            "show tables", "explain", "qualify", "over", "partition by")
HISTORY = Path.home() / ".transship_sql_history"


def completion_words(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Table names (schema.name, and the bare name in main), column names and SQL keywords."""
    tables, columns = completion_names(con)
    names = {f"{s}.{t}" for s, t in tables} | {t for s, t in tables if s == "main"}
    return sorted(names | columns) + list(KEYWORDS)


def cell_text(value: object) -> str:
    """A value as an analyst reads it: numbers in full with thousands separators (894,000, not 8.94e+05),
    fractions to 4 decimals, exponents only below 0.0001; nothing for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):  # DECIMAL columns and literals such as 894000.0
        value = float(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        size = abs(value)
        if size >= 1e15:
            return f"{value:,.4g}"
        if value == int(value):
            return f"{value:,.0f}"
        if size >= 100:
            return f"{value:,.2f}"
        if size >= 1e-4:
            return f"{value:,.4f}".rstrip("0").rstrip(".")
        return f"{value:.3g}"
    return str(value)


def frame_table(frame: pl.DataFrame, max_rows: int):
    """A rich Table of the first max_rows rows (numbers right-aligned, in full: cell_text). Every cell and
    header is plain Text: data is never read as Rich markup or emoji codes (':x:')."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    for name in frame.columns:
        table.add_column(Text(name), justify="right" if frame[name].dtype.is_numeric() else "left")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*[Text(cell_text(v)) for v in row])
    return table


def frame_records(frame: pl.DataFrame, max_rows: int):
    """The first max_rows rows one below the other, a "column  value" line per column (psql's expanded
    display): what a result too wide for the terminal is shown as, so that 49 columns are not squashed."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    blocks = []
    for i, row in enumerate(frame.head(max_rows).iter_rows(), start=1):
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold")
        block.add_column()
        for name, value in zip(frame.columns, row):
            block.add_row(Text(name), Text(cell_text(value)))
        blocks += [Text(f"-[ row {i} ]" + "-" * 20, style="dim"), block]
    return Group(*blocks)


def fits(frame: pl.DataFrame, width: int, max_rows: int) -> bool:
    """Whether the table of `frame` fits `width` columns without wrapping cells: each column as wide as its
    widest header or cell, plus rich's 3 characters of border and padding per column."""
    head = frame.head(max_rows)
    need = 1
    for name in head.columns:
        cells = [cell_text(v) for v in head[name].to_list()]
        need += max([len(name), *map(len, cells)]) + 3
    return need <= width


def show_frame(frame: pl.DataFrame, max_rows: int, width: int, layout: str = "auto"):
    """frame_table, or frame_records when layout is "vertical", or "auto" and the table does not fit."""
    vertical = layout == "vertical" or (layout == "auto" and not fits(frame, width, max_rows))
    return frame_records(frame, max_rows) if vertical else frame_table(frame, max_rows)


def error_text(message: str):
    """An error line for the prompt: red, and never read as markup (it quotes the analyst's input)."""
    from rich.text import Text

    return Text(message, style="red")


def interactive(con: duckdb.DuckDBPyConnection, max_rows: int = 200, session=None,
                show: Callable[[object], None] | None = None, width: int = 160) -> int:
    """Read statements until .quit or end of input; returns how many ran. `session` and `show` are for
    tests (a PromptSession on a pipe, a collector); by default the terminal and rich. A result wider than
    the terminal (`width` for tests) is shown a row at a time (show_frame)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    if show is None:
        from rich.console import Console

        console = Console(emoji=False)
        show, width = console.print, console.width
    if session is None:
        session = PromptSession(history=FileHistory(str(HISTORY)))
    completer = WordCompleter(completion_words(con), ignore_case=True, match_middle=False)
    show("Read-only SQL on the warehouse. End a statement with ';'. .tables lists tables, .quit leaves.")
    buffer, ran = "", 0
    while True:
        try:
            line = session.prompt("transship> " if not buffer else "        ...> ", completer=completer)
        except EOFError:
            break
        except KeyboardInterrupt:
            buffer = ""
            continue
        command = line.strip()
        if not buffer and command in (".quit", ".exit", "quit", "exit", "\\q"):
            break
        if not buffer and command == ".tables":
            line, command = LIST_TABLES_SQL, "x;"
        buffer += line + "\n"
        if not command.endswith(";"):
            continue
        query, buffer = buffer, ""
        try:
            frame = run_query(con, query)
        except WarehouseError as exc:
            show(error_text(str(exc)))
            continue
        except duckdb.Error as exc:
            show(error_text(f"query failed: {failure_text(exc)}"))
            continue
        ran += 1
        if frame is not None:
            show(show_frame(frame, max_rows, width))
            show(f"{frame.height} row(s)" + ("" if frame.height <= max_rows else f", {max_rows} shown"))
    return ran
