"""National-source loaders on the real files under ../shared/data/real (skipped when the folder is absent).

Real files are read in place or copied into the test's temporary folder (beside a mapping written here);
they are never copied into the project.
"""

from __future__ import annotations

import shutil
from datetime import date

import polars as pl
import pytest

from features.params import FeatureParams
from warehouse.build import build_models
from warehouse.connection import rows, scalar
from warehouse.ingest import ingest_folder

US_CENSUS_MAPPING = """
source = "US Census Bureau international trade API, via github.com/C-y22/history-engine (CC BY 4.0)"
header_row = 2
frequency = "M"
period = "month"
code = "hts10"
code_system = "HTS10"
reporter = "USA"
flow = "M"
currency = "USD"
value_basis = "customs value"

[[parts]]
label = "general imports, all countries"
partner = "WLD"
value = "customs_value_usd"
quantity = "quantity"
unit = { column = "unit" }

[[parts]]
label = "general imports from China"
partner = "CHN"
value = "china_value_usd"
quantity = "china_quantity"
unit = { column = "unit" }
"""


def test_baci_format_sample(con, real_data):
    folder = real_data / "baci-format-sample"
    outcomes = ingest_folder(con, folder, batch_id="b1")
    baci = next(o for o in outcomes if o.file_format == "baci")
    # PROVENANCE.md: 71,192 rows; Afghanistan (4) and South Africa (710) as exporters.
    assert (baci.rows_read, baci.rows_loaded + baci.rows_rejected) == (71192, 71192)
    assert "country codes from country_codes_V202201.csv" in baci.notes
    assert "HS revision HS1992" in baci.notes
    build_models(con)
    # The padded "NA" quantities (2,306 rows) are unknown quantities, not zeros.
    assert scalar(con, "SELECT count(*) FROM raw.national_records WHERE qty IS NULL") == 2306
    # Integer codes got their leading zero back: every code is six digits.
    assert scalar(con, "SELECT count(*) FROM raw.national_records WHERE length(commodity_code) <> 6") == 0
    assert scalar(con, "SELECT count(*) FROM raw.national_records WHERE commodity_code LIKE '0%'") > 0
    assert rows(con, "SELECT DISTINCT reporter_iso3 FROM raw.national_records ORDER BY 1") == [("AFG",), ("ZAF",)]
    # Thousand USD -> USD, tonnes -> kg.
    v, q = rows(con, "SELECT value, qty FROM raw.national_records WHERE source_row = 2")[0]
    flow = rows(con, "SELECT value_usd, qty_kg FROM staging.stg_national__records WHERE source_row = 2")[0]
    assert flow == (v * 1000, q * 1000)


def test_baci_23_years_reproduce_the_published_route(con, real_data):
    folder = real_data / "baci-critical-2002-2024"
    outcomes = [o for o in ingest_folder(con, folder, batch_id="b1") if o.file_format == "baci"]
    assert len(outcomes) == 23
    assert sum(o.rows_read for o in outcomes) == 326231  # PROVENANCE.md
    assert sum(o.rows_rejected for o in outcomes) == 0
    counts = build_models(con)
    assert counts["intermediate.int_flows"] == 326231
    # PROVENANCE.md: 811010 Thailand -> US (USD million) 2019 1.9, 2021 9.7, 2022 7.5, 2023 11.5, 2024 28.1;
    # China -> US 30.5 (2022), 9.1 (2023), 9.9 (2024).
    legs = {y: (round(t / 1e6, 1), round(c / 1e6, 1)) for y, t, c in rows(con, """
        SELECT year(period), hub_to_us_usd, cn_to_us_usd FROM marts.fct_route_legs
        WHERE hs_code = '811010' AND hub_iso3 = 'THA' AND frequency = 'A'""")}
    assert [legs[y][0] for y in (2019, 2021, 2022, 2023, 2024)] == [1.9, 9.7, 7.5, 11.5, 28.1]
    assert [legs[y][1] for y in (2022, 2023, 2024)] == [30.5, 9.1, 9.9]
    # Annual only, 2002-2024, and every leg from BACI.
    assert rows(con, "SELECT DISTINCT frequency, min(period)::VARCHAR, max(period)::VARCHAR FROM marts.fct_route_legs GROUP BY 1") == [
        ("A", "2002-01-01", "2024-01-01")]
    assert rows(con, "SELECT DISTINCT cn_to_hub_source FROM marts.fct_route_legs WHERE cn_to_hub_source IS NOT NULL") == [("baci",)]
    # This subset publishes weights for 2024 only: years of trade of unknown weight must not read as 0 kg.
    # No flow of 811010 has a weight before 2024, so none can be estimated, and the kg coverage says so.
    from flows.stages import route_features_from
    from models.evidence import gates
    from models.params import ScoreParams

    features = route_features_from(con, FeatureParams())
    tha = features.filter(pl.col("hs_code") == "811010", pl.col("hub_iso3") == "THA",
                          pl.col("period") == date(2024, 1, 1)).with_columns(*gates(ScoreParams()))
    assert tha["value_kg_missing_usd"][0] == 0  # 2024 itself has weights
    assert tha["kg_coverage"][0] == pytest.approx(1 - (9659917 + 7471662 + 11457440 + 6954881 + 4498241 + 13196124)
                                                 / (tha["hub_to_us_usd_window"][0] + tha["hub_to_us_usd_prior"][0]
                                                    + tha["cn_to_hub_usd_window"][0] + tha["cn_to_hub_usd_prior"][0]))
    assert tha["direction_ok"][0] is False


def test_user_table_us_census_hs10(con, real_data, tmp_path):
    src = real_data / "us-census-hs10" / "us_import_unit_values__sb_ga_ge_subset.csv"
    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    (folder / (src.name + ".mapping.toml")).write_text(US_CENSUS_MAPPING, encoding="utf-8")
    outcomes = ingest_folder(con, folder, batch_id="b1")
    table = next(o for o in outcomes if o.file_format == "user_table")
    # 172 lines x 2 parts; the China part is blank (not pulled) on 55 lines: set aside, never a zero.
    assert (table.rows_read, table.rows_loaded, table.rows_rejected) == (344, 289, 55)
    assert rows(con, "SELECT DISTINCT column_name, reason FROM raw.rejects") == [("value", "no trade value")]
    assert rows(con, "SELECT min(source_row) FROM raw.national_records") == [(3,)]  # title line 1, header line 2
    build_models(con)
    got = rows(con, """SELECT partner_iso3, mineral, value_usd, qty_kg FROM intermediate.int_flows
                       WHERE hs_code = '8110100000' AND period = DATE '2024-12-01'""")
    assert got == [("CHN", "antimony", 2101597.0, 67487.0)]
    # The world part is the US total: kept in raw, set aside in staging as a total.
    assert scalar(con, """SELECT value_usd FROM staging.stg_national__records
                          WHERE commodity_code = '8110100000' AND period = DATE '2024-12-01' AND part = 1""") == 15877812.0
    assert scalar(con, "SELECT count(*) FROM intermediate.int_flows_excluded WHERE exclusion_reason LIKE 'total for all partners%'") == 172
    # Gallium and germanium get series of their own at HTS10.
    assert rows(con, "SELECT DISTINCT mineral FROM intermediate.int_flows ORDER BY 1") == [
        ("antimony",), ("gallium",), ("germanium",)]


def test_mirror_gap_on_real_comtrade_pairs(con, real_data):
    """PROVENANCE.md: US-reported imports of 811292 from China in 2024 = $53.3M (CIF), China-reported
    exports to the US $9.6M (FOB). With the 10% CIF/FOB margin: (53.3/1.1 - 9.6) / (53.3/1.1) = 0.80."""
    import polars as pl

    from features.params import FeatureParams

    from features.route_features import build_route_features

    ingest_folder(con, real_data / "critical-materials-atlas" / "comtrade_raw", batch_id="b1")
    build_models(con)
    legs = con.sql("SELECT * FROM marts.fct_route_legs").pl()
    floors = con.sql("SELECT mineral, volume_floor_kg, volume_floor_usd FROM ref.minerals").pl()
    features = build_route_features(legs, FeatureParams.for_frequency("A", FeatureParams()), floors).collect()
    row = features.filter(pl.col("hs_code") == "811292", pl.col("period").dt.year() == 2024).row(0, named=True)
    us, cn = row["us_from_cn_fob_usd_window"], row["cn_to_us_fob_usd_window"]
    assert round(us * 1.1 / 1e6, 1) == 53.3 and round(cn / 1e6, 1) == 9.6
    assert abs(row["mirror_gap_cn_us_usd"] - (us - cn) / us) < 1e-9
    assert round(row["mirror_gap_cn_us_usd"], 2) == 0.80
