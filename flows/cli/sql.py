"""`transship sql`: read-only SQL on the warehouse, from the argument, standard input or a prompt."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import warehouse_option


def _attach_pair(ctx, param, values: tuple[str, ...]) -> tuple[tuple[str, Path], ...]:
    pairs = []
    for value in values:
        alias, sep, path = value.partition("=")
        if not sep or not alias.strip() or not path.strip():
            raise click.BadParameter(f"{value!r}: write NAME=FILE, e.g. --attach old=warehouse/old.duckdb")
        pairs.append((alias.strip(), Path(path.strip())))
    return tuple(pairs)


@cli.command()
@click.argument("query", required=False)
@warehouse_option
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV instead of a table (text a spreadsheet would run as a formula starts with ').")
@click.option("--max-rows", type=int, default=200, show_default=True, help="Rows shown in table mode.")
@click.option("--layout", type=click.Choice(["auto", "table", "vertical"]), default="auto", show_default=True,
              help="vertical: each row as 'column  value' lines; auto: vertical when the table is wider than the "
                   "terminal.")
@click.option("--attach", "attach", multiple=True, callback=_attach_pair, metavar="NAME=FILE",
              help="Also open this DuckDB warehouse, read-only, as NAME (e.g. to compare with last month's). "
                   "Repeatable.")
@click.option("--read-file", "read_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Let queries read this file (read_csv, read_parquet, ...). Repeatable. Without it, queries read "
                   "the warehouse only: no other file on the machine and no network.")
def sql(query: str | None, warehouse: Path, as_csv: bool, max_rows: int, layout: str,
        attach: tuple[tuple[str, Path], ...], read_files: tuple[Path, ...]) -> None:
    """Run QUERY read-only on the warehouse and print the result; QUERY may also come on standard input
    (`transship sql < query.sql`, `echo "select 1" | transship sql`). Without either, at a terminal, open
    an interactive read-only prompt (history, tab completion of tables and columns, statements end with ';').

    Only reads run: SELECT (with DESCRIBE, SHOW, SUMMARIZE, PIVOT, EXPLAIN), PRAGMA and SET VARIABLE.
    Anything else is refused by name. The connection itself cannot write, read other files or reach the
    network (DuckDB's enable_external_access is off and its configuration locked), except the files and
    warehouses named with --read-file and --attach, which it can only read."""
    import duckdb

    from flows.sql_prompt import interactive, show_frame
    from warehouse.analyst_sql import SqlAccess, connect_analyst, failure_text, run_query
    from warehouse.connection import WarehouseError

    try:
        con = connect_analyst(warehouse, SqlAccess(attach=attach, read_files=read_files))
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if query is None and not sys.stdin.isatty():
            query = sys.stdin.read()
            if not query.strip():
                raise click.ClickException("no QUERY given and standard input is empty: pass the query as an "
                                           "argument or pipe it in (transship sql < query.sql)")
        if query is None:
            interactive(con, max_rows)
            return
        frame = run_query(con, query)
        if frame is None:
            raise click.ClickException("the query returned no result set (only queries that return rows are shown)")
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.Error as exc:
        raise click.ClickException(f"query failed: {failure_text(exc)}") from None
    finally:
        con.close()
    if as_csv:
        from flows.spreadsheet import spreadsheet_safe

        sys.stdout.write(spreadsheet_safe(frame).write_csv())
        return
    from flows.progress import wide_console

    console = wide_console()
    console.print(show_frame(frame, max_rows, console.width, layout))
    shown = min(max_rows, frame.height)
    click.echo(f"{frame.height} row(s){'' if shown == frame.height else f', {shown} shown (use --csv for all)'}")
