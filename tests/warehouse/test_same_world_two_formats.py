"""The sample world written twice, once as UN Comtrade files and once as the national releases (US Census
API, China customs CSV in yuan with a year-to-date file), gives the same flows and the same route legs."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from warehouse.build import build_models
from warehouse.catalogue import load_catalogue
from warehouse.ingest import ingest_folder
from worlds.national import write_national_world
from worlds.sample import write_sample_world
from warehouse.schema import ensure_schema, write_reference_tables


def _warehouse(tmp_path, name, writer):
    paths = writer(tmp_path / name)
    con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
    ensure_schema(con)
    write_reference_tables(con, load_catalogue())
    outcomes = ingest_folder(con, paths["data_dir"], batch_id="b1")
    assert all(o.rows_rejected == 0 for o in outcomes)
    build_models(con)
    return con


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("worlds")
    a, b = _warehouse(tmp, "comtrade", write_sample_world), _warehouse(tmp, "national", write_national_world)
    yield a, b
    a.close()
    b.close()


KEY = ["frequency", "period", "reporter_iso3", "partner_iso3", "flow", "hs6"]


def test_same_flows_at_hs6(both):
    comtrade, national = both
    q = f"SELECT {', '.join(KEY)}, sum(value_usd) AS usd, sum(qty_kg) AS kg FROM intermediate.int_flows WHERE value_usd > 0 GROUP BY ALL"
    a, b = comtrade.sql(q).pl(), national.sql(q).pl()
    assert comtrade.sql("SELECT DISTINCT source FROM intermediate.int_flows").fetchall() == [("comtrade",)]
    assert sorted(national.sql("SELECT DISTINCT source FROM intermediate.int_flows").fetchall()) == [("census",), ("gacc",)]
    joined = a.join(b, on=KEY, how="full", suffix="_national", coalesce=True)
    assert a.height == b.height == joined.height > 20000
    # Yuan converted back to dollars (within a cent) and tonnes to kg (Comtrade's tonne records round to 1 kg).
    assert joined.select((pl.col("usd") - pl.col("usd_national")).abs().max()).item() < 0.01
    assert joined.select((pl.col("kg") - pl.col("kg_national")).abs().max()).item() <= 0.5


def test_same_route_legs_for_antimony_and_split_series_for_gallium_germanium(both):
    comtrade, national = both
    cols = ["cn_to_hub_kg", "hub_to_us_kg", "cn_to_us_kg", "us_from_cn_kg", "cn_to_world_kg", "us_from_world_kg"]
    q = f"SELECT mineral, hs_code, hub_iso3, period, {', '.join(cols)} FROM marts.fct_route_legs WHERE mineral = 'antimony'"
    a, b = comtrade.sql(q).pl(), national.sql(q).pl()
    joined = a.join(b, on=["mineral", "hs_code", "hub_iso3", "period"], how="inner", suffix="_n")
    assert a.height == b.height == joined.height
    for c in cols:
        assert joined.select((pl.col(c) - pl.col(f"{c}_n")).abs().max()).item() <= 1.0, c
    # Comtrade has one shared 811292 series; the national lines give gallium and germanium their own, which add up to it.
    minerals = lambda con: sorted(r[0] for r in con.sql(  # noqa: E731
        "SELECT DISTINCT mineral FROM marts.fct_route_legs WHERE hs_code = '811292'").fetchall())
    assert minerals(comtrade) == ["gallium_germanium"]
    assert minerals(national) == ["gallium", "germanium"]
    total = "SELECT round(sum(hub_to_us_kg)) FROM marts.fct_route_legs WHERE hs_code = '811292' AND hub_iso3 = 'VNM'"
    assert abs(comtrade.sql(total).fetchall()[0][0] - national.sql(total).fetchall()[0][0]) <= 100
