"""The sample world as the national sources publish it: US Census API JSON, China customs (GACC) CSV in
yuan with a rate table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pycountry

from worlds.sample import generate, write_truth
from worlds.stories import END, START, _months

# Census writes partner names its own way; the others are pycountry's names in capitals.
CENSUS_NAMES = {"KOR": "KOREA, SOUTH", "RUS": "RUSSIA", "TWN": "TAIWAN", "VNM": "VIETNAM", "GBR": "UNITED KINGDOM",
                "ARE": "UNITED ARAB EMIRATES", "CZE": "CZECH REPUBLIC", "TUR": "TURKEY", "HKG": "HONG KONG",
                "LAO": "LAOS", "BOL": "BOLIVIA", "CHN": "CHINA", "IRN": "IRAN"}
# China's customs names that pycountry's zh_CN table words differently.
GACC_NAMES = {"HKG": "中国香港", "TWN": "中国台湾", "RUS": "俄罗斯联邦", "USA": "美国", "GBR": "英国", "BOL": "玻利维亚"}
RATE_SOURCE = "synthetic rates for the sample world (not real exchange rates)"


def _english_name(iso3: str) -> str:
    c = pycountry.countries.get(alpha_3=iso3)
    return CENSUS_NAMES.get(iso3) or getattr(c, "common_name", c.name).upper()


def _chinese_name(iso3: str) -> str:
    import gettext

    if iso3 in GACC_NAMES:
        return GACC_NAMES[iso3]
    zh = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"])
    c = pycountry.countries.get(alpha_3=iso3)
    return zh.gettext(getattr(c, "common_name", None) or c.name)


def _rounded(frame: pl.DataFrame) -> pl.DataFrame:
    """kg and USD rounded as the Comtrade files round them, so the two formats carry the same numbers."""
    return frame.with_columns(kg=(pl.col("tonnes") * 1000).round(1), usd=pl.col("usd").round(0))


def write_national_world(out_dir: Path, seed: int = 7) -> dict[str, Path]:
    """The same world as `write_sample_world`, as the national sources publish it.

    US side: US Census API responses (imports, HS6 level), one per year, with the total and a grouping row.
    China side: China customs (GACC) CSV exports in Chinese, values in yuan with a rate table beside them;
    2019-2024 as monthly figures, 2025 as a year-to-date (累计) file, as analysts download it mid-year."""
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cn, us = (_rounded(f) for f in generate(seed))
    months = _months()
    rates = pl.DataFrame({
        "period": [f"{m.year}-{m.month:02d}" for m in months],
        "currency": "CNY",
        "units_per_usd": [round(6.9 + 0.3 * np.sin(i / 9), 4) for i in range(len(months))],
        "source": RATE_SOURCE,
    })
    rates.write_csv(data_dir / "cny_usd_rates.csv")
    paths: dict[str, Path] = {"data_dir": data_dir, "rates": data_dir / "cny_usd_rates.csv",
                              "truth": write_truth(out_dir, seed)}

    # Gallium and germanium: the national lines separate what HS6 811292 holds together (a fixed 60/40 split).
    def split_metals(frame: pl.DataFrame, gallium: str, germanium: str, default_suffix: str) -> pl.DataFrame:
        ga = frame.filter(pl.col("hs_code") == "811292").with_columns(
            pl.col("usd", "kg").mul(0.6).round(1).name.keep(), line=pl.lit(gallium))
        ge = frame.filter(pl.col("hs_code") == "811292").join(
            ga.select("period", "partner_iso3", pl.col("usd").alias("ga_usd"), pl.col("kg").alias("ga_kg")),
            on=["period", "partner_iso3"]).with_columns(
            (pl.col("usd") - pl.col("ga_usd")).round(1).alias("usd"), (pl.col("kg") - pl.col("ga_kg")).round(1).alias("kg"),
            line=pl.lit(germanium)).drop("ga_usd", "ga_kg")
        rest = frame.filter(pl.col("hs_code") != "811292").with_columns(line=pl.col("hs_code") + default_suffix)
        return pl.concat([rest, ga, ge], how="diagonal_relaxed")

    # US Census API: array of arrays, header first, every value a string. HTS10 lines for gallium
    # (8112921000) and germanium (8112926000); the other products at HS6.
    us = split_metals(us, "8112921000", "8112926000", "")
    us = us.with_columns(name=pl.col("partner_iso3").replace_strict({i: _english_name(i) for i in us["partner_iso3"].unique()}))
    header = ["CTY_NAME", "I_COMMODITY", "COMM_LVL", "GEN_VAL_MO", "GEN_QY1_MO", "UNIT_QY1", "time"]
    for year in range(START.year, END.year + 1):
        part = us.filter(pl.col("period").dt.year() == year).sort("period", "hs_code", "partner_iso3")
        total = part.group_by("period", "line").agg(pl.col("usd").sum(), pl.col("kg").sum()).with_columns(
            name=pl.lit("TOTAL FOR ALL COUNTRIES"))
        body = pl.concat([part.select(total.columns), total]).sort("period", "line", "name")
        body = body.with_columns(level=pl.lit("HS") + pl.col("line").str.len_chars().cast(pl.String),
                                 time=pl.col("period").dt.strftime("%Y-%m"),
                                 usd=pl.col("usd").round(1).cast(pl.String), kg=pl.col("kg").round(1).cast(pl.String))
        records = [list(r) for r in body.select("name", "line", "level", "usd", "kg", pl.lit("KG"), "time").rows()]
        path = data_dir / f"census_imports_{year}.json"
        path.write_text(json.dumps([header, *records]), encoding="utf-8")
        paths[f"census_{year}"] = path

    # China customs: Chinese headers, CN8 lines (the HS6 heading + "00"; gallium 81129210, germanium 81129220), yuan.
    cn = split_metals(cn, "81129210", "81129220", "00")
    names = {i: _chinese_name(i) for i in cn["partner_iso3"].unique()}
    cn = (cn.with_columns(ym=pl.col("period").dt.strftime("%Y-%m"))
          .join(rates.select(pl.col("period").alias("ym"), "units_per_usd"), on="ym")
          .with_columns(rmb=(pl.col("usd") * pl.col("units_per_usd")).round(2),
                        name=pl.col("partner_iso3").replace_strict(names), cn8=pl.col("line"))
          .sort("period", "cn8", "partner_iso3"))
    monthly = cn.filter(pl.col("period").dt.year() < 2025)
    # Year-to-date: a partner stays listed, with an unchanged total, in a month it did not trade.
    y25 = cn.filter(pl.col("period").dt.year() == 2025)
    grid = (y25.select("cn8", "partner_iso3", "name").unique()
            .join(y25.select("period").unique(), how="cross")
            .join(y25.select("cn8", "partner_iso3", "period", "rmb", "kg"), on=["cn8", "partner_iso3", "period"], how="left")
            .with_columns(pl.col("rmb", "kg").fill_null(0.0)))
    ytd = (grid.with_columns(pl.col("rmb").cum_sum().over("cn8", "partner_iso3", order_by="period").round(2),
                             pl.col("kg").cum_sum().over("cn8", "partner_iso3", order_by="period").round(1))
           .filter(pl.col("rmb") > 0).sort("period", "cn8", "partner_iso3"))
    for label, frame in (("出口_月度_2019-2024", monthly), ("出口_累计_2025", ytd)):
        out = frame.select(
            pl.col("period").dt.strftime("%Y%m").alias("数据年月"), pl.col("cn8").alias("商品编码"),
            pl.lit("").alias("商品名称"), pl.lit("").alias("贸易伙伴编码"), pl.col("name").alias("贸易伙伴名称"),
            pl.col("kg").round(1).alias("第一数量"), pl.lit("千克").alias("第一计量单位"),
            pl.lit(None, dtype=pl.String).alias("第二数量"), pl.lit(None, dtype=pl.String).alias("第二计量单位"),
            pl.col("rmb").alias("人民币"))
        path = data_dir / f"海关统计_{label}.csv"
        out.write_csv(path)
        paths[label] = path
    return paths
