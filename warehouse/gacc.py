"""Loader for China customs statistics: the CSV/XLSX export of the GACC online query (stats.customs.gov.cn).

Headers in Chinese (数据年月, 商品编码, 商品名称, 贸易伙伴编码, 贸易伙伴名称, 第一数量, 第一计量单位, 第二数量,
第二计量单位, 人民币 or 美元) or their English equivalents; the file may be UTF-8 or GB18030 and may carry
title lines above the header. Codes are CN 8-digit lines; partners are named in Chinese or English and
resolved by warehouse.partners. Values are in yuan (人民币) or US dollars (美元): yuan are converted in
staging with the monthly rate table you supply (see warehouse.fx).

Exports or imports: a 进出口 / flow column when there is one, otherwise the file name (出口 / export -> X,
进口 / import -> M). A query run as "累计" (year-to-date) gives cumulative figures: such a file is
recognised by 累计 / ytd / cumulative in its name or its value header, loaded as year-to-date, and turned
into months in staging (month m = YTD(m) - YTD(m-1)); the load note says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from warehouse.files import IngestError, header_names, read_rows
from warehouse.national import canonical_frame, prepared_records, original_record
from warehouse.raw_load import Prepared
from warehouse.partners import attach_partners

FORMAT = "gacc"

# canonical field -> header names (normalised by _norm: lower case, no spaces or brackets).
FIELDS: dict[str, tuple[str, ...]] = {
    "period": ("数据年月", "日期", "年月", "dateofdata", "datayearandmonth", "yearandmonth", "yearmonth", "period", "date"),
    "code": ("商品编码", "commoditycode", "hscode", "productcode"),
    "name": ("商品名称", "commodityname", "productname", "commodity"),
    "partner_code": ("贸易伙伴编码", "tradingpartnercode", "partnercode", "countrycode"),
    "partner_name": ("贸易伙伴名称", "贸易伙伴", "tradingpartnername", "tradingpartner", "partnername", "partner", "country"),
    "qty1": ("第一数量", "firstquantity", "quantity1", "quantity"),
    "unit1": ("第一计量单位", "firstunit", "unit1", "firstunitofmeasurement", "unit"),
    "qty2": ("第二数量", "secondquantity", "quantity2"),
    "unit2": ("第二计量单位", "secondunit", "unit2"),
    "value_cny": ("人民币", "人民币元", "累计人民币", "rmb", "valuermb", "rmbyuan", "cny", "valuecny"),
    "value_usd": ("美元", "累计美元", "usdollar", "usd", "valueusd", "usdollars", "valueus$", "us$"),
    "flow": ("进出口", "贸易流向", "flow", "importexport", "tradeflow"),
}
FLOW_WORDS = {"出口": "X", "进口": "M", "EXPORT": "X", "EXPORTS": "X", "IMPORT": "M", "IMPORTS": "M", "X": "X", "M": "M"}
# Units as GACC writes them -> the unit codes of warehouse.national.QTY_UNITS.
UNITS = {"千克": "KG", "公斤": "KG", "吨": "T", "克": "G", "kilogram": "KG", "kilograms": "KG", "kg": "KG",
         "ton": "T", "tons": "T", "tonne": "T", "gram": "G", "g": "G"}


def _norm(name: str) -> str:
    return re.sub(r"[\s_()（）\-:：/\[\]]", "", str(name).lower())


def _header_index(rows: list[list[str]]) -> int | None:
    for n, row in enumerate(rows[:30]):
        names = {_norm(c) for c in row if c}
        if names & set(FIELDS["code"]) and names & set(FIELDS["partner_name"] + FIELDS["partner_code"]):
            return n
    return None


def looks_like_gacc(head: str) -> bool:
    rows = [line.split(",") for line in head.splitlines()[:30]]
    return _header_index([[c.strip().strip('"') for c in r] for r in rows]) is not None


def _read(path: Path) -> tuple[pl.DataFrame, int]:
    """All cells as text with `source_row` (file line / sheet row), and the header's row index."""
    raw = read_rows(path)
    cells = raw.drop("source_row").rows()
    header_at = _header_index([[c or "" for c in row] for row in cells])
    if header_at is None:
        raise IngestError(f"{path}: no header with 商品编码 (commodity code) and 贸易伙伴 (trading partner) "
                          "in the first 30 rows")
    names = header_names(cells[header_at])
    body = raw.slice(header_at + 1)
    body = body.rename(dict(zip([c for c in raw.columns if c != "source_row"], names)))
    body = body.filter(pl.any_horizontal(pl.col(names).is_not_null() & (pl.col(names).str.strip_chars() != "")))
    return body, header_at


def prepare_gacc_file(path: Path) -> Prepared:
    frame, header_at = _read(path)
    columns = [c for c in frame.columns if c != "source_row"]
    by_norm = {_norm(c): c for c in columns}
    col = {field: next((by_norm[a] for a in aliases if a in by_norm), None) for field, aliases in FIELDS.items()}
    missing = [f for f in ("period", "code") if col[f] is None]
    if col["partner_name"] is None and col["partner_code"] is None:
        missing.append("partner (贸易伙伴名称)")
    if col["value_cny"] is None and col["value_usd"] is None:
        missing.append("value (人民币 or 美元)")
    if missing:
        raise IngestError(f"{path}: a China customs export needs {', '.join(missing)}; header found on "
                          f"row {header_at + 1}: {', '.join(columns)}")
    name_lower = path.name.lower()
    ytd = any(w in name_lower for w in ("累计", "ytd", "cumulative")) or any(
        "累计" in (col[f] or "") for f in ("value_cny", "value_usd"))
    if col["flow"] is not None:
        flow = pl.col(col["flow"]).str.strip_chars().str.to_uppercase().replace_strict(FLOW_WORDS, default=pl.col(col["flow"]))
    else:
        hits = {v for k, v in FLOW_WORDS.items() if len(k) > 1 and k.lower() in name_lower}
        if len(hits) != 1:
            raise IngestError(
                f"{path}: cannot tell exports from imports: the file has no 进出口 (flow) column and its name "
                "says neither 出口/export nor 进口/import. Rename it, e.g. gacc_exports_202401.csv.")
        flow = pl.lit(hits.pop())
    currency, value_col = ("USD", col["value_usd"]) if col["value_usd"] else ("CNY", col["value_cny"])
    partner_col = col["partner_name"] or col["partner_code"]
    frame = attach_partners(frame, pl.col(partner_col))
    unit = pl.col(col["unit1"]).str.strip_chars() if col["unit1"] else pl.lit(None, dtype=pl.String)
    canonical = canonical_frame(frame, {
        "record": original_record(columns),
        "frequency": pl.lit("M"),
        "period_text": pl.col(col["period"]),
        "is_ytd": pl.lit("true" if ytd else "false"),
        "reporter_iso3": pl.lit("CHN"),
        "partner_label": pl.col("_partner"),
        "partner_code_native": pl.col(col["partner_code"]) if col["partner_code"] else pl.lit(None),
        "partner_iso3": pl.col("partner_iso3"),
        "partner_kind": pl.col("partner_kind"),
        "partner_how": pl.col("partner_how"),
        "flow": flow,
        # Spreadsheets turn codes into numbers ("81129210.0"); a CN code is the digits before any decimal point.
        "commodity_code": pl.col(col["code"]).str.replace(r"\.0+$", ""),
        "code_system": pl.lit("CN8"),
        "value": pl.col(value_col),
        "currency": pl.lit(currency),
        "value_scale": pl.lit("1"),
        # China values exports FOB and imports CIF.
        "value_basis": pl.when(flow == "M").then(pl.lit("CIF")).otherwise(pl.lit("FOB")),
        "value_measure": pl.lit("customs statistics"),
        "qty": pl.col(col["qty1"]) if col["qty1"] else pl.lit(None),
        "qty_unit": unit.replace_strict(UNITS, default=unit),
    })
    notes = [f"values in {'US dollars' if currency == 'USD' else 'yuan (RMB), converted in staging'}"]
    if ytd:
        notes.append("year-to-date (累计) figures: months derived in staging as YTD(m) - YTD(m-1)")
    if header_at:
        notes.append(f"header on row {header_at + 1}")
    return prepared_records(path, canonical, source="gacc", file_format=FORMAT, notes="; ".join(notes))
