"""Feature formulas on a tiny world with answers worked out by hand (window 2, prior 3, lag 1)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from features.route_features import FeatureParams, build_route_features

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
