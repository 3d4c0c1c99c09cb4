"""A period no file covers is unknown, never zero: its side's legs are NULL in the mart, and no window or
prior three years that holds it counts as a complete history."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from features.params import FeatureParams
from flows.stages import route_features_from
from warehouse.build import build_models
from warehouse.ingest import ingest_folder

HEADER = "freqCode,period,reporterCode,flowCode,partnerCode,cmdCode,qtyUnitCode,qty,netWgt,primaryValue"


def annual_world(folder: Path, china_years: list[int], us_years: list[int]) -> Path:
    """China's exports of antimony oxide to Thailand and Viet Nam, and US imports from both, one row a year."""
    lines = [HEADER]
    for year in china_years:
        lines += [f"A,{year},156,X,764,282580,8,20000,20000,100000", f"A,{year},156,X,704,282580,8,9000,9000,45000"]
    for year in us_years:
        lines += [f"A,{year},842,M,764,282580,8,18000,18000,99000", f"A,{year},842,M,704,282580,8,8000,8000,44000"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "annual.csv").write_text("\n".join(lines) + "\n")
    return folder


def legs_and_features(con, folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    ingest_folder(con, folder, batch_id="b1")
    build_models(con)
    legs = con.sql("SELECT * FROM marts.fct_route_legs WHERE hub_iso3 = 'THA' ORDER BY period").pl()
    features = route_features_from(con, FeatureParams()).filter(pl.col("hub_iso3") == "THA").sort("period")
    return legs, features


def test_a_year_neither_side_published_is_unknown_not_zero(con, tmp_path):
    years = [2015, 2016, 2017, 2018, 2020, 2021, 2022, 2023, 2024]  # no file has 2019
    legs, features = legs_and_features(con, annual_world(tmp_path / "d", years, years))
    gap = legs.filter(pl.col("period") == date(2019, 1, 1))
    assert gap.select("cn_to_hub_kg", "hub_to_us_kg", "us_from_cn_kg", "cn_to_world_kg").row(0) == (None,) * 4
    assert gap.select("cn_side_published", "us_side_published").row(0) == (False, False)
    assert legs.filter(pl.col("period") == date(2018, 1, 1))["cn_to_hub_kg"][0] == 20000
    # Annual: a year is scored against the three before it, so 2019 sits in the history of 2019..2022.
    history = dict(zip(features["period"].dt.year(), features["has_history"]))
    assert [y for y, ok in history.items() if ok] == [2018, 2023, 2024]
    assert features.filter(pl.col("period") == date(2022, 1, 1))["cn_to_hub_kg_prior"][0] is None


def test_one_side_missing_a_year_leaves_the_other_sides_legs_known(con, tmp_path):
    legs, features = legs_and_features(con, annual_world(tmp_path / "d", list(range(2015, 2025)),
                                                         [y for y in range(2015, 2025) if y != 2020]))
    year = legs.filter(pl.col("period") == date(2020, 1, 1))
    assert year.select("cn_to_hub_kg", "hub_to_us_kg", "cn_side_published", "us_side_published").row(0) == (
        20000.0, None, True, False)
    # The US side's 2020 is unknown: 2020..2023 have no complete history (China's 2020 is still known).
    assert [y for y, ok in zip(features["period"].dt.year(), features["has_history"]) if ok] == [2018, 2019, 2024]


def test_without_a_gap_every_year_with_three_before_it_has_history(con, tmp_path):
    _, features = legs_and_features(con, annual_world(tmp_path / "d", list(range(2015, 2025)), list(range(2015, 2025))))
    assert [y for y, ok in zip(features["period"].dt.year(), features["has_history"]) if ok] == list(range(2018, 2025))
