"""Files as a hostile or broken source would send them: every one a clear error naming the file (and the key or
column), or rows set aside with their reason; read = loaded + rejected; and a build afterwards that works."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest

from warehouse.build import build_models
from warehouse.connection import rows, scalar
from warehouse.files import IngestError, InputLimits, json_depth
from warehouse.ingest import ingest_folder

HEADER = "freqCode,period,reporterCode,flowCode,partnerCode,cmdCode,qtyUnitCode,qty,netWgt,primaryValue"


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def reconciled(con) -> tuple[int, int, int]:
    read = scalar(con, "SELECT sum(rows_read) FROM raw.loads")
    loaded = scalar(con, "SELECT (SELECT count(*) FROM raw.comtrade_records) + (SELECT count(*) FROM raw.national_records)")
    rejected = scalar(con, "SELECT count(*) FROM raw.rejects")
    assert read == loaded + rejected
    return read, loaded, rejected


def next_month() -> str:
    today = date.today()
    return f"{today.year + today.month // 12}{today.month % 12 + 1:02d}"


def test_values_and_periods_no_customs_file_can_hold_are_rejects_and_the_build_still_works(con, tmp_path):
    good = "M,202401,156,X,764,282580,8,1000,1000,5000"
    bad = {
        "M,202401,156,X,764,282580,8,1000,1000,inf": "trade value is not a finite number",
        "M,202401,156,X,764,282580,8,1000,1000,1e308": "trade value is larger than 1e+14",
        "M,202401,156,X,764,282580,8,1000,1000,-inf": "trade value is not a finite number",
        "M,202401,156,X,764,282580,8,1000,1e300,5000": "net weight is larger than 1e+13",
        "M,202401,156,X,764,282580,8,infinity,1000,5000": "quantity is not a finite number",
        "M,198712,156,X,764,282580,8,1000,1000,5000": "period before 1988",
        "M,209901,156,X,764,282580,8,1000,1000,5000": "period after the month of this run",
        f"M,{next_month()},156,X,764,282580,8,1000,1000,5000": "period after the month of this run",
        "M,00001,156,X,764,282580,8,1000,1000,5000": "",  # a nonsense period: some period reason
    }
    write(tmp_path / "d" / "c.csv", "\n".join([HEADER, good, *bad, ""]))
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (1 + len(bad), 1, len(bad))
    reasons = [r for (r,) in rows(con, "SELECT reason FROM raw.rejects ORDER BY source_row")]
    for reason, expected in zip(reasons, bad.values()):
        assert expected in reason, (reason, expected)
    lines = rows(con, "SELECT source_row, column_name FROM raw.rejects ORDER BY source_row")
    assert lines[0] == (3, "primary_value") and lines[3] == (6, "net_wgt") and lines[5][1] == "period"
    build_models(con)  # no ConversionException: nothing oversized reached the exact sums
    assert scalar(con, "SELECT max(period) FROM marts.fct_route_legs") == date(2024, 1, 1)
    reconciled(con)


def test_a_mapping_with_a_bad_value_scale_is_refused_naming_the_file_and_key(con, tmp_path):
    table = "month,code,value\n2024-01,2825800000,100\n"
    for scale, shown in (("-1000", "-1000"), ('"abc"', "'abc'"), ('"inf"', "'inf'"), ("inf", "inf"), ("0", "0"),
                         ("true", "True")):
        folder = tmp_path / f"d{abs(hash(scale))}"
        write(folder / "t.csv", table)
        write(folder / "t.csv.mapping.toml",
              f'frequency = "M"\nperiod = "month"\ncode = "code"\nreporter = "USA"\nflow = "M"\n'
              f"value_scale = {scale}\n[[parts]]\npartner = \"THA\"\nvalue = \"value\"\n")
        with pytest.raises(IngestError, match=rf"t\.csv\.mapping\.toml: value_scale: {shown} is not a positive number"):
            ingest_folder(con, folder, batch_id="b1")


def test_a_user_table_value_beyond_any_customs_figure_is_a_reject(con, tmp_path):
    write(tmp_path / "d" / "t.csv", "month,code,value\n2024-01,2825800000,100\n2024-02,2825800000,1e300\n")
    write(tmp_path / "d" / "t.csv.mapping.toml",
          'frequency = "M"\nperiod = "month"\ncode = "code"\nreporter = "USA"\nflow = "M"\nvalue_scale = 1000\n'
          '[[parts]]\npartner = "THA"\nvalue = "value"\n')
    (outcome,) = [o for o in ingest_folder(con, tmp_path / "d", batch_id="b1") if o.status == "loaded"]
    assert (outcome.rows_loaded, outcome.rows_rejected) == (1, 1)
    assert rows(con, "SELECT column_name, reason FROM raw.rejects")[0][1].startswith("trade value (times its scale)")
    assert rows(con, "SELECT value_scale FROM raw.national_records") == [(1000.0,)]


def test_a_small_gzip_that_expands_past_the_cap_is_refused_before_it_is_read(con, tmp_path):
    bomb = gzip.compress(b"\0" * (8 << 20), 9)  # 8 MiB of NULs in a few kilobytes
    assert len(bomb) < 20_000
    write(tmp_path / "d" / "comtrade_2024.csv.gz", gzip.compress((HEADER + "\n").encode()) + bomb)
    with pytest.raises(IngestError, match=r"comtrade_2024\.csv\.gz: decompresses to more than 4,194,304 bytes.*"
                                          r"--max-file-mb"):
        ingest_folder(con, tmp_path / "d", batch_id="b1", limits=InputLimits(max_file_bytes=4 << 20))


def test_nul_bytes_are_binary_data_not_a_table(con, tmp_path):
    text = HEADER + "\nM,202401,156,X,764,282580,8,1000,1000,5000\n"
    write(tmp_path / "d" / "c.csv", text.encode() + b"\0" * 64)
    with pytest.raises(IngestError, match=rf"c\.csv: holds a NUL byte \(at byte {len(text)}\): binary data"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_as_excel_saves_it_is_read(con, tmp_path, encoding):
    text = HEADER + "\nM,202401,156,X,764,282580,8,1000,1000,5000\nM,202401,842,M,764,282580,8,900,900,5400\n"
    write(tmp_path / "d" / "unicode.txt", text.encode(encoding))
    (outcome,) = ingest_folder(con, tmp_path / "d", batch_id="b1")
    assert (outcome.file_format, outcome.rows_loaded, outcome.rows_rejected) == ("comtrade", 2, 0)


def test_json_nested_deeper_than_any_trade_file_is_refused_without_a_traceback(con, tmp_path):
    write(tmp_path / "d" / "deep.json", '{"data": [{"reporterCode": 156, "partnerCode": 764, "cmdCode": "282580", '
                                        '"flowCode": "X", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]}")
    with pytest.raises(IngestError, match=r"deep\.json: JSON nested 100,003 levels deep"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")


def test_a_record_with_a_nested_field_is_refused_naming_the_field(con, tmp_path):
    record = {"period": "202401", "reporterCode": 156, "partnerCode": 764, "cmdCode": "282580", "flowCode": "X",
              "primaryValue": {"a": 1}}
    write(tmp_path / "d" / "api.json", json.dumps({"data": [record]}))
    with pytest.raises(IngestError, match=r"api\.json: field 'primaryValue' holds lists or objects"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")


def test_a_mapping_nested_thousands_deep_is_refused(con, tmp_path):
    write(tmp_path / "d" / "t.csv", "month,code,value\n2024-01,2825800000,100\n")
    write(tmp_path / "d" / "t.csv.mapping.toml", "period = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(IngestError, match=r"t\.csv\.mapping\.toml: tables or arrays nested too deep"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")


def test_a_workbook_that_expands_past_the_cap_is_refused(con, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/worksheets/sheet1.xml", b"\0" * (3 << 20))
    write(tmp_path / "d" / "t.xlsx", buffer.getvalue())
    write(tmp_path / "d" / "t.xlsx.mapping.toml", 'period = "month"\ncode = "code"\n[[parts]]\npartner = "THA"\n'
                                                  'value = "value"\n')
    with pytest.raises(IngestError, match=r"t\.xlsx: expands to more than 1,048,576 bytes"):
        ingest_folder(con, tmp_path / "d", batch_id="b1", limits=InputLimits(max_file_bytes=1 << 20))


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth(b'{"data": [{"a": "[[[{{{", "b": "x\\"[[", "c": "\\\\"}]}') == 3
    assert json_depth(b"[]") == 1 and json_depth(b"") == 0 and json_depth(b'"[[["') == 0


def test_an_empty_table_beside_its_mapping_is_refused_by_name(con, tmp_path):
    # Found by the fuzz suite: an empty user table failed inside Polars (NoDataError).
    write(tmp_path / "d" / "t.csv", "")
    write(tmp_path / "d" / "t.csv.mapping.toml", 'period = "month"\ncode = "code"')
    with pytest.raises(IngestError, match=r"t\.csv: the file is empty"):
        ingest_folder(con, tmp_path / "d", batch_id="b1")
