"""`transship serve`: the job as a Prefect deployment on a cron schedule."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import quiet_prefect, reports_option, warehouse_option


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
    quiet_prefect()
    from flows.scheduled import scheduled_run

    parameters = {"data_dir": str(data_dir.resolve()), "warehouse": str(warehouse.resolve()),
                  "reports_dir": str(reports.resolve()), "notify_url": notify_url, "notify_command": notify_command}
    click.echo(f"serving transship-scheduled/{name}: {cron} ({tz}) over {parameters['data_dir']}; Ctrl-C stops")
    scheduled_run.serve(name=name, schedules=[Cron(cron, timezone=tz)], parameters=parameters,
                        description="transship: ingest, build, score and report the month's customs figures",
                        print_starting_message=False)
