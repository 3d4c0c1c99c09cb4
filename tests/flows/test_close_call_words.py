"""The close calls' words follow the data's frequency: in monthly data hub_to_us_mean_z leaves the window's
largest month out, in annual data the window is the year itself, and the report must not say otherwise."""

from __future__ import annotations

from datetime import date

import duckdb

from flows.report.html import close_calls


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("CREATE SCHEMA ref")
    con.execute("CREATE TABLE ref.minerals (mineral VARCHAR, volume_floor_kg DOUBLE)")
    con.execute("INSERT INTO ref.minerals VALUES ('antimony', 20000)")
    con.execute("""CREATE TABLE main.route_scores (
        frequency VARCHAR, mineral VARCHAR, hs_code VARCHAR, hub_iso3 VARCHAR, period DATE, anomaly_score DOUBLE,
        score_percentile DOUBLE, route_score DOUBLE, graded_score DOUBLE, learned_score DOUBLE,
        score_threshold DOUBLE, route_excess_kg DOUBLE,
        floor_multiple DOUBLE, co_rise_z DOUBLE, hub_to_us_mean_z DOUBLE, us_from_cn_kg_robust_z DOUBLE,
        kg_coverage DOUBLE, hub_to_us_peak_share DOUBLE, china_value_cover DOUBLE, direction_ok BOOLEAN,
        sustained BOOLEAN, flagged BOOLEAN)""")
    # The same route-period twice, once in each frequency: legs rising, the US leg within its own history. The
    # monthly one has a learned score (route score √(0.2 x 0.05)); the annual one none (route score = graded).
    row = ("antimony", "282580", "THA", 0.8, 0.99, 0.1, 0.3, 50_000.0, 2.5, 1.5, 0.5, -2.0, 1.0, 0.3, 1.0, True, True,
           False)
    slots = ", ".join(["?"] * 22)
    con.execute(f"INSERT INTO main.route_scores VALUES ({slots})",
                ["M", *row[:3], date(2025, 3, 1), *row[3:6], 0.2, 0.05, *row[6:]])
    con.execute(f"INSERT INTO main.route_scores VALUES ({slots})",
                ["A", *row[:3], date(2024, 1, 1), *row[3:6], 0.1, None, *row[6:]])
    return con


def test_the_largest_month_is_named_only_where_the_score_leaves_it_out():
    why = {r["frequency"]: r["why_not"] for r in close_calls(_warehouse(), {}).iter_rows(named=True)}
    assert why["M"] == ("the hub's exports to the US, their largest month aside, stay within their own history "
                        "(z 0.5 < 2.0); route score 0.1 = √(graded 0.2 x learned 0.05) is below the flag threshold 0.3")
    assert why["A"] == ("the hub's exports to the US stay within their own history (z 0.5 < 2.0); "
                        "route score 0.1 is below the flag threshold 0.3")
