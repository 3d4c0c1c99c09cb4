"""The route scorer: an isolation forest over one-sided, log-scaled route features, with explanations.

Score direction, stated once: `anomaly_score` is higher for more suspicious route-periods. It is the
isolation forest's anomaly score s(x) of Liu et al. (2008), in (0, 1]: the negative of scikit-learn's
`score_samples`. Nothing downstream flips it.

One-sided: before fitting, each feature is oriented so that the transshipment direction is "up" (e.g.
China's direct imports to the US *falling* becomes a positive number), then clipped from below at its
training median. A route that collapses, or moves in the innocent direction, is then not "unusual" to
the forest; only unusual movement in the suspicious direction is.

The model's inputs are joint features (both legs at once) and the fall of the direct route; single-leg
spikes stay in the feature table for the analyst but are not inputs, because a single leg rising is what
the legitimate look-alikes (a producer selling more, a hub's own demand) look like. Volumes enter in kg,
never in dollars, so a world price surge cannot move the score.

Explanations are occlusion attributions, faithful by construction: for each explained route-period, the
set of `top` features whose reset to the route's typical values lowers the score most (searched
exhaustively over all sets of that size), each with its value, the route's typical value, the model's
normal range (10th to 90th percentile of training) and the score drop when it alone is reset.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

SCORE_THREADS = max(1, min(4, os.cpu_count() or 1))
SCORE_CHUNK_ROWS = 50_000  # below this, one thread: starting more costs more than it saves


@dataclass(frozen=True)
class ModelFeature:
    column: str
    transform: str  # log1p | signed_log10 | identity
    direction: int  # +1: high is suspicious; -1: low is suspicious
    words: str  # how a person reads it


MODEL_FEATURES: tuple[ModelFeature, ...] = (
    ModelFeature("co_spike_ratio_kg", "log1p", 1, "both legs (kg), window vs prior 3 years, the smaller ratio"),
    ModelFeature("co_robust_z", "signed_log10", 1, "both legs (kg), robust z against own history, the smaller"),
    ModelFeature("route_excess_kg", "signed_log10", 1, "kg above the 3-year run rate on both legs (lag-aligned)"),
    ModelFeature("reroute_ceiling_share", "identity", 1, "share of hub->US kg that China's shipments could cover"),
    ModelFeature("three_leg_strength", "identity", 1,
                 "three-leg share test: its weakest leg (change in share: 0.1 = 10 percentage points)"),
    ModelFeature("three_leg_excess_kg", "signed_log10", 1, "kg above the route's earlier shares on both legs"),
    ModelFeature("co_movement", "identity", 1, "correlation of China->hub (t-L) with hub->US (t)"),
    ModelFeature("signal_persistence", "identity", 1, "consecutive periods both legs were unusual"),
    ModelFeature("pass_through_kg", "identity", 1, "hub->US kg per kg China sent the hub"),
    ModelFeature("us_from_cn_kg_robust_z", "signed_log10", -1, "fall of US imports from China (robust z)"),
    ModelFeature("cn_direct_share_of_us_imports_change", "identity", -1, "fall in China's direct share of US imports"),
    ModelFeature("mirror_gap_hub_us_usd", "identity", 1, "US declares more from the hub than the hub declares"),
    ModelFeature("mirror_gap_cn_hub_kg", "identity", -1, "China declares more to the hub than the hub declares"),
)
MODEL_FEATURE_COLUMNS = tuple(f.column for f in MODEL_FEATURES)
# How a person reads each input, as this code words it: a registered model keeps the words it was fitted with
# (its card), and its explanations say what the inputs are in today's words (RouteScorer.explain).
FEATURE_WORDS = {f.column: f.words for f in MODEL_FEATURES}


def _oriented(frame: pl.DataFrame, features: tuple[ModelFeature, ...]) -> np.ndarray:
    """The features as the forest sees them: transformed, then signed so that "up" is suspicious."""
    exprs = []
    for f in features:
        x = pl.col(f.column).cast(pl.Float64).fill_null(0.0).fill_nan(0.0)
        if f.transform == "log1p":
            x = x.clip(lower_bound=0.0).log1p()
        elif f.transform == "signed_log10":
            x = x.sign() * (x.abs() + 1.0).log10()
        exprs.append((x * f.direction).alias(f.column))
    return frame.select(exprs).to_numpy()


def raw_values(frame: pl.DataFrame, features: tuple[ModelFeature, ...]) -> np.ndarray:
    return frame.select([pl.col(f.column).cast(pl.Float64).fill_null(0.0).fill_nan(0.0)
                         for f in features]).to_numpy()


class RouteScorer(BaseEstimator):
    """Isolation forest for route-periods of one mineral and frequency.

    Parameters
    ----------
    n_estimators : int
        Trees in the forest.
    max_samples : int or "auto"
        Rows drawn per tree.
    random_state : int
        Seed; the same data and seed give the same scores.

    Attributes
    ----------
    features_ : tuple of ModelFeature
    center_ : ndarray, the training median of each oriented feature (the clip point)
    normal_low_, normal_high_ : ndarray, the 10th and 90th percentile of each feature as stored
    forest_ : IsolationForest
    train_scores_ : ndarray, sorted anomaly scores of the training rows
    n_train_ : int
    """

    def __init__(self, n_estimators: int = 300, max_samples: int | str = 256, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, frame: pl.DataFrame, y: None = None) -> RouteScorer:
        if frame.height < 2:
            raise ValueError(f"need at least 2 route-periods to fit, got {frame.height}")
        self.features_ = MODEL_FEATURES
        # One rows-by-features array alive at a time (a section of the universe is millions of rows).
        raw = raw_values(frame, self.features_)
        self.normal_low_, self.normal_high_ = np.percentile(raw, 10, axis=0), np.percentile(raw, 90, axis=0)
        del raw
        oriented = _oriented(frame, self.features_)
        self.center_ = np.median(oriented, axis=0)
        # What the training data looked like, for the drift check: per feature, the training share in each
        # decile bin of the oriented values.
        self.drift_edges_ = [np.unique(np.quantile(oriented[:, j], np.linspace(0.1, 0.9, 9)))
                             for j in range(oriented.shape[1])]
        self.drift_shares_ = [_bin_shares(oriented[:, j], edges) for j, edges in enumerate(self.drift_edges_)]
        clipped = np.maximum(oriented, self.center_, out=oriented)  # in place: oriented is not used again
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, frame.height) if isinstance(self.max_samples, int) else self.max_samples,
            random_state=self.random_state,
        ).fit(clipped)
        self._last_train_scores = self._score(clipped)
        self.train_scores_ = np.sort(self._last_train_scores)
        self.n_train_ = frame.height
        return self

    def fit_score(self, frame: pl.DataFrame) -> np.ndarray:
        """Fit on `frame` and return its rows' anomaly scores (computed once: fitting scores them anyway)."""
        scores = self.fit(frame)._last_train_scores
        del self._last_train_scores
        return scores

    # -------------------------------------------------------------- scores and thresholds
    def _clipped(self, frame: pl.DataFrame) -> np.ndarray:
        return np.maximum(_oriented(frame, self.features_), self.center_)

    def _score(self, clipped: np.ndarray) -> np.ndarray:
        # Rows score independently; scikit-learn's tree traversal releases the GIL, so two threads over
        # halves of a large frame use both cores (its n_jobs does not parallelise scoring).
        if len(clipped) < SCORE_CHUNK_ROWS:
            return -self.forest_.score_samples(clipped)
        halves = np.array_split(clipped, SCORE_THREADS)
        with ThreadPoolExecutor(SCORE_THREADS) as pool:
            return -np.concatenate(list(pool.map(self.forest_.score_samples, halves)))

    def anomaly_score(self, frame: pl.DataFrame) -> np.ndarray:
        """Anomaly score in (0, 1]; higher = more suspicious."""
        check_is_fitted(self, "forest_")
        return self._score(self._clipped(frame))

    def threshold_for(self, quantile: float) -> float:
        """The anomaly-score threshold at a quantile of the training scores; no refit needed to change it."""
        check_is_fitted(self, "forest_")
        return float(np.quantile(self.train_scores_, quantile))

    def score_percentile(self, scores: np.ndarray) -> np.ndarray:
        """Share of the training route-periods that scored at or below each score (0..1)."""
        check_is_fitted(self, "forest_")
        return np.searchsorted(self.train_scores_, scores, side="right") / len(self.train_scores_)

    def drift(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Population stability index (PSI) of each input on `frame` against the training data, over the
        training deciles: sum((new - train) × ln(new / train)) per bin, shares floored at 1e-4. Rule of thumb
        used in credit scoring: < 0.1 stable, 0.1 to 0.25 moving, > 0.25 shifted."""
        check_is_fitted(self, "forest_")
        oriented = _oriented(frame, self.features_)
        psi = []
        for j, edges in enumerate(self.drift_edges_):
            new = np.maximum(_bin_shares(oriented[:, j], edges), 1e-4)
            old = np.maximum(self.drift_shares_[j], 1e-4)
            psi.append(float(np.sum((new - old) * np.log(new / old))))
        return pl.DataFrame({"feature": [f.column for f in self.features_], "psi": psi})

    # -------------------------------------------------------------- explanations
    def explain(self, frame: pl.DataFrame, typical: pl.DataFrame, top: int = 3) -> pl.DataFrame:
        """Occlusion attributions for each row of `frame`, against the route's `typical` row (same order).

        Returns one row per (row, position) with: row (index into frame), position (1 = the feature whose
        reset alone lowers the score most, within the best set), feature, words, value, typical,
        normal_low, normal_high, score_drop (the score drop when this feature alone is reset), and
        set_score_drop (the drop when the whole set is reset). The set is the `top` features whose joint
        reset to typical lowers the score most, found by exhaustive search; features whose reset does not
        lower the score are left out."""
        check_is_fitted(self, "forest_")
        n, d = frame.height, len(self.features_)
        k = min(top, d)
        if n == 0:
            return _empty_explanations()
        x, ref = self._clipped(frame), self._clipped(typical)
        base = self._score(x)
        subsets = np.array(list(combinations(range(d), k)))  # (m, k)
        masks = np.zeros((len(subsets), d), dtype=bool)
        masks[np.arange(len(subsets))[:, None], subsets] = True
        set_scores = self._reset(x, ref, masks)
        best = np.argmin(set_scores, axis=1)
        single_drop = base[:, None] - self._reset(x, ref, np.eye(d, dtype=bool))
        raw, raw_ref = raw_values(frame, self.features_), raw_values(typical, self.features_)
        rows = np.repeat(np.arange(n), k)
        feats = subsets[best].reshape(-1)
        drops = single_drop[rows, feats]
        out = pl.DataFrame({
            "row": rows.astype(np.int64), "j": feats.astype(np.int64), "score_drop": drops,
            "set_score_drop": np.repeat(base - set_scores[np.arange(n), best], k),
            "value": raw[rows, feats], "typical": raw_ref[rows, feats],
            "normal_low": self.normal_low_[feats], "normal_high": self.normal_high_[feats],
        })
        names = pl.DataFrame({"j": np.arange(d, dtype=np.int64), "feature": [f.column for f in self.features_],
                              "words": [FEATURE_WORDS.get(f.column, f.words) for f in self.features_]})
        out = (out.join(names, on="j").filter(pl.col("score_drop") > 0)
               .sort("row", "score_drop", descending=[False, True])
               .with_columns(position=pl.int_range(1, pl.len() + 1).over("row").cast(pl.Int32)))
        return out.select("row", "position", "feature", "words", "value", "typical", "normal_low", "normal_high",
                          "score_drop", "set_score_drop")

    def reset_scores(self, frame: pl.DataFrame, typical: pl.DataFrame, masks: np.ndarray) -> np.ndarray:
        """Anomaly scores (n rows × m masks) with the features of each boolean mask (m × d, in the order
        of features_) reset to the route's typical values; every variant scored in one call."""
        check_is_fitted(self, "forest_")
        return self._reset(self._clipped(frame), self._clipped(typical), masks)

    def _reset(self, x: np.ndarray, ref: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """reset_scores on the clipped arrays (n × d each)."""
        n, d = x.shape
        # Resetting a feature whose value is already the typical one changes nothing: of a row's variants,
        # those that reset the same features among the ones that differ are the same row. Each distinct row
        # is scored once (a forest scores each row on its own, so the scores are the very same). Most of a
        # row's features sit at their clip point, as do the typical ones: explaining a row scored ~300
        # variants (13 features, sets of 3) and now scores a few dozen.
        if d > 62:  # more features than the bits of a key: every variant scored
            variants = np.where(masks[None, :, :], ref[:, None, :], x[:, None, :])
            return self._score(variants.reshape(-1, d)).reshape(n, len(masks))
        bits = np.left_shift(1, np.arange(d, dtype=np.int64))
        changed = (masks.astype(np.int64) @ bits)[None, :] & ((x != ref).astype(np.int64) @ bits)[:, None]
        keys, inverse = np.unique((np.arange(n, dtype=np.int64)[:, None] << d) | changed, return_inverse=True)
        rows, reset = keys >> d, (keys[:, None] & bits[None, :]) != 0
        variants = np.where(reset, ref[rows], x[rows])
        return self._score(variants)[inverse.reshape(-1)].reshape(n, len(masks))

    def mask(self, columns: list[str]) -> np.ndarray:
        """A boolean mask over features_ for `columns`."""
        return np.array([f.column in columns for f in self.features_])


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values in each bin cut at `edges` (len(edges) + 1 bins; a value on an edge goes right)."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _empty_explanations() -> pl.DataFrame:
    return pl.DataFrame(schema={"row": pl.Int64, "position": pl.Int32, "feature": pl.String, "words": pl.String,
                                "value": pl.Float64, "typical": pl.Float64, "normal_low": pl.Float64,
                                "normal_high": pl.Float64, "score_drop": pl.Float64, "set_score_drop": pl.Float64})


# Features in kilograms that the text gives in tonnes, as every other figure an analyst reads
# (route_explanations keeps their values in kg, with the words that say so).
TONNE_FEATURES = ("route_excess_kg", "three_leg_excess_kg")


def in_tonnes(explanations: pl.DataFrame) -> pl.DataFrame:
    """`explanations` with the TONNE_FEATURES' value, typical and normal range in tonnes and their words
    saying "t" instead of "kg"."""
    kg = pl.col("feature").is_in(TONNE_FEATURES)
    return explanations.with_columns(
        *[pl.when(kg).then(pl.col(c) / 1000).otherwise(pl.col(c)).alias(c)
          for c in ("value", "typical", "normal_low", "normal_high")],
        words=pl.when(kg).then(pl.col("words").str.replace(r"^kg ", "t ")).otherwise(pl.col("words")))


def explanation_text(explanations: pl.DataFrame) -> pl.DataFrame:
    """One line per explained row: "<words>: <value> (typical <t>, normal <lo> to <hi>; at typical, forest score
    -<drop>)" joined by "; ", kilograms in tonnes (in_tonnes): the drop is the forest's anomaly score falling
    when this feature alone is reset to the route's typical value, not a score of the feature."""
    fmt = lambda c: pl.col(c).round_sig_figs(3).cast(pl.String)  # noqa: E731
    return in_tonnes(explanations).sort("row", "position").group_by("row", maintain_order=True).agg(
        pl.format("{}: {} (typical {}, normal {} to {}; at typical, forest score -{})", "words", fmt("value"),
                  fmt("typical"), fmt("normal_low"), fmt("normal_high"), pl.col("score_drop").round(3).cast(pl.String))
        .str.join("; ").alias("top_features"))
