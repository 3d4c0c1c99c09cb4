"""Feature formulas on a tiny world with answers worked out by hand (window 2, prior 3, lag 1)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from features.params import FeatureParams

from features.route_features import build_route_features

P = FeatureParams(window=2, prior=3, lag=1)
FLOORS = pl.DataFrame({"mineral": ["sb"], "volume_floor_kg": [10.0], "volume_floor_usd": [100.0]})


def legs(cn_hub, hub_us, cn_world=None, us_world=None, us_from_cn=None, hub_us_usd=None, us_world_usd=None):
    n = len(cn_hub)
    periods = [date(2024, m, 1) for m in range(1, n + 1)]
    return pl.DataFrame({
        "frequency": "M", "mineral": "sb", "hs_code": "282580", "hub_iso3": "THA", "period": periods,
        "cn_to_hub_kg": [float(x) for x in cn_hub], "hub_to_us_kg": [float(x) for x in hub_us],
        "cn_to_hub_usd": [float(x) * 10 for x in cn_hub],
        "hub_to_us_usd": [float(x) for x in (hub_us_usd or [h * 10 for h in hub_us])],
        "us_from_cn_kg": [float(x) for x in (us_from_cn or [0] * n)],
        "cn_to_world_kg": [float(x) for x in (cn_world or [100] * n)],
        "us_from_world_kg": [float(x) for x in (us_world or [100] * n)],
        "us_from_world_usd": [float(x) for x in (us_world_usd or [1000] * n)],
    })


def row(frame, month):
    return build_route_features(frame, P, FLOORS).collect().filter(pl.col("period") == date(2024, month, 1)).row(0, named=True)


def test_window_prior_spike_ratio_and_excess_by_hand():
    # months:       1   2   3   4   5
    r = row(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90]), 5)
    assert r["has_history"] is True
    assert r["cn_to_hub_kg_window"] == 90          # 40 + 50
    assert r["cn_to_hub_kg_prior"] == 60           # 10 + 20 + 30
    assert r["cn_to_hub_kg_spike_ratio"] == pytest.approx(1.5)   # 90 / max(60, 10)
    assert r["hub_to_us_kg_window"] == 150         # 60 + 90
    assert r["hub_to_us_kg_prior"] == 30
    assert r["hub_to_us_kg_spike_ratio"] == pytest.approx(5.0)
    assert r["cn_to_hub_kg_excess"] == pytest.approx(90 - 60 * 2 / 3)    # 50
    assert r["hub_to_us_kg_excess"] == pytest.approx(150 - 30 * 2 / 3)   # 130
    assert r["route_excess_kg"] == pytest.approx(50)
    assert r["co_spike_ratio_kg"] == pytest.approx(1.5)
    assert r["rule_flag"] is True                  # both windows beat their whole prior
    # pass-through: 150 / ((30 + 40 + 50) * 2/3) = 150 / 80
    assert r["pass_through_kg"] == pytest.approx(1.875)
    assert r["hub_to_us_peak_share"] == pytest.approx(90 / 150)


def test_new_route_uses_the_floor_not_a_division_by_zero():
    r = row(legs([0, 0, 0, 5, 5], [0, 0, 0, 4, 4]), 5)
    assert r["new_route"] is True
    assert r["hub_to_us_kg_spike_ratio"] == pytest.approx(8 / 10)   # window 8 over the floor 10
    tiny = row(legs([0, 0, 0, 0.5, 0.5], [0, 0, 0, 0.2, 0.2]), 5)
    assert tiny["hub_to_us_kg_spike_ratio"] == pytest.approx(0.04)  # a few hundred grams cannot explode


def test_shares_and_their_changes():
    r = row(legs([10, 10, 10, 50, 50], [0, 0, 0, 40, 40], us_from_cn=[80, 80, 80, 0, 0]), 5)
    assert r["hub_share_of_cn_exports_window"] == pytest.approx(100 / 200)
    assert r["hub_share_of_cn_exports_change"] == pytest.approx(0.5 - 30 / 300)
    assert r["hub_share_of_us_imports_change"] == pytest.approx(80 / 200 - 0)
    assert r["cn_direct_share_of_us_imports_change"] == pytest.approx(0 - 240 / 300)


def test_unit_value_against_world_is_one_when_prices_move_together():
    # hub->US at 10 USD/kg, world at 10 USD/kg: a world price surge moves both.
    r = row(legs([1] * 5, [10] * 5, hub_us_usd=[100] * 5, us_world_usd=[1000] * 5), 5)
    assert r["unit_value_vs_world"] == pytest.approx(1.0)
    pricey = row(legs([1] * 5, [10] * 5, hub_us_usd=[300] * 5, us_world_usd=[1000] * 5), 5)
    assert pricey["unit_value_vs_world"] == pytest.approx(3.0)


def test_no_history_before_window_plus_prior_periods():
    out = build_route_features(legs([1] * 5, [1] * 5), P, FLOORS).collect()
    assert out["has_history"].to_list() == [False, False, False, False, True]


def test_a_short_history_is_scored_from_min_prior_periods_with_its_prior_scaled_to_p():
    short = FeatureParams(window=2, prior=3, lag=1, min_prior=2)
    out = build_route_features(legs([10, 20, 30, 40, 50], [0, 6, 30, 60, 90]), short, FLOORS).collect()
    assert out["has_history"].to_list() == [False, False, False, True, True]
    assert out["prior_periods"].to_list() == [None, None, None, 2, 3]
    month4 = out.row(3, named=True)  # window = months 3-4, prior = months 1-2 only, scaled to 3 months
    assert month4["cn_to_hub_kg_prior"] == pytest.approx((10 + 20) * 3 / 2)
    assert month4["hub_to_us_kg_prior"] == pytest.approx((0 + 6) * 3 / 2)
    assert month4["cn_to_hub_kg_excess"] == pytest.approx(70 - 45 * 2 / 3)  # the run rate of what exists
    assert month4["cn_to_hub_kg_spike_ratio"] == pytest.approx(70 / 45)
    month5 = out.row(4, named=True)  # a full prior: no scaling
    assert month5["cn_to_hub_kg_prior"] == pytest.approx(60) and month5["min_prior_periods"] == 2
    # min_prior above the prior is the whole prior (annual data keep their three years)
    assert FeatureParams(window=2, prior=3).min_prior == 3
    with pytest.raises(ValueError, match="min_prior"):
        FeatureParams(min_prior=0)


def test_mean_z_is_the_window_against_the_legs_own_prior_mean_and_spread():
    r = row(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90]), 5)  # prior months 1-3, window 4-5
    sd_cn = np.std([10, 20, 30])  # population SD, 8.165
    assert r["cn_to_hub_kg_mean_z"] == pytest.approx((45 - 20) / sd_cn)
    assert r["hub_to_us_kg_mean_z"] == pytest.approx((75 - 10) / np.std([0, 0, 30]))
    assert r["co_mean_z"] == pytest.approx(r["cn_to_hub_kg_mean_z"])  # the quieter leg
    # A steady prior has no spread: the floor is 10 % of its mean (here above F / (100 W) = 0.05 kg).
    steady = row(legs([20, 20, 20, 40, 40], [20, 20, 20, 40, 40]), 5)
    assert steady["cn_to_hub_kg_mean_z"] == pytest.approx((40 - 20) / 2.0)
    # A route that never traded before: the floor of a hundredth of the volume floor per period.
    new = row(legs([0, 0, 0, 3, 3], [0, 0, 0, 3, 3]), 5)
    assert new["co_mean_z"] == pytest.approx(3 / (10 / 200))


def test_hub_to_us_mean_z_leaves_the_windows_largest_period_out():
    """hub_to_us_mean_z is the louder of kg and value, each without the window's largest period: a window of
    3, prior months 1-3 (mean 20 kg, SD 8.165), window 4-6."""
    p3 = FeatureParams(window=3, prior=3, lag=1)

    def r(hub_us, hub_us_usd=None):
        frame = legs([10] * 6, hub_us, hub_us_usd=hub_us_usd)
        return build_route_features(frame, p3, FLOORS).collect().filter(
            pl.col("period") == date(2024, 6, 1)).row(0, named=True)

    sd = np.std([10, 20, 30])
    lump = r([10, 20, 30, 20, 200, 20])  # one lump: loud over the whole window, nothing without it
    assert lump["hub_to_us_kg_mean_z"] == pytest.approx((240 / 3 - 20) / sd)
    assert lump["hub_to_us_mean_z"] == pytest.approx(0.0)
    sustained = r([10, 20, 30, 60, 70, 80])  # a rise the window's other months carry: (60 + 70) / 2
    assert sustained["hub_to_us_mean_z"] == pytest.approx((65 - 20) / sd)
    # Germanium in a line of zirconia: steady kilograms, one lump in value (10 USD/kg elsewhere).
    in_value = r([10, 20, 30, 20, 20, 20], [100, 200, 300, 200, 2000, 200])
    assert in_value["hub_to_us_usd_mean_z"] == pytest.approx((2400 / 3 - 200) / (10 * sd))
    assert in_value["hub_to_us_mean_z"] == pytest.approx(0.0)
    # The value leg's rise, carried by two months of three, counts as it is.
    assert r([10, 20, 30, 20, 20, 20], [100, 200, 300, 900, 900, 200])["hub_to_us_mean_z"] == pytest.approx(
        (1100 / 2 - 200) / (10 * sd))


# ---------------------------------------------------------------- the detection features (issue 4)
Q = FeatureParams(window=2, prior=3, lag=1, max_lag=1, comove_window=4, z_signal=2.0)


def qrow(frame, month, params=Q):
    return build_route_features(frame, params, FLOORS).collect().filter(
        pl.col("period") == date(2024, month, 1)).row(0, named=True)


def test_rerouting_ceiling_is_the_smaller_leg_lag_aligned():
    r = qrow(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90]), 5)
    # lag 0: min(40 + 50, 60 + 90) = 90; lag 1: min(30 + 40, 150) = 70; the ceiling takes the larger.
    assert r["reroute_ceiling_kg"] == pytest.approx(90)
    assert r["reroute_ceiling_share"] == pytest.approx(90 / 150)
    # route excess, lag-aligned: lag 0 min(90 - 60·2/3, 150 - 30·2/3) = 50; lag 1 min(70 - 40, 130) = 30.
    assert r["route_excess_kg"] == pytest.approx(50)


def test_china_value_cover_is_chinas_extra_value_lag_aligned_against_the_hubs_rise_in_value():
    """Value: 10 USD/kg on both legs. China's shipments jump in months 7-8, the hub's to the US in 8-9."""
    routed = qrow(legs([10, 10, 10, 10, 10, 10, 60, 60, 10], [0, 0, 0, 0, 0, 0, 0, 45, 45]), 9)
    # The hub's rise in value: 900 in months 8-9 against nothing in 5-7. China's run rate: (100 + 100 + 600)
    # x 2/3; lag 0 (months 8-9) 700 above it by 166.67, lag 1 (months 7-8) 1,200 by 666.67: the best lag.
    assert routed["hub_to_us_usd_excess"] == pytest.approx(900)
    assert routed["china_value_cover"] == pytest.approx((1200 - 800 * 2 / 3) / 900)
    # A producer: the same exports to the US, China's shipments flat: nothing of the rise is covered.
    producer = qrow(legs([10] * 9, [0, 0, 0, 0, 0, 0, 0, 45, 45]), 9)
    assert producer["china_value_cover"] == pytest.approx(0.0)
    # Exports to the US that did not rise in value: nothing to cover (null, weighed as no evidence).
    assert qrow(legs([10, 10, 10, 10, 10, 10, 60, 60, 10], [5] * 9), 9)["china_value_cover"] is None


def test_co_rise_z_takes_the_china_leg_up_to_max_lag_periods_before_the_hubs_exports():
    """co_rise_z(t) = min(max over L of China(t - L), hub->US kg robust z(t)), China = the louder of the China
    leg's kg robust z and value mean z: a China leg that rose a period before the hub's exports counts."""
    frame = build_route_features(legs([10, 10, 10, 10, 12, 11, 60, 60, 10], [0, 1, 0, 2, 0, 1, 0, 45, 45]), Q,
                                 FLOORS).collect().sort("period")
    china = frame.select(pl.max_horizontal("cn_to_hub_kg_robust_z", "cn_to_hub_usd_mean_z")).to_series().to_list()
    us = frame["hub_to_us_kg_robust_z"].to_list()
    t = 8  # month 9
    assert frame["co_rise_z"][t] == pytest.approx(min(max(china[t], china[t - 1]), us[t]))
    assert china[t - 1] > china[t] and frame["co_rise_z"][t] > min(china[t], us[t])  # the lag mattered


def test_three_leg_share_test_counts_only_the_excess_over_earlier_shares():
    r = qrow(legs([10, 10, 10, 50, 50], [0, 0, 0, 40, 40], us_from_cn=[80, 80, 80, 0, 0]), 5)
    # China's direct share of US imports 0.8 -> 0; hub's share of China's exports 0.1 -> 0.5; of US imports 0 -> 0.4.
    assert r["three_leg_share_test"] is True
    assert r["three_leg_strength"] == pytest.approx(min(0.8, 0.4, 0.4))
    # min(100 - 0.1·200, 80 - 0·200) = 80 kg
    assert r["three_leg_excess_kg"] == pytest.approx(80)
    # The same legs with China's direct share unchanged: the test fails and nothing is counted.
    flat = qrow(legs([10, 10, 10, 50, 50], [0, 0, 0, 40, 40], us_from_cn=[80] * 5), 5)
    assert flat["three_leg_share_test"] is False
    assert flat["three_leg_excess_kg"] == 0


def test_robust_z_against_the_routes_own_median_and_mad():
    r = qrow(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90]), 5)
    # hub->US prior (months 1-3) 0, 0, 30: median 0, MAD 0, so the floor per period (10 / 2 = 5) is the scale.
    assert r["hub_to_us_kg_robust_z"] == pytest.approx((150 / 2 - 0) / 5)
    # China->hub prior 10, 20, 30: median 20, MAD 10; window mean 45.
    assert r["cn_to_hub_kg_robust_z"] == pytest.approx((45 - 20) / (1.4826 * 10))
    assert r["co_robust_z"] == pytest.approx((45 - 20) / (1.4826 * 10))
    assert r["hub_to_us_kg_z_now"] == pytest.approx(90 / 5)


def test_persistence_counts_consecutive_periods_with_both_legs_unusual():
    frame = legs([10, 10, 10, 10, 10, 40, 40, 40], [5, 5, 5, 5, 5, 30, 30, 30])
    out = build_route_features(frame, Q, FLOORS).collect().sort("period")
    # From month 6 both legs are 30 and 25 kg above a flat median (scale = floor per period, 5): z 6 and 5.
    assert out["signal_persistence"].to_list()[4:] == [0, 1, 2, 3]


def test_co_movement_finds_the_lag():
    same = qrow(legs([10, 10, 10, 10, 10, 40, 40, 40], [5, 5, 5, 5, 5, 30, 30, 30]), 8)
    assert same["co_movement_lag0"] == pytest.approx(1.0)
    assert (same["co_movement"], same["co_movement_lag"]) == (pytest.approx(1.0), 0)
    lagged = qrow(legs([10, 10, 10, 10, 40, 40, 40, 40], [5, 5, 5, 5, 5, 30, 30, 30]), 8)
    assert lagged["co_movement_lag1"] == pytest.approx(1.0)
    assert lagged["co_movement_lag0"] < 1.0
    assert lagged["co_movement_lag"] == 1


def test_volume_weight_is_the_excess_against_the_products_us_market():
    # excess 50 kg (see above) against US imports of 200 kg in the window: 25 % of the market, full weight.
    assert qrow(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90]), 5)["volume_weight"] == 1.0
    # The same route in a market of 5,000 kg per month: 50 / 10,000 = 0.5 %, weight log(1 + 5) / log(101).
    big = qrow(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90], us_world=[5000] * 5, us_world_usd=[50_000] * 5), 5)
    assert big["volume_weight"] == pytest.approx(np.log(6) / np.log(101))
    # In value as well as weight: the same kilograms at 30 times the line's unit value (gallium in a line of
    # cheaper metals) are 15 % of the line's value (legs at 10 $/kg... 300 $/kg): full weight.
    dear = qrow(legs([10, 20, 30, 40, 50], [0, 0, 30, 60, 90], us_world=[5000] * 5, us_world_usd=[50_000] * 5,
                     hub_us_usd=[0, 0, 9000, 18000, 27000]).with_columns(pl.col("cn_to_hub_usd") * 30), 5)
    assert dear["route_excess_kg"] == big["route_excess_kg"] and dear["route_excess_usd"] == pytest.approx(15_000)
    assert dear["volume_weight"] == 1.0
    # No excess, no weight.
    assert qrow(legs([10] * 5, [10] * 5), 5)["volume_weight"] == 0.0


def test_world_price_surge_shows_in_unit_values_not_in_kg_features():
    calm = qrow(legs([10] * 5, [10] * 5), 5)
    surge = qrow(legs([10] * 5, [10] * 5, hub_us_usd=[100, 100, 100, 400, 400], us_world_usd=[1000, 1000, 1000, 4000, 4000]), 5)
    assert surge["world_unit_value_change"] == pytest.approx(4.0)
    assert surge["unit_value_vs_world"] == pytest.approx(1.0)
    assert surge["hub_to_us_usd_spike_ratio"] > calm["hub_to_us_usd_spike_ratio"]
    for kg_feature in ("route_excess_kg", "co_robust_z", "co_spike_ratio_kg", "volume_weight", "reroute_ceiling_kg"):
        assert surge[kg_feature] == calm[kg_feature]


def test_seeds_test_in_both_units_and_new_routes_on_purpose():
    r = qrow(legs([0, 0, 0, 30, 30], [0, 0, 0, 20, 20]), 5)
    assert r["new_route"] is True
    assert r["seeds_test_kg"] is True            # 60 and 40 kg beat the floor (10 kg) standing in for a prior of 0
    assert r["seeds_test_usd"] is True           # 600 and 400 USD beat the 100 USD floor
    tiny = qrow(legs([0, 0, 0, 3, 3], [0, 0, 0, 2, 2]), 5)
    assert tiny["rule_flag"] is True             # the literal rule passes anything above zero
    assert tiny["seeds_test_kg"] is False        # 4 kg is below the floor


def test_kg_coverage_says_how_much_trade_has_no_weight():
    frame = legs([10] * 5, [10] * 5).with_columns(value_kg_missing_usd=pl.Series([100.0, 100.0, 0.0, 0.0, 0.0]))
    r = qrow(frame, 5)
    # window + prior = months 1-5; USD on both legs 5 x (100 + 100) = 1000; 200 of it without weight.
    assert r["kg_coverage"] == pytest.approx(1 - 200 / 1000)
    assert qrow(legs([10] * 5, [10] * 5), 5)["kg_coverage"] == 1.0  # a mart without the column: all known


@pytest.mark.parametrize("p", [FeatureParams(), FeatureParams.for_frequency("A", FeatureParams())],
                         ids=["monthly", "annual"])
def test_an_incremental_frame_gives_the_features_of_the_whole_history(p):
    """An incremental build reads each route from lookback + baseline_reach + its running spell before its
    first changed period, and computes the robust baselines only on the rows marked NEEDED (from
    baseline_reach before the spell). The features it keeps must equal those of the whole history: for a
    route whose China->hub spike comes max_lag periods before the hub->US one, a route in a running spell,
    and routes of noise (every window, lag and co-movement sum reads real values). Fails with one period
    less of lookback or of baseline_reach."""
    from features.incremental import NEEDED, baseline_reach, lookback
    from features.mirror import MIRROR_COLUMNS

    n, changed = 84, 80
    rng = np.random.default_rng(5)
    periods = [date(2019 + i // 12, i % 12 + 1, 1) for i in range(n)]

    def route(hub, cn, us):
        # With the columns of kg coverage and the mirror features: every sum of the first pass is read.
        return pl.DataFrame({
            "frequency": "M", "mineral": "sb", "hs_code": "282580", "hub_iso3": hub, "period": periods,
            "cn_to_hub_kg": cn, "hub_to_us_kg": us, "cn_to_hub_usd": cn * 10, "hub_to_us_usd": us * 10,
            "us_from_cn_kg": rng.normal(500, 50, n), "cn_to_world_kg": rng.normal(5000, 50, n),
            "us_from_world_kg": rng.normal(5000, 50, n), "us_from_world_usd": rng.normal(50000, 500, n),
            "value_kg_missing_usd": rng.choice([0.0, 0.0, 250.5], n),
            **{c: rng.normal(1000, 100, n) for c in MIRROR_COLUMNS if c != "hub_reports_period"},
            "hub_reports_period": rng.random(n) > 0.2})

    noise = lambda: rng.normal(100, 10, n).round(3)  # noqa: E731
    lag_cn, lag_us = noise(), noise()
    lag_cn[changed - p.max_lag] = lag_us[changed] = 1000.0   # China->hub leads by max_lag periods
    spell_cn, spell_us = noise(), noise()
    spell_cn[changed - 2:] = spell_us[changed - 2:] = 1000.0  # both legs unusual for two periods already
    frames = [route("LAG", lag_cn, lag_us), route("SPELL", spell_cn, spell_us),
              *[route(f"R{i}", noise(), noise()) for i in range(4)]]
    every = pl.concat(frames)
    whole = build_route_features(every, p, FLOORS).collect().sort("hub_iso3", "period")

    spells = dict(whole.filter(pl.col("period") == periods[changed - 1]).select("hub_iso3", "signal_persistence").iter_rows())
    assert spells["SPELL"] > 0 and spells["LAG"] == 0
    read = pl.concat([
        f.slice(max(0, changed - (lookback(p) + baseline_reach(p) + spells[hub])))
        .with_columns((pl.col("period") >= periods[changed - spells[hub] - baseline_reach(p)]).alias(NEEDED))
        for f, hub in ((f, f["hub_iso3"][0]) for f in frames)])
    assert read.height < every.height and read[NEEDED].sum() < read.height  # a suffix, partly history
    kept = build_route_features(read, p, FLOORS).collect().filter(pl.col("period") >= periods[changed])
    expected = whole.filter(pl.col("period") >= periods[changed])
    assert NEEDED not in kept.columns
    assert expected.filter(hub_iso3="LAG")["signal_persistence"][0] == 1  # the lag is what made it count
    assert {"kg_coverage", "mirror_gap_cn_hub_kg", "one_sided_hub_us"} <= set(kept.columns)
    assert kept["kg_coverage"].min() < 1 and kept["mirror_gap_cn_hub_kg"].null_count() < kept.height
    assert kept.sort("hub_iso3", "period").equals(expected)
    # Read as an incremental build reads it: rows in no order, a number per route to sort by.
    from features.incremental import ROUTE_NO

    shuffled = read.sample(fraction=1.0, shuffle=True, seed=2).with_columns(
        pl.col("hub_iso3").rank("dense").cast(pl.Int64).alias(ROUTE_NO))
    by_number = build_route_features(shuffled, p, FLOORS).collect()
    assert ROUTE_NO not in by_number.columns
    assert by_number.filter(pl.col("period") >= periods[changed]).equals(kept)
    # The baselines on every needed row, kept or not, are the whole history's: each had its whole window.
    baselines = ["hub_iso3", "period", *[c for c in whole.columns if c.endswith(("_median_prior", "_mad_prior", "_z_now"))]]
    needed = read.filter(NEEDED).select("hub_iso3", "period")
    on_needed = build_route_features(read, p, FLOORS).collect().join(needed, on=["hub_iso3", "period"]).select(baselines)
    assert on_needed.height == needed.height and len(baselines) == 11
    assert on_needed.sort("hub_iso3", "period").equals(whole.join(needed, on=["hub_iso3", "period"]).select(baselines))


@pytest.mark.parametrize("p", [FeatureParams(), FeatureParams.for_frequency("A", FeatureParams())],
                         ids=["monthly", "annual"])
def test_baselines_of_needed_rows_equal_the_rolling_windows_bit_for_bit(p):
    """A row gets its median and MAD from an array of its window (NumPy; fewer columns in a route's first
    periods, a short history), a window holding a null from a group-by. Every row, and with NEEDED every
    row marked so, must get exactly the values of Polars' rolling group-by over the route (the reference,
    which the features used before): odd and even counts, ties, zeros, partial windows, nulls."""
    from features.incremental import NEEDED

    rng = np.random.default_rng(11)
    n = 60 if p.window > 1 else 12

    def values(length, zeros=2 / 7):
        return (rng.choice([1.5, 2.25, 1e3, 123456.789, 0.1], length) * rng.random(length)
                * (rng.random(length) >= zeros))

    direct = values(3 * n)  # US imports from China direct: the product's, the same on each of its routes

    def route(hub, length, zeros=2 / 7, start=0):
        return pl.DataFrame({
            "frequency": "M", "mineral": "sb", "hs_code": "282580", "hub_iso3": hub,
            "period": [date(2000 + i // 12, i % 12 + 1, 1) for i in range(start, start + length)],
            **{leg: values(length, zeros) for leg in ("cn_to_hub_kg", "hub_to_us_kg", "cn_to_hub_usd", "hub_to_us_usd")},
            "us_from_cn_kg": direct[start:start + length],
            **{c: values(length) for c in ("cn_to_world_kg", "us_from_world_kg", "us_from_world_usd")}})

    # SPARSE: half its periods empty, as most small routes' are: windows with more zeros than not (a median
    # and MAD of 0, found without sorting), with exactly half, and with fewer.
    # LATE: a route that starts later, so that in the same period it has fewer prior periods than the others.
    every = pl.concat([route("LONG", n), route("SHORT", p.window + p.prior // 2), route("NULL", n),
                       route("SPARSE", 3 * n, zeros=0.5), route("LATE", n, start=n // 2)])
    every = every.with_columns(pl.when((pl.col("hub_iso3") == "NULL") & (pl.int_range(pl.len()).over("hub_iso3") % 23 == 5))
                               .then(None).otherwise(pl.col("hub_to_us_kg")).alias("hub_to_us_kg"))
    assert every["hub_to_us_kg"].null_count() > 0
    columns = ["hub_iso3", "period", *[f"{leg}_{s}_prior" for leg in ("cn_to_hub_kg", "hub_to_us_kg", "us_from_cn_kg")
                                       for s in ("median", "mad")]]
    rolling = _rolling_baselines(every, p).select(columns).sort("hub_iso3", "period")
    whole = build_route_features(every, p, FLOORS).collect()
    assert whole.select(columns).sort("hub_iso3", "period").equals(rolling)
    needed = build_route_features(every.with_columns(pl.lit(True).alias(NEEDED)), p, FLOORS).collect()
    assert needed.select(columns).sort("hub_iso3", "period").equals(rolling)
    # Every way was taken: full windows without a null, partial windows (a short route's first prior
    # periods), windows holding a null, and rows before any prior period (null).
    full = rolling.filter(pl.col("hub_iso3") == "LONG").drop_nulls()
    short = rolling.filter(pl.col("hub_iso3") == "SHORT")["cn_to_hub_kg_median_prior"]
    assert full.height > 10 and short.null_count() == p.window and short.drop_nulls().len() >= 1
    with_null = rolling.filter(pl.col("hub_iso3") == "NULL")["hub_to_us_kg_median_prior"].drop_nulls()
    assert with_null.len() > 10
    sparse = rolling.filter(pl.col("hub_iso3") == "SPARSE")["cn_to_hub_kg_median_prior"].drop_nulls()
    assert (sparse == 0).sum() > 5 and (sparse > 0).sum() > 5


def _rolling_baselines(legs: pl.DataFrame, p: FeatureParams) -> pl.DataFrame:
    """The robust baselines as Polars' rolling group-by computes them over each route's prior periods: the
    reference features.window.robust_baselines must equal bit for bit."""
    from features.window import ROBUST_LEGS, ROUTE_ID, ROUTE_POS, route_positions

    frame = route_positions(legs.lazy().sort("frequency", "mineral", "hs_code", "hub_iso3", "period")).collect()
    aggs = [*[pl.col(leg).median().alias(f"{leg}_median_prior") for leg in ROBUST_LEGS],
            *[(pl.col(leg) - pl.col(leg).median()).abs().median().alias(f"{leg}_mad_prior") for leg in ROBUST_LEGS]]
    rolled = frame.select(ROUTE_ID, ROUTE_POS, *ROBUST_LEGS).rolling(
        index_column=ROUTE_POS, period=f"{p.prior}i", offset=f"-{p.window + p.prior}i", closed="right",
        group_by=ROUTE_ID).agg(*aggs)
    return frame.select(ROUTE_ID, ROUTE_POS, "hub_iso3", "period").join(rolled, on=[ROUTE_ID, ROUTE_POS], how="left")


def test_sums_looked_up_at_some_rows_equal_the_rolling_windows_bit_for_bit():
    """An incremental build computes the first pass's sums only at the rows it keeps, from running totals
    (running_at); a full build rolls a window over every row (Running.expr). Both must give the same values
    and the same nulls at every row: sums with an offset, a maximum, a route shorter than the window, nulls
    in a window, and values so large that the running total wraps around an Int64."""
    from features.window import EXACT_SCALE, ROUTE_POS, Running, _exact, route_positions, running_at
    from warehouse.contracts import ROUTE_KEYS

    rng = np.random.default_rng(3)
    lengths = [1, 3, 7, 40, 40, 60]
    n = sum(lengths)
    big = np.full(n, 2 ** 61, dtype=np.int64)
    frame = route_positions(pl.DataFrame({
        "frequency": "M", "mineral": "sb", "hs_code": "282580",
        "hub_iso3": np.repeat([f"H{i}" for i in range(len(lengths))], lengths),
        "period": [date(2019 + i // 12, i % 12 + 1, 1) for length in lengths for i in range(length)],
        # Nulls at positions 9 of two 40-period routes and 2 of the 60-period one.
        "kg": pl.Series(rng.normal(1000, 300, n)).scatter([20, 60, 93], None),
        "count": rng.integers(0, 5, n), "big": big,
    }).lazy().sort([*ROUTE_KEYS, "period"])).collect()
    runs = [Running("kg_5", _exact(pl.col("kg"), EXACT_SCALE), 5, reach=4, scale=EXACT_SCALE),
            Running("kg_36_before_5", _exact(pl.col("kg"), EXACT_SCALE), 36, reach=40, offset=5, scale=EXACT_SCALE),
            Running("count_12_lag3", pl.col("count").shift(3), 12, reach=14),
            Running("kg_peak", pl.col("kg"), 5, reach=4, kind="max"),
            Running("big_3", pl.col("big"), 3, reach=2)]
    rolling = frame.with_columns(*[r.expr() for r in runs])
    for rows in (np.sort(rng.choice(n, 80, replace=False)), np.arange(n)):
        assert running_at(frame, runs, rows).equals(rolling[rows].select([r.name for r in runs]))
    # Every way a value can be null or not was taken.
    for r in runs:
        assert 0 < rolling[r.name].null_count() < n
    assert (rolling["big_3"].drop_nulls() == 3 * 2 ** 61).all() and n * 2 ** 61 > 2 ** 63  # the total wrapped
    assert rolling.filter(pl.col(ROUTE_POS) >= 40)["kg_36_before_5"].null_count() == 3  # the null at position 2


def test_short_histories_come_out_the_same_from_running_totals_as_from_rolling_windows():
    """A frame with every row NEEDED takes its sums from running totals cut at each route's first row
    (running_at), a frame without from rolling windows within the route: the prior sums, counts and squares
    of short histories (fewer than P prior periods) must agree bit for bit, a window holding a null must be
    null both ways, and a short history must not read the route before it."""
    from features.incremental import NEEDED

    rng = np.random.default_rng(3)
    p = FeatureParams()

    def route(hub, length):
        values = lambda: (rng.choice([0.0, 0.0, 3.5, 1e3, 98765.4321], length) * rng.random(length)).round(3)  # noqa: E731
        return pl.DataFrame({
            "frequency": "M", "mineral": "sb", "hs_code": "282580", "hub_iso3": hub,
            "period": [date(2019 + i // 12, i % 12 + 1, 1) for i in range(length)],
            "cn_to_hub_kg": values(), "hub_to_us_kg": values(), "cn_to_hub_usd": values(), "hub_to_us_usd": values(),
            "us_from_cn_kg": values(), "cn_to_world_kg": values(), "us_from_world_kg": values(), "us_from_world_usd": values()})

    every = pl.concat([route("BIG", 30).with_columns(pl.col("cn_to_hub_kg") * 1e4), route("SHORT", p.window + p.min_prior + 4),
                       route("NULL", 30)])
    every = every.with_columns(pl.when((pl.col("hub_iso3") == "NULL") & (pl.int_range(pl.len()).over("hub_iso3") == 20))
                               .then(None).otherwise(pl.col("cn_to_hub_kg")).alias("cn_to_hub_kg"))
    whole = build_route_features(every, p, FLOORS).collect()
    marked = build_route_features(every.with_columns(pl.lit(True).alias(NEEDED)), p, FLOORS).collect()
    assert marked.equals(whole)
    short = whole.filter(hub_iso3="SHORT", has_history=True)
    assert short.height == 5 and short["prior_periods"].to_list() == [12, 13, 14, 15, 16]
    # SHORT's first scored period sums its own first 12 months only (BIG's larger values would show).
    first = every.filter(hub_iso3="SHORT").head(12)
    assert short["cn_to_hub_kg_prior"][0] == pytest.approx(first["cn_to_hub_kg"].sum() * 36 / 12)
    # A null in the prior (NULL's period 21) makes its prior unknown while it is in the prior periods.
    nulls = whole.filter(hub_iso3="NULL")
    assert nulls.filter(pl.col("period") >= date(2020, 10, 1))["cn_to_hub_kg_prior"].null_count() == 5


def test_a_world_price_surge_does_not_carry_a_route_over_the_value_floor():
    # A new route of 4 kg excess (0.4 of the 10 kg floor), its values at the world price: 10 USD/kg, then 4
    # times that in the window. Against the 100 USD value floor its 160 USD of excess would be 1.6 floors;
    # against the floor at the window's world price (400 USD), 0.4, as the same tonnes before the surge.
    calm = qrow(legs([0, 0, 0, 3, 3], [0, 0, 0, 2, 2]), 5)
    surge = qrow(legs([0, 0, 0, 3, 3], [0, 0, 0, 2, 2], hub_us_usd=[0, 0, 0, 80, 80],
                      us_world_usd=[1000, 1000, 1000, 4000, 4000])
                 .with_columns(cn_to_hub_usd=pl.col("cn_to_hub_usd") * pl.Series([1, 1, 1, 4, 4])), 5)
    assert surge["world_unit_value_change"] == pytest.approx(4.0)
    assert (calm["route_excess_usd"], surge["route_excess_usd"]) == (pytest.approx(40), pytest.approx(160))
    assert calm["floor_multiple"] == pytest.approx(0.4)
    assert surge["floor_multiple"] == pytest.approx(0.4)
    # A fall in the world price does not lower the floor: value then counts as declared.
    cheap = qrow(legs([0, 0, 0, 30, 30], [0, 0, 0, 20, 20], hub_us_usd=[0, 0, 0, 100, 100],
                      us_world_usd=[1000, 1000, 1000, 500, 500])
                 .with_columns(cn_to_hub_usd=pl.col("cn_to_hub_usd") / pl.Series([1, 1, 1, 2, 2])), 5)
    assert cheap["world_unit_value_change"] == pytest.approx(0.5)
    assert cheap["floor_multiple"] == pytest.approx(max(40 / 10, 200 / 100))
