"""`transship review`: record a decision on a route, or show the queue and the decisions."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import open_read_only, plain_row, warehouse_option


@cli.command()
@click.argument("route", required=False)
@click.argument("decision", required=False, type=click.Choice(["confirmed", "dismissed", "watching"]))
@warehouse_option
@click.option("--by", "analyst", envvar="TRANSSHIP_ANALYST", help="Your name (env TRANSSHIP_ANALYST).")
@click.option("--note", help="Why: what you checked and found (required with a decision).")
@click.option("--frequency", type=click.Choice(["M", "A"]), default=None,
              help="M (monthly) or A (annual): only needed when HUB:HS names both.")
@click.option("--mineral", default=None, help="Only needed when HUB:HS names routes of two minerals (811292).")
@click.option("--list", "show_list", is_flag=True, help="Show the queue: flagged, held-back and watched routes.")
@click.option("--history", is_flag=True, help="Show every decision recorded, oldest first.")
@click.option("--export", "export_to", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every decision to this JSON file (a copy also sits beside the warehouse, refreshed after "
                   "each run and decision: <warehouse>.decisions.json).")
@click.option("--import", "import_from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Add the decisions of an export (or of a <warehouse>.decisions.json) that the warehouse does not "
                   "have yet: how decisions come back after a damaged warehouse is rebuilt.")
def review(route: str | None, decision: str | None, warehouse: Path, analyst: str | None, note: str | None,
           frequency: str | None, mineral: str | None, show_list: bool, history: bool, export_to: Path | None,
           import_from: Path | None) -> None:
    """Record a decision on a route, or show the review queue.

    \b
    transship review 3 dismissed --by "J. Doe" --note "hub's own smelter, checked with the mission"
    transship review THA:282580 confirmed --by "J. Doe" --note "matches the bills of lading"
    transship review --list
    transship review --history
    transship review --export decisions.json      (and --import decisions.json)

    ROUTE is a rank in the latest flagged list or HUB:HS (ISO3 and product code). Decisions:
    confirmed (stays on the watch list; its later periods are always reported), dismissed (held back from
    the flagged list until its evidence grows by the regrowth setting, 50 % by default), watching (on the
    watch list, still flagged when the model flags it). They are kept in review.decisions, with history;
    runs never overwrite them. The flagged list changes at the next run."""
    from flows.progress import wide_console
    from warehouse.connection import WarehouseError
    from warehouse.review import RouteRef, decision_history, record_decision, review_queue

    if export_to or import_from:
        from warehouse.decisions_file import export_decisions, import_decisions

        if import_from:
            added, present = import_decisions(warehouse, import_from)
            click.echo(f"imported {added:,} decision(s) from {import_from}; {present:,} were already in {warehouse}")
        if export_to:
            con = open_read_only(warehouse)
            try:
                n = export_decisions(con, warehouse, export_to)
            finally:
                con.close()
            click.echo(f"exported {n:,} decision(s) to {export_to}")
        return
    if show_list or history:
        con = open_read_only(warehouse)
        try:
            frame = review_queue(con) if show_list else decision_history(con)
        except Exception as exc:  # a warehouse from before the review loop: no such table yet
            raise click.ClickException(f"{warehouse}: {str(exc).splitlines()[0]}; run the pipeline once first") from None
        finally:
            con.close()
        wide_console().print(_queue_table(frame) if show_list else _history_table(frame))
        return
    if not route or not decision:
        raise click.UsageError("give ROUTE and DECISION (e.g. `transship review 3 dismissed --by NAME --note ...`), "
                               "or --list / --history")
    try:
        row = record_decision(warehouse, RouteRef.parse(route), decision, analyst or "", note or "",
                              frequency=frequency, mineral=mineral)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
    seen = (f"rank {row['rank_seen']} in run {row['run_id']}" if row["was_flagged"] else "not flagged in the latest run")
    evidence = "-" if row["evidence_kg"] is None else f"{row['evidence_kg'] / 1000:,.1f} t"
    click.echo(f"recorded decision {row['decision_id']}: {row['hub_iso3']}:{row['hs_code']} ({row['mineral']}, "
               f"{row['frequency']}) {decision} by {row['analyst']}; {seen}; evidence: its largest excess over a "
               f"flagged period, {evidence} beyond the prior run rate. It takes effect at the next run.")


def _queue_table(frame):
    from rich.table import Table

    table = Table(title="Review queue (latest run)", title_justify="left")
    for col in ("list", "rank", "route", "hub", "mineral", "peak", "score", "largest excess t", "last decision"):
        table.add_column(col, justify="right" if col in ("rank", "score", "largest excess t") else "left",
                         overflow="fold", no_wrap=col in ("route", "peak"))
    for r in frame.iter_rows(named=True):
        decided = (f"{r['decision']} by {r['analyst']} {r['decided_at']:%Y-%m-%d}: {r['note']}" if r["decision"] else "-")
        plain_row(table, r["list"], str(r["rank"] or "-"), f"{r['hub_iso3']}:{r['hs_code']}", r["hub_name"] or "",
                   f"{r['mineral']} ({r['frequency']})",
                   "-" if r["peak_period"] is None else f"{r['peak_period']:%Y-%m}" if r["frequency"] == "M"
                   else f"{r['peak_period']:%Y}",
                   "-" if r["peak_route_score"] is None else f"{r['peak_route_score']:.3f}",
                   "-" if r["evidence_kg"] is None else f"{r['evidence_kg'] / 1000:,.1f}", decided)
    table.caption = ("nothing flagged, held back or watched" if frame.is_empty() else
                     "largest excess: the route's most tonnes beyond its prior run rate over its flagged periods (what "
                     "a dismissal is measured against); the report's cards give the excess at the peak period")
    return table


def _history_table(frame):
    from rich.table import Table

    table = Table(title="Review decisions, oldest first", title_justify="left")
    for col in ("id", "decided (UTC)", "analyst", "route", "decision", "run seen", "evidence t", "note"):
        table.add_column(col, overflow="fold")
    for r in frame.iter_rows(named=True):
        plain_row(table, str(r["decision_id"]), f"{r['decided_at']:%Y-%m-%d %H:%M}", r["analyst"],
                   f"{r['hub_iso3']}:{r['hs_code']} {r['mineral']}", r["decision"], r["run_id"] or "-",
                   "-" if r["evidence_kg"] is None else f"{r['evidence_kg'] / 1000:,.1f}", r["note"])
    table.caption = ("no decisions recorded yet" if frame.is_empty() else
                     "evidence: the route's largest excess beyond its prior run rate over its flagged periods, when "
                     "the decision was recorded")
    return table
