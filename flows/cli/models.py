"""`transship models`: the registered models, or one model's card."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import open_read_only, plain_row, warehouse_option


@cli.command()
@warehouse_option
@click.argument("model_id", required=False)
def models(warehouse: Path, model_id: str | None) -> None:
    """List the registered models, or print one model's card (MODEL_ID)."""
    from rich.table import Table

    from flows.progress import wide_console

    from warehouse.model_store import model_card, model_listing

    con = open_read_only(warehouse)
    try:
        if model_id:
            card = model_card(con, model_id)
            if card is None:
                raise click.ClickException(f"no model {model_id!r} in {warehouse}; `transship models` lists them")
            click.echo(json.dumps(json.loads(card), indent=2))
            return
        listed = model_listing(con)
    finally:
        con.close()
    table = Table(title=f"Registered models in {warehouse}", title_justify="left")
    for col in ("model", "freq", "mineral", "created (UTC)", "trained on", "rows", "routes", "in use", "drift (last run)"):
        table.add_column(col, no_wrap=col != "drift (last run)")
    for mid, freq, mineral, created, first, last, n, routes, used, drift in listed:
        plain_row(table, mid, freq, mineral, f"{created:%Y-%m-%d %H:%M}", f"{first}..{last}", f"{n:,}", f"{routes:,}",
                   f"{used:,} rows" if used else "-", drift or "-")
    wide_console().print(table)
