"""`transship fetch comtrade|census`: downloads from the live APIs into a data folder."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flows.cli.app import cli
from warehouse.fetch import FetchLimits

FETCH_LIMITS = FetchLimits()


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
    f = click.option("--deadline", "total_seconds", type=click.FloatRange(1), default=FETCH_LIMITS.total_seconds, show_default=True,
                     help="Stop the whole fetch after this many seconds (waits for rate limits included).")(f)
    f = click.option("--answer-seconds", type=click.FloatRange(1), default=FETCH_LIMITS.answer_seconds, show_default=True,
                     help="Give up on an answer still arriving after this many seconds (a stalled server).")(f)
    return click.option("--max-answer-mb", type=click.IntRange(1), default=FETCH_LIMITS.max_answer_bytes >> 20, show_default=True,
                        help="Refuse an answer larger than this (parsing one takes ~15x its size in memory).")(f)


def _fetch_limits(max_answer_mb: int, answer_seconds: float, total_seconds: float):
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
