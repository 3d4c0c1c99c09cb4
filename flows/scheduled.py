"""The job as a deployment runs it on a schedule: the month's files downloaded first (each source retried by
Prefect on its own), then the pipeline (flows/pipeline.py) with the settings file beside the warehouse."""

# No `from __future__ import annotations`: Prefect validates a flow's parameters against their annotations
# (see flows/pipeline.py).

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.pipeline import transship_pipeline
from flows.progress import step
from flows.settings import DEFAULT_REPORTS, DEFAULT_WAREHOUSE


def _scheduled_name() -> str:
    return "scheduled " + datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def last_months(n: int, today: datetime | None = None) -> list[str]:
    """The n whole months before this one, oldest first ('YYYY-MM'): what customs have published by now."""
    from warehouse.fetch import months_between

    today = today or datetime.now(timezone.utc)
    y, m = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    first = y * 12 + m - 1 - (n - 1)
    return months_between(f"{first // 12}-{first % 12 + 1:02d}", f"{y}-{m:02d}")


@task(name="fetch", task_run_name="fetch {source}", cache_policy=NO_CACHE)
def fetch_source(source: str, spec: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Download one source's last months into the data folder (warehouse.fetch: staged, then moved into
    place whole). Prefect retries this task (spec's retries and retry_delay_seconds); nothing else retries."""
    import os

    from warehouse.fetch import Retry, fetch_census, fetch_comtrade

    months = last_months(int(spec["months"]))
    retry = Retry(attempts=int(spec["attempts"]))
    codes = [str(c) for c in spec["codes"]]
    if source == "census":
        kwargs = {"base_url": spec["base_url"]} if "base_url" in spec else {}
        result = fetch_census(data_dir, codes=codes, months=months, api_key=os.environ.get("CENSUS_API_KEY") or None,
                              retry=retry, progress=step, **kwargs)
        files = len(result.files)
    else:
        files = 0
        for pull in spec["pulls"]:
            kwargs = {k: spec[k] for k in ("base_url", "max_records") if k in spec}
            result = fetch_comtrade(data_dir, reporter=int(pull["reporter"]), flow=pull["flow"], codes=codes,
                                    months=months, api_key=os.environ.get("COMTRADE_API_KEY", ""), retry=retry,
                                    progress=step, **kwargs)
            files += len(result.files)
    step(f"fetch {source}: {files} file(s) for {months[0]}..{months[-1]}")
    return {"source": source, "months": [months[0], months[-1]], "files": files}


@flow(name="transship-scheduled", flow_run_name=_scheduled_name)
def scheduled_run(data_dir: str, warehouse: str = str(DEFAULT_WAREHOUSE), reports_dir: str = str(DEFAULT_REPORTS),
                  notify_url: str | None = None, notify_command: str | None = None,
                  dask_address: str | None = None) -> dict[str, Any]:
    """The job as a deployment runs it: plain parameters (paths as text) in, the run's row out. Every other
    setting comes from the warehouse's settings file (warehouse/transship.toml beside
    warehouse/transship.duckdb: flows.settings.settings_for), read at each run, as `transship run` reads it;
    the parameters given here win over it."""
    from dataclasses import replace

    from flows.settings import fetch_plan, settings_for

    settings, origin = settings_for(Path(warehouse), Path(reports_dir), {
        "notify_url": notify_url, "notify_command": notify_command, "dask_address": dask_address})
    # The downloads the settings file asks for ([fetch.*]) first, each retried by Prefect on its own; a
    # download that still fails fails the scheduled run before anything is built (the last good warehouse
    # and report stay in place), and says which source and why.
    for source, spec in fetch_plan(Path(warehouse)).items():
        fetch_source.with_options(retries=int(spec["retries"]),
                                  retry_delay_seconds=float(spec["retry_delay_seconds"]))(source, spec, Path(data_dir))
    return transship_pipeline(Path(data_dir), replace(settings, origin=origin))
