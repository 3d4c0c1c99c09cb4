"""What the warehouse's data let a run score, and, when nothing was scored, why, in words an analyst or an
operator can act on: no files, files of no known format, every row rejected, only one side of the route,
no third country between China and the US, sides that do not overlap, not enough history, or history
with gaps (a period a side did not publish is unknown, never zero).

Read after the score step, from the build (raw, staging, marts, features and scores), in a few GROUP BYs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from warehouse.connection import connect_read_write, rows, scalar

# China's exports and US imports, as the mart reads them (fct_route_legs__inputs.sql): the reporter's own
# figures, or BACI's reconciled flows.
_SIDES = """
SELECT frequency, period, 'China''s exports' AS side, mineral FROM intermediate.int_flows
WHERE (reporter_iso3 = 'CHN' AND flow = 'X') OR (source = 'baci' AND reporter_iso3 = 'CHN')
UNION ALL
SELECT frequency, period, 'US imports' AS side, mineral FROM intermediate.int_flows
WHERE (reporter_iso3 = 'USA' AND flow = 'M') OR (source = 'baci' AND partner_iso3 = 'USA')
"""


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                       [schema, name]) or
                scalar(con, "SELECT count(*) FROM duckdb_views() WHERE schema_name = ? AND table_name = ?",
                       [schema, name]))


def scoring_coverage(con: duckdb.DuckDBPyConnection, input_files: list[dict[str, Any]],
                     history_needed: dict[str, int]) -> dict[str, Any]:
    """Counts at each step from files to scores, each side's periods per frequency, and `why_nothing_scored`
    (None when something was scored). history_needed: periods of window + prior per frequency (M, A)."""
    out: dict[str, Any] = {
        "files": len(input_files),
        "files_recognised": sum(1 for f in input_files if f.get("file_format")),
        "records_loaded": scalar(con, "SELECT (SELECT count(*) FROM raw.comtrade_records) "
                                      "+ (SELECT count(*) FROM raw.national_records)"),
        "rows_rejected": scalar(con, "SELECT count(*) FROM raw.rejects"),
        "top_rejects": [{"reason": r, "rows": n} for r, n in rows(con, """
            SELECT reason, count(*) AS n FROM raw.rejects GROUP BY reason ORDER BY n DESC, reason LIMIT 3""")],
        "flows_watched": scalar(con, "SELECT count(*) FROM intermediate.int_flows WHERE mineral IS NOT NULL")
        if _table_exists(con, "intermediate", "int_flows") else 0,
        "top_set_aside": [{"reason": r, "rows": n} for r, n in rows(con, """
            SELECT exclusion_reason, count(*) AS n FROM intermediate.int_flows_excluded GROUP BY ALL
            ORDER BY n DESC, exclusion_reason LIMIT 3""")] if _table_exists(con, "intermediate", "int_flows_excluded") else [],
        "sides": [{"frequency": f, "side": s, "first": str(a), "last": str(b), "periods": n, "flows": k}
                  for f, s, a, b, n, k in rows(con, f"""
                      SELECT frequency, side, min(period), max(period), count(DISTINCT period), count(*)
                      FROM ({_SIDES}) WHERE mineral IS NOT NULL GROUP BY ALL ORDER BY ALL""")]
        if _table_exists(con, "intermediate", "int_flows") else [],
    }
    mart = _table_exists(con, "marts", "fct_route_legs")
    out["grid"] = [{"frequency": f, "first": str(a), "last": str(b), "periods": n, "unpublished": u, "routes": r,
                    "routes_to_us": t}
                   for f, a, b, n, u, r, t in rows(con, """
                       SELECT frequency, min(period), max(period), count(DISTINCT period),
                              count(DISTINCT period) FILTER (WHERE NOT (cn_side_published AND us_side_published)),
                              count(DISTINCT (mineral, hs_code, hub_iso3)),
                              count(DISTINCT (mineral, hs_code, hub_iso3))
                                  FILTER (WHERE hub_to_us_kg > 0 OR hub_to_us_usd > 0)
                       FROM marts.fct_route_legs GROUP BY ALL ORDER BY ALL""")] if mart else []
    features = _table_exists(con, "features", "route_features")
    out["route_periods_with_history"] = (
        scalar(con, "SELECT count(*) FROM features.route_features WHERE has_history") if features else 0)
    out["route_periods_scored"] = (
        scalar(con, "SELECT count(*) FROM main.route_score_values")
        if _table_exists(con, "main", "route_score_values") else 0)
    out["why_nothing_scored"] = None if out["route_periods_scored"] else _why(out, history_needed)
    return out


def _reasons(listed: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['reason']} ({r['rows']:,})" for r in listed)


def _why(c: dict[str, Any], history_needed: dict[str, int]) -> str:
    """The first step from files to scores that left nothing, in words."""
    if not c["records_loaded"]:
        if not c["files"]:
            return "the data folder holds no files."
        if not c["files_recognised"]:
            return (f"none of the {c['files']:,} files under the data folder is in a format transship reads "
                    "(the input files table lists each with its status).")
        if c["rows_rejected"]:
            return (f"every row read was set aside as a reject ({c['rows_rejected']:,}); the most common reasons: "
                    f"{_reasons(c['top_rejects'])}. raw.rejects has each row with its file, line and column.")
        return "the files held no trade rows."
    if not c["flows_watched"]:
        return ("none of the records loaded is a bilateral flow of a product in the catalogue"
                + (f"; set aside most often as: {_reasons(c['top_set_aside'])}" if c["top_set_aside"] else "") + ".")
    sides = {s["side"] for s in c["sides"]}
    if len(sides) < 2:
        have = next(iter(sides), "neither side")
        need = "China's exports" if have == "US imports" else "US imports"
        return (f"a route needs China's exports to a third country and that country's exports to the US; the data "
                f"hold {have} only, and {need} are missing (China's side: China's customs, or UN Comtrade reporter "
                f"156 flow X; the US side: the US Census Bureau, or Comtrade reporter 842 flow M; or CEPII BACI).")
    if not c["grid"]:
        spans = "; ".join(f"{s['side']} ({'monthly' if s['frequency'] == 'M' else 'annual'}) "
                          f"{s['first'][:7 if s['frequency'] == 'M' else 4]} to "
                          f"{s['last'][:7 if s['frequency'] == 'M' else 4]}" for s in c["sides"])
        return (f"no third country trades with both China and the US in the data, or the two sides share no "
                f"period of the same frequency ({spans}).")
    if not any(g["routes_to_us"] for g in c["grid"]):
        return ("the US side holds no imports of the watched products from any third country (every route's "
                "hub -> US leg is zero or unknown), so no route can carry goods on to the US: its routes are "
                "screened out before the features. The US side comes from the US Census Bureau, UN Comtrade "
                "reporter 842 flow M, or CEPII BACI.")
    if not c["route_periods_with_history"]:
        parts = []
        for g in c["grid"]:
            unit = "months" if g["frequency"] == "M" else "years"
            cut = 7 if g["frequency"] == "M" else 4
            text = (f"{'monthly' if g['frequency'] == 'M' else 'annual'} data cover {g['periods']} {unit} "
                    f"({g['first'][:cut]} to {g['last'][:cut]}) and a period needs {history_needed.get(g['frequency'])} "
                    f"{unit} of history on both legs")
            if g["unpublished"] == 1:
                text += f"; 1 of those {unit} was not published by one side (unknown, not zero)"
            elif g["unpublished"]:
                text += f"; {g['unpublished']} of those {unit} were not published by one side (unknown, not zero)"
            parts.append(text)
        return "; ".join(parts) + "."
    return ("every route-period with a full history had no trade on its legs in its window or its prior, so there "
            "was nothing to score.")


def raw_counts_and_coverage(path: Path, input_files: list[dict[str, Any]], needed: dict[str, int]
                            ) -> tuple[dict[str, int], dict[str, Any]]:
    """Of the warehouse file at `path`, on one connection: the rows in the raw layer's tables, and
    scoring_coverage."""
    con = connect_read_write(path)
    try:
        counts = {name: rows(con, f"SELECT count(*) FROM {name}")[0][0]
                  for name in ("raw.loads", "raw.comtrade_records", "raw.national_records", "raw.rejects")}
        return counts, scoring_coverage(con, input_files, needed)
    finally:
        con.close()
