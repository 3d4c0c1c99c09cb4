"""The scorer's contract: reproducible, higher = more suspicious, one-sided, threshold without refit, and
explanations that are faithful to the forest."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import polars as pl
import pytest
from sklearn.exceptions import NotFittedError

from models.iforest import MODEL_FEATURES, RouteScorer
from models.explain import route_typical
from models.params import ScoreParams
from models.scoring import apply_threshold, score_routes

COLUMNS = [f.column for f in MODEL_FEATURES]


def world(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {c: rng.normal(0.1, 0.05, n).clip(0) for c in COLUMNS}
    cols["route_excess_kg"] = rng.normal(0, 1000, n)
    cols["co_robust_z"] = rng.normal(0, 1, n)
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
        co_spike_ratio_kg=pl.lit(8.0), co_robust_z=pl.lit(30.0), route_excess_kg=pl.lit(2e6),
        three_leg_strength=pl.lit(0.3), signal_persistence=pl.lit(5.0),
        cn_direct_share_of_us_imports_change=pl.lit(-0.5))
    collapse = base.head(1).with_columns(
        co_spike_ratio_kg=pl.lit(0.0), co_robust_z=pl.lit(-30.0), route_excess_kg=pl.lit(-2e6),
        three_leg_strength=pl.lit(-0.3), cn_direct_share_of_us_imports_change=pl.lit(0.5))
    typical = float(np.median(scorer.anomaly_score(base)))
    assert scorer.anomaly_score(spike)[0] > scorer.threshold_for(0.98) > typical
    assert scorer.anomaly_score(collapse)[0] <= typical + 0.05


def test_threshold_for_another_quantile_needs_no_refit():
    scorer = RouteScorer(random_state=0).fit(world())
    assert scorer.threshold_for(0.9) < scorer.threshold_for(0.98)
    assert np.mean(scorer.train_scores_ >= scorer.threshold_for(0.98)) == pytest.approx(0.02, abs=0.01)
    assert scorer.score_percentile(np.array([scorer.train_scores_.max()]))[0] == 1.0


def test_a_model_fitted_with_older_words_explains_in_todays():
    """The words are how a person reads an input, not part of the model: a registered model keeps those it was
    fitted with, and its explanations use the code's."""
    from dataclasses import replace

    scorer = RouteScorer(random_state=0).fit(world())
    scorer.features_ = tuple(replace(f, words=f"old words of {f.column}") for f in scorer.features_)
    row = world().head(1).with_columns(route_excess_kg=pl.lit(2e6), co_robust_z=pl.lit(30.0))
    expl = scorer.explain(row, world().head(1))
    assert expl.height and not expl["words"].str.starts_with("old words").any()
    assert expl["words"].to_list() == [next(f.words for f in MODEL_FEATURES if f.column == c) for c in expl["feature"]]


def test_unfitted_scorer_refuses():
    with pytest.raises(NotFittedError):
        RouteScorer().anomaly_score(world(5))


def test_drift_is_near_zero_on_the_training_data_and_large_when_a_feature_moves():
    base = world()
    scorer = RouteScorer(random_state=0).fit(base)
    assert scorer.drift(base)["psi"].max() < 0.01
    moved = scorer.drift(base.with_columns(pl.col("co_movement") + 0.5))
    assert moved.filter(pl.col("feature") == "co_movement")["psi"][0] > 1.0
    assert moved.filter(pl.col("feature") != "co_movement")["psi"].max() < 0.01



def test_reset_scores_score_each_distinct_variant_once_with_the_very_same_scores():
    # Variants that reset only features already at their typical value are the same row: scored once, they
    # must get exactly the scores every variant scored on its own gets.
    base = world(600, seed=4)
    scorer = RouteScorer(random_state=1).fit(base)
    rows = base.head(40)
    # Typical rows equal to the row in some features (exactly), apart in others; many clip to the same point.
    typical = rows.with_columns(*[pl.col(c) * 1.7 + 0.01 for c in COLUMNS[::3]])
    masks = np.array([scorer.mask(list(c)) for k in (1, 2, 3) for c in combinations(COLUMNS, k)])
    x, ref = scorer._clipped(rows), scorer._clipped(typical)
    assert 0 < (x == ref).mean() < 1
    every = np.where(masks[None, :, :], ref[:, None, :], x[:, None, :]).reshape(-1, x.shape[1])
    expected = (-scorer.forest_.score_samples(every)).reshape(len(rows), len(masks))
    assert np.array_equal(scorer.reset_scores(rows, typical, masks), expected)


# ---------------------------------------------------------------- on the sample world
@pytest.fixture(scope="module")
def scored(sample_features):
    return score_routes(sample_features, ScoreParams())


def test_explanations_are_faithful_to_the_forest(scored):
    """For every flagged route-period, resetting its top features to the route's typical values lowers the
    score more than resetting any other set of as many features."""
    scores, explanations, fitted = scored
    keys = ["frequency", "mineral", "hs_code", "hub_iso3"]
    flagged = scores.filter("flagged")
    assert flagged.height >= 20
    checked = 0
    for (mineral,), rows in flagged.group_by(["mineral"]):
        scorer = next(g.scorer for g in fitted if g.mineral == mineral)
        typical_all = route_typical(scores.filter(pl.col("mineral") == mineral))
        for r in rows.iter_rows(named=True):
            row = rows.filter(pl.col("hub_iso3") == r["hub_iso3"], pl.col("hs_code") == r["hs_code"],
                              pl.col("period") == r["period"])
            typical = row.select(keys).join(typical_all, on=keys, how="left")
            top = explanations.filter(pl.col("mineral") == mineral, pl.col("hub_iso3") == r["hub_iso3"],
                                      pl.col("hs_code") == r["hs_code"], pl.col("period") == r["period"])
            top_set = top["feature"].to_list()
            assert 1 <= len(top_set) <= 3
            base = scorer.anomaly_score(row)[0]
            others = [list(c) for c in combinations(COLUMNS, len(top_set)) if set(c) != set(top_set)]
            masks = np.array([scorer.mask(top_set)] + [scorer.mask(cols) for cols in others])
            drops = base - scorer.reset_scores(row, typical, masks)[0]
            drop_top, other_drops = drops[0], drops[1:]
            assert drop_top > 0
            if len(top_set) == 3:
                assert drop_top == pytest.approx(top["set_score_drop"][0])
            assert drop_top >= other_drops.max() - 1e-12, (r["hub_iso3"], r["period"], top_set)
            checked += 1
    assert checked == flagged.height


def test_flagged_routes_explain_themselves_in_words(scored):
    scores, explanations, _ = scored
    tha = scores.filter("flagged", pl.col("hub_iso3") == "THA", pl.col("hs_code") == "282580").sort("route_score").tail(1)
    text = tha["top_features"][0]
    assert "typical" in text and "normal" in text and "; at typical, forest score -" in text
    expl = explanations.filter(pl.col("hub_iso3") == "THA", pl.col("period") == tha["period"][0],
                               pl.col("hs_code") == "282580")
    assert expl["position"].to_list() == list(range(1, expl.height + 1))
    # each top feature lies outside the model's normal range (above it, or below it for a fall)
    assert ((expl["value"] > expl["normal_high"]) | (expl["value"] < expl["normal_low"])).all(), expl


def test_changing_the_threshold_does_not_refit(scored):
    scores, _, fitted = scored
    queue = apply_threshold(scores, ScoreParams(queue_size=2))
    per_period = queue.filter("flagged").group_by("frequency", "period").len()
    assert per_period["len"].max() <= 2
    assert queue["anomaly_score"].equals(scores["anomaly_score"])  # same scores, another cut
    looser = apply_threshold(scores.with_columns(score_threshold=pl.lit(0.1)), ScoreParams())
    assert looser["flagged"].sum() > scores["flagged"].sum()
    assert scores.filter("flagged")["route_score"].min() >= ScoreParams().min_route_score
    assert 0.1 <= looser.filter("flagged")["route_score"].min() < ScoreParams().min_route_score


def test_planted_routes_lead_and_look_alikes_stay_out(scored):
    scores, _, _ = scored
    best = (scores.group_by("hs_code", "hub_iso3").agg(pl.col("route_score").max())
            .sort("route_score", descending=True, nulls_last=True))  # screened-out routes: NULL
    assert set(zip(best["hub_iso3"][:4], best["hs_code"][:4])) == {
        ("THA", "282580"), ("MEX", "282580"), ("VNM", "811292"), ("MYS", "811010")}
    flagged = scores.filter("flagged").select("hub_iso3").unique()["hub_iso3"].to_list()
    for lookalike in ("BOL", "TJK", "OMN", "IND", "BEL", "JPN", "LAO"):
        assert lookalike not in flagged


def test_route_score_is_graded_by_the_evidence_and_flags_need_the_score_and_the_direction():
    """The graded score (route_score where there is no learned score: annual data, or the learned part off;
    its graded half otherwise). No check sets it to 0: it falls smoothly as co_rise_z falls below its threshold, as the
    excess falls below the volume floor, as one period carries more of the window or as China's extra
    shipments cover less of the value passed on; it never exceeds the evidence, counts the forest by its
    square root and ignores the peak share in annual windows. A flag needs route_score at the threshold
    (0.3) and direction_ok: tonnes beyond the run rate on both legs, with weights known for 90 % of the
    trade."""
    from models.evidence import evidence, gates, graded_route_score
    from models.params import ScoreParams
    from models.scoring import apply_threshold

    assert (ScoreParams().min_route_score, ScoreParams().learned) == (0.5, True)
    p = ScoreParams(min_route_score=0.3, learned=False)
    assert (p.min_rise_z, p.forest_power, p.min_value_cover) == (0.0, 0.5, 0.5)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    rows = pl.DataFrame({
        "anomaly_score": [0.8] * 9, "volume_weight": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        "co_rise_z": [3.0, 0.0, -1.5, -3.0, 3.0, 3.0, 3.0, 3.0, 3.0], "hub_to_us_mean_z": [1e9] * 9,
        "floor_multiple": [5.0] * 9, "us_from_cn_kg_robust_z": [-1e9] * 9, "china_value_cover": [1.0] * 9,
        "hub_to_us_peak_share": [0.3] * 5 + [0.9, 0.9, 0.3, 0.3], "window_periods": [5] * 6 + [1, 5, 5],
        "route_excess_kg": [1e6] * 7 + [0.0, 1e6], "volume_floor_kg": [1e3] * 9, "kg_coverage": [1.0] * 8 + [0.5],
        "score_threshold": [p.min_route_score] * 9, "frequency": ["M"] * 9, "period": [1] * 9})
    direction_ok, sustained = gates(p)
    out = apply_threshold(rows.with_columns(direction_ok, sustained).with_columns(graded_route_score(p).alias("route_score"), evidence(p)), p)
    score = out["route_score"].to_list()
    assert all(0 < s <= e for s, e in zip(score, out["evidence"]))
    assert score[0] > score[1] > score[2] > score[3]  # co_rise_z 3, 0 (the threshold), -1.5, -3
    assert score[1] / score[0] == pytest.approx(0.5 / sig(3.0))  # at the threshold: half of sigma(3)
    assert score[4] == score[0] / 2  # no volume: half, not nothing
    # One lump (90 % in one period, above max_peak_share 0.85) keeps sigma(-1) of the score, under the flag;
    # a window whose goods come as a few lots (30 % in one period) all of it; an annual window cannot show a
    # lump: no peak factor, the forest's 0.8 counting as its square root.
    assert score[5] == pytest.approx(score[0] * sig(-1.0) / sig(11.0)) and score[5] < 0.3
    assert score[6] == pytest.approx(np.sqrt(0.8) * sig(3.0))
    # Flags: the score at 0.3 or more (0.85, 0.45, 0.42 half-volume, 0.85 annual; not 0.16 at z -1.5 nor
    # the lump), and direction_ok (not a route with no tonnes beyond its run rate, nor one of unknown weights).
    assert score[2] < 0.3 < score[4] and score[7] == score[8] == score[0]
    assert out["direction_ok"].to_list() == [True] * 7 + [False, False]
    assert out["flagged"].to_list() == [True, True, False, False, True, False, True, False, False]
    # The hub's exports to the US against their own spread (hub_to_us_mean_z) move it the same way: not a check of its own,
    # but a route score it halves below the threshold is not flagged.
    spread = apply_threshold(rows.with_columns(direction_ok, sustained, hub_to_us_mean_z=pl.Series([4.0, 2.0, 0.0, -3.0] + [1e9] * 5))
                             .with_columns(graded_route_score(p).alias("route_score")), p)
    by_spread = spread["route_score"].to_list()
    assert by_spread[0] == pytest.approx(score[0] * sig(2.0))  # hub_to_us_mean_z 4: sigma(2) of it
    assert by_spread[1] == pytest.approx(score[1] / 2)  # at min_us_mean_z (2): half
    assert by_spread[1] < 0.3 <= by_spread[0]
    assert spread["flagged"].to_list() == [True, False, False, False, True, False, True, False, False]
    # Below the volume floor (in kg or value, floor_multiple) the score falls with the square root of the
    # share of the floor reached, to a tenth with no excess at all: a tiny route is not erased, and not flagged.
    small = apply_threshold(rows.with_columns(direction_ok, sustained, floor_multiple=pl.Series([1.0, 5.0, 5.0, 5.0, 0.25, 0.0, None, 5.0, 5.0]))
                            .with_columns(graded_route_score(p).alias("route_score")), p)
    by_floor = small["route_score"].to_list()
    assert by_floor[:4] == score[:4]
    assert by_floor[4] == pytest.approx(score[4] * (0.1 + 0.9 * 0.5))  # a quarter of the floor
    assert by_floor[5] == pytest.approx(score[5] * 0.1) and by_floor[6] == pytest.approx(score[6] * 0.1)  # none, unknown
    assert small["flagged"].to_list() == [True, True, False, False, False, False, False, False, False]
    # The direct route (us_from_cn_kg_robust_z): a fall keeps the score whole, no change or no direct trade
    # known keeps 0.5 + 0.5 sigma(-1) of it, a rise about half; nothing is erased, and the flag follows the
    # score (a route at co_rise_z 0, or of half the volume, drops under 0.3 with no fall of the direct route).
    direct = apply_threshold(rows.with_columns(direction_ok, sustained, us_from_cn_kg_robust_z=pl.Series(
        [-1e9, 0.0, -3.0, 5.0, 0.0, 0.0, 0.0, None, float("nan")])).with_columns(graded_route_score(p).alias("route_score")), p)
    by_direct = direct["route_score"].to_list()
    steady = 0.5 + 0.5 / (1 + np.exp(1.0))
    assert by_direct[0] == score[0] and by_direct[1] == pytest.approx(score[1] * steady)
    assert by_direct[2] == pytest.approx(score[2] * (0.5 + 0.5 / (1 + np.exp(-2.0))))  # a fall of 3
    assert by_direct[3] == pytest.approx(score[3] * (0.5 + 0.5 / (1 + np.exp(6.0))))  # a rise: about half
    assert by_direct[7] == pytest.approx(score[7] * steady) and by_direct[8] == pytest.approx(score[8] * steady)
    assert direct["flagged"].to_list() == [True, False, False, False, False, False, True, False, False]
    # China's extra shipments against the value passed on (china_value_cover): whole from half, falling
    # linearly to a twentieth at none or a fall; unknown (the hub's exports did not rise in value) is whole.
    cover = apply_threshold(rows.with_columns(direction_ok, sustained, china_value_cover=pl.Series(
        [2.0, 0.5, 0.25, 0.0, -1.0, None, float("nan"), 1.0, 1.0]), co_rise_z=pl.lit(3.0), volume_weight=pl.lit(1.0),
        hub_to_us_peak_share=pl.lit(0.3), window_periods=pl.lit(5)).with_columns(graded_route_score(p).alias("route_score")), p)
    by_cover = cover["route_score"].to_list()
    assert by_cover[0] == by_cover[1] == by_cover[5] == by_cover[6] == pytest.approx(score[0], rel=1e-12)
    assert by_cover[2] == pytest.approx(score[0] * (0.05 + 0.95 * 0.5))
    assert by_cover[3] == by_cover[4] == pytest.approx(score[0] * 0.05)
    assert cover["flagged"].to_list() == [True, True, True, False, False, True, True, False, False]


def test_an_explanation_says_first_how_short_its_history_is_and_last_how_its_route_score_is_made(scored):
    """Rows scored from fewer prior periods than a full history start their explanation with how many; every
    explanation ends with how the route score is made: the product of the forest's score and each evidence
    factor (the graded score; the route score itself without a learned score), and on monthly rows with one
    √(graded x learned), the learned score and the inputs that moved it most."""
    from models.params import ScoreParams
    from models.explain import _with_notes

    chosen = pl.DataFrame({"frequency": ["M", "M", "A"], "prior_periods": [14, 36, 3], "full_prior_periods": [36, 36, 3],
                           "anomaly_score": [0.8, 0.8, 0.8], "volume_weight": [1.0, 0.0, 1.0],
                           "co_rise_z": [1e9, 1.0, 1e9], "hub_to_us_mean_z": [1e9, 1e9, 2.0], "floor_multiple": [1.0, 1.0, 0.0],
                           "us_from_cn_kg_robust_z": [-1e9, -1e9, None], "china_value_cover": [2.0, 0.25, None],
                           "window_periods": [1, 1, 1], "hub_to_us_peak_share": [1.0, 1.0, 1.0]})  # one-period windows
    text = pl.DataFrame({"row": [0, 1, 2], "top_features": ["why 0", "why 1", "why 2"]})
    out = _with_notes(text, chosen, ScoreParams(learned=False))["top_features"].to_list()
    words = (" x size {} x beyond the volume floor {} x both legs rising {} x exports to the US beyond their own spread {}"
             " x China -> US direct falling {} x not one lump {} x China's extra shipments covering the value {}")
    assert out == [
        "short history: 14 prior months, scaled to 36; why 0; route score 0.894 = √(forest 0.8)"
        + words.format(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        "why 1; route score 0.172 = √(forest 0.8)" + words.format(0.5, 1.0, 0.731, 1.0, 1.0, 1.0, 0.525),
        "why 2; route score 0.028 = √(forest 0.8)" + words.format(1.0, 0.1, 1.0, 0.5, 0.634, 1.0, 1.0)]
    # In the scored sample world: every explained row of a short history starts so, no other does, and
    # every explanation names the row's own route score.
    scores = scored[0].filter(pl.col("top_features").is_not_null())
    short = scores.filter(pl.col("prior_periods") < pl.col("full_prior_periods"))
    assert short.height > 0 and short["top_features"].str.starts_with("short history: ").all()
    assert not scores.filter(pl.col("prior_periods") == pl.col("full_prior_periods"))["top_features"].str.starts_with("short").any()
    named = scores["top_features"].str.extract(r"; route score ([0-9.]+) = ").cast(pl.Float64)
    assert (named - scores["route_score"].round(3)).abs().max() < 1e-9
    # Monthly rows with a learned score say how the two halves make it, and name the learned score's drivers
    # (the sample world is monthly: every explained row has one).
    parts = scores["top_features"].str.extract_groups(
        r"; route score ([0-9.]+) = √\(graded ([0-9.]+) x learned ([0-9.]+)\); graded [0-9.]+ = √\(forest .*; learned "
        r"([0-9.]+), most from ([a-z_]+) ").struct.unnest().cast({f"{i}": pl.Float64 for i in range(1, 5)})
    assert parts.null_count().row(0) == (0, 0, 0, 0, 0)
    assert (parts["2"] - scores["graded_score"].round(3)).abs().max() < 1e-9
    assert (parts["3"] - scores["learned_score"].round(3)).abs().max() < 1e-9
    assert (parts["4"] == parts["3"]).all()
    assert ((scores["graded_score"] * scores["learned_score"]).sqrt() - scores["route_score"]).abs().max() < 1e-12

def test_explanations_give_kilogram_features_in_tonnes_as_every_other_figure():
    """route_explanations keeps kg (its words say so); the text analysts read gives tonnes."""
    from models.iforest import explanation_text, in_tonnes

    expl = pl.DataFrame({"row": [0, 0], "position": [1, 2], "feature": ["route_excess_kg", "co_movement"],
                         "words": ["kg above the 3-year run rate on both legs (lag-aligned)",
                                   "correlation of China->hub (t-L) with hub->US (t)"],
                         "value": [1_369_661.5, 0.8], "typical": [12_000.0, 0.1], "normal_low": [0.0, -0.2],
                         "normal_high": [50_000.0, 0.5], "score_drop": [0.05, 0.01]})
    shown = in_tonnes(expl)
    assert shown["value"].to_list() == [1_369.6615, 0.8] and shown["normal_high"].to_list() == [50.0, 0.5]
    assert shown["words"][0] == "t above the 3-year run rate on both legs (lag-aligned)"
    text = explanation_text(expl)["top_features"][0]
    assert text.startswith("t above the 3-year run rate on both legs (lag-aligned): 1370.0 (typical 12.0, normal 0.0 to 50.0"
                           "; at typical, forest score -0.05)")
    assert "kg above" not in text
