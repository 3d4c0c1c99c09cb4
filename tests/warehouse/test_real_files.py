"""The loader and staging on the real UN Comtrade files under ../shared/data/real (skipped if absent)."""

from __future__ import annotations

import polars as pl

from warehouse.build import build_models
from warehouse.connection import rows, scalar
from warehouse.countries import country_table
from warehouse.ingest import ingest_folder


def test_atlas_files_load_reconcile_and_match_published_totals(con, real_data):
    outcomes = ingest_folder(con, real_data / "critical-materials-atlas" / "comtrade_raw", batch_id="b1")
    assert [(o.rows_read, o.rows_loaded, o.rows_rejected) for o in outcomes] == [
        (166616, 166616, 0), (164831, 164831, 0)]
    counts = build_models(con)
    # Every record is either a flow or set aside with a reason.
    assert counts["intermediate.int_flows"] + counts["intermediate.int_flows_excluded"] == 331447
    dupes = scalar(con, "SELECT count(*) FROM intermediate.int_flows_excluded WHERE exclusion_reason LIKE 'exact duplicate%'")
    world = scalar(con, "SELECT count(*) FROM intermediate.int_flows_excluded WHERE exclusion_reason LIKE 'World total%'")
    assert dupes > 150000 and world > 40000
    # Published mirror pairs (PROVENANCE.md): US imports of 811292 from China 2024 = $53.3M, China's
    # exports to the US $9.6M; 811010 in 2022: $31.5M vs $26.1M.
    got = {(r, p, h, y): round(v / 1e6, 1) for r, p, h, y, v in rows(con, """
        SELECT reporter_iso3, partner_iso3, hs_code, year(period), value_usd FROM intermediate.int_flows
        WHERE hs_code IN ('811010', '811292') AND flow IN ('M', 'X')
          AND ((reporter_iso3 = 'USA' AND partner_iso3 = 'CHN' AND flow = 'M')
            OR (reporter_iso3 = 'CHN' AND partner_iso3 = 'USA' AND flow = 'X'))""")}
    assert got[("USA", "CHN", "811292", 2024)] == 53.3
    assert got[("CHN", "USA", "811292", 2024)] == 9.6
    assert got[("USA", "CHN", "811010", 2022)] == 31.5
    assert got[("CHN", "USA", "811010", 2022)] == 26.1


def test_every_country_code_in_the_real_files_maps(con, real_data):
    codes = pl.concat([
        pl.read_csv(real_data / "critical-materials-atlas" / "comtrade_raw" / f, infer_schema=False)
        .select(pl.concat_list("reporter", "partner").explode().alias("code"))
        for f in ("comtrade_2022.csv.gz", "comtrade_2024.csv.gz")
    ]).unique().with_columns(pl.col("code").cast(pl.Int32))
    known = set(country_table()["m49_code"].to_list())
    missing = sorted(set(codes["code"].to_list()) - known)
    assert missing == [], f"codes with no ISO3 mapping: {missing}"


def test_country_table_agrees_with_comtrade_partner_list(real_data):
    ref = pl.read_csv(real_data / "comtrade-reference" / "comtradr" / "partner.csv", infer_schema=False).select(
        pl.col("id").cast(pl.Int32).alias("m49_code"), pl.col("iso_3").str.strip_chars().alias("comtrade_iso3"))
    ours = country_table()
    joined = ref.join(ours, on="m49_code", how="left")
    assert joined.filter(pl.col("iso3").is_null()).is_empty(), "a Comtrade partner code has no mapping"
    # Same ISO3 as Comtrade for every real country code (World is WLD here, 'World' there; Kosovo XKX vs _KS;
    # 490 "Other Asia, nes" is TWN here, S19 there, so that Taiwan is one hub across sources).
    differ = joined.filter(pl.col("iso3") != pl.col("comtrade_iso3"), ~pl.col("m49_code").is_in([0, 412, 490]))
    assert joined.filter(pl.col("m49_code") == 490).select("comtrade_iso3", "iso3").row(0) == ("S19", "TWN")
    assert differ.is_empty(), differ
