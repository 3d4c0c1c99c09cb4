"""`transship schema`: what each table holds (grain, key, units), or one relation's columns."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import open_read_only, plain_row, warehouse_option


@cli.command()
@warehouse_option
@click.argument("relation", required=False)
def schema(warehouse: Path, relation: str | None) -> None:
    """What each table holds: grain, key and units (the warehouse's COMMENT ON), or one RELATION's columns.

    RELATION is schema.name (e.g. main.route_scores); names in the main schema may omit it."""
    from rich.table import Table

    from flows.progress import wide_console

    from warehouse.introspect import relation_columns, relations

    con = open_read_only(warehouse)
    try:
        if relation:
            schema_name, _, name = relation.rpartition(".")
            found = relation_columns(con, schema_name or "main", name)
            if not found:
                raise click.ClickException(f"no table or view {relation!r} in {warehouse}; `transship schema` lists them")
            table = Table(title=relation, title_justify="left")
            for col in ("column", "type", "meaning"):
                table.add_column(col, no_wrap=col != "meaning")
            for row in found:
                plain_row(table, *row)
        else:
            table = Table(title=f"Tables in {warehouse} (transship schema RELATION for its columns)", title_justify="left")
            for col in ("table", "rows", "grain, key, units"):
                table.add_column(col, no_wrap=col != "grain, key, units", justify="right" if col == "rows" else "left")
            for name, kind, comment, n in relations(con):
                plain_row(table, name, "view" if kind == "view" else f"{n:,}", comment)
    finally:
        con.close()
    wide_console().print(table)
