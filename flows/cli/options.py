"""What the commands share: the options several take, with their defaults read from the dataclass that owns
each (FeatureParams, ScoreParams, SourceParams, InputLimits, Settings), and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import click

from features.params import FeatureParams
from flows.settings import DEFAULT_REPORTS, DEFAULT_WAREHOUSE, Settings
from models.params import ScoreParams
from warehouse.files import InputLimits
from warehouse.schema import SourceParams

# The defaults, each from its one owner.
FEATURES, SCORING, SOURCES, LIMITS, SETTINGS = FeatureParams(), ScoreParams(), SourceParams(), InputLimits(), Settings()


def quiet_prefect() -> None:
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
window_option = click.option("--window", type=click.IntRange(1, 24), default=FEATURES.window, show_default=True,
                             help="Scoring window in months (monthly data).")
threshold_option = click.option(
    "--min-route-score", type=click.FloatRange(0.0, 1.0, min_open=True), default=SCORING.min_route_score, show_default=True,
    help="Flag a route-period whose route score is at least this and that carries tonnes beyond its run rate on "
         "both legs, of known weight (direction_ok). One threshold for every mineral: the list grows with the "
         "evidence, not with the number of routes.")


def _replaced_quantile(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
    if value is not None:
        raise click.UsageError(f"--flag-quantile was replaced by --min-route-score (default {SCORING.min_route_score}): flags now need a "
                               "route score, one threshold for every mineral, not the model's top share of each "
                               "group. Drop the option, or set --min-route-score.")


replaced_quantile_option = click.option("--flag-quantile", type=float, default=None, hidden=True, expose_value=False,
                                        callback=_replaced_quantile)
queue_option = click.option("--queue-size", type=click.IntRange(1, 10_000), default=SCORING.queue_size,
                            help="Instead of --min-route-score: flag the N route-periods with the highest route score "
                                 "per period (a review queue of fixed size).")
model_option = click.option("--model", "model_policy", type=click.Choice(["auto", "reuse", "refit"]), default=SCORING.model_policy,
                            show_default=True,
                            help="auto: reuse the registered model while its training rows are unchanged and new "
                                 "periods show no drift, else refit; reuse: always score with the registered "
                                 "model; refit: always fit a new one.")


def debug_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:  # read by flows.errors (tracebacks) and _quiet_prefect (Prefect's logs)
        os.environ["TRANSSHIP_DEBUG"] = "1"
    return value



def open_read_only(warehouse: Path):
    """A read-only connection to the warehouse, or a ClickException saying why it cannot be opened."""
    from warehouse.connection import WarehouseError, connect_read_only

    try:
        return connect_read_only(warehouse)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None



def plain_row(table, *cells) -> None:
    """A table row whose text cells are plain Text: a value from a warehouse or a file (a name, a note, a path)
    is never read as Rich markup or an emoji code."""
    from rich.text import Text

    table.add_row(*[Text(c) if isinstance(c, str) else c for c in cells])
