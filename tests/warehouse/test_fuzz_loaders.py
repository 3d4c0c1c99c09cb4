"""Property-based fuzzing of every loader (hypothesis): whatever a file of a known format holds (cells of any
kind, damaged encodings, cut-off or gzipped bytes), loading it either stops with an IngestError that names
the file, or loads it with every row accounted for (read = loaded + rejected); never another exception.

Runs a bounded, derandomized number of examples in CI (the `ci` profile in tests/conftest.py); set
HYPOTHESIS_PROFILE=fuzz for a long local run."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import examples
from warehouse.build import build_models
from warehouse.catalogue import load_catalogue
from warehouse.connection import scalar
from warehouse.files import IngestError, InputLimits
from warehouse.ingest import ingest_folder
from warehouse.schema import ensure_schema, write_reference_tables

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Cells a source, a spreadsheet or an attacker might put in a trade file.
CELL = st.one_of(
    st.sampled_from(["", "NA", "N/A", "null", "-", "0", "1", "-1", "156", "842", "764", "704", "0", "X", "M", "RX",
                     "A", "282580", "811292", "8112921000", "2825800000", "2024", "202401", "2024-01", "2024年1月",
                     "209901", "1987", "inf", "-inf", "nan", "1e308", "1e-308", "1,234", "  7  ", "true", "KG", "吨",
                     "Thailand", "泰国", "TOTAL FOR ALL COUNTRIES", "=cmd|' /C calc'!A0", "\ufeff", "'", '"',
                     "a\nb", "\x1b[31m", "[bold]x[/bold]", ":warning:", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]),
    st.text(max_size=12),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell
    return "\n".join(",".join(quote(c) for c in line) for line in [header, *rows]) + "\n"


@st.composite
def table_rows(draw, width: int) -> list[list[str]]:
    return draw(st.lists(st.lists(CELL, min_size=width, max_size=width), min_size=1, max_size=6))


COMTRADE = ["freqCode", "period", "refYear", "refMonth", "reporterCode", "flowCode", "partnerCode", "partner2Code",
            "cmdCode", "customsCode", "motCode", "qtyUnitCode", "qty", "netWgt", "cifvalue", "fobvalue",
            "primaryValue", "isAggregate"]
GACC = ["数据年月", "商品编码", "商品名称", "贸易伙伴名称", "第一数量", "第一计量单位", "人民币"]
TRADE_ONLINE = ["Commodity", "Country", "Time", "Customs Value (Gen) ($US)", "First Unit of Quantity (Gen)",
                "Unit of Quantity Description"]


@st.composite
def comtrade_csv(draw) -> dict[str, bytes]:
    header = draw(st.lists(st.sampled_from(COMTRADE), min_size=4, max_size=len(COMTRADE), unique=True))
    return {"comtrade_2024.csv": csv_text(header, draw(table_rows(len(header)))).encode()}


@st.composite
def comtrade_json(draw) -> dict[str, bytes]:
    value = st.one_of(CELL, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                      st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    records = draw(st.lists(st.fixed_dictionaries({k: value for k in draw(st.lists(
        st.sampled_from(COMTRADE), min_size=4, max_size=10, unique=True))}), min_size=1, max_size=5))
    doc = draw(st.sampled_from([{"data": records}, records, {"data": records, "error": None}]))
    return {"answer.json": json.dumps(doc).encode()}


@st.composite
def census_api(draw) -> dict[str, bytes]:
    header = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "GEN_VAL_MO", "GEN_QY1_MO", "UNIT_QY1", "time"]
    header = draw(st.permutations(header))
    rows = draw(st.lists(st.lists(st.one_of(CELL, st.integers(), st.none()), min_size=len(header),
                                  max_size=len(header)), min_size=1, max_size=5))
    return {"census_imports.json": json.dumps([header, *rows]).encode()}


@st.composite
def trade_online(draw) -> dict[str, bytes]:
    titles = draw(st.lists(st.sampled_from(["Imports of Merchandise", "Data source: USA Trade Online", ""]), max_size=3))
    body = csv_text(TRADE_ONLINE, draw(table_rows(len(TRADE_ONLINE))))
    return {"usa_trade_online.csv": ("\n".join(titles) + ("\n" if titles else "") + body).encode()}


@st.composite
def gacc(draw) -> dict[str, bytes]:
    text = csv_text(GACC, draw(table_rows(len(GACC))))
    encoding = draw(st.sampled_from(["utf-8", "gb18030"]))
    return {"出口_2024.csv": text.encode(encoding, errors="replace")}


@st.composite
def baci(draw) -> dict[str, bytes]:
    files = {"BACI_HS22_Y2024_V202601.csv": csv_text(["t", "i", "j", "k", "v", "q"], draw(table_rows(6))).encode()}
    if draw(st.booleans()):
        files["country_codes_V202601.csv"] = csv_text(["country_code", "country_name", "country_iso3"],
                                                      draw(table_rows(3))).encode()
    return files


@st.composite
def fx(draw) -> dict[str, bytes]:
    return {"rates.csv": csv_text(["period", "currency", "units_per_usd", "source"], draw(table_rows(4))).encode()}


@st.composite
def user_table(draw) -> dict[str, bytes]:
    scalar_value = st.one_of(CELL, st.integers(-5, 5), st.floats(allow_nan=True), st.booleans())
    field = st.one_of(scalar_value, st.fixed_dictionaries({"column": st.sampled_from(["month", "code", "value", "x"])}))
    mapping = {k: draw(field) for k in draw(st.lists(st.sampled_from(
        ["header_row", "frequency", "period", "code", "reporter", "flow", "currency", "value_scale", "skip"]),
        unique=True, max_size=9))}
    mapping.setdefault("period", "month")
    mapping.setdefault("code", "code")
    parts = draw(st.lists(st.fixed_dictionaries({"partner": field, "value": st.sampled_from(["value", "x", "month"])}),
                          max_size=2))
    lines = []
    for key, value in mapping.items():
        lines.append(f"{key} = {_toml(value)}")
    for part in parts:
        lines.append("[[parts]]")
        lines += [f"{k} = {_toml(v)}" for k, v in part.items()]
    table = csv_text(["month", "code", "value"], draw(table_rows(3)))
    return {"t.csv": table.encode(), "t.csv.mapping.toml": "\n".join(lines).encode()}


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    return json.dumps(value)  # a TOML basic string is a JSON string


@st.composite
def damaged(draw, files: dict[str, bytes]) -> dict[str, bytes]:
    """The files as they may arrive: gzipped, in UTF-16, cut off, with a NUL or a byte-order mark."""
    name = draw(st.sampled_from(sorted(files)))
    data = files[name]
    how = draw(st.sampled_from(["as is", "as is", "gzip", "utf-16", "cut", "nul", "bom", "cut gzip"]))
    if how == "gzip":
        data = gzip.compress(data)
    elif how == "utf-16":
        data = data.decode("utf-8", errors="replace").encode("utf-16")
    elif how == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "nul":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\0" + data[at:]
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "cut gzip":
        packed = gzip.compress(data)
        data = packed[: draw(st.integers(0, len(packed)))]
    return {**files, name: data}


FORMATS = {"comtrade csv": comtrade_csv(), "comtrade json": comtrade_json(), "census api": census_api(),
           "usa trade online": trade_online(), "gacc": gacc(), "baci": baci(), "fx rates": fx(),
           "user table": user_table()}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def load_files(tmp_path: Path, files: dict[str, bytes], catalogue, build: bool = False) -> None:
    folder = tmp_path / "data"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    con = duckdb.connect(":memory:")
    try:
        ensure_schema(con)
        write_reference_tables(con, catalogue)
        try:
            outcomes = ingest_folder(con, folder, batch_id="fuzz", limits=InputLimits(max_file_bytes=1 << 20))
        except IngestError as exc:
            assert any(name in str(exc) for name in files), f"the error names no file: {exc}"
            return
        for o in outcomes:
            assert o.rows_read == o.rows_loaded + o.rows_rejected, o
        read = scalar(con, "SELECT coalesce(sum(rows_read), 0) FROM raw.loads")
        kept = scalar(con, "SELECT (SELECT count(*) FROM raw.comtrade_records) + (SELECT count(*) FROM "
                           "raw.national_records) + (SELECT count(*) FROM raw.fx_rates) + (SELECT count(*) FROM raw.rejects)")
        assert read == kept
        if build:
            build_models(con)  # no overflow, no key violation: whatever was loaded can be built
    finally:
        con.close()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_any_file_of_a_known_format_loads_with_every_row_accounted_for_or_is_refused_by_name(fmt, tmp_path,
                                                                                             catalogue):
    @settings(FAST, max_examples=examples(25))
    @given(files=FORMATS[fmt].flatmap(damaged))
    def check(files):
        load_files(tmp_path, files, catalogue)

    check()


@settings(FAST, max_examples=examples(12))
@given(files=st.tuples(comtrade_csv(), gacc(), census_api(), user_table()).map(
    lambda parts: {k: v for part in parts for k, v in part.items()}))
def test_whatever_was_loaded_can_be_built(tmp_path, catalogue, files):
    load_files(tmp_path, files, catalogue, build=True)
