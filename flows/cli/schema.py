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

    con = open_read_only(warehouse)
    try:
        if relation:
            schema_name, _, name = relation.rpartition(".")
            found = con.execute("""
                SELECT column_name, data_type, coalesce(comment, '') FROM duckdb_columns()
                WHERE schema_name = ? AND table_name = ? ORDER BY column_index""", [schema_name or "main", name]).fetchall()
            if not found:
                raise click.ClickException(f"no table or view {relation!r} in {warehouse}; `transship schema` lists them")
            table = Table(title=relation, title_justify="left")
            for col in ("column", "type", "meaning"):
                table.add_column(col, no_wrap=col != "meaning")
            for row in found:
                plain_row(table, *row)
        else:
            found = con.execute("""
                SELECT schema_name || '.' || table_name AS name, 'table', coalesce(comment, ''), schema_name,
                       table_name FROM duckdb_tables() WHERE schema_name <> 'information_schema'
                UNION ALL
                SELECT schema_name || '.' || view_name, 'view', coalesce(comment, ''), schema_name, view_name
                FROM duckdb_views() WHERE NOT internal AND schema_name NOT IN ('information_schema', 'pg_catalog')
                ORDER BY schema_name = 'main' DESC, name""").fetchall()
            # Exact row counts of the tables (DuckDB's estimated_size can be twice the truth); views are not run.
            tables = [(schema_name, name) for _, kind, _, schema_name, name in found if kind == "table"]
            counts: dict[tuple[str, str], int] = {}
            if tables:
                quoted = [".".join('"' + part.replace('"', '""') + '"' for part in key) for key in tables]
                union = " UNION ALL ".join(f"SELECT {i} AS i, count(*) AS n FROM {q}" for i, q in enumerate(quoted))
                counts = {tables[i]: n for i, n in con.execute(union).fetchall()}
            table = Table(title=f"Tables in {warehouse} (transship schema RELATION for its columns)", title_justify="left")
            for col in ("table", "rows", "grain, key, units"):
                table.add_column(col, no_wrap=col != "grain, key, units", justify="right" if col == "rows" else "left")
            for name, kind, comment, schema_name, bare in found:
                rows_text = "view" if kind == "view" else f"{counts[(schema_name, bare)]:,}"
                plain_row(table, name, rows_text, comment)
    finally:
        con.close()
    wide_console().print(table)
