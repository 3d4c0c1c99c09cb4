"""Where a score came from: the run, the input files and their hashes, the model and the code version.

`route_lineage` follows one row of `main.route_scores` back through the warehouse:
- the run that wrote it (`main.runs`: times, status, code version, parameters, data folder);
- the model that scored it (`models.registry`: the run that fitted it, training periods, rows, training-data
  hash, code version);
- the input files whose flows feed its features: every flow of the route's product reported by China, the
  US or the hub in the periods its window, prior and transit lags reach back to (China's and the US's totals
  over all partners enter the shares, so all their partners' flows count), with each file's SHA-256 and the
  run that loaded it (`intermediate.int_flows` -> `raw.loads`);
- the report folder of the run, when it is on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import WarehouseError, rows
from warehouse.review import RouteRef


def parse_period(text: str) -> tuple[date, str | None]:
    """'2025-04', '2025-04-01' (a month) or '2025' (a year) -> (first day, frequency or None when a month
    could be either)."""
    text = text.strip()
    try:
        if len(text) == 4 and text.isdigit():
            return date(int(text), 1, 1), "A"
        parts = [int(p) for p in text.split("-")]
        if len(parts) in (2, 3):
            return date(parts[0], parts[1], 1), "M"
    except ValueError:
        pass
    raise WarehouseError(f"period {text!r}: write a month as YYYY-MM (e.g. 2025-04) or a year as YYYY")


@dataclass
class Lineage:
    score: dict[str, Any]
    run: dict[str, Any]
    model: dict[str, Any] | None
    files: pl.DataFrame
    first_period: date
    report_dir: Path | None
    combiner: str | None = None  # the learned half the run scored with (runs.parameters -> combiner)


def _why_never_scored(con: duckdb.DuckDBPyConnection, hub: str, hs_code: str) -> str:
    """Why a route has no score in any period, as advice."""
    from warehouse.feature_store import missing_legs

    missing = missing_legs(con, hub, hs_code)
    if missing is None:
        return (f"the warehouse has no trade of {hs_code} by {hub} with China or the US; check the hub's ISO3 code "
                "and the HS6 code")
    if missing:
        return (" and ".join(missing) + " in any period loaded, so the route was screened out before the features "
                f"(no Chinese goods passed on to the US there); its legs are in marts.fct_route_legs")
    return ("the route has both legs in marts.fct_route_legs but no period a score needs: the window and at "
            "least 12 prior periods, with trade on its legs in them")


def route_lineage(con: duckdb.DuckDBPyConnection, ref: RouteRef, period_text: str,
                  mineral: str | None = None, reports_dir: Path | None = None, *,
                  reach: Callable[[dict[str, Any] | None, date, str], date]) -> Lineage:
    """`reach(stored feature parameters, period, frequency)`: the first period a route-period's features read
    (the window, the prior and the transit lags: features.route_features.first_period_read)."""
    period, frequency = parse_period(period_text)
    if ref.rank is not None:
        found = rows(con, "SELECT hub_iso3, hs_code, mineral, frequency FROM main.flagged_routes WHERE rank = ?", [ref.rank])
        if not found:
            raise WarehouseError(f"rank {ref.rank}: not in the latest flagged list; name the route as HUB:HS")
        hub, hs_code, mineral, frequency = found[0]
    else:
        hub, hs_code = ref.hub_iso3, ref.hs_code
    scored = con.sql(
        """SELECT * FROM main.route_scores WHERE hub_iso3 = ? AND hs_code = ? AND period = ?
             AND (? IS NULL OR frequency = ?) AND (? IS NULL OR mineral = ?)""",
        params=[hub, hs_code, period, frequency, frequency, mineral, mineral]).pl()
    if scored.is_empty():
        span = rows(con, "SELECT min(period), max(period) FROM main.route_scores WHERE hub_iso3 = ? AND hs_code = ?",
                    [hub, hs_code])[0]
        where = (f"it is scored from {span[0]:%Y-%m} to {span[1]:%Y-%m}" if span[0] else _why_never_scored(con, hub, hs_code))
        raise WarehouseError(f"{hub}:{hs_code} {period_text}: no score for this route and period; {where}")
    if scored.height > 1:
        options = "; ".join(f"--mineral {m}" for m in scored["mineral"].to_list())
        raise WarehouseError(f"{hub}:{hs_code} {period_text} names {scored.height} scored rows; add one of: {options}")
    score = scored.row(0, named=True)
    run_rows = con.sql("SELECT * FROM main.runs WHERE run_id = ?", params=[score["run_id"]]).pl()
    if run_rows.is_empty():
        raise WarehouseError(f"run {score['run_id']} wrote this score but is not in main.runs: the warehouse is damaged")
    run = run_rows.row(0, named=True)
    parameters = json.loads(run["parameters"] or "{}")
    first = reach(parameters.get("features"), score["period"], score["frequency"])
    combiner = parameters.get("combiner")
    model = None
    if score.get("model_id"):
        found = con.sql(
            """SELECT model_id, run_id, created_at, last_fitted_at, code_version, training_first_period,
                      training_last_period, n_train, n_routes, training_sha256
               FROM models.registry WHERE model_id = ?""", params=[score["model_id"]]).pl()
        model = found.row(0, named=True) if found.height else None
    files = con.sql(
        """
        WITH used AS (
            SELECT source_file, batch_id, count(*) AS flows, sum(records) AS records, min(period) AS first_period,
                   max(period) AS last_period, string_agg(DISTINCT reporter_iso3 || ' ' || flow, ', ' ORDER BY reporter_iso3 || ' ' || flow) AS reported
            FROM intermediate.int_flows
            WHERE hs6 = ? AND frequency = ? AND period BETWEEN ? AND ? AND reporter_iso3 IN ('CHN', 'USA', ?)
            GROUP BY ALL
        )
        SELECT u.source_file, l.file_sha256, l.file_format, l.batch_id AS loaded_by_run, l.loaded_at,
               l.rows_read, l.rows_loaded, l.rows_rejected, u.flows, u.records, u.first_period, u.last_period, u.reported
        FROM used AS u LEFT JOIN raw.loads AS l ON l.source_file = u.source_file AND l.batch_id = u.batch_id
        ORDER BY u.source_file
        """, params=[hs_code, score["frequency"], first, score["period"], hub]).pl()
    report = Path(reports_dir) / score["run_id"] if reports_dir else None
    return Lineage(score=score, run=run, model=model, files=files, first_period=first,
                   report_dir=report if report is not None and report.is_dir() else None,
                   combiner=combiner if isinstance(combiner, str) else None)
