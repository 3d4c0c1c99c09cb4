"""The forest's cost goes where there is evidence: a screen that cannot change a score that matters, and a
training sample that stands for the whole group."""

from __future__ import annotations

import numpy as np
import polars as pl

from models.evidence import evidence

from models.params import ScoreParams

from models.scoring import score_routes, scoreable, training_sample

PARAMS = ScoreParams(n_estimators=60)


def test_the_screen_leaves_every_score_it_could_matter_for_as_it_was(sample_features):
    """A route-period screened out (evidence below min_evidence) keeps NULL scores; every other one scores
    exactly what it scores with no screen at all, and the screened ones could not have scored much: their
    graded score is below min_evidence (graded_score = √anomaly_score x evidence, anomaly_score <= 1), their
    route score below √min_evidence (route_score = √(graded_score x learned_score), learned_score <= 1), far
    under any flag threshold."""
    screened, _, fitted = score_routes(sample_features, PARAMS)
    whole, _, _ = score_routes(sample_features, ScoreParams(n_estimators=60, min_evidence=0.0))
    assert screened.select(*fitted_keys(), "period").equals(whole.select(*fitted_keys(), "period"))
    out = pl.col("anomaly_score").is_null()
    n_out = screened.select(out.sum()).item()
    assert 0 < n_out < screened.height  # the sample world has both kinds
    assert screened.filter(out).select(pl.col("route_score").is_null().all(), pl.col("score_percentile").is_null().all(),
                                       (pl.col("evidence") < PARAMS.min_evidence).all()).row(0) == (True, True, True)
    kept = screened["anomaly_score"].is_not_null()
    for column in ("anomaly_score", "graded_score", "learned_score", "route_score", "score_percentile", "flagged",
                   "evidence"):
        assert screened.filter(kept)[column].equals(whole.filter(kept)[column]), column
    # What the screened rows would have scored: below the screen, as the bound says.
    assert whole.filter(~kept).select((pl.col("graded_score") < PARAMS.min_evidence).all(),
                                      (pl.col("route_score") < PARAMS.min_evidence ** 0.5).all()).row(0) == (True, True)
    assert whole.select((pl.col("graded_score") <= pl.col("evidence") + 1e-12).all(),
                        (pl.col("route_score") <= pl.col("evidence").sqrt() + 1e-12).all()).row(0) == (True, True)
    # The flagged list and every planted story's route: untouched.
    assert screened["flagged"].sum() == whole["flagged"].sum() > 0
    per_group = {(g.frequency, g.mineral): g.extra for g in fitted if g.scorer is not None}
    assert sum(e["screened_out"] for e in per_group.values()) == n_out
    assert all(e["forest_scored"] + e["screened_out"] == e["route_periods"] for e in per_group.values())


def fitted_keys() -> list[str]:
    return ["frequency", "mineral", "hs_code", "hub_iso3"]


def test_evidence_is_the_graded_score_over_the_forest_score(sample_features):
    """graded_score = √anomaly_score x evidence (forest_power ½), so graded_score <= evidence; route_score =
    √(graded_score x learned_score) on the monthly rows the forest scored."""
    scored, _, _ = score_routes(sample_features, PARAMS)
    kept = scored.filter(pl.col("anomaly_score").is_not_null())
    assert np.allclose(kept["graded_score"].to_numpy(), (kept["anomaly_score"].sqrt() * kept["evidence"]).to_numpy(),
                       rtol=1e-12)
    assert (kept["graded_score"] <= kept["evidence"]).all()
    assert kept["learned_score"].is_between(0, 1).all() and kept["learned_score"].null_count() == 0
    assert np.allclose(kept["route_score"].to_numpy(), (kept["graded_score"] * kept["learned_score"]).sqrt().to_numpy(),
                       rtol=1e-12)
    assert scored.filter(pl.col("anomaly_score").is_null()).select(
        pl.col("learned_score").is_null().all(), pl.col("route_score").is_null().all()).row(0) == (True, True)
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


def test_a_sampled_model_is_reused_until_a_row_it_was_fitted_on_changes(sample_features, tmp_path):
    """The training hash is over the rows fitted: a revision of a row outside the sample leaves the model
    what it would be if fitted again (reused); one inside it refits."""
    import duckdb

    from flows.stages.registry import ensure_registry, latest, register
    from models.registry import choose_models

    group = sample_features.filter(scoreable(sample_features), pl.col("mineral") == "antimony",
                                   pl.col("frequency") == "M")
    params = ScoreParams(n_estimators=40, train_sample_rows=group.height // 4)
    con = duckdb.connect(str(tmp_path / "registry.duckdb"))
    ensure_registry(con)
    for g in score_routes(group, params)[2]:
        register(con, g, params, "run-1", "test")
    models = latest(con)
    sample = training_sample(group, params)
    keys = ["hs_code", "hub_iso3", "period"]
    in_sample = group.join(sample.select(keys), on=keys, how="semi").row(0, named=True)
    outside = group.join(sample.select(keys), on=keys, how="anti").row(0, named=True)

    def revised(row: dict) -> pl.DataFrame:
        hit = pl.all_horizontal([pl.col(k) == row[k] for k in keys])
        return group.with_columns(pl.when(hit).then(pl.col("co_robust_z") + 5).otherwise(pl.col("co_robust_z"))
                                  .alias("co_robust_z"))

    reuse, reasons, _ = choose_models(revised(outside), models, "auto", 10.0, params=params)
    assert ("M", "antimony") in reuse, reasons
    reuse, reasons, _ = choose_models(revised(in_sample), models, "auto", 10.0, params=params)
    assert ("M", "antimony") not in reuse and "have changed" in reasons[("M", "antimony")]
    con.close()


def test_key_order_is_checked_in_one_pass_and_restored_when_broken(sample_features):
    """in_key_order returns a sorted frame as it is (no copy) and sorts any other, whichever key breaks the
    order: the route keys in turn, or the period."""
    from models.scoring import in_key_order

    keys = ["frequency", "mineral", "hs_code", "hub_iso3", "period"]
    ordered = sample_features.sort(keys)
    assert in_key_order(ordered) is ordered
    assert in_key_order(ordered.sample(fraction=1.0, shuffle=True, seed=3)).equals(ordered)
    for i in range(ordered.height - 1):  # two neighbours swapped where each key in turn decides
        a, b = ordered.row(i, named=True), ordered.row(i + 1, named=True)
        if a["hub_iso3"] != b["hub_iso3"] and a["hs_code"] == b["hs_code"]:
            break
    swapped = pl.concat([ordered.head(i), ordered.slice(i + 1, 1), ordered.slice(i, 1), ordered.tail(-(i + 2))])
    assert in_key_order(swapped).equals(ordered)
    late = pl.concat([ordered.head(5).reverse(), ordered.tail(-5)])  # the first route's periods reversed
    assert in_key_order(late).equals(ordered)


def test_the_reuse_check_hashes_the_rows_a_refit_would_be_fitted_on(sample_features):
    """choose_models draws the training sample from the periods alone and copies only its rows
    (models.registry.trained_sample): the same rows, hence the same hash, as sampling the whole group."""
    from models.registry import trained_sample
    from models.scoring import hashed_columns, training_sha256

    group = sample_features.filter(scoreable(sample_features), pl.col("mineral") == "antimony",
                                   pl.col("frequency") == "M")
    first, last = "2019-06-01", "2024-06-01"
    in_periods = group.filter(pl.col("period").is_between(pl.lit(first).str.to_date(), pl.lit(last).str.to_date()))
    assert 0 < in_periods.height < group.height
    for rows in (in_periods.height // 5, in_periods.height * 2):  # sampled, and whole
        params = ScoreParams(train_sample_rows=rows)
        expected = hashed_columns(training_sample(in_periods, params))
        got = trained_sample(group, first, last, params)
        assert got.equals(expected)
        assert training_sha256(got) == training_sha256(training_sample(in_periods, params))
    assert got.height == in_periods.height


def test_the_rows_explained_are_the_flagged_ones_and_the_top_routes_peaks(sample_features):
    """rows_to_explain marks its peaks by row number (memory): the same rows as joining each of the
    explain_routes best routes' peak period back on the keys."""
    from models.explain import rows_to_explain
    from warehouse.contracts import KEYS, ROUTE_KEYS

    scored, _, _ = score_routes(sample_features, PARAMS)
    for params in (PARAMS, ScoreParams(n_estimators=60, explain_routes=7)):
        peaks = (scored.select(*ROUTE_KEYS, "period", "route_score").filter(pl.col("route_score") > 0)
                 .sort("route_score", descending=True, maintain_order=True)
                 .group_by(ROUTE_KEYS, maintain_order=True).first().head(params.explain_routes))
        marked = scored.select(KEYS).join(peaks.with_columns(_peak=pl.lit(True)).drop("route_score"), on=KEYS,
                                          how="left", maintain_order="left")["_peak"].fill_null(False)
        expected = scored["flagged"] | marked
        got = rows_to_explain(scored, params)
        assert got.equals(expected.alias("explained"))
        assert (got & ~scored["flagged"]).sum() > 0  # peaks that are not flagged are explained too


def test_a_route_whose_hub_never_sent_the_us_the_product_cannot_reach_the_screen(sample_features):
    """The routes screened out before the features (models.evidence.silent_route_bound): on the sample world's
    real features, every route-period of a route with no hub -> US trade has evidence within the bound, for
    the defaults and for looser thresholds, and the screen is on only while the bound is below min_evidence."""
    from models.evidence import screens_silent_routes, silent_route_bound

    keys = ["frequency", "mineral", "hs_code", "hub_iso3"]
    silent = (sample_features.group_by(keys)
              .agg(((pl.col("hub_to_us_kg").fill_null(0) == 0) & (pl.col("hub_to_us_usd").fill_null(0) == 0)).all()
                   .alias("silent"))
              .filter("silent").drop("silent"))
    rows = sample_features.join(silent, on=keys)
    assert silent.height > 50 and rows.height > 1000  # the sample world has many (half its routes)
    assert rows.select((pl.col("cn_to_hub_kg") > 0).any()).item()  # China's leg moves there: not an empty route
    for params in (ScoreParams(), ScoreParams(min_rise_z=-1.0, min_us_mean_z=1.0, min_value_cover=0.1),
                   ScoreParams(min_rise_z=1.0, min_us_mean_z=3.0)):
        most = rows.select(evidence(params).max()).item()
        assert 0 < most <= silent_route_bound(params), params
    assert silent_route_bound(ScoreParams()) < ScoreParams().min_evidence and screens_silent_routes(ScoreParams())
    assert not screens_silent_routes(ScoreParams(min_us_mean_z=1.0))  # looser: the bound is above the screen
    assert not screens_silent_routes(ScoreParams(min_evidence=0.0))


def test_a_route_china_never_supplied_has_no_chinese_goods_and_little_evidence(tmp_path):
    """The other routes screened out before the features: China never sent the hub the product
    (models.evidence.china_silent_route_bound). The sample world with China's leg of every route emptied (its
    exports and the hubs' own imports from China), the US leg as it was: every route-period's evidence is
    within the bound, for the defaults and for looser thresholds (under the defaults at most 0.0021 here:
    the bound takes every other factor at its most)."""
    import duckdb

    from features.params import FeatureParams
    from flows import stages
    from flows.stages.featurize import _features_of
    from models.evidence import china_silent_route_bound
    from warehouse import feature_store as store
    from worlds.sample import write_sample_world

    paths = write_sample_world(tmp_path)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        stages.load(con, paths["data_dir"], "sample")
        stages.build(con)
        legs = store.all_legs(con)
        china = ["cn_to_hub_kg", "cn_to_hub_usd", "hub_reported_from_cn_kg", "hub_reported_from_cn_fob_usd"]
        assert legs.select(pl.col(c).fill_null(0).abs().sum() > 0 for c in china[:2]).row(0) == (True, True)
        silent = legs.with_columns(pl.when(pl.col(c).is_not_null()).then(0.0).alias(c) for c in china)
        features = _features_of(silent, con, FeatureParams())
    finally:
        con.close()
    rows = features.filter(scoreable(features))
    assert rows.select((pl.col("hub_to_us_kg_robust_z") > 3).sum()).item() > 30  # the US leg still moves
    for params in (ScoreParams(), ScoreParams(min_rise_z=-1.0, min_us_mean_z=1.0, min_value_cover=0.1),
                   ScoreParams(min_rise_z=1.0, min_us_mean_z=3.0)):
        most = rows.select(evidence(params).max()).item()
        assert 0 < most <= china_silent_route_bound(params), params
    assert china_silent_route_bound(ScoreParams()) == 0.025
