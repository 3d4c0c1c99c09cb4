"""The Comtrade loader on small files written here: each variant, each real quirk, each kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from warehouse.build import build_models
from warehouse.connection import rows, scalar
from warehouse.files import IngestError
from warehouse.ingest import ingest_folder, sniff_format

CAMEL = ("freqCode,refYear,refMonth,period,reporterCode,reporterISO,flowCode,partnerCode,partnerISO,partner2Code,"
         "cmdCode,customsCode,motCode,qtyUnitCode,qty,netWgt,cifvalue,fobvalue,primaryValue,isAggregate")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(con, folder: Path, batch: str = "b1"):
    return ingest_folder(con, folder, batch_id=batch)


def reconcile(con) -> None:
    read = scalar(con, "SELECT sum(rows_read) FROM raw.loads")
    loaded = scalar(con, "SELECT count(*) FROM raw.comtrade_records")
    rejected = scalar(con, "SELECT count(*) FROM raw.rejects")
    assert read == loaded + rejected


def test_camel_case_csv_monthly(con, tmp_path):
    write(tmp_path / "d" / "x.csv", CAMEL + "\n"
          "M,2024,12,202412,156,CHN,X,764,THA,0,282580,C00,0,8,1000,1000,,5000,5000,false\n"
          "M,2024,12,202412,842,USA,M,764,THA,0,282580,C00,0,8,900,900,5400,,5400,false\n")
    (outcome,) = load(con, tmp_path / "d")
    assert (outcome.status, outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == ("loaded", 2, 2, 0)
    build_models(con)
    got = rows(con, "SELECT reporter_iso3, partner_iso3, flow, hs_code, mineral, period::VARCHAR, frequency, "
                    "value_usd, qty_kg, value_basis FROM intermediate.int_flows ORDER BY reporter_iso3")
    assert got == [
        ("CHN", "THA", "X", "282580", "antimony", "2024-12-01", "M", 5000.0, 1000.0, "FOB"),
        ("USA", "THA", "M", "282580", "antimony", "2024-12-01", "M", 5400.0, 900.0, "CIF"),
    ]


def test_snake_case_csv_annual(con, tmp_path):
    header = "freq_code,ref_year,ref_month,period,reporter_code,flow_code,partner_code,cmd_code,qty_unit_code,qty,net_wgt,primary_value"
    write(tmp_path / "d" / "s.csv", header + "\nA,2023,52,2023,842,M,484,811010,8,10,10,99\n")
    load(con, tmp_path / "d")
    assert rows(con, "SELECT freq_code, period::VARCHAR, partner_code FROM raw.comtrade_records") == [("A", "2023-01-01", 484)]


def test_api_json_with_data_list(con, tmp_path):
    record = {"freqCode": "M", "refYear": 2025, "refMonth": 1, "period": "202501", "reporterCode": 842,
              "flowCode": "M", "partnerCode": 704, "partner2Code": 0, "cmdCode": "811292", "customsCode": "C00",
              "motCode": 0, "qtyUnitCode": 8, "qty": 12.5, "netWgt": 12.5, "cifvalue": 5000.0, "fobvalue": None,
              "primaryValue": 5000.0, "isAggregate": False}
    write(tmp_path / "d" / "api.json", json.dumps({"elapsedTime": "0.1 secs", "count": 1, "data": [record]}))
    assert sniff_format(tmp_path / "d" / "api.json") == "comtrade"
    (outcome,) = load(con, tmp_path / "d")
    assert outcome.rows_loaded == 1
    assert rows(con, "SELECT primary_value, is_aggregate FROM raw.comtrade_records") == [(5000.0, False)]


def test_gzipped_subset_without_year_takes_year_from_file_name(con, tmp_path):
    path = tmp_path / "d" / "comtrade_2024.csv.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"reporter,partner,cmd,flow,value,netwgt\n156,764,811010,X,100.5,10\n"))
    (outcome,) = load(con, tmp_path / "d")
    assert "annual 2024 from the file name" in outcome.notes
    assert rows(con, "SELECT freq_code, period::VARCHAR, period_from FROM raw.comtrade_records") == [
        ("A", "2024-01-01", "file name")]


def test_subset_without_any_year_is_refused_clearly(con, tmp_path):
    write(tmp_path / "d" / "flows.csv", "reporter,partner,cmd,flow,value\n156,764,811010,X,100\n")
    with pytest.raises(IngestError, match=r"flows\.csv: no period column .* cannot be known"):
        load(con, tmp_path / "d")


def test_missing_required_column_names_file_and_column(con, tmp_path):
    write(tmp_path / "d" / "bad.csv", "year,reporter,cmd,flow,value\n2022,156,811010,X,1\n")
    with pytest.raises(IngestError, match=r"bad\.csv: .*required column is missing: partner_code"):
        load(con, tmp_path / "d")


def test_empty_file_is_an_error(con, tmp_path):
    write(tmp_path / "d" / "empty.csv", "year,reporter,partner,cmd,flow,value\n")
    with pytest.raises(IngestError, match=r"empty\.csv: the file has a header but no data rows"):
        load(con, tmp_path / "d")


def test_bad_rows_are_set_aside_with_line_column_and_reason(con, tmp_path):
    write(tmp_path / "d" / "mixed.csv", "year,reporter,partner,cmd,flow,value,netwgt\n"
          "2022,156,764,811010,X,100,10\n"        # line 2: fine
          "2022,156,764,811010,X,abc,10\n"        # line 3: value not a number
          "2022,156,999,811010,X,100,10\n"        # line 4: unknown partner
          "2022,156,764,811010,Z,100,10\n"        # line 5: unknown flow
          "2022,156,764,811010,X,100,-4\n")       # line 6: negative weight
    (outcome,) = load(con, tmp_path / "d")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (5, 1, 4)
    got = rows(con, "SELECT source_row, column_name, bad_value, reason FROM raw.rejects ORDER BY source_row")
    assert got[0] == (3, "primary_value", "abc", "trade value is not a number")
    assert got[1][:3] == (4, "partner_code", "999") and "unknown partner code" in got[1][3]
    assert got[2][:3] == (5, "flow_code", "Z")
    assert got[3][:2] == (6, "net_wgt")
    assert json.loads(rows(con, "SELECT record FROM raw.rejects WHERE source_row = 3")[0][0])["value"] == "abc"
    reconcile(con)


def test_a_file_checked_in_slices_loads_exactly_as_in_one(tmp_path, monkeypatch):
    """append_checked checks and writes a file's rows slice by slice (warehouse.raw_load.CHECK_SLICE_ROWS:
    DuckDB then holds one slice's checked rows, not the whole file's). Slices of 2 rows over good and bad
    rows give the same raw tables, in the same order, as one slice."""
    import duckdb

    import warehouse.raw_load as raw_load
    from warehouse.catalogue import load_catalogue
    from warehouse.schema import ensure_schema, write_reference_tables

    lines = ["2022,156,764,811010,X,100,10", "2022,156,764,811010,X,abc,10", "2022,156,999,811010,X,100,10",
             "2023,156,764,811010,X,200,20", "2022,156,764,811010,Z,100,10", "2024,156,704,282580,X,300,30",
             "2022,156,764,811010,X,100,-4"]
    write(tmp_path / "d" / "mixed.csv", "year,reporter,partner,cmd,flow,value,netwgt\n" + "\n".join(lines) + "\n")
    tables = {}
    for slice_rows in (2, 10**6):
        monkeypatch.setattr(raw_load, "CHECK_SLICE_ROWS", slice_rows)
        c = duckdb.connect(str(tmp_path / f"w{slice_rows}.duckdb"))
        ensure_schema(c)
        write_reference_tables(c, load_catalogue())
        (outcome,) = load(c, tmp_path / "d")
        assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (7, 3, 4)
        tables[slice_rows] = (
            rows(c, "SELECT * EXCLUDE (loaded_at, batch_id) FROM raw.comtrade_records"),
            rows(c, "SELECT source_row, * EXCLUDE (rejected_at, batch_id) FROM raw.rejects"))
        c.close()
    assert tables[2] == tables[10**6]
    assert [r[0] for r in tables[2][1]] == [3, 4, 6, 8]  # the rejects' lines, in order


def test_a_reject_keeps_its_line_as_read_blanks_quotes_and_all(con, tmp_path):
    # The record is the line as the file has it (untrimmed, empty cells null), whatever the loader did.
    write(tmp_path / "d" / "odd.csv", 'year,reporter,partner,cmd,flow,value,netwgt\n'
          '2022, 156 ,764,811010,X,"1 ""2""",\n'
          '2022,156,764, 811010\t,X ,100,\n')
    (outcome,) = load(con, tmp_path / "d")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (2, 1, 1)
    # Padding is taken off the values loaded.
    assert rows(con, "SELECT cmd_code, flow_code FROM raw.comtrade_records") == [("811010", "X")]
    (record,) = rows(con, "SELECT record FROM raw.rejects")[0]
    assert json.loads(record) == {"year": "2022", "reporter": " 156 ", "partner": "764", "cmd": "811010",
                                  "flow": "X", "value": '1 "2"', "netwgt": None}


def test_quirks_duplicates_world_aggregates_null_weights_and_tonnes(con, tmp_path):
    write(tmp_path / "d" / "q.csv", CAMEL + "\n"
          "M,2025,1,202501,842,USA,M,764,THA,0,282580,C00,0,8,100,100,700,,700,false\n"       # 2 kept
          "M,2025,1,202501,842,USA,M,764,THA,0,282580,C00,0,8,100,100,700,,700,false\n"       # 3 exact duplicate
          "M,2025,1,202501,842,USA,M,0,W00,0,282580,C00,0,8,500,500,3500,,3500,false\n"       # 4 World row
          "M,2025,1,202501,842,USA,M,0,W00,0,282580,C00,0,8,520,520,3600,,3600,false\n"       # 5 second World row
          "M,2025,1,202501,842,USA,M,484,MEX,0,2825,C00,0,8,1,1,9,,9,true\n"                  # 6 aggregate
          "M,2025,1,202501,842,USA,M,484,MEX,0,282580,C00,0,21,2.5,,15000,,15000,false\n"     # 7 tonnes, no netWgt
          "M,2025,1,202501,842,USA,M,704,VNM,0,282580,C00,0,-1,,,800,,800,false\n"            # 8 no weight at all
          "M,2025,1,202501,842,USA,M,704,VNM,0,282580,C00,2,8,5,5,40,,40,false\n")            # 9 mode-of-transport breakdown
    load(con, tmp_path / "d")
    counts = build_models(con)
    assert counts["intermediate.int_flows"] + counts["intermediate.int_flows_excluded"] == 8
    reasons = dict(rows(con, "SELECT source_row, exclusion_reason FROM intermediate.int_flows_excluded"))
    assert reasons[3] == "exact duplicate of line 2"
    assert reasons[4].startswith("World total") and reasons[5].startswith("World total")
    assert reasons[6].startswith("aggregate")
    assert reasons[9].startswith("breakdown by mode of transport")
    kept = dict(rows(con, "SELECT partner_iso3, qty_kg FROM intermediate.int_flows"))
    assert kept == {"THA": 100.0, "MEX": 2500.0, "VNM": None}
    assert rows(con, "SELECT qty_kg_source FROM intermediate.int_flows WHERE partner_iso3 = 'MEX'") == [
        ("qty converted from unit 21",)]


def test_file_without_breakdown_columns_keeps_the_total_row(con, tmp_path):
    # A total (1000) and its two breakdowns (600 + 400), as the real atlas pull has them.
    write(tmp_path / "d" / "comtrade_2022.csv", "year,reporter,partner,cmd,flow,value,netwgt\n"
          "2022,842,156,811292,M,600,6\n2022,842,156,811292,M,1000,10\n2022,842,156,811292,M,400,4\n")
    load(con, tmp_path / "d")
    build_models(con)
    assert rows(con, "SELECT value_usd, source_row FROM intermediate.int_flows") == [(1000.0, 3)]
    assert rows(con, "SELECT count(*) FROM intermediate.int_flows_excluded WHERE exclusion_reason LIKE 'breakdown of the total at line 3%'") == [(2,)]


def test_one_flow_in_two_files_of_one_load_and_duplicates_with_blank_fields(con, tmp_path):
    # Staging compares records field by field only where a hash repeats (stg_comtrade__records.sql): the
    # answers must be those of comparing every record. b.csv repeats a.csv's flow with a smaller value; a.csv
    # holds an exact copy with blank (NULL) weight fields, and a record one cent away from another.
    write(tmp_path / "d" / "a.csv", "year,reporter,partner,cmd,flow,value,netwgt\n"
          "2022,156,764,811010,X,1000,\n"        # 2 kept (larger than b.csv's)
          "2022,156,764,811010,X,1000,\n"        # 3 exact duplicate of line 2, blank netwgt
          "2022,156,704,811010,X,500.00,5\n"     # 4 kept
          "2022,156,704,811010,X,500.01,5\n")    # 5 same flow, not a copy: the breakdown rule keeps line 5
    write(tmp_path / "d" / "b.csv", "year,reporter,partner,cmd,flow,value,netwgt\n"
          "2022,156,764,811010,X,900,9\n")       # 2 the same flow as a.csv line 2, smaller
    load(con, tmp_path / "d")
    build_models(con)
    kept = rows(con, "SELECT partner_iso3, value_usd, source_file LIKE '%a.csv', source_row FROM intermediate.int_flows "
                     "ORDER BY partner_iso3")
    assert kept == [("THA", 1000.0, True, 2), ("VNM", 500.01, True, 5)]
    reasons = {(Path(f).name, r): why for f, r, why in rows(
        con, "SELECT source_file, source_row, exclusion_reason FROM intermediate.int_flows_excluded")}
    assert reasons[("a.csv", 3)] == "exact duplicate of line 2"
    assert reasons[("a.csv", 4)] == "breakdown of the total at line 5 (the file has no breakdown columns)"
    assert reasons[("b.csv", 2)].startswith("same flow also in ") and reasons[("b.csv", 2)].endswith(
        "a.csv line 2, which is kept (larger value)")
    assert len(reasons) == 3


def test_same_file_is_not_loaded_twice_and_revisions_supersede(con, tmp_path):
    folder = tmp_path / "d"
    write(folder / "a.csv", "year,reporter,partner,cmd,flow,value\n2022,156,764,811010,X,100\n")
    load(con, folder, "b1")
    again = load(con, folder, "b2")
    assert again[0].status == "already loaded"
    assert scalar(con, "SELECT count(*) FROM raw.comtrade_records") == 1
    write(folder / "a_revised.csv", "year,reporter,partner,cmd,flow,value\n2022,156,764,811010,X,130\n")
    load(con, folder, "b3")
    build_models(con)
    assert rows(con, "SELECT value_usd FROM intermediate.int_flows") == [(130.0,)]
    assert "superseded" in scalar(con, "SELECT exclusion_reason FROM intermediate.int_flows_excluded")


def test_unrecognised_files_are_listed_as_skipped(con, tmp_path):
    write(tmp_path / "d" / "notes.csv", "a,b\n1,2\n")
    (outcome,) = load(con, tmp_path / "d")
    assert outcome.status == "skipped" and "not a recognised" in outcome.notes


def test_null_tokens_in_any_case_and_padding_are_empty_and_other_fields_are_kept_stripped(con, tmp_path):
    # NA, n/a, Null, none and NaN mean "no figure", padded or not; a field longer than any token (a value, a
    # customs code of five letters) or a short one that is no token ("0", "8") is kept, stripped.
    write(tmp_path / "d" / "x.csv", CAMEL + "\n"
          "M,2024,12,202412,156,CHN,X,764,THA, n/a ,282580,  Null,0,8,none,1000, NaN ,\t5000 ,5000,false\n"
          "M,2024,12,202412,842,USA,M,764,THA,NA,282580,C00AB,0,8,900,900,5400,,5400,false\n")
    (outcome,) = load(con, tmp_path / "d")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (2, 2, 0)
    got = rows(con, "SELECT reporter_code, partner2_code, customs_code, qty, net_wgt, cif_value, fob_value "
                    "FROM raw.comtrade_records ORDER BY source_row")
    assert got == [(156, None, None, None, 1000.0, None, 5000.0), (842, None, "C00AB", 900.0, 900.0, 5400.0, None)]
