"""`transship run` and `transship demo`: the whole job over a data folder (or the bundled sample world),
then its summary."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import (SETTINGS, SOURCES, LIMITS, catalogue_option, model_option, queue_option,
                               quiet_prefect, replaced_quantile_option, reports_option, threshold_option,
                               warehouse_option, window_option)


def _run(data_dir: Path, warehouse: Path, reports: Path, given: dict | None = None, full: bool = False) -> dict:
    """Run the pipeline with the warehouse's settings file (flows.settings.settings_for), the values in `given`
    (those the command line was given) winning over it."""
    quiet_prefect()
    from dataclasses import replace

    from flows.pipeline import transship_pipeline
    from flows.progress import step
    from flows.settings import SettingsFileError, settings_for

    try:
        settings, origin = settings_for(warehouse, reports, given, full)
    except SettingsFileError as exc:
        raise click.ClickException(str(exc)) from None
    settings = replace(settings, origin=origin)
    if origin["file"]:
        step(f"settings from {origin['file']}: " + ", ".join(f"{k} = {v}" for k, v in origin["values"].items()
                                                             if origin["from"].get(k) == "file"))
    step("starting Prefect (a temporary local server on 127.0.0.1; the first start takes ~15 s)")
    if settings.dask_address:
        from flows.fanout import prefect_api_for_workers

        with prefect_api_for_workers():
            return transship_pipeline(data_dir, settings)
    return transship_pipeline(data_dir, settings)


def _given(ctx: click.Context) -> dict:
    """The settings the warehouse's settings file can also give (flows.settings.SETTINGS_KEYS, named as this
    command's options) that the command line (or the environment) gave, not its defaults: those yield to the
    file."""
    from click.core import ParameterSource

    from flows.settings import SETTINGS_KEYS

    return {k: ctx.params[k] for k in SETTINGS_KEYS
            if ctx.get_parameter_source(k) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}


def build_line(build: dict | None) -> str:
    """One line on how the run built: full (why) or incremental (what it rebuilt)."""
    if not build:
        return ""
    if build["mode"] == "full":
        return f"[bold]full build[/bold] ({build['reason']})"
    periods = build.get("periods_rebuilt", {})
    spans = [f"{k.split()[1]} {v['first'][:7]}..{v['last'][:7]}" if v["periods"] > 1 else f"{k.split()[1]} {v['first'][:7]}"
             for k, v in periods.items() if k.startswith("marts")]
    routes = sum(build.get("routes_changed", {}).values())
    if not periods:
        return "[bold]incremental build[/bold]: no new input, nothing rebuilt"
    return (f"[bold]incremental build[/bold]: periods rebuilt {', '.join(spans) or 'none on the grid'}; "
            f"{routes:,} routes changed; {build.get('route_periods_refeatured') or 0:,} route-periods' features "
            f"and {build.get('route_periods_rescored') or 0:,} scores rewritten")


def _summarise(run: dict, warehouse: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(emoji=False)
    files = Table(title="Input files", title_justify="left")
    for col in ("file", "format", "status", "read", "loaded", "rejected", "notes"):
        files.add_column(col, justify="right" if col in ("read", "loaded", "rejected") else "left",
                         overflow="fold", ratio=3 if col == "notes" else None)
    for f in run["input_files"]:
        files.add_row(Text(Path(f["source_file"]).name), f["file_format"] or "-", f["status"], f"{f['rows_read']:,}",
                      f"{f['rows_loaded']:,}", f"{f['rows_rejected']:,}", Text(f["notes"] or ""))
    console.print(files)
    counts = run["layer_counts"]
    console.print(build_line(run.get("build")))
    console.print(
        f"raw records {counts.get('raw.comtrade_records', 0) + counts.get('raw.national_records', 0):,} "
        f"(rejects {counts.get('raw.rejects', 0):,}); "
        f"flows {counts.get('intermediate.int_flows', 0):,} + set aside {counts.get('intermediate.int_flows_excluded', 0):,}; "
        f"route-periods {counts.get('marts.fct_route_legs', 0):,}; scored {counts.get('main.route_scores', 0):,}; "
        f"routes flagged [bold]{counts.get('main.flagged_routes', 0):,}[/bold]")
    for m in run.get("models", []):
        colour = "yellow" if m["note"].startswith("not scored") or m.get("drift") else "dim"
        console.print(Text(f"{m['frequency']} {m['mineral']}: {m.get('model_id') or 'no model'}: {m['note']}", style=colour))
    from flows.report.markdown import features_screen_line, forest_line

    if screened := features_screen_line(run):
        console.print(Text(screened, style="dim"))
    if forests := forest_line(run):
        console.print(Text(forests, style="dim"))
    if run.get("seconds"):
        console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in run["seconds"].items())
                      + f" (stages: {sum(run['seconds'].values()):.1f})")
    split = (run.get("build") or {}).get("score_seconds")
    if split:
        console.print("score stage: " + ", ".join(f"{k} {v:.1f}" for k, v in split.items()))
    peak = run.get("peak_rss_gb")
    if peak:  # the peak so far after each stage: the stage where it reaches its maximum set it
        top = max(peak.values())
        console.print(f"peak memory {top:.2f} GiB (RSS), reached in {next(k for k, v in peak.items() if v == top)}")
    why = ((run.get("build") or {}).get("coverage") or {}).get("why_nothing_scored")
    if why:
        console.print(Text(f"Nothing was scored: {why}", style="yellow"))
    console.print(f"warehouse: {warehouse}   report: {run['report_dir']}/report.html")


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with trade files (searched recursively; formats recognised by their header).")
@warehouse_option
@reports_option
@catalogue_option
@window_option
@threshold_option
@replaced_quantile_option
@queue_option
@model_option
@click.option("--census-measure", type=click.Choice(["general imports", "imports for consumption"]),
              default=SOURCES.census_import_measure, show_default=True,
              help="Which US Census import measure to use when a file has both.")
@click.option("--cif-fob-rate", type=click.FloatRange(0, 0.99), default=SOURCES.cif_fob_rate, show_default=True,
              help="Freight and insurance share taken off CIF values for mirror gaps (IMF DOTS convention 0.10).")
@click.option("--dismissed-regrowth", type=click.FloatRange(0, 100), default=SETTINGS.dismissed_regrowth, show_default=True,
              help="A dismissed route returns to the flagged list when its evidence (excess tonnes beyond its prior "
                   "run rate) exceeds what the analyst saw by this share (0.5 = 50 percent more).")
@click.option("--notify-url", envvar="TRANSSHIP_NOTIFY_URL", default=None,
              help="When the run ends, POST its summary as JSON to this URL (env TRANSSHIP_NOTIFY_URL).")
@click.option("--notify-command", envvar="TRANSSHIP_NOTIFY_COMMAND", default=None,
              help="When the run ends, pipe its Markdown summary to this shell command, with TRANSSHIP_RUN_ID and "
                   "TRANSSHIP_RUN_STATUS set (env TRANSSHIP_NOTIFY_COMMAND).")
@click.option("--full", is_flag=True, default=False,
              help="Rebuild every period and route. By default a run rebuilds only what files it has not seen "
                   "touch (and everything when the catalogue, a setting or the code changed); both give the "
                   "same warehouse.")
@click.option("--dask-address", envvar="TRANSSHIP_DASK_ADDRESS", default=None, metavar="tcp://HOST:8786",
              help="Read each new file, and fit and score each product group, on this Dask cluster's workers "
                   "(env TRANSSHIP_DASK_ADDRESS). The workers need this project installed at the same commit "
                   "and the data folder at the same path; the warehouse stays here.")
@click.option("--max-file-mb", type=click.IntRange(1, 1 << 20), envvar="TRANSSHIP_MAX_FILE_MB", default=LIMITS.max_file_bytes >> 20,
              show_default=True,
              help="Refuse an input file larger than this once decompressed (env TRANSSHIP_MAX_FILE_MB): reading a "
                   "file takes a few times its size in memory, and a small .gz can expand to gigabytes.")
@click.option("--max-json-depth", type=click.IntRange(2, 10_000), envvar="TRANSSHIP_MAX_JSON_DEPTH", default=LIMITS.max_json_depth,
              show_default=True,
              help="Refuse a JSON file nested deeper than this (env TRANSSHIP_MAX_JSON_DEPTH); trade records nest "
                   "2 or 3 levels.")
def run(data_dir: Path, warehouse: Path, reports: Path, catalogue: Path | None, window: int,
        min_route_score: float, queue_size: int | None, model_policy: str, census_measure: str,
        cif_fob_rate: float, dismissed_regrowth: float, notify_url: str | None, notify_command: str | None,
        full: bool, dask_address: str | None, max_file_mb: int, max_json_depth: int) -> None:
    """Run the pipeline over every supported file under --data.

    Recognised by their header: UN Comtrade (API JSON, bulk CSV), US Census API JSON and USA Trade Online
    CSV, China customs (GACC) CSV/XLSX, CEPII BACI, rate tables (period,currency,units_per_usd,source), and
    your own tables with a NAME.mapping.toml beside them.

    Settings kept beside the warehouse (warehouse/transship.toml for warehouse/transship.duckdb, a [run]
    table of these options' names with underscores, e.g. queue_size = 10) apply to every run on it, by this
    command, `transship serve` and the Prefect deployment alike; an option given here wins over the file."""
    result = _run(data_dir, warehouse, reports, _given(click.get_current_context()), full)
    _summarise(result, warehouse)


@cli.command()
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sample world.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True,
              help="Where the sample world's data (out/data) and truth (out/truth.json) are written.")
@click.option("--warehouse", type=click.Path(dir_okay=False, path_type=Path), default=Path("warehouse/demo.duckdb"),
              show_default=True, help="DuckDB warehouse file for the demo.")
@reports_option
@click.option("--formats", type=click.Choice(["comtrade", "national"]), default="comtrade", show_default=True,
              help="Write the world as UN Comtrade files, or as the national releases (US Census API, China "
                   "customs CSV in yuan with a rate table).")
@click.option("--hold-back", type=click.IntRange(0, 24), default=0, show_default=True,
              help="Keep the last N months out of OUT/data, each written as a monthly release under "
                   "OUT/releases/YYYY-MM: copy one into OUT/data and `transship run` again to see an incremental "
                   "run (Comtrade format only; use a fresh --out and --warehouse).")
def demo(seed: int, out: Path, warehouse: Path, reports: Path, formats: str, hold_back: int) -> None:
    """Write the bundled sample world and run the whole pipeline on it, then say how well it did."""
    from flows.harness.demo import demo_verdict
    from flows.progress import step
    from worlds.national import write_national_world
    from worlds.sample import write_sample_world

    step(f"writing the sample world (seed {seed}, {formats} formats) to {out}/data")
    if hold_back and formats != "comtrade":
        raise click.UsageError("--hold-back writes monthly releases in the Comtrade format only: drop --formats national")
    paths = (write_sample_world(out, seed=seed, hold_back=hold_back) if formats == "comtrade"
             else write_national_world(out, seed=seed))
    result = _run(paths["data_dir"], warehouse, reports)
    _summarise(result, warehouse)
    demo_verdict(warehouse, paths["truth"])
    click.echo(f"\nOpen {result['report_dir']}/report.html (also {reports}/latest/report.html) in a browser.")
    click.echo(f'Try: transship sql --warehouse {warehouse} "select rank, mineral, hs_code, hub_iso3, '
               'peak_period, round(peak_route_score, 3) as score from flagged_routes"')
    click.echo(f'     transship review --list --warehouse {warehouse}')
    click.echo(f'     transship review RANK dismissed --warehouse {warehouse} --by "Your Name" --note "why", then run '
               'the demo again')
    releases = sorted(k.removeprefix("release_") for k in paths if k.startswith("release_"))
    if releases:
        click.echo(f"\nHeld back as monthly releases: {', '.join(releases)} (under {out / 'releases'}). Next month's run:")
        click.echo(f"  cp {out / 'releases' / releases[0]}/* {paths['data_dir']}/ && "
                   f"transship run --data {paths['data_dir']} --warehouse {warehouse} --reports {reports}")
