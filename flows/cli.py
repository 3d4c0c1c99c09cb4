"""The `transship` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from flows.settings import DEFAULT_REPORTS, DEFAULT_WAREHOUSE


def _quiet_prefect() -> None:
    """Prefect's temporary local server: loopback only, no telemetry, quiet. Set before Prefect is imported;
    an operator's own settings win."""
    for key, value in {
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
        # A failed run is reported once, on the command's own error line; Prefect's logs of it (a traceback per
        # task, flow and parent flow) only with --debug.
        "PREFECT_LOGGING_LEVEL": "INFO" if os.environ.get("TRANSSHIP_DEBUG") == "1" else "CRITICAL",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_API_SERVICES_TRIGGERS_ENABLED": "false",
    }.items():
        os.environ.setdefault(key, value)


warehouse_option = click.option(
    "--warehouse", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_WAREHOUSE,
    envvar="TRANSSHIP_WAREHOUSE", show_default=True, help="DuckDB warehouse file (env TRANSSHIP_WAREHOUSE).")
reports_option = click.option(
    "--reports", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_REPORTS, show_default=True,
    help="Folder for the per-run reports.")
catalogue_option = click.option(
    "--catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Mineral catalogue TOML (default: the bundled warehouse/catalogue/minerals.toml).")
window_option = click.option("--window", type=click.IntRange(1, 24), default=5, show_default=True,
                             help="Scoring window in months (monthly data).")
threshold_option = click.option(
    "--min-route-score", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.2, show_default=True,
    help="Flag a route-period whose route score is at least this and that carries tonnes beyond its run rate on "
         "both legs, of known weight (direction_ok). One threshold for every mineral: the list grows with the "
         "evidence, not with the number of routes.")


def _replaced_quantile(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
    if value is not None:
        raise click.UsageError("--flag-quantile was replaced by --min-route-score (default 0.2): flags now need a "
                               "route score, one threshold for every mineral, not the model's top share of each "
                               "group. Drop the option, or set --min-route-score.")


replaced_quantile_option = click.option("--flag-quantile", type=float, default=None, hidden=True, expose_value=False,
                                        callback=_replaced_quantile)
queue_option = click.option("--queue-size", type=click.IntRange(1, 10_000), default=None,
                            help="Instead of --min-route-score: flag the N route-periods with the highest route score "
                                 "per period (a review queue of fixed size).")
model_option = click.option("--model", "model_policy", type=click.Choice(["auto", "reuse", "refit"]), default="auto",
                            show_default=True,
                            help="auto: reuse the registered model while its training rows are unchanged and new "
                                 "periods show no drift, else refit; reuse: always score with the registered "
                                 "model; refit: always fit a new one.")


def _debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:  # read by flows.errors (tracebacks) and _quiet_prefect (Prefect's logs)
        os.environ["TRANSSHIP_DEBUG"] = "1"
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar="TRANSSHIP_DEBUG", callback=_debug, expose_value=False, is_eager=True,
              help="On failure, print the traceback and Prefect's logs (env TRANSSHIP_DEBUG=1).")
def cli() -> None:
    """transship: find transshipment routes in customs statistics.

    Loads China-reported exports and US-reported imports (UN Comtrade files) into a DuckDB warehouse,
    builds mirror-trade features per hub and product, scores them with isolation forests, and writes a
    report of the routes that look like rerouting around China's export controls."""


def _run(data_dir: Path, warehouse: Path, reports: Path, given: dict | None = None, full: bool = False) -> dict:
    """Run the pipeline with the warehouse's settings file (flows.settings.settings_for), the values in `given`
    (those the command line was given) winning over it."""
    _quiet_prefect()
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


def _plain_row(table, *cells) -> None:
    """A table row whose text cells are plain Text: a value from a warehouse or a file (a name, a note, a path)
    is never read as Rich markup or an emoji code."""
    from rich.text import Text

    table.add_row(*[Text(c) if isinstance(c, str) else c for c in cells])


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
        f"flows {counts.get('staging.stg_flows', 0):,} + set aside {counts.get('staging.stg_flows_excluded', 0):,}; "
        f"route-periods {counts.get('marts.fct_route_legs', 0):,}; scored {counts.get('main.route_scores', 0):,}; "
        f"routes flagged [bold]{counts.get('main.flagged_routes', 0):,}[/bold]")
    for m in run.get("models", []):
        colour = "yellow" if m["note"].startswith("not scored") or m.get("drift") else "dim"
        console.print(Text(f"{m['frequency']} {m['mineral']}: {m.get('model_id') or 'no model'}: {m['note']}", style=colour))
    from flows.report import forest_line

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
        console.print(f"peak memory {top:.2f} GB (RSS), reached in {next(k for k, v in peak.items() if v == top)}")
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
              default="general imports", show_default=True,
              help="Which US Census import measure to use when a file has both.")
@click.option("--cif-fob-rate", type=click.FloatRange(0, 0.99), default=0.10, show_default=True,
              help="Freight and insurance share taken off CIF values for mirror gaps (IMF DOTS convention 0.10).")
@click.option("--dismissed-regrowth", type=click.FloatRange(0, 100), default=0.5, show_default=True,
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
@click.option("--max-file-mb", type=click.IntRange(1, 1 << 20), envvar="TRANSSHIP_MAX_FILE_MB", default=1024,
              show_default=True,
              help="Refuse an input file larger than this once decompressed (env TRANSSHIP_MAX_FILE_MB): reading a "
                   "file takes a few times its size in memory, and a small .gz can expand to gigabytes.")
@click.option("--max-json-depth", type=click.IntRange(2, 10_000), envvar="TRANSSHIP_MAX_JSON_DEPTH", default=32,
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
    from flows.evaluate import demo_verdict
    from flows.progress import step
    from warehouse.sample_world import write_national_world, write_sample_world

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


@cli.group()
def fetch() -> None:
    """Download trade data from the live APIs into a data folder (raw answers plus a manifest).

    Everything is written to a hidden folder first and moved into place only when every request has
    succeeded, so a failed or interrupted fetch leaves nothing behind. Then: transship run --data OUT."""


def _fetch_done(result) -> None:
    click.echo(f"{result.requests} request(s), {result.records:,} record(s) -> {result.folder}")
    for f in result.files:
        click.echo(f"  {f.name}")


def _fetch_limits_options(f):
    f = click.option("--deadline", "total_seconds", type=click.FloatRange(1), default=3600, show_default=True,
                     help="Stop the whole fetch after this many seconds (waits for rate limits included).")(f)
    f = click.option("--answer-seconds", type=click.FloatRange(1), default=300, show_default=True,
                     help="Give up on an answer still arriving after this many seconds (a stalled server).")(f)
    return click.option("--max-answer-mb", type=click.IntRange(1), default=128, show_default=True,
                        help="Refuse an answer larger than this (parsing one takes ~15x its size in memory).")(f)


def _fetch_limits(max_answer_mb: int, answer_seconds: float, total_seconds: float):
    from warehouse.fetch import FetchLimits

    return FetchLimits(max_answer_bytes=max_answer_mb << 20, answer_seconds=answer_seconds,
                       total_seconds=total_seconds)


def _months_option(f):
    f = click.option("--to", "last", required=True, help="Last month, YYYY-MM.")(f)
    return click.option("--from", "first", required=True, help="First month, YYYY-MM.")(f)


@fetch.command("comtrade")
@click.option("--reporter", type=int, required=True, help="Reporter, Comtrade numeric code (156 China, 842 USA).")
@click.option("--flow", type=click.Choice(["X", "M"]), required=True, help="X exports, M imports.")
@click.option("--codes", required=True, help="HS codes, comma-separated (e.g. 282580,811010,811292).")
@_months_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Data folder.")
@click.option("--base-url", default="https://comtradeapi.un.org", envvar="TRANSSHIP_COMTRADE_URL", show_default=True)
@click.option("--max-records", type=int, default=100000, show_default=True,
              help="Comtrade+'s cap per answer for your subscription; capped answers are split and asked again.")
@_fetch_limits_options
def fetch_comtrade_cmd(reporter: int, flow: str, codes: str, first: str, last: str, out: Path, base_url: str,
                       max_records: int, max_answer_mb: int, answer_seconds: float, total_seconds: float) -> None:
    """Monthly records from the UN Comtrade+ API. The key comes from COMTRADE_API_KEY."""
    from flows.progress import step
    from warehouse.fetch import fetch_comtrade, months_between

    result = fetch_comtrade(out, reporter=reporter, flow=flow, codes=[c.strip() for c in codes.split(",") if c.strip()],
                            months=months_between(first, last), api_key=os.environ.get("COMTRADE_API_KEY", ""),
                            base_url=base_url, max_records=max_records, progress=step,
                            limits=_fetch_limits(max_answer_mb, answer_seconds, total_seconds))
    _fetch_done(result)


@fetch.command("census")
@click.option("--codes", required=True, help="HS/HTS codes, comma-separated (e.g. 8112921000,8110100000).")
@_months_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Data folder.")
@click.option("--base-url", default="https://api.census.gov", envvar="TRANSSHIP_CENSUS_URL", show_default=True)
@_fetch_limits_options
def fetch_census_cmd(codes: str, first: str, last: str, out: Path, base_url: str, max_answer_mb: int,
                     answer_seconds: float, total_seconds: float) -> None:
    """US imports by partner from the Census international trade API. A key (CENSUS_API_KEY) is optional."""
    from flows.progress import step
    from warehouse.fetch import fetch_census, months_between

    result = fetch_census(out, codes=[c.strip() for c in codes.split(",") if c.strip()],
                          months=months_between(first, last), api_key=os.environ.get("CENSUS_API_KEY") or None,
                          base_url=base_url, progress=step,
                          limits=_fetch_limits(max_answer_mb, answer_seconds, total_seconds))
    _fetch_done(result)


def _open_read_only(warehouse: Path):
    """A read-only connection to the warehouse, or a ClickException saying why it cannot be opened."""
    from warehouse.connection import WarehouseError, connect_read_only

    try:
        return connect_read_only(warehouse)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None


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
    from warehouse.analyst_sql import SqlAccess, connect_analyst, run_query
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
        raise click.ClickException(f"query failed: {str(exc).splitlines()[0]}") from None
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


@cli.command()
@click.option("--worlds", type=click.IntRange(1, 1000), default=20, show_default=True, help="Seeded worlds to generate.")
@click.option("--seed", "first_seed", type=int, default=0, show_default=True, help="Seed of the first world.")
@click.option("--jobs", type=click.IntRange(1, 64), default=min(2, os.cpu_count() or 1), show_default=True,
              help="Worlds scored in parallel (processes).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/evaluation.json"),
              show_default=True, help="Where the metrics are written as JSON.")
@click.option("--features/--no-features", "show_features", default=True, show_default=True,
              help="Show each single feature's row in the table.")
@click.option("--worlds-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Instead of seeded worlds: score every folder of files under DIR that has a truth file beside it "
                   "(NAME_truth.json, as in the validation worlds) or inside it (truth.json), per world.")
@click.option("--labels", "on_labels", is_flag=True,
              help="Instead of seeded worlds: measure the latest run's scores in --warehouse against the routes "
                   "analysts confirmed (true) and dismissed (false) with transship review.")
@warehouse_option
def evaluate(worlds: int, first_seed: int, jobs: int, out: Path, show_features: bool, worlds_dir: Path | None,
             on_labels: bool, warehouse: Path) -> None:
    """Measure detection on many seeded worlds: the model against the plain rules and each single feature.

    Each world plants 3 to 6 rerouting routes (hubs, minerals, start months from 2020-06, sizes from large
    down to under the floor, lags of 0 to 4 months, 40-100 % pass-through, ramps, lumpy shipments, routes
    split over two hubs, brand-new or grown on existing trade) among one look-alike of each kind. Routes are
    scored by their highest score over 2021-01..2025-06. Prints a table, average precision by difficulty
    class, and writes JSON (per world and averaged). No Prefect, no warehouse: each world runs in a
    temporary folder. --worlds-dir measures folders of files with their truth instead."""
    if on_labels:
        _evaluate_on_labels(warehouse, show_features)
        return
    from features.route_features import FeatureParams
    if worlds_dir is not None:
        from flows.evaluate import print_folder_evaluation, run_folder_evaluation
        from flows.progress import step
        from models.scoring import ScoreParams

        if out == Path("reports/evaluation.json"):
            out = Path("reports/evaluation-worlds.json")
        step(f"evaluation: the world folders under {worlds_dir}, {jobs} at a time")
        report = run_folder_evaluation(worlds_dir, jobs, out, FeatureParams(), ScoreParams(), progress=step)
        print_folder_evaluation(report)
        click.echo(f"{report['seconds']} s; metrics written to {out}")
        return
    from flows.evaluate import print_evaluation, run_evaluation
    from flows.progress import step
    from models.scoring import ScoreParams

    step(f"evaluation: {worlds} worlds from seed {first_seed}, {jobs} at a time")
    report = run_evaluation(worlds, first_seed, jobs, out, FeatureParams(), ScoreParams(), progress=step)
    print_evaluation(report, features=show_features)
    click.echo(f"{report['seconds']} s; metrics written to {out}")


def _evaluate_on_labels(warehouse: Path, show_features: bool) -> None:
    """The scorers of the evaluation harness measured on analysts' labels in the warehouse."""
    from rich.table import Table

    from flows.progress import wide_console
    from models.evaluation import evaluate_on_labels, scorers

    con = _open_read_only(warehouse)
    try:
        labels = con.sql("SELECT frequency, mineral, hs_code, hub_iso3, decision = 'confirmed' AS label "
                         "FROM review.current_decisions WHERE decision IN ('confirmed', 'dismissed')").pl()
        scores = con.sql("SELECT * FROM main.route_scores").pl() if labels.height else None
    finally:
        con.close()
    if not labels.height:
        raise click.ClickException(f"{warehouse}: no route is confirmed or dismissed yet; record decisions with "
                                   "`transship review ROUTE confirmed|dismissed --by NAME --note ...`")
    table = Table(title=f"Scorers on analysts' labels in {warehouse}", title_justify="left")
    for col in ("scorer", "kind", "labelled", "confirmed", "average precision", "precision of its flags"):
        table.add_column(col, justify="left" if col in ("scorer", "kind") else "right")
    for scorer in scorers():
        if scorer.kind == "feature" and not show_features:
            continue
        missing = [c for c in scorer.expr.meta.root_names() if c not in scores.columns]
        if missing:
            continue
        m = evaluate_on_labels(scores, labels, scorer)
        ap = "-" if m["average_precision"] is None else f"{m['average_precision']:.2f}"
        fp = "-" if scorer.kind != "model" or m["flagged_precision"] is None else f"{m['flagged_precision']:.2f}"
        table.add_row(scorer.name, scorer.kind, str(m["labelled"]), str(m["confirmed"]), ap, fp)
    table.caption = ("Average precision needs both confirmed and dismissed routes; a route's score is its highest "
                     "over its scored periods. Few labels make rough numbers.")
    wide_console().print(table)


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
            con = _open_read_only(warehouse)
            try:
                n = export_decisions(con, warehouse, export_to)
            finally:
                con.close()
            click.echo(f"exported {n:,} decision(s) to {export_to}")
        return
    if show_list or history:
        con = _open_read_only(warehouse)
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
        _plain_row(table, r["list"], str(r["rank"] or "-"), f"{r['hub_iso3']}:{r['hs_code']}", r["hub_name"] or "",
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
        _plain_row(table, str(r["decision_id"]), f"{r['decided_at']:%Y-%m-%d %H:%M}", r["analyst"],
                   f"{r['hub_iso3']}:{r['hs_code']} {r['mineral']}", r["decision"], r["run_id"] or "-",
                   "-" if r["evidence_kg"] is None else f"{r['evidence_kg'] / 1000:,.1f}", r["note"])
    table.caption = ("no decisions recorded yet" if frame.is_empty() else
                     "evidence: the route's largest excess beyond its prior run rate over its flagged periods, when "
                     "the decision was recorded")
    return table


@cli.command()
@warehouse_option
@click.argument("model_id", required=False)
def models(warehouse: Path, model_id: str | None) -> None:
    """List the registered models, or print one model's card (MODEL_ID)."""
    from rich.table import Table

    from flows.progress import wide_console

    con = _open_read_only(warehouse)
    try:
        if model_id:
            found = con.execute("SELECT card FROM models.registry WHERE model_id = ?", [model_id]).fetchall()
            if not found:
                raise click.ClickException(f"no model {model_id!r} in {warehouse}; `transship models` lists them")
            click.echo(json.dumps(json.loads(found[0][0]), indent=2))
            return
        listed = con.sql("""
            SELECT r.model_id, r.frequency, r.mineral, r.created_at, r.training_first_period, r.training_last_period,
                   r.n_train, r.n_routes, (SELECT count(*) FROM main.route_score_values s WHERE s.model_id = r.model_id) AS scoring_now,
                   (SELECT string_agg(feature, ', ') FROM models.drift d WHERE d.model_id = r.model_id AND d.drifted
                    AND d.run_id = (SELECT max(run_id) FROM models.drift)) AS drift_last_run
            FROM models.registry r ORDER BY r.created_at DESC, r.model_id""").fetchall()
    finally:
        con.close()
    table = Table(title=f"Registered models in {warehouse}", title_justify="left")
    for col in ("model", "freq", "mineral", "created (UTC)", "trained on", "rows", "routes", "in use", "drift (last run)"):
        table.add_column(col, no_wrap=col != "drift (last run)")
    for mid, freq, mineral, created, first, last, n, routes, used, drift in listed:
        _plain_row(table, mid, freq, mineral, f"{created:%Y-%m-%d %H:%M}", f"{first}..{last}", f"{n:,}", f"{routes:,}",
                   f"{used:,} rows" if used else "-", drift or "-")
    wide_console().print(table)


@cli.command()
@warehouse_option
@click.argument("relation", required=False)
def schema(warehouse: Path, relation: str | None) -> None:
    """What each table holds: grain, key and units (the warehouse's COMMENT ON), or one RELATION's columns.

    RELATION is schema.name (e.g. main.route_scores); names in the main schema may omit it."""
    from rich.table import Table

    from flows.progress import wide_console

    con = _open_read_only(warehouse)
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
                _plain_row(table, *row)
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
                _plain_row(table, name, rows_text, comment)
    finally:
        con.close()
    wide_console().print(table)


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The folder the monthly files arrive in (read at each run).")
@warehouse_option
@reports_option
@click.option("--cron", default="0 6 20 * *", show_default=True,
              help="When to run (cron: minute hour day month weekday). Default: the 20th of each month at 06:00, "
                   "after China's customs and the US Census Bureau have published the month before.")
@click.option("--timezone", "tz", default="UTC", show_default=True, help="Time zone of --cron (IANA name, e.g. Europe/Brussels).")
@click.option("--name", default="monthly", show_default=True, help="Deployment name (transship-scheduled/NAME).")
@click.option("--notify-url", envvar="TRANSSHIP_NOTIFY_URL", default=None, help="As for `transship run`.")
@click.option("--notify-command", envvar="TRANSSHIP_NOTIFY_COMMAND", default=None, help="As for `transship run`.")
def serve(data_dir: Path, warehouse: Path, reports: Path, cron: str, tz: str, name: str, notify_url: str | None,
          notify_command: str | None) -> None:
    """Register the pipeline as a Prefect deployment on a cron schedule and serve it (runs until stopped).

    Needs a Prefect server: start one with `prefect server start --host 127.0.0.1` and set
    PREFECT_API_URL=http://127.0.0.1:4200/api. Runs can also be started by hand from the Prefect UI or with
    `prefect deployment run transship-scheduled/monthly`."""
    import zoneinfo

    if not os.environ.get("PREFECT_API_URL"):
        raise click.ClickException(
            "serving needs a Prefect server to keep the schedule: run `prefect server start --host 127.0.0.1` "
            "in another terminal, then `export PREFECT_API_URL=http://127.0.0.1:4200/api` and try again")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise click.ClickException(f"time zone {tz!r}: use an IANA name such as UTC or Europe/Brussels") from None
    from prefect.schedules import Cron, validate_cron_string

    try:
        validate_cron_string(cron)
    except ValueError as exc:
        raise click.ClickException(f"--cron {cron!r}: {exc}") from None
    _quiet_prefect()
    from flows.pipeline import scheduled_run

    parameters = {"data_dir": str(data_dir.resolve()), "warehouse": str(warehouse.resolve()),
                  "reports_dir": str(reports.resolve()), "notify_url": notify_url, "notify_command": notify_command}
    click.echo(f"serving transship-scheduled/{name}: {cron} ({tz}) over {parameters['data_dir']}; Ctrl-C stops")
    scheduled_run.serve(name=name, schedules=[Cron(cron, timezone=tz)], parameters=parameters,
                        description="transship: ingest, build, score and report the month's customs figures",
                        print_starting_message=False)


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
    from warehouse.lineage import route_lineage
    from warehouse.review import RouteRef

    con = _open_read_only(warehouse)
    try:
        found = route_lineage(con, RouteRef.parse(route), period, mineral, reports)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        con.close()
    s, r, m = found.score, found.run, found.model
    say = wide_console().print
    # soft_wrap: identifiers (paths, SHA-256, run ids) are never broken across lines; the terminal wraps.
    scores = (f"route_score {s['route_score']:.3f}, anomaly_score {s['anomaly_score']:.3f}"
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


def main() -> None:
    """The command's entry point: every failure ends on one `error:` line (flows.errors), exit code 2 for bad
    input or setup, 1 for a fault in transship, 130 when interrupted."""
    try:
        cli(standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place a failure is turned into a message
        from flows.errors import forget, report

        code = report(exc, debug=os.environ.get("TRANSSHIP_DEBUG") == "1")
        forget(exc)
        del exc
        sys.exit(code)


if __name__ == "__main__":
    main()
