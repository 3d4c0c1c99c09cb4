"""The evidence that moves the forest's score into the route score (models/scoring.py says why each): one
factor per piece of direction evidence, each in (0, 1], their product (evidence) and the score itself
(graded_route_score), and the two checks stored with it (direction_ok, sustained)."""

from __future__ import annotations

import math

import polars as pl

from models.params import ScoreParams



def gates(params: ScoreParams) -> tuple[pl.Expr, pl.Expr]:
    """direction_ok and sustained (module docstring)."""
    direction_ok = ((pl.col("route_excess_kg") > 0)
                    & (pl.col("kg_coverage") >= params.min_kg_coverage)).fill_null(False)
    # A lump needs a window of several periods to show; a one-year window (annual data) cannot tell one.
    sustained = ((pl.col("hub_to_us_peak_share") <= params.max_peak_share) | (pl.col("window_periods") < 3)).fill_null(False)
    return direction_ok.alias("direction_ok"), sustained.alias("sustained")


def _logistic(x: pl.Expr) -> pl.Expr:
    return 1.0 / (1.0 + (-x).exp())


def _above(column: str, threshold: float) -> pl.Expr:
    """σ(column - threshold): 0.5 at the threshold; an unknown value counts as 20 below it."""
    return _logistic(pl.col(column).fill_nan(None).fill_null(threshold - 20.0).clip(-50.0, 50.0) - threshold)


# The factors of route_score after the forest's, in the words an explanation gives them.
FACTOR_WORDS = {"size": "size", "floor": "beyond the volume floor", "direction": "both legs rising",
                "us_own_spread": "exports to the US beyond their own spread",
                "direct_falls": "China -> US direct falling", "one_lump": "not one lump",
                "china_covers": "China's extra shipments covering the value"}


# How sharply the score falls as the window's largest period carries more than max_peak_share (0.85) of it:
# a window of one lump and a trickle (95 % in one month) keeps 0.12 of the score, one whose goods come as a
# few lots (60 %) 0.99. A lump the rest of the window does not carry shows in hub_to_us_mean_z (without the
# window's largest period) already; this catches the lump on a route with no trade before, whose trickle is
# many of its own (zero) standard deviations.
PEAK_SHARE_SLOPE = 0.05


# What the value cover factor keeps when China's extra shipments cover nothing (or fell).
VALUE_COVER_FLOOR = 0.05


def score_factors(params: ScoreParams) -> dict[str, pl.Expr]:
    """The evidence factors that multiply anomaly_score into route_score (module docstring), each in (0, 1]."""
    return {
        "size": 0.5 + 0.5 * pl.col("volume_weight").fill_null(0.0).fill_nan(0.0).clip(0.0, 1.0),
        "floor": 0.1 + 0.9 * pl.col("floor_multiple").fill_nan(None).fill_null(0.0).clip(0.0, 1.0).sqrt(),
        "direction": _above("co_rise_z", params.min_rise_z),
        "us_own_spread": _above("hub_to_us_mean_z", params.min_us_mean_z),
        # The US's imports from China direct in the window against their own history: an unknown or steady
        # direct trade counts as no fall (0.63), a fall of min_direct_fall_z or more lifts the score by half.
        "direct_falls": 0.5 + 0.5 * _logistic(
            -pl.col("us_from_cn_kg_robust_z").fill_nan(None).fill_null(0.0).clip(-50.0, 50.0)
            - params.min_direct_fall_z),
        "one_lump": pl.when(pl.col("window_periods") < 3).then(1.0).otherwise(_logistic(
            (params.max_peak_share - pl.col("hub_to_us_peak_share").fill_nan(None).fill_null(1.0)) / PEAK_SHARE_SLOPE)),
        # China's extra shipments to the hub against the rise in the value of the hub's exports to the US:
        # whole from min_value_cover on, falling linearly to VALUE_COVER_FLOOR at none; whole when the hub's
        # exports did not rise in value or a leg's value is unknown (nothing to weigh).
        "china_covers": VALUE_COVER_FLOOR + (1.0 - VALUE_COVER_FLOOR) * (
            pl.col("china_value_cover").fill_nan(None) / params.min_value_cover).clip(0.0, 1.0).fill_null(1.0),
    }


def graded_route_score(params: ScoreParams) -> pl.Expr:
    """graded_score from anomaly_score and the direction evidence (module docstring): anomaly_score to the
    power forest_power (½: the square root), times every factor; never 0 but for a 0 anomaly score, never
    above the evidence (the product of the factors). route_score is √(graded_score × learned_score) on
    monthly data (models/combiner.py), graded_score itself on annual data."""
    score = pl.col("anomaly_score").pow(params.forest_power)
    for factor in score_factors(params).values():
        score = score * factor
    return score.alias("graded_score")


def evidence(params: ScoreParams) -> pl.Expr:
    """The product of the evidence factors (score_factors): the most route_score can be, as
    anomaly_score <= 1 (and so its power)."""
    product = pl.lit(1.0)
    for factor in score_factors(params).values():
        product = product * factor
    return product.alias("evidence")


def _sigma(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _quiet_leg_bound(params: ScoreParams) -> float:
    """The most size × floor × direction can be on a route-period with a leg that carried none of the product:
    size 0.5 (no excess, so volume_weight 0), floor 0.1 (the route's excess is the smaller leg's, at most 0),
    direction at most σ(0 - min_rise_z) (that leg's z-score is 0 and co_rise_z is the quieter leg's)."""
    return 0.5 * 0.1 * _sigma(-params.min_rise_z)


def silent_route_bound(params: ScoreParams) -> float:
    """The most evidence a route-period can have when the hub sent the US none of the product in its window
    and prior periods (hub_to_us_kg and hub_to_us_usd 0 or unknown): every route-period of a route whose hub
    never exported the product to the US. Factor by factor (score_factors): size 0.5 (no excess, so
    volume_weight 0), floor 0.1 (the route's excess is the smaller leg's, at most 0), direction at most
    σ(0 - min_rise_z) (the hub -> US leg's robust z is 0, or unknown, and co_rise_z is the quieter leg),
    exports to the US beyond their own spread at most σ(0 - min_us_mean_z) (its mean z is 0, or unknown),
    the other three at most 1. Under the defaults 0.5 × 0.1 × 0.5 × 0.119 = 0.00298, below min_evidence
    (0.003): such routes cannot get a route score, and the features are not computed for them
    (flows/stages/featurize.py)."""
    return _quiet_leg_bound(params) * _sigma(-params.min_us_mean_z)


def china_silent_route_bound(params: ScoreParams) -> float:
    """The most evidence a route-period can have when China sent the hub none of the product in its window,
    prior and lagged periods (cn_to_hub_kg and cn_to_hub_usd 0, known): every route-period of a route China
    never shipped the product to. China's robust and mean z-scores are 0 there, so co_rise_z (the quieter
    leg) is at most 0 and direction at most σ(0 - min_rise_z); the route's excess is the smaller leg's, at most
    0, so size is 0.5 and floor 0.1; the other four at most 1. Under the defaults 0.5 × 0.1 × 0.5 = 0.025:
    above min_evidence (0.003), so such a route-period could carry a route score of up to 0.025, a twelfth of
    the flag threshold, but it is no route for Chinese goods to take. The features skip these routes with
    those whose hub never sent the US the product (screens_silent_routes), and also when some of China's
    periods are unknown (unpublished) and the rest zero: the bound does not hold there (an unknown China
    z-score leaves co_rise_z to the US leg), but nothing recorded shows Chinese goods on the route."""
    return _quiet_leg_bound(params)


def screens_silent_routes(params: ScoreParams) -> bool:
    """Whether the routes with a leg that never carried the product are screened out before the features
    (warehouse.feature_store.make_silent_routes): those whose hub never exported the product to the US, whose
    evidence's bound (silent_route_bound) is below min_evidence, and those China never shipped the product to
    (no Chinese goods to pass on; china_silent_route_bound). On while the first bound is below min_evidence:
    a run that asks for every route-period to be scored (min_evidence 0, or thresholds so loose that the
    bound passes it) screens neither."""
    return silent_route_bound(params) < params.min_evidence


def forest_term(params: ScoreParams) -> str:
    """The forest's part of route_score as the formulas write it: sqrt(anomaly_score) at forest_power ½."""
    return "sqrt(anomaly_score)" if params.forest_power == 0.5 else f"anomaly_score^{params.forest_power:g}"


def score_formula(params: ScoreParams) -> str:
    """route_score as a formula, in plain text, with `params`' thresholds (what the warehouse's comments say)."""
    def minus(column: str, threshold: float) -> str:
        return column if threshold == 0 else f"{column} {'-' if threshold > 0 else '+'} {abs(threshold):g}"

    return (f"{forest_term(params)} x (0.5 + 0.5 volume_weight) x (0.1 + 0.9 sqrt(min(1, max(0, floor_multiple))))"
            f" x logistic({minus('co_rise_z', params.min_rise_z)})"
            f" x logistic({minus('hub_to_us_mean_z', params.min_us_mean_z)})"
            f" x (0.5 + 0.5 logistic({minus('-us_from_cn_kg_robust_z', params.min_direct_fall_z)}))"
            f" x logistic(({params.max_peak_share:g} - hub_to_us_peak_share) / {PEAK_SHARE_SLOPE:g})"
            f" x ({VALUE_COVER_FLOOR:g} + {1 - VALUE_COVER_FLOOR:g} min(1, max(0, china_value_cover / {params.min_value_cover:g})))")


def scoring_comments(params: ScoreParams) -> dict[str, str]:
    """The comments that quote a scoring parameter, in the words of `params` (the run's): column -> text, for
    every relation with that column (route_scores, route_score_values, flagged_routes...). They win over
    COLUMNS and the glossary."""
    screen = f"evidence below {params.min_evidence:g}"
    sample = f"a seeded sample of {params.train_sample_rows:,} in a larger group"
    by_column = {
        "evidence": ("The product of graded_score's evidence factors, all but the forest's: the most graded_score "
                     f"can be (0..1). Rows with {screen} are screened out: the forest does not score them."),
        "anomaly_score": ("The isolation forest's score in (0, 1]; 0.5 = as easy to isolate as a typical point. "
                          f"Higher = more suspicious. NULL when the row was screened out ({screen})."),
        "score_percentile": (f"Share of the forest's training route-periods ({sample}) scoring at or below this "
                             "one (0..1); NULL when screened out."),
        "score_threshold": (f"The flag threshold on route_score the run used (--min-route-score, here "
                            f"{params.min_route_score:g}): the same for every mineral and section."),
        "graded_score": (f"{score_formula(params)} = {forest_term(params)} x evidence: graded, no check sets it "
                         "to 0. Higher = more suspicious. "
                         f"NULL when the row was screened out ({screen}: it could not score that much)."),
        "route_score": (("sqrt(graded_score x learned_score) on monthly route-periods, graded_score on annual ones"
                         if params.learned else "graded_score (the learned part was off in this run)")
                        + ": ranks routes, and flags them at score_threshold or above. Higher = more suspicious "
                        f"(0..1). NULL when the row was screened out ({screen})."),
        "direction_ok": ("Tonnes in the transshipment direction, of trusted weight: route_excess_kg > 0 (both legs "
                         f"above their prior run rate) and kg_coverage at least {params.min_kg_coverage:g}. Required "
                         "for a flag."),
        "sustained": (f"No single period carries more than {params.max_peak_share * 100:g} % of the window's hub -> "
                      "US kg (annual windows pass). Weighed in graded_score, not required for a flag."),
    }
    return by_column
