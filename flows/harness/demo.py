"""How the demo did against the sample world's truth: where the planted routes ranked, which look-alikes
got in."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from warehouse.connection import connect_read_only
from warehouse.outputs import flagged_routes


def demo_scorecard(flagged: pl.DataFrame, truth_path: Path) -> pl.DataFrame:
    """One row per story of the truth file, with its rank among flagged routes (null = not flagged)."""
    stories = pl.DataFrame(json.loads(Path(truth_path).read_text(encoding="utf-8"))["stories"])
    # A route can be flagged in a metal's own series (gallium, germanium) when national lines separate it:
    # the story's best-ranked series counts.
    # Ranks are counted over distinct routes (hs_code, hub), so one route flagged in two series counts once.
    ranks = (flagged.sort("rank").group_by("hs_code", "hub_iso3", maintain_order=True).first()
             .with_row_index("route_rank", offset=1)
             .select("hs_code", "hub_iso3", pl.col("route_rank").cast(pl.Int64).alias("rank"), "peak_period",
                     "peak_score", pl.col("mineral").alias("flagged_series")))
    return stories.join(ranks, on=["hs_code", "hub_iso3"], how="left").sort(
        pl.col("rank").is_null(), "rank", "kind")


def demo_verdict(warehouse: Path, truth_path: Path) -> pl.DataFrame:
    from rich.console import Console
    from rich.table import Table

    con = connect_read_only(warehouse)
    try:
        flagged = flagged_routes(con)
    finally:
        con.close()
    card = demo_scorecard(flagged, truth_path)
    planted = card.filter(pl.col("kind") == "planted")
    n = planted.height
    in_top = planted.filter(pl.col("rank") <= n).height
    lookalikes_in = card.filter(pl.col("kind") != "planted", pl.col("rank").is_not_null())
    console = Console()
    table = Table(title="Sample world: truth vs flagged routes", title_justify="left")
    for col in ("kind", "route", "rank", "story"):
        table.add_column(col)
    for r in card.iter_rows(named=True):
        table.add_row(r["kind"], f"{r['hs_code']} {r['hub_iso3']}", "-" if r["rank"] is None else str(r["rank"]),
                      r["description"])
    console.print(table)
    console.print(
        f"[bold]Planted routes in the top {n} of the flagged list: {in_top}/{n}.[/bold] "
        + ("No look-alike was flagged." if lookalikes_in.is_empty() else
           "Look-alikes flagged: " + ", ".join(f"{r['kind']} {r['hs_code']} {r['hub_iso3']} (rank {r['rank']})"
                                               for r in lookalikes_in.iter_rows(named=True)))
        + f" Other (background) routes flagged: "
          f"{flagged.select('hs_code', 'hub_iso3').unique().height - card['rank'].is_not_null().sum()}.")
    return card
