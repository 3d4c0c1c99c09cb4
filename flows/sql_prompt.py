"""`transship sql` without a query: an interactive, read-only SQL prompt on the warehouse.

prompt_toolkit gives line editing, a history kept in ~/.transship_sql_history and tab completion of table
names, column names and SQL keywords. A statement runs when it ends with `;` (it may span lines); every
statement is checked by warehouse.analyst_sql.check_statement and runs on the sandboxed connection
warehouse.analyst_sql.connect_analyst gives. `.tables` lists the tables,
`.quit` (or Ctrl-D) leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from warehouse.analyst_sql import run_query
from warehouse.connection import WarehouseError, rows

KEYWORDS = ("select", "from", "where", "group by", "order by", "limit", "join", "left join", "on", "using", "as",
            "and", "or", "not", "in", "between", "like", "ilike", "distinct", "count", "sum", "avg", "min", "max",
            "round", "desc", "asc", "having", "with", "case", "when", "then", "else", "end", "describe", "summarize",
            "show tables", "explain", "qualify", "over", "partition by")
HISTORY = Path.home() / ".transship_sql_history"


def completion_words(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Table names (schema.name, and the bare name in main), column names and SQL keywords."""
    tables = rows(con, "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> 'information_schema'")
    names = {f"{s}.{t}" for s, t in tables} | {t for s, t in tables if s == "main"}
    columns = {c for (c,) in rows(con, "SELECT DISTINCT column_name FROM duckdb_columns()")}
    return sorted(names | columns) + list(KEYWORDS)


def frame_table(frame: pl.DataFrame, max_rows: int):
    """A rich Table of the first max_rows rows (numbers right-aligned, floats to 4 significant digits). Every
    cell and header is plain Text: data is never read as Rich markup or emoji codes (':x:')."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    for name in frame.columns:
        table.add_column(Text(name), justify="right" if frame[name].dtype.is_numeric() else "left")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*[Text("" if v is None else (f"{v:,.4g}" if isinstance(v, float) else str(v))) for v in row])
    return table


def error_text(message: str):
    """An error line for the prompt: red, and never read as markup (it quotes the analyst's input)."""
    from rich.text import Text

    return Text(message, style="red")


def interactive(con: duckdb.DuckDBPyConnection, max_rows: int = 200, session=None,
                show: Callable[[object], None] | None = None) -> int:
    """Read statements until .quit or end of input; returns how many ran. `session` and `show` are for
    tests (a PromptSession on a pipe, a collector); by default the terminal and rich."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    if show is None:
        from rich.console import Console

        show = Console().print
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
            line, command = "SELECT schema_name || '.' || table_name AS table_name, comment FROM duckdb_tables() " \
                            "WHERE schema_name <> 'information_schema' ORDER BY 1;", "x;"
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
            show(error_text(f"query failed: {str(exc).splitlines()[0]}"))
            continue
        ran += 1
        if frame is not None:
            show(frame_table(frame, max_rows))
            show(f"{frame.height} row(s)" + ("" if frame.height <= max_rows else f", {max_rows} shown"))
    return ran
