"""Fit one RouteScorer per (frequency, mineral) and score its route-periods. Pure: frames in, frames out.

Which route-periods are scored: those with a complete history (W + P periods on the grid) and some trade
on either leg in the window or the prior periods. A route with no trade at all has nothing to score.

`flagged` (documented threshold), all three of:
1. anomaly_score at or above the model's threshold: the `flag_quantile` (default 0.98) of its training
   scores, so about 2 % of route-periods pass this part;
2. the transshipment direction, with volume: China->hub and hub->US both exceed their prior three-year
   run rate by at least the mineral's volume floor (kg) in the window;
3. sustained, not one lump: no single period carries more than `max_peak_share` (default 0.6) of the
   window's hub->US volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from features.route_features import ROUTE_KEYS
from models.iforest import MODEL_FEATURES, RouteScorer


@dataclass(frozen=True)
class ScoreParams:
    n_estimators: int = 300
    max_samples: int = 256
    flag_quantile: float = 0.98
    random_state: int = 0
    min_train_rows: int = 30
    max_peak_share: float = 0.6


@dataclass(frozen=True)
class FittedGroup:
    frequency: str
    mineral: str
    scorer: RouteScorer | None
    n_train: int
    periods: tuple[str, str] | None
    note: str


def scoreable(features: pl.DataFrame) -> pl.Expr:
    return pl.col("has_history") & (
        (pl.col("cn_to_hub_kg_window") + pl.col("cn_to_hub_kg_prior")
         + pl.col("hub_to_us_kg_window") + pl.col("hub_to_us_kg_prior")
         + pl.col("hub_to_us_usd_window") + pl.col("cn_to_hub_usd_window")) > 0
    )


def score_routes(features: pl.DataFrame, params: ScoreParams) -> tuple[pl.DataFrame, list[FittedGroup]]:
    """Scores for every scoreable route-period, and what was fitted per (frequency, mineral)."""
    candidates = features.filter(scoreable(features)).sort([*ROUTE_KEYS, "period"])
    scored: list[pl.DataFrame] = []
    fitted: list[FittedGroup] = []
    for (frequency, mineral), group in candidates.group_by(["frequency", "mineral"], maintain_order=True):
        periods = (str(group["period"].min()), str(group["period"].max()))
        if group.height < params.min_train_rows:
            fitted.append(FittedGroup(frequency, mineral, None, group.height, periods,
                                      f"not scored: {group.height} route-periods with enough history, "
                                      f"need {params.min_train_rows}"))
            continue
        scorer = RouteScorer(n_estimators=params.n_estimators, max_samples=params.max_samples,
                             flag_quantile=params.flag_quantile, random_state=params.random_state).fit(group)
        # The transshipment direction, with volume: both legs above their run rate by at least the floor.
        direction_ok = (pl.col("cn_to_hub_kg_excess") >= pl.col("volume_floor_kg")) & (
            pl.col("hub_to_us_kg_excess") >= pl.col("volume_floor_kg"))
        # Not one lump: no single period carries most of the window's hub->US volume.
        sustained = pl.col("hub_to_us_peak_share") <= params.max_peak_share
        out = group.with_columns(
            anomaly_score=pl.Series(scorer.anomaly_score(group)),
            score_threshold=pl.lit(scorer.threshold_),
            top_features=scorer.explain(group),
        ).with_columns(
            flagged=(pl.col("anomaly_score") >= pl.col("score_threshold")) & direction_ok & sustained,
        )
        scored.append(out)
        fitted.append(FittedGroup(frequency, mineral, scorer, group.height, periods, "fitted"))
    for (frequency, mineral), group in features.group_by(["frequency", "mineral"], maintain_order=True):
        if not any(g.frequency == frequency and g.mineral == mineral for g in fitted):
            n_periods = group["period"].n_unique()
            fitted.append(FittedGroup(
                frequency, mineral, None, 0, None,
                f"not scored: no route-period has a full history (window + prior = "
                f"{int(group['window_periods'][0]) + int(group['prior_periods'][0])} periods); "
                f"the data cover {n_periods} {'months' if frequency == 'M' else 'years'} "
                f"({group['period'].min()} to {group['period'].max()})"))
    if not scored:  # same columns, no rows: downstream tables keep their shape
        empty = candidates.head(0).with_columns(
            anomaly_score=pl.lit(None, dtype=pl.Float64), score_threshold=pl.lit(None, dtype=pl.Float64),
            top_features=pl.lit(None, dtype=pl.String), flagged=pl.lit(None, dtype=pl.Boolean))
        return empty, fitted
    return pl.concat(scored, how="vertical_relaxed"), fitted


MODEL_FEATURE_COLUMNS = tuple(f.column for f in MODEL_FEATURES)
