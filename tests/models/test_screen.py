"""The forest's cost goes where there is evidence: a screen that cannot change a score that matters, and a
training sample that stands for the whole group."""

from __future__ import annotations

import numpy as np
import polars as pl

from models.scoring import ScoreParams, evidence, score_routes, scoreable, training_sample

PARAMS = ScoreParams(n_estimators=60)


def test_the_screen_leaves_every_score_it_could_matter_for_as_it_was(sample_features):
    """A route-period screened out (evidence below min_evidence) keeps NULL scores; every other one scores
    exactly what it scores with no screen at all, and the screened ones could not have scored
    min_evidence (route_score = anomaly_score x evidence, anomaly_score <= 1)."""
    screened, _, fitted = score_routes(sample_features, PARAMS)
    whole, _, _ = score_routes(sample_features, ScoreParams(n_estimators=60, min_evidence=0.0))
    assert screened.select(*fitted_keys(), "period").equals(whole.select(*fitted_keys(), "period"))
    out = pl.col("anomaly_score").is_null()
    n_out = screened.select(out.sum()).item()
    assert 0 < n_out < screened.height  # the sample world has both kinds
    assert screened.filter(out).select(pl.col("route_score").is_null().all(), pl.col("score_percentile").is_null().all(),
                                       (pl.col("evidence") < PARAMS.min_evidence).all()).row(0) == (True, True, True)
    kept = screened["anomaly_score"].is_not_null()
    for column in ("anomaly_score", "route_score", "score_percentile", "flagged", "evidence"):
        assert screened.filter(kept)[column].equals(whole.filter(kept)[column]), column
    # What the screened rows would have scored: below the screen, as the bound says.
    assert whole.filter(~kept).select((pl.col("route_score") < PARAMS.min_evidence).all()).item()
    assert whole.select((pl.col("route_score") <= pl.col("evidence") + 1e-12).all()).item()
    # The flagged list and every planted story's route: untouched.
    assert screened["flagged"].sum() == whole["flagged"].sum() > 0
    per_group = {(g.frequency, g.mineral): g.extra for g in fitted if g.scorer is not None}
    assert sum(e["screened_out"] for e in per_group.values()) == n_out
    assert all(e["forest_scored"] + e["screened_out"] == e["route_periods"] for e in per_group.values())


def fitted_keys() -> list[str]:
    return ["frequency", "mineral", "hs_code", "hub_iso3"]


def test_evidence_is_route_score_over_the_forest_score(sample_features):
    scored, _, _ = score_routes(sample_features, PARAMS)
    kept = scored.filter(pl.col("anomaly_score").is_not_null())
    assert np.allclose(kept["route_score"].to_numpy(), (kept["anomaly_score"] * kept["evidence"]).to_numpy(), rtol=1e-12)
    assert scored.select(evidence(PARAMS).alias("again"))["again"].equals(scored["evidence"].alias("again"))


def test_a_large_group_is_fitted_on_a_seeded_stratified_sample(sample_features):
    group = sample_features.filter(scoreable(sample_features), pl.col("mineral") == "antimony",
                                   pl.col("frequency") == "M")
    params = ScoreParams(n_estimators=60, train_sample_rows=group.height // 4)
    sample = training_sample(group, params)
    assert training_sample(group, ScoreParams(train_sample_rows=group.height)) is group  # small: all of it
    assert params.train_sample_rows <= sample.height <= params.train_sample_rows + group["period"].n_unique()
    assert sample.equals(training_sample(group, params))  # seeded: the same rows every time
    assert not sample.equals(training_sample(group, ScoreParams(train_sample_rows=params.train_sample_rows,
                                                                random_state=1)))
    # Every period in the same share (stratified), rounded up.
    share = params.train_sample_rows / group.height
    per_period = group.group_by("period").len().join(sample.group_by("period").len(), on="period", suffix="_s")
    assert per_period.select((pl.col("len_s") == (pl.col("len") * share).ceil()).all()).item()
    # The model trained on it: its percentiles read from the sample, its card says how many rows.
    scored, _, fitted = score_routes(group, params)
    g = next(f for f in fitted if f.scorer is not None)
    assert g.n_train == group.height and g.extra["sampled"] == sample.height == g.scorer.n_train_
    assert scored["score_percentile"].drop_nulls().is_between(0, 1).all()
    # A forest fitted on a quarter of the rows ranks them as the one fitted on all of them does.
    whole, _, _ = score_routes(group, ScoreParams(n_estimators=60))
    both = scored.select("anomaly_score").with_columns(whole=whole["anomaly_score"]).drop_nulls()
    assert both.select(pl.corr("anomaly_score", "whole", method="spearman")).item() > 0.9
