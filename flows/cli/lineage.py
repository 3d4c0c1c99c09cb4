"""`transship lineage`: one score traced back to its run, input files, model and code version."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import open_read_only, reports_option, warehouse_option


@cli.command()
@click.argument("route")
@click.argument("period")
@warehouse_option
@reports_option
@click.option("--mineral", default=None, help="Only needed when HUB:HS names routes of two minerals.")
def lineage(route: str, period: str, warehouse: Path, reports: Path, mineral: str | None) -> None:
    """Trace one score back: the run, the input files with their SHA-256, the model and the code version.

    \b
    transship lineage THA:282580 2025-04
    transship lineage 1 2025-04          (rank 1 of the latest flagged list)

    ROUTE is HUB:HS or a rank; PERIOD is YYYY-MM (monthly) or YYYY (annual)."""
    from rich.text import Text

    from flows.progress import wide_console
    from warehouse.connection import WarehouseError
    from features.params import first_period_read
    from warehouse.lineage import route_lineage
    from warehouse.review import RouteRef

    con = open_read_only(warehouse)
    try:
        found = route_lineage(con, RouteRef.parse(route), period, mineral, reports, reach=first_period_read)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        con.close()
    s, r, m = found.score, found.run, found.model
    say = wide_console().print
    # soft_wrap: identifiers (paths, SHA-256, run ids) are never broken across lines; the terminal wraps.
    halves = (f" = √(graded {s['graded_score']:.3f} x learned {s['learned_score']:.3f})"
              if s.get("learned_score") is not None and s.get("graded_score") is not None else "")
    scores = (f"route_score {s['route_score']:.3f}{halves}, anomaly_score {s['anomaly_score']:.3f}"
              if s.get("anomaly_score") is not None else
              f"screened out of the forest's scoring (evidence {s.get('evidence') or 0:.4f}: its route score could "
              "not reach the screen)" if s.get("evidence") is not None else "not scored")
    say(Text.assemble((f"{s['hub_iso3']}:{s['hs_code']}", "bold"), f" {s['mineral']} ({s['frequency']}), period "
        f"{s['period']}: {scores}, flagged {'yes' if s['flagged'] else 'no'}"), soft_wrap=True)
    say(Text(f"  run      {r['run_id']}  {r['status']}, {r['started_at']:%Y-%m-%d %H:%M:%S} -> "
             f"{r['finished_at']:%Y-%m-%d %H:%M:%S} UTC, code {r['code_version']}, data {r['data_dir'] or '-'}"),
        soft_wrap=True)
    if m:
        say(Text(f"  model    {m['model_id']}  fitted by run {m['run_id']} at {m['created_at']:%Y-%m-%d %H:%M:%S}, "
                 f"code {m['code_version']}; trained on {m['training_first_period']}..{m['training_last_period']}, "
                 f"{m['n_train']:,} rows of {m['n_routes']:,} routes, training data sha256 "
                 f"{m['training_sha256'][:16]}"), soft_wrap=True)
    else:
        say(Text("  model    none (this row was not scored by a model)"))
    if halves and found.combiner:
        say(Text(f"  learned  {found.combiner}: route_score's learned half (models/combiner.json as the run read it)"),
            soft_wrap=True)
    say(Text(f"  report   {found.report_dir / 'report.html' if found.report_dir else '(not on disk under ' + str(reports) + ')'}"),
        soft_wrap=True)
    say(Text(f"  inputs   flows of {s['hs_code']} reported by CHN, USA or {s['hub_iso3']}, {found.first_period} .. "
             f"{s['period']} (the window, the prior years and the transit lags): {found.files.height} file(s)"),
        soft_wrap=True)
    for f in found.files.iter_rows(named=True):
        say(Text(f"    {f['source_file']}"), soft_wrap=True)
        say(Text(f"      {f['file_format'] or '-'}, reported by {f['reported']}: {f['flows']:,} flows over "
                 f"{f['first_period']}..{f['last_period']}, loaded by run {f['loaded_by_run'] or '-'}"), soft_wrap=True)
        say(Text(f"      sha256 {f['file_sha256'] or '-'}"), soft_wrap=True)

