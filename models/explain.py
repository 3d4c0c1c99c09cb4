"""Explanations of the top route-periods: which model inputs lowered the anomaly score most when reset to
their typical value (the route's median), with the model's normal range, and notes on the evidence factors
that held the route score back."""

from __future__ import annotations

import numpy as np
import polars as pl

from models.combiner import learned_scores, load as load_combiner, route_score_from
from models.evidence import FACTOR_WORDS, graded_route_score, score_factors
from models.iforest import MODEL_FEATURE_COLUMNS, RouteScorer, explanation_text
from models.params import ScoreParams
from warehouse.contracts import ROUTE_KEYS


def route_typical(group: pl.DataFrame) -> pl.DataFrame:
    """Each route's typical value of every model input: its median over the route's scored periods."""
    return group.group_by(ROUTE_KEYS).agg([pl.col(c).cast(pl.Float64).fill_nan(None).median() for c in MODEL_FEATURE_COLUMNS])


def rows_to_explain(scored: pl.DataFrame, params: ScoreParams) -> pl.Series:
    """Flagged rows, and the peak period of the `explain_routes` routes with the highest route_score."""
    # The peaks as row numbers, marked in an array: joining them back on the keys copied the keys and
    # period of every row of the group (0.5 GB more resident for the 20 M world's largest section).
    peaks = (scored.select(*ROUTE_KEYS, "route_score", pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"))
             .filter(pl.col("route_score") > 0)
             .sort("route_score", descending=True, maintain_order=True)
             .group_by(ROUTE_KEYS, maintain_order=True).first().head(params.explain_routes))["_row"]
    marked = np.zeros(scored.height, dtype=bool)
    marked[peaks.to_numpy()] = True
    return (scored["flagged"] | pl.Series(marked)).alias("explained")


def explanation_notes(chosen: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """row (0, 1, ... over `chosen`), _history: the words an explanation starts with when the row was scored
    from a short history ("short history: 14 prior months, scaled to 36; ", else ""), and _factors: how its
    route score is made, the words it ends with ("; route score 0.612 = √(graded 0.412 x learned 0.909);
    graded 0.412 = √(forest 0.720) x size 0.830 x ...; learned 0.909, most from hub_to_us_usd_mean_z 41.2
    (usual 0.221; learned 0.52 with it at usual), ..."). `chosen`: the rows' features and anomaly_score."""
    one = pl.col("prior_periods") == 1
    unit = (pl.when(pl.col("frequency") == "M").then(pl.when(one).then(pl.lit("month")).otherwise(pl.lit("months")))
            .otherwise(pl.when(one).then(pl.lit("year")).otherwise(pl.lit("years"))))
    short = pl.col("prior_periods") < pl.col("full_prior_periods")
    factors = score_factors(params)
    # The forest's score as it counts: "√(forest 0.72)" at the default power ½, "forest 0.72" at 1.
    power = params.forest_power
    opening, closing = ("forest ", "") if power == 1 else ("√(forest ", ")") if power == 0.5 else ("(forest ", f")^{power:g}")
    graded = graded_route_score(params)
    parts = [graded.round(3).cast(pl.String), pl.lit(f" = {opening}"), pl.col("anomaly_score").round(3).cast(pl.String),
             pl.lit(closing)]
    for name, factor in factors.items():
        parts += [pl.lit(f" x {FACTOR_WORDS[name]} "), factor.round(3).cast(pl.String)]
    learned = _learned_words(chosen, params)
    # With a learned score: "route score R = √(graded G x learned L); graded G = ...; learned L, most from ...";
    # without one (annual, or the learned part off): "route score G = ..." as graded_score is the route score.
    with_learned = pl.col("learned_score").is_not_null()
    route = route_score_from(graded, pl.col("learned_score"))
    opening_words = pl.when(with_learned).then(pl.concat_str(
        pl.lit("; route score "), route.round(3).cast(pl.String), pl.lit(" = √(graded "), graded.round(3).cast(pl.String),
        pl.lit(" x learned "), pl.col("learned_score").round(3).cast(pl.String), pl.lit("); graded "))
    ).otherwise(pl.lit("; route score "))
    return chosen.with_columns(learned["learned_score"]).select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        pl.when(short).then(pl.format("short history: {} prior {}, scaled to {}; ", "prior_periods", unit,
                                      "full_prior_periods")).otherwise(pl.lit("")).alias("_history"),
        pl.concat_str(opening_words, *parts, pl.when(with_learned).then(learned["_learned"]).otherwise(pl.lit("")))
        .fill_null("").alias("_factors"))


def _learned_words(chosen: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """learned_score of each row of `chosen` (NULL where there is none: models/combiner.py) and _learned, the
    words after the graded factors: "; learned 0.909, most from hub_to_us_usd_mean_z 41.2 (usual 0.221;
    learned 0.52 with it at usual), ..." (the classifier's own drivers: each column reset alone to its usual
    value)."""
    if not params.learned or not chosen.height:
        return pl.DataFrame({"learned_score": [None] * chosen.height, "_learned": [""] * chosen.height},
                            schema={"learned_score": pl.Float64, "_learned": pl.String})
    combiner = load_combiner()
    learned = learned_scores(chosen, combiner)
    drivers = combiner.drivers(chosen, top=params.explain_top).with_columns(pl.format(
        "{} {} (usual {}; learned {} with it at usual)", "column",
        pl.when(pl.col("value").is_nan()).then(pl.lit("unknown")).otherwise(pl.col("value").round_sig_figs(3).cast(pl.String)),
        pl.col("usual").round_sig_figs(3),
        pl.col("at_usual").round(3)).alias("_driver")).group_by("row", maintain_order=True).agg(
        pl.col("_driver").str.join(", "))
    words = pl.DataFrame({"row": pl.int_range(chosen.height, eager=True, dtype=pl.Int64), "learned_score": learned}).join(
        drivers, on="row", how="left", maintain_order="left")
    return words.select("learned_score", pl.concat_str(
        pl.lit("; learned "), pl.col("learned_score").round(3).cast(pl.String),
        pl.when(pl.col("_driver").is_not_null()).then(pl.concat_str(pl.lit(", most from "), pl.col("_driver")))
        .otherwise(pl.lit(", no input far from its usual value"))).alias("_learned"))


def _with_notes(text: pl.DataFrame, chosen: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """`text` (row, top_features) with each row's history note in front of its top_features and how its
    route score is made after them: the explanation names what the forest found and every factor that
    moved the ranking."""
    return text.join(explanation_notes(chosen, params), on="row", how="left").with_columns(
        pl.concat_str(pl.col("_history").fill_null(""), "top_features", pl.col("_factors").fill_null(""))
        .alias("top_features")).drop("_history", "_factors")


def explain_group(scored: pl.DataFrame, scorer: RouteScorer, params: ScoreParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scored with top_features text, long explanation table keyed by route and period)."""
    scored = scored.with_row_index("_row").with_columns(rows_to_explain(scored, params))
    chosen = scored.filter("explained")
    # The typical values of the chosen rows' routes only (a few routes of a group of millions of rows).
    routes = chosen.select(ROUTE_KEYS).unique()
    of_routes = scored.select(*ROUTE_KEYS, *MODEL_FEATURE_COLUMNS).join(routes, on=list(ROUTE_KEYS), how="semi",
                                                                        nulls_equal=True)
    typical = chosen.select(*ROUTE_KEYS).join(route_typical(of_routes), on=list(ROUTE_KEYS), how="left",
                                              nulls_equal=True, maintain_order="left")
    long = scorer.explain(chosen, typical, top=params.explain_top)
    keys = chosen.select("_row", *ROUTE_KEYS, "period").with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    # Every chosen row gets a line (a row with no feature far from its route's typical says so).
    text = keys.select("row").join(explanation_text(long), on="row", how="left").with_columns(
        pl.col("top_features").fill_null("no feature far from the route's typical"))
    text = _with_notes(text, chosen, params).join(keys.select("row", "_row"), on="row").drop("row")
    # The text joined to the row numbers alone (a full join would copy every column of a large group).
    top = scored.select("_row").join(text, on="_row", how="left", maintain_order="left")["top_features"]
    out = scored.with_columns(top).drop("_row").drop("explained")
    long = long.join(keys, on="row").drop("row", "_row")
    return out, long


def explanation_schema() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "position": pl.Int32, "feature": pl.String, "words": pl.String, "value": pl.Float64, "typical": pl.Float64,
        "normal_low": pl.Float64, "normal_high": pl.Float64, "score_drop": pl.Float64, "set_score_drop": pl.Float64,
        **{k: pl.String for k in ROUTE_KEYS}, "period": pl.Date})
