"""The route scorer: an isolation forest over one-sided, log-scaled route features.

Score direction, stated once: `anomaly_score` is higher for more suspicious route-periods. It is the
isolation forest's anomaly score s(x) of Liu et al. (2008), in (0, 1]: the negative of scikit-learn's
`score_samples`. Nothing downstream flips it.

One-sided: before fitting, each feature is oriented so that the transshipment direction is "up" (e.g.
China's direct share of US imports *falling* becomes a positive number), then clipped from below at its
training median. A route that collapses, or moves in the innocent direction, is then not "unusual" to
the forest; only unusual movement in the suspicious direction is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted


@dataclass(frozen=True)
class ModelFeature:
    column: str
    transform: str  # log1p | signed_log10 | identity
    direction: int  # +1: high is suspicious; -1: low is suspicious
    words: str  # how a person reads it


MODEL_FEATURES: tuple[ModelFeature, ...] = (
    ModelFeature("cn_to_hub_kg_spike_ratio", "log1p", 1, "China->hub kg, window vs prior 3 years"),
    ModelFeature("hub_to_us_kg_spike_ratio", "log1p", 1, "hub->US kg, window vs prior 3 years"),
    ModelFeature("cn_to_hub_usd_spike_ratio", "log1p", 1, "China->hub USD, window vs prior 3 years"),
    ModelFeature("hub_to_us_usd_spike_ratio", "log1p", 1, "hub->US USD, window vs prior 3 years"),
    ModelFeature("co_spike_ratio_kg", "log1p", 1, "both legs (kg), the smaller spike ratio"),
    ModelFeature("route_excess_kg", "signed_log10", 1, "kg above the 3-year run rate on both legs"),
    ModelFeature("pass_through_kg", "identity", 1, "hub->US kg per kg China sent the hub"),
    ModelFeature("hub_share_of_cn_exports_change", "identity", 1, "change in hub's share of China's exports"),
    ModelFeature("hub_share_of_us_imports_change", "identity", 1, "change in hub's share of US imports"),
    ModelFeature("cn_direct_share_of_us_imports_change", "identity", -1, "fall in China's direct share of US imports"),
)


def _transform(frame: pl.DataFrame, features: tuple[ModelFeature, ...]) -> np.ndarray:
    exprs = []
    for f in features:
        x = pl.col(f.column).cast(pl.Float64).fill_null(0.0).fill_nan(0.0)
        if f.transform == "log1p":
            x = x.clip(lower_bound=0.0).log1p()
        elif f.transform == "signed_log10":
            x = x.sign() * (x.abs() + 1.0).log10()
        exprs.append((x * f.direction).alias(f.column))
    return frame.select(exprs).to_numpy()


class RouteScorer(BaseEstimator):
    """Isolation forest for route-periods of one mineral and frequency.

    Parameters
    ----------
    n_estimators : int
        Trees in the forest.
    max_samples : int or "auto"
        Rows drawn per tree.
    flag_quantile : float
        `threshold_` is this quantile of the training scores: with 0.98, about 2 % of the training
        route-periods score at or above it. Changing it does not need a refit (see `threshold_for`).
    random_state : int
        Seed; the same data and seed give the same scores.

    Attributes
    ----------
    features_ : tuple of ModelFeature
    center_ : ndarray, the training median of each oriented feature (the clip point)
    typical_raw_ : ndarray, the training median of each feature as stored (what "typical" means in words)
    scale_ : ndarray, the training median absolute deviation (floored) of each oriented feature
    forest_ : IsolationForest
    train_scores_ : ndarray
    threshold_ : float
    n_train_ : int
    """

    def __init__(self, n_estimators: int = 300, max_samples: int | str = 256, flag_quantile: float = 0.98,
                 random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.flag_quantile = flag_quantile
        self.random_state = random_state

    def fit(self, frame: pl.DataFrame, y: None = None) -> RouteScorer:
        if frame.height < 2:
            raise ValueError(f"need at least 2 route-periods to fit, got {frame.height}")
        self.features_ = MODEL_FEATURES
        oriented = _transform(frame, self.features_)
        self.center_ = np.median(oriented, axis=0)
        raw = frame.select([f.column for f in self.features_]).cast(pl.Float64).fill_null(0.0).to_numpy()
        self.typical_raw_ = np.median(raw, axis=0)
        mad = np.median(np.abs(oriented - self.center_), axis=0)
        spread = np.percentile(oriented, 90, axis=0) - np.percentile(oriented, 10, axis=0)
        self.scale_ = np.maximum(np.maximum(mad, spread / 2.56), 1e-6)
        clipped = np.maximum(oriented, self.center_)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, frame.height) if isinstance(self.max_samples, int) else self.max_samples,
            random_state=self.random_state,
        ).fit(clipped)
        self.train_scores_ = -self.forest_.score_samples(clipped)
        self.threshold_ = float(np.quantile(self.train_scores_, self.flag_quantile))
        self.n_train_ = frame.height
        return self

    def threshold_for(self, quantile: float) -> float:
        """The score threshold for another flag quantile, without refitting."""
        check_is_fitted(self, "forest_")
        return float(np.quantile(self.train_scores_, quantile))

    def anomaly_score(self, frame: pl.DataFrame) -> np.ndarray:
        """Anomaly score in (0, 1]; higher = more suspicious."""
        check_is_fitted(self, "forest_")
        clipped = np.maximum(_transform(frame, self.features_), self.center_)
        return -self.forest_.score_samples(clipped)

    def explain(self, frame: pl.DataFrame, top: int = 3) -> pl.Series:
        """For each row, the features furthest above their typical value (robust z on the oriented scale),
        in words: "<feature>: <value> (typical <training median>)", most unusual first."""
        check_is_fitted(self, "forest_")
        oriented = _transform(frame, self.features_)
        z = (oriented - self.center_) / self.scale_
        order = np.argsort(-z, axis=1, kind="stable")[:, :top]
        raw = frame.select([f.column for f in self.features_]).cast(pl.Float64).fill_null(0.0).to_numpy()
        rows = np.arange(frame.height)
        words = np.array([f.words for f in self.features_], dtype=object)
        parts = []
        for k in range(min(top, len(self.features_))):
            j = order[:, k]
            part = pl.DataFrame({
                "words": words[j].astype(str), "value": raw[rows, j], "typical": self.typical_raw_[j], "z": z[rows, j],
            }).select(
                pl.when(pl.col("z") > 1.0).then(pl.format(
                    "{}: {} (typical {})", "words",
                    pl.col("value").round_sig_figs(3).cast(pl.String),
                    pl.col("typical").round_sig_figs(3).cast(pl.String),
                )).alias(f"part{k}")
            )
            parts.append(part)
        joined = pl.concat(parts, how="horizontal").select(
            pl.concat_str(pl.all(), separator="; ", ignore_nulls=True).alias("top_features")
        )["top_features"]
        return joined.replace("", "no feature far from typical")
