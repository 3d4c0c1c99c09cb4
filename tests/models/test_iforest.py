"""The scorer's contract: reproducible, higher = more suspicious, one-sided, threshold without refit."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.exceptions import NotFittedError

from models.iforest import MODEL_FEATURES, RouteScorer


def world(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {f.column: rng.normal(0.1, 0.05, n).clip(0) for f in MODEL_FEATURES}
    cols["route_excess_kg"] = rng.normal(0, 1000, n)
    cols["cn_direct_share_of_us_imports_change"] = rng.normal(0, 0.01, n)
    return pl.DataFrame(cols)


def test_same_data_same_seed_same_scores():
    a = RouteScorer(random_state=3).fit(world()).anomaly_score(world())
    b = RouteScorer(random_state=3).fit(world()).anomaly_score(world())
    assert np.array_equal(a, b)


def test_rerouting_shape_scores_higher_but_a_collapse_does_not():
    base = world()
    scorer = RouteScorer(random_state=0).fit(base)
    spike = base.head(1).with_columns(
        cn_to_hub_kg_spike_ratio=pl.lit(8.0), hub_to_us_kg_spike_ratio=pl.lit(9.0), co_spike_ratio_kg=pl.lit(8.0),
        route_excess_kg=pl.lit(2e6), hub_share_of_us_imports_change=pl.lit(0.3),
        cn_direct_share_of_us_imports_change=pl.lit(-0.5))
    collapse = base.head(1).with_columns(
        cn_to_hub_kg_spike_ratio=pl.lit(0.0), hub_to_us_kg_spike_ratio=pl.lit(0.0), co_spike_ratio_kg=pl.lit(0.0),
        route_excess_kg=pl.lit(-2e6), hub_share_of_us_imports_change=pl.lit(-0.3),
        cn_direct_share_of_us_imports_change=pl.lit(0.5))
    typical = float(np.median(scorer.anomaly_score(base)))
    assert scorer.anomaly_score(spike)[0] > scorer.threshold_ > typical
    assert scorer.anomaly_score(collapse)[0] <= typical + 0.05
    assert "hub->US kg, window vs prior 3 years: 9" in scorer.explain(spike)[0]


def test_threshold_for_another_quantile_needs_no_refit():
    scorer = RouteScorer(random_state=0, flag_quantile=0.98).fit(world())
    assert scorer.threshold_for(0.9) < scorer.threshold_ == scorer.threshold_for(0.98)
    assert np.mean(scorer.train_scores_ >= scorer.threshold_) == pytest.approx(0.02, abs=0.01)


def test_unfitted_scorer_refuses():
    with pytest.raises(NotFittedError):
        RouteScorer().anomaly_score(world(5))
