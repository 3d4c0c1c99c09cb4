"""The warehouse's comments quote the scoring parameters the run used, and the route_score formula they
give computes what the model computes."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import polars as pl

from models.evidence import graded_route_score, score_formula, scoring_comments
from models.params import ScoreParams
from warehouse.comments import apply_comments


def _comments(params: ScoreParams | None) -> dict[str, str]:
    con = duckdb.connect()
    con.execute("CREATE TABLE route_score_values (route_score DOUBLE, graded_score DOUBLE, learned_score DOUBLE, "
                "evidence DOUBLE, anomaly_score DOUBLE, "
                "score_percentile DOUBLE, score_threshold DOUBLE, direction_ok BOOLEAN, sustained BOOLEAN)")
    apply_comments(con, None if params is None else scoring_comments(params))
    return dict(con.execute("SELECT column_name, comment FROM duckdb_columns() "
                            "WHERE table_name = 'route_score_values'").fetchall())


def test_the_comments_quote_the_run_s_parameters_not_the_defaults():
    # Without a run's parameters (the glossary's words): the parameters named, no number that could be stale.
    unworded = _comments(None)
    assert all(unworded.values()) and "min_evidence" in unworded["route_score"] and "min_evidence" in unworded["graded_score"]
    assert "0.003" not in " ".join(unworded.values()) and "85 %" not in unworded["sustained"]

    default = _comments(ScoreParams())
    assert "evidence below 0.003" in default["route_score"] and "evidence below 0.003" in default["graded_score"]
    assert "hub_to_us_mean_z - 2)" in default["graded_score"]
    assert "harness seeds 100-159 and 200-299" in default["learned_score"]
    assert "85 %" in default["sustained"] and "at least 0.9" in default["direction_ok"]
    assert "here 0.5" in default["score_threshold"] and "50,000" in default["score_percentile"]

    run = ScoreParams(min_evidence=0.01, min_us_mean_z=2.5, max_peak_share=0.9, min_kg_coverage=0.8,
                      min_route_score=0.25, train_sample_rows=20_000, forest_power=0.4, min_rise_z=-0.5)
    said = _comments(run)
    assert "evidence below 0.01" in said["graded_score"] and "evidence below 0.01" in said["anomaly_score"]
    assert "evidence below 0.01" in said["route_score"] and "0.003" not in " ".join(said.values())
    assert "hub_to_us_mean_z - 2.5)" in said["graded_score"] and "logistic(co_rise_z + 0.5)" in said["graded_score"]
    assert said["graded_score"].startswith("anomaly_score^0.4 x ")
    assert said["route_score"].startswith("sqrt(graded_score x learned_score) on monthly route-periods")
    assert "90 %" in said["sustained"] and "at least 0.8" in said["direction_ok"]
    assert "here 0.25" in said["score_threshold"] and "20,000" in said["score_percentile"]


def test_the_formula_in_the_comment_computes_the_route_score():
    """score_formula read as SQL (logistic as a macro) gives graded_route_score's number on random rows."""
    rng = np.random.default_rng(7)
    n = 500
    rows = pl.DataFrame({
        "anomaly_score": rng.uniform(0.3, 0.9, n), "volume_weight": rng.uniform(0, 1, n),
        "floor_multiple": rng.uniform(-1, 3, n), "co_rise_z": rng.normal(0, 3, n),
        "hub_to_us_mean_z": rng.normal(1, 3, n), "us_from_cn_kg_robust_z": rng.normal(0, 2, n),
        "hub_to_us_peak_share": rng.uniform(0.2, 1, n), "china_value_cover": rng.normal(0.5, 1, n),
        "window_periods": np.full(n, 5),
    })
    for params in (ScoreParams(), ScoreParams(min_us_mean_z=1.5, min_rise_z=0.5, forest_power=0.4,
                                              max_peak_share=0.7, min_value_cover=0.3, min_direct_fall_z=0.5)):
        expected = rows.select(graded_route_score(params))["graded_score"].to_numpy()
        sql = (score_formula(params).replace(" x ", " * ").replace("min(", "least(").replace("max(", "greatest(")
               .replace("^", " ** "))
        sql = re.sub(r"(\d) ([a-z(])", r"\1 * \2", sql)  # "0.5 volume_weight": a product
        con = duckdb.connect()
        con.execute("CREATE MACRO logistic(x) AS 1 / (1 + exp(-x))")
        con.register("rows", rows.to_arrow())
        got = np.array([r[0] for r in con.execute(f"SELECT {sql} FROM rows").fetchall()])
        np.testing.assert_allclose(got, expected, rtol=1e-9)
