"""The national-source loaders (US Census, China customs, BACI, rate tables) on small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from warehouse.build import build_models
from warehouse.connection import rows, scalar
from warehouse.files import IngestError
from warehouse.ingest import ingest_folder, sniff_format


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def reconcile(con) -> None:
    """read = loaded + set aside, for every file, and staging keeps every loaded record."""
    read = scalar(con, "SELECT sum(rows_read) FROM raw.loads")
    loaded = scalar(con, "SELECT (SELECT count(*) FROM raw.comtrade_records) + (SELECT count(*) FROM raw.national_records)"
                         " + (SELECT count(*) FROM raw.fx_rates)")
    rejected = scalar(con, "SELECT count(*) FROM raw.rejects")
    assert read == loaded + rejected


CENSUS_HEADER = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "COMM_LVL", "GEN_VAL_MO", "CON_VAL_MO", "GEN_QY1_MO",
                 "CON_QY1_MO", "UNIT_QY1", "time", "I_COMMODITY"]


def census_rows(month: str, thailand_value: str = "250000") -> list[list[str]]:
    return [
        CENSUS_HEADER,
        ["-", "TOTAL FOR ALL COUNTRIES", "8112921000", "HS10", "900000", "880000", "3000", "2900", "KG", month, "8112921000"],
        ["1XXX", "NORTH AMERICA", "8112921000", "HS10", "100000", "100000", "400", "400", "KG", month, "8112921000"],
        ["0003", "EUROPEAN UNION", "8112921000", "HS10", "50000", "50000", "200", "200", "KG", month, "8112921000"],
        ["5490", "THAILAND", "8112921000", "HS10", thailand_value, "240000", "800", "780", "KG", month, "8112921000"],
        ["5800", "KOREA, SOUTH", "8112921000", "HS10", "300000", "300000", "1000", "1000", "KG", month, "8112921000"],
        ["5700", "CHINA", "8112921000", "HS10", "100000", "90000", "300", "300", "KG", month, "8112921000"],
    ]


def test_census_api_totals_groupings_and_measures(con, tmp_path):
    path = write(tmp_path / "d" / "census_2024-03.json", json.dumps(census_rows("2024-03")))
    assert sniff_format(path) == "census_api"
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    # 6 records x 2 measures (general and consumption imports), all loaded: totals and groupings are kept in raw.
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (12, 12, 0)
    build_models(con)
    reconcile(con)
    flows = rows(con, """SELECT partner_iso3, hs_code, hs6, mineral, value_usd, qty_kg FROM intermediate.int_flows
                         WHERE source = 'census' ORDER BY partner_iso3""")
    # General imports only (the default), partners only, HTS10 kept with its HS6 and its own metal.
    assert flows == [("CHN", "8112921000", "811292", "gallium", 100000.0, 300.0),
                     ("KOR", "8112921000", "811292", "gallium", 300000.0, 1000.0),
                     ("THA", "8112921000", "811292", "gallium", 250000.0, 800.0)]
    reasons = dict(rows(con, """SELECT partner || ' ' || part, exclusion_reason FROM intermediate.int_flows_excluded
                                WHERE source = 'census'"""))
    assert reasons["WLD 1"].startswith("total for all partners (TOTAL FOR ALL COUNTRIES)")
    assert reasons["NORTH AMERICA 1"] == "grouping of countries, not a partner (NORTH AMERICA, code 1XXX)"
    assert reasons["EUROPEAN UNION 1"] == "grouping of countries, not a partner (EUROPEAN UNION, code 0003)"
    assert reasons["THA 2"].startswith("imports for consumption: the census_import_measure setting keeps general imports")


def test_census_api_consumption_setting(con, tmp_path):
    from warehouse.catalogue import load_catalogue
    from warehouse.schema import SourceParams, write_reference_tables

    write_reference_tables(con, load_catalogue(), SourceParams(census_import_measure="imports for consumption"))
    write(tmp_path / "d" / "c.json", json.dumps(census_rows("2024-03")))
    ingest_folder(con, tmp_path / "d", batch_id="b1")
    build_models(con)
    assert scalar(con, "SELECT value_usd FROM intermediate.int_flows WHERE partner_iso3 = 'THA'") == 240000.0


def test_census_year_to_date_becomes_months(con, tmp_path):
    header = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "GEN_VAL_YR", "GEN_QY1_YR", "UNIT_QY1", "YEAR", "MONTH"]
    body = [["5490", "THAILAND", "8110100000", v, q, "KG", "2025", m]
            for m, v, q in (("01", "1000", "10"), ("02", "2500", "25"), ("04", "9000", "90"))]
    write(tmp_path / "d" / "ytd.json", json.dumps([header, *body]))
    ingest_folder(con, tmp_path / "d", batch_id="b1")
    build_models(con)
    assert rows(con, "SELECT month(period), value_usd, qty_kg FROM intermediate.int_flows ORDER BY period") == [
        (1, 1000.0, 10.0), (2, 1500.0, 15.0)]
    (reason,) = rows(con, "SELECT exclusion_reason FROM intermediate.int_flows_excluded")[0]
    assert reason == "year-to-date figure whose previous month (2025-03) is not in the file: the month cannot be derived"


def test_census_api_bad_rows_and_truncated_body(con, tmp_path):
    data = census_rows("2024-03")
    data[4][4] = "12a"        # Thailand's general value
    data[5][1] = "ATLANTIS"    # unknown partner
    write(tmp_path / "d" / "c.json", json.dumps(data))
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (12, 9, 3)
    rejects = rows(con, "SELECT source_row, part, column_name, bad_value, reason FROM raw.rejects ORDER BY ALL")
    assert rejects[0] == (5, 1, "value", "12a", "trade value is not a number")
    assert rejects[1][:4] == (6, 1, "partner", "ATLANTIS")
    assert "is not a known country name" in rejects[1][4]
    write(tmp_path / "e" / "cut.json", json.dumps(data)[:-40])
    with pytest.raises(IngestError, match=r"cut\.json: not valid JSON .* cut off"):
        ingest_folder(con, tmp_path / "e", batch_id="b2")


def test_usa_trade_online_csv_with_title_lines(con, tmp_path):
    text = ('"U.S. Imports of Merchandise"\n"Data Source: U.S. Census Bureau, USA Trade Online"\n\n'
            '"Commodity","Country","Time","Customs Value (Gen) ($US)","First Unit of Quantity (Gen)","Unit of Quantity 1 Description"\n'
            '"8110100000 ANTIMONY AND ARTICLES THEREOF, UNWROUGHT; POWDERS","Thailand","January 2025","1,250,000","40,000","KG"\n'
            '"8110100000 ANTIMONY AND ARTICLES THEREOF, UNWROUGHT; POWDERS","Mexico","2025 - February","800,000","25,000","KG"\n'
            '"8110100000 ANTIMONY AND ARTICLES THEREOF, UNWROUGHT; POWDERS","World Total","January 2025","9,000,000","300,000","KG"\n')
    path = write(tmp_path / "d" / "uto.csv", text)
    assert sniff_format(path) == "usa_trade_online"
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (3, 3, 0)
    build_models(con)
    assert rows(con, "SELECT partner_iso3, period::VARCHAR, value_usd, qty_kg, mineral FROM intermediate.int_flows ORDER BY 1") == [
        ("MEX", "2025-02-01", 800000.0, 25000.0, "antimony"), ("THA", "2025-01-01", 1250000.0, 40000.0, "antimony")]
    # Line numbers count the title lines: the first record is line 5.
    assert rows(con, "SELECT min(source_row) FROM raw.national_records") == [(5,)]


GACC_HEADER = "数据年月,商品编码,商品名称,贸易伙伴编码,贸易伙伴名称,第一数量,第一计量单位,第二数量,第二计量单位,人民币\n"


def test_gacc_csv_chinese_gb18030_rmb_with_rates(con, tmp_path):
    write(tmp_path / "d" / "海关_出口_2025.csv",
          GACC_HEADER
          + "202501,81101000,锑,136,泰国,20000,千克,,,1450000\n"
          + "202501,81101000,锑,438,墨西哥,10,吨,,,725000\n"
          + "202502,81101000,锑,136,泰国,30000,千克,,,2160000\n"
          + "202502,81101000,锑,999,亚特兰蒂斯,100,千克,,,1000\n"
          + "202501,81101000,锑,,总值,50000,千克,,,3625000\n", encoding="gb18030")
    write(tmp_path / "d" / "rates.csv", "period,currency,units_per_usd,source\n2025-01,CNY,7.25,test rates\n")
    outcomes = {Path(o.source_file).name: o for o in ingest_folder(con, tmp_path / "d", batch_id="b1")}
    gacc = outcomes["海关_出口_2025.csv"]
    assert (gacc.file_format, gacc.rows_read, gacc.rows_loaded, gacc.rows_rejected) == ("gacc", 5, 4, 1)
    (reject,) = rows(con, "SELECT source_row, column_name, bad_value FROM raw.rejects")
    assert reject == (5, "partner", "亚特兰蒂斯")
    build_models(con)
    reconcile(con)
    assert rows(con, "SELECT partner_iso3, period::VARCHAR, value_usd, qty_kg, flow FROM intermediate.int_flows ORDER BY ALL") == [
        ("MEX", "2025-01-01", 100000.0, 10000.0, "X"), ("THA", "2025-01-01", 200000.0, 20000.0, "X")]
    reasons = [r for (r,) in rows(con, "SELECT exclusion_reason FROM intermediate.int_flows_excluded ORDER BY ALL")]
    assert reasons == ["no CNY rate for 2025-02: add a rate file (period, currency, units_per_usd, source) to the data folder",
                       "total for all partners (总值): totals are recomputed from bilateral rows"]


def test_gacc_xlsx_english_headers_usd_and_year_to_date(con, tmp_path):
    frame = pl.DataFrame({
        "Date of data": ["2025-01", "2025-02", "2025-03"],
        "Commodity code": ["28258000"] * 3,
        "Commodity name": ["Antimony oxides"] * 3,
        "Trading partner code": ["141"] * 3,
        "Trading partner name": ["Viet Nam"] * 3,
        "Quantity 1": [100.0, 300.0, 600.0],
        "Unit 1": ["kilogram"] * 3,
        "US dollar": [1000.0, 3500.0, 7000.0],
    })
    (tmp_path / "d").mkdir()
    frame.write_excel(tmp_path / "d" / "gacc_exports_cumulative_2025.xlsx")
    assert sniff_format(tmp_path / "d" / "gacc_exports_cumulative_2025.xlsx") == "gacc"
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert "year-to-date" in outcome.notes
    build_models(con)
    assert rows(con, "SELECT month(period), value_usd, qty_kg, partner_iso3 FROM intermediate.int_flows ORDER BY 1") == [
        (1, 1000.0, 100.0, "VNM"), (2, 2500.0, 200.0, "VNM"), (3, 3500.0, 300.0, "VNM")]


def test_gacc_without_flow_is_a_clear_error(con, tmp_path):
    write(tmp_path / "d" / "china_2025.csv", GACC_HEADER + "202501,81101000,锑,136,泰国,1,千克,,,1\n")
    with pytest.raises(IngestError, match=r"china_2025\.csv: cannot tell exports from imports.*进出口"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")


def test_baci_integer_codes_padded_na_and_thousand_usd(con, tmp_path):
    write(tmp_path / "d" / "BACI_HS17_Y2024_V202601.csv",
          '"t","i","j","k","v","q"\n'
          '2024,156,764,81010,1500.5,"       25.000"\n'
          '2024,764,842,81010,2000,"           NA"\n'
          '2024,490,842,811292,10,"        0.100"\n'
          '2024,999,842,811292,10,"        0.100"\n')
    write(tmp_path / "d" / "country_codes_V202601.csv",
          "country_code,country_name,country_iso2,country_iso3\n156,China,CN,CHN\n764,Thailand,TH,THA\n"
          "842,USA,US,USA\n490,\"Other Asia, nes\",,S19\n")
    outcomes = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert [(o.file_format, o.status, o.rows_loaded, o.rows_rejected) for o in outcomes] == [
        ("baci", "loaded", 3, 1), ("baci_country_codes", "companion", 0, 0)]
    assert rows(con, "SELECT reason FROM raw.rejects") == [("reporter is not a known ISO3 code",)]
    build_models(con)
    got = rows(con, "SELECT reporter_iso3, partner_iso3, hs_code, value_usd, qty_kg, flow FROM intermediate.int_flows ORDER BY ALL")
    # 81010 lost its leading zero: 081010 is HS 0810.10 (strawberries), not antimony; 811292 is.
    assert got == [("CHN", "THA", "081010", 1500500.0, 25000.0, "X"), ("THA", "USA", "081010", 2000000.0, None, "X"),
                   ("TWN", "USA", "811292", 10000.0, 100.0, "X")]
    assert rows(con, "SELECT DISTINCT hs_revision FROM raw.national_records") == [("HS2017",)]


def test_revision_keeps_both_vintages_and_uses_the_latest(con, tmp_path):
    write(tmp_path / "v1" / "census_2025-01.json", json.dumps(census_rows("2025-01", "250000")))
    ingest_folder(con, tmp_path / "v1", batch_id="b1")
    write(tmp_path / "v2" / "census_2025-01_revised.json", json.dumps(census_rows("2025-01", "400000")))
    ingest_folder(con, tmp_path / "v2", batch_id="b2")
    build_models(con)
    reconcile(con)
    assert scalar(con, "SELECT count(*) FROM raw.national_records WHERE partner_label = 'THAILAND' AND part = 1") == 2
    assert scalar(con, "SELECT value_usd FROM intermediate.int_flows WHERE partner_iso3 = 'THA'") == 400000.0
    assert rows(con, "SELECT partner_iso3, old_value_usd, new_value_usd, old_batch_id, new_batch_id FROM intermediate.int_revisions") == [
        ("THA", 250000.0, 400000.0, "b1", "b2")]
    (reason,) = rows(con, "SELECT exclusion_reason FROM intermediate.int_flows_excluded WHERE partner = 'THA' AND part = 1")[0]
    assert reason.startswith("superseded by a later publication of the same flow:")


def test_fx_rate_file_bad_rows_rejected(con, tmp_path):
    write(tmp_path / "d" / "rates.csv",
          "period,currency,units_per_usd,source\n2025-01,CNY,7.2,PBoC\n2025-13,CNY,7.2,PBoC\n2025-02,CNY,-1,PBoC\n2025-03,CNY,7.1,\n")
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (4, 1, 3)
    assert [r for (r,) in rows(con, "SELECT column_name FROM raw.rejects ORDER BY source_row")] == [
        "period", "units_per_usd", "source"]


@pytest.mark.parametrize("name, iso3, kind", [
    ("KOREA, SOUTH", "KOR", "country"), ("BURMA", "MMR", "country"), ("Viet Nam", "VNM", "country"),
    ("泰国", "THA", "country"), ("中国香港", "HKG", "country"), ("俄罗斯联邦", "RUS", "country"),
    ("TOTAL FOR ALL COUNTRIES", "WLD", "world"), ("总值", "WLD", "world"), ("EUROPEAN UNION", None, "group"),
    ("亚洲", None, "group"), ("THA", "THA", "country"), ("Atlantis", None, "unmapped"),
])
def test_partner_names(name, iso3, kind):
    from warehouse.partners import resolve

    got = resolve(name)
    assert (got.iso3, got.kind) == (iso3, kind)


def test_user_table_mapping_errors_name_the_key(con, tmp_path):
    write(tmp_path / "d" / "mine.csv", "when,code,value_usd,partner,kind\n2025-01,811010,100,Thailand,ok\n2025-01,811010,5,Laos,draft\n")
    mapping = write(tmp_path / "d" / "mine.csv.mapping.toml",
                    'period = "when"\ncode = "code"\nreporter = "USA"\nflow = "M"\n'
                    '[[parts]]\npartner = { column = "partner" }\nvalue = "value"\n')
    with pytest.raises(IngestError, match=r"mine\.csv\.mapping\.toml: parts\[1\]\.value: column 'value' is not in the header"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")
    mapping.write_text('period = "when"\ncode = "code"\nreporter = "USA"\nflow = "M"\n'
                       'skip = { column = "kind", equals = "draft" }\n'
                       '[[parts]]\npartner = { column = "partner" }\nvalue = "value_usd"\n', encoding="utf-8")
    outcomes = ingest_folder(con, tmp_path / "d", batch_id="b1")
    table = next(o for o in outcomes if o.file_format == "user_table")
    assert (table.rows_read, table.rows_loaded, table.rows_rejected) == (2, 1, 1)
    assert rows(con, "SELECT source_row, reason FROM raw.rejects") == [(3, "skipped by the mapping (mine.csv.mapping.toml: skip)")]


def test_route_leg_lists_every_source_of_equal_precedence_and_refuses_an_unknown_one(con, tmp_path):
    """A leg fed by two national sources of the same precedence names both, in name order; a source the
    mart does not know stops the build instead of vanishing from the source lists."""
    from warehouse.build import BuildPlan, KeyViolation, _build_mart

    write(tmp_path / "d" / "census_2024-03.json", json.dumps(census_rows("2024-03")))
    ingest_folder(con, tmp_path / "d", batch_id="b1")
    build_models(con)
    con.execute("""INSERT INTO intermediate.int_flows SELECT * REPLACE ('user' AS source) FROM intermediate.int_flows
                   WHERE source = 'census' AND partner_iso3 = 'THA'""")
    _build_mart(con, BuildPlan("full", "test"))
    assert rows(con, """SELECT DISTINCT hub_to_us_source, hub_to_us_usd FROM marts.fct_route_legs
                        WHERE hub_iso3 = 'THA' AND hub_to_us_usd > 0""") == [("census,user", 500000.0)]
    con.execute("UPDATE intermediate.int_flows SET source = 'eurostat' WHERE source = 'user'")
    with pytest.raises(KeyViolation, match="source 'eurostat', which fct_route_legs.sql does not list"):
        _build_mart(con, BuildPlan("full", "test"))
