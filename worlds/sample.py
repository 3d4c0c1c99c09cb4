"""The bundled sample world: monthly China-reported exports and US-reported imports, 2019-01 to 2025-06,
in UN Comtrade+ formats (a bulk-download CSV for China, an API JSON for the US), with planted
transshipment routes and the legitimate look-alikes that make the job hard (worlds/stories.py). Seeded and
deterministic.

The truth (which routes were planted, which are look-alikes) is written apart from the data, so that a
run over the data folder cannot see it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl
import pycountry

from worlds.stories import (BAN, PARTNERS, PRODUCTS, REAL_PARTNER_SPREAD, STORIES, Story, _month_index, _months,
                            floor_t)

def _m49(iso3: str) -> int:
    return {"USA": 842, "TWN": 490}.get(iso3) or int(pycountry.countries.get(alpha_3=iso3).numeric)


# Goods that share an HS6 line with gallium and germanium (indium, niobium, vanadium, rhenium in 811292;
# zirconium dioxide in 282560): tonnes a month per tonne of the metals, and their USD/kg. 811292 from CEPII
# BACI 2024 (US imports 803 t, USD 413/kg on average, against about 72 t a year of the metals here); 282560
# an assumption (zirconia is bulk and cheap; the shared BACI subset does not hold the line). The harness's
# worlds carry them (generate(shared_lines=True)): a route of a few hundred kg of gallium is small against
# its line in weight and in value.
OTHER_IN_LINE = {"811292": (10.0, 300.0), "282560": (30.0, 6.0)}


# How much the other goods' unit value moves from month to month (the sd of a lognormal factor on their USD,
# each partner, leg and month): a line of several metals ships a different mix each month. In China's real
# monthly exports by partner (../shared/data/real/china-critical-mineral-comtrade, 811292, 250410 and
# 380110, partner-lines with 24 months of trade or more), the value beyond what the month's kilograms are
# worth at the line's average unit value has a spread of 25-31 % of the mean value at the 10th percentile
# and 55-65 % at the median; 0.3 sits at the 10th percentile. At a constant USD/kg (until 2026-12-07) a few
# hundred kilograms of gallium moved the line's unit value by more than any month of its history did: the
# harness then rewarded value evidence that real lines would drown (README, "The line's unit value").
OTHER_UNIT_VALUE_SPREAD = 0.3


def world_price(hs_code: str, t: np.ndarray) -> np.ndarray:
    """The product's world price (USD/kg) at month indices `t` (0 = the worlds' first month): antimony from ~11
    to ~50 USD/kg (mid-2023 to early 2025); gallium and germanium 1.8 times theirs from August 2023."""
    mineral, _, _, price0 = PRODUCTS[hs_code]
    if mineral == "antimony":
        ramp = np.clip((t - _month_index("2023-07")) / (_month_index("2025-03") - _month_index("2023-07")), 0, 1)
        return price0 * (1 + ramp * (50 / 11 - 1))
    return price0 * np.where(t >= _month_index("2023-08"), 1.8, 1.0)


def generate(seed: int = 7, stories: tuple[Story, ...] = STORIES, shared_lines: bool = False,
             real_background: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """China-reported exports and US-reported imports (tonnes and USD by partner, code and month).
    shared_lines: add the other goods of gallium's and germanium's HS6 lines (OTHER_IN_LINE), their unit
    values moving month to month (OTHER_UNIT_VALUE_SPREAD), drawn with generators of their own (the rest of
    the world stays as without them). real_background: partner sizes
    as concentrated as in the real trade (REAL_PARTNER_SPREAD: a few large partners, a long tail of small
    ones whose months are mostly empty) instead of the demo world's milder spread."""
    rng = np.random.default_rng(seed)
    other_rng = np.random.default_rng(seed + 500_000)
    other_uv_rng = np.random.default_rng(seed + 900_000)  # their unit values: the rest stays as it was
    months = _months()
    n_t = len(months)
    t = np.arange(n_t)
    ban_i = _month_index(f"{BAN.year}-{BAN.month:02d}")
    sep24 = _month_index("2024-09")
    aug23 = _month_index("2023-08")

    cn_rows, us_rows = [], []
    for hs, (mineral, cn_world, us_world, price0) in PRODUCTS.items():
        price = world_price(hs, t)
        # China's exports of the product shrink after the controls (antimony -88 % by mid-2025).
        start_cut = sep24 if mineral == "antimony" else aug23
        cut = 1 - 0.88 * np.clip((t - start_cut) / max(1, (n_t - 1 - start_cut)), 0, 1)

        spread_cn, spread_us, us_partners = REAL_PARTNER_SPREAD[mineral] if real_background else (1.2, 1.3, 0.45)
        sizes_cn = rng.lognormal(0, spread_cn, len(PARTNERS))
        sizes_cn = sizes_cn / sizes_cn.sum() * cn_world * 0.55
        us_share = rng.lognormal(0, spread_us, len(PARTNERS)) * (rng.random(len(PARTNERS)) < us_partners)
        us_share = us_share / max(us_share.sum(), 1e-9) * us_world * 0.45
        for i, hub in enumerate(PARTNERS):
            presence_cn = rng.random(n_t) < min(1.0, 0.35 + sizes_cn[i] / (cn_world * 0.02))
            cn = sizes_cn[i] * rng.lognormal(0, 0.3, n_t) * presence_cn * cut
            presence_us = rng.random(n_t) < min(1.0, 0.3 + us_share[i] / (us_world * 0.02))
            us = us_share[i] * rng.lognormal(0, 0.3, n_t) * presence_us
            key = (hub, hs)
            story = next((s for s in stories if (s.hub_iso3, s.hs_code) == key), None)
            if story is not None:
                s0 = _month_index(story.start)
                if story.kind == "planted":
                    extra_cn, extra_us, lag, length = story.extra_cn_t, story.extra_us_t, story.lag, story.months
                    if story.brand_new:  # the hub shipped none of it to the US before
                        us = np.zeros(n_t)
                    if story.existing_cn_t or story.existing_us_t:  # an existing trade to grow on
                        cn = cn + story.existing_cn_t * rng.lognormal(0, 0.2, n_t)
                        us = us + story.existing_us_t * rng.lognormal(0, 0.2, n_t)
                    # A ramp grows the surge linearly over its first `ramp` months.
                    grow_cn = np.clip((t - (s0 - lag) + 1) / (story.ramp + 1), 0, 1) if story.ramp else 1.0
                    grow_us = np.clip((t - s0 + 1) / (story.ramp + 1), 0, 1) if story.ramp else 1.0
                    on_cn = ((t >= s0 - lag) & (t < s0 - lag + length)) * grow_cn
                    on_us = ((t >= s0) & (t < s0 + length)) * grow_us
                    def surge(base: np.ndarray, lumpy: bool = story.lumpy) -> np.ndarray:
                        """base with its monthly noise; lumpy: a Poisson number of lots a month (mean 1.5),
                        the same mean tonnage."""
                        if lumpy:
                            return base * rng.poisson(1.5, n_t) / 1.5 * rng.lognormal(0, 0.4, n_t)
                        return base * rng.lognormal(0, 0.15, n_t)

                    cn = cn + surge(extra_cn * on_cn)
                    us = us + surge(extra_us * on_us)
                elif story.kind == "producer_surge":
                    # The producer buys cn_scale of an ordinary partner's from China, no more after its
                    # exports to the US surge by extra_us_t a month (the demo's: a quarter of the product's US
                    # imports).
                    cn = cn * story.cn_scale
                    surge_t = story.extra_us_t or us_world * 0.25
                    us = us + surge_t * (t >= s0) * rng.lognormal(0, 0.2, n_t)
                # Look-alike sizes scale with the product's US market (and the tiny route with the mineral's
                # volume floor), so that a recipe means the same on oxide and on gallium.
                elif story.kind == "hub_demand_surge":
                    cn = cn + cn_world * 0.12 * (t >= s0) * rng.lognormal(0, 0.2, n_t)
                    us = np.full(n_t, us_world * 20 / 1500) * rng.lognormal(0, 0.3, n_t)
                elif story.kind == "price_surge":
                    cn = np.full(n_t, us_world * 40 / 450) * rng.lognormal(0, 0.15, n_t)
                    us = np.full(n_t, us_world * 35 / 450) * rng.lognormal(0, 0.15, n_t)
                elif story.kind == "one_off":
                    cn = cn + us_world * 500 / 1500 * (t == s0)
                    us = us + us_world * 450 / 1500 * (t == s0 + 1)
                elif story.kind == "tiny_route":
                    tiny = floor_t(mineral) / floor_t("antimony")
                    cn = np.where(t >= s0, 2.0 * tiny, 0.05 * tiny) * rng.lognormal(0, 0.3, n_t)
                    us = np.where(t >= s0, 1.5 * tiny, 0.0) * rng.lognormal(0, 0.3, n_t)
            uv_noise_cn = rng.lognormal(0, 0.08, n_t)
            uv_noise_us = rng.lognormal(0, 0.08, n_t)
            cn_usd, us_usd = cn * 1000 * price * uv_noise_cn, us * 1000 * price * 1.04 * uv_noise_us
            if shared_lines and hs in OTHER_IN_LINE:
                ratio, other_price = OTHER_IN_LINE[hs]

                def other_goods(world_t: float, share: float) -> np.ndarray:
                    """A partner's tonnes a month of the line's other goods (`share` of the world's), present in
                    85 % of months."""
                    return (world_t * ratio * share * other_rng.lognormal(0, 1.5)
                            * other_rng.lognormal(0, 0.3, n_t) * (other_rng.random(n_t) < 0.85))

                other_cn = other_goods(cn_world, 0.55 / len(PARTNERS))
                other_us = other_goods(us_world, 0.45 / len(PARTNERS))
                cn_uv = other_price * other_uv_rng.lognormal(0, OTHER_UNIT_VALUE_SPREAD, n_t)
                us_uv = other_price * other_uv_rng.lognormal(0, OTHER_UNIT_VALUE_SPREAD, n_t)
                cn, cn_usd = cn + other_cn, cn_usd + other_cn * 1000 * cn_uv
                us, us_usd = us + other_us, us_usd + other_us * 1000 * us_uv * 1.04
            cn_rows.append(pl.DataFrame({
                "period": months, "partner_iso3": hub, "hs_code": hs, "tonnes": cn, "usd": cn_usd,
            }))
            us_rows.append(pl.DataFrame({
                "period": months, "partner_iso3": hub, "hs_code": hs, "tonnes": us, "usd": us_usd,
            }))
        # The direct route: large before the controls, gone after the ban.
        direct = us_world * 0.5 * np.where(t < start_cut, 1.0, np.where(t < ban_i, 0.5, 0.0)) * rng.lognormal(0, 0.2, n_t)
        direct_usd = direct * 1000 * price
        direct_us = direct * rng.lognormal(0, 0.05, n_t)
        if shared_lines and hs in OTHER_IN_LINE:  # the line's other goods are not controlled: they keep flowing
            ratio, other_price = OTHER_IN_LINE[hs]
            other = us_world * ratio * 0.3 * other_rng.lognormal(0, 0.2, n_t)
            other_uv = other_price * other_uv_rng.lognormal(0, OTHER_UNIT_VALUE_SPREAD, n_t)
            direct, direct_us, direct_usd = direct + other, direct_us + other, direct_usd + other * 1000 * other_uv
        cn_rows.append(pl.DataFrame({"period": months, "partner_iso3": "USA", "hs_code": hs,
                                     "tonnes": direct, "usd": direct_usd}))
        us_rows.append(pl.DataFrame({"period": months, "partner_iso3": "CHN", "hs_code": hs,
                                     "tonnes": direct_us, "usd": direct_usd * 1.04}))
    cn_frame = pl.concat(cn_rows).filter(pl.col("tonnes") > 0.0005)
    us_frame = pl.concat(us_rows).filter(pl.col("tonnes") > 0.0005)
    return cn_frame, us_frame


def _comtrade_records(frame: pl.DataFrame, reporter_iso3: str, flow: str, rng: np.random.Generator) -> pl.DataFrame:
    """Comtrade+ columns, with the quirks real downloads have: World rows, exact duplicates, weights
    reported in tonnes instead of kg, missing net weights, an aggregate row."""
    codes = {iso: _m49(iso) for iso in frame["partner_iso3"].unique().to_list()}
    base = frame.with_columns(
        kg=(pl.col("tonnes") * 1000).round(1),
        usd=pl.col("usd").round(0),
        partnerCode=pl.col("partner_iso3").replace_strict(codes, return_dtype=pl.Int64),
    )
    world = base.group_by("period", "hs_code").agg(pl.col("kg").sum(), pl.col("usd").sum()).with_columns(
        partnerCode=pl.lit(0, dtype=pl.Int64), partner_iso3=pl.lit("W00"))
    recs = pl.concat([base.select(world.columns), world]).sort("hs_code", "period", "partnerCode")
    n = recs.height
    tonnes_unit = rng.random(n) < 0.02  # some records give qty in tonnes (unit 21) and no net weight
    null_weight = rng.random(n) < 0.01
    recs = recs.with_columns(
        typeCode=pl.lit("C"), freqCode=pl.lit("M"),
        refPeriodId=pl.col("period").dt.strftime("%Y%m%d").cast(pl.Int64),
        refYear=pl.col("period").dt.year(), refMonth=pl.col("period").dt.month(),
        period_txt=pl.col("period").dt.strftime("%Y%m"),
        reporterCode=pl.lit(_m49(reporter_iso3)), reporterISO=pl.lit(reporter_iso3),
        flowCode=pl.lit(flow), partnerISO=pl.col("partner_iso3"),
        partner2Code=pl.lit(0), cmdCode=pl.col("hs_code"), customsCode=pl.lit("C00"), motCode=pl.lit(0),
        qtyUnitCode=pl.when(pl.Series(tonnes_unit)).then(21).otherwise(8),
        qty=pl.when(pl.Series(tonnes_unit)).then((pl.col("kg") / 1000).round(3)).otherwise(pl.col("kg")),
        netWgt=pl.when(pl.Series(tonnes_unit | null_weight)).then(None).otherwise(pl.col("kg")),
        isReported=pl.lit(True), isAggregate=pl.lit(False),
    ).with_columns(
        cifvalue=(pl.col("usd") if flow == "M" else pl.lit(None, dtype=pl.Float64)),
        fobvalue=(pl.col("usd") if flow == "X" else pl.lit(None, dtype=pl.Float64)),
        primaryValue=pl.col("usd"),
    ).drop("period").rename({"period_txt": "period"})
    cols = ["typeCode", "freqCode", "refPeriodId", "refYear", "refMonth", "period", "reporterCode", "reporterISO",
            "flowCode", "partnerCode", "partnerISO", "partner2Code", "cmdCode", "customsCode", "motCode",
            "qtyUnitCode", "qty", "netWgt", "cifvalue", "fobvalue", "primaryValue", "isReported", "isAggregate"]
    recs = recs.select(cols)
    dup_idx = np.sort(rng.choice(n, size=min(25, n), replace=False))
    aggregate = recs.head(1).with_columns(cmdCode=pl.lit("2825"), isAggregate=pl.lit(True), partnerCode=pl.lit(0, dtype=pl.Int64),
                                          partnerISO=pl.lit("W00"))
    return pl.concat([recs, recs[dup_idx.tolist()], aggregate])


def write_sample_world(out_dir: Path, seed: int = 7, stories: tuple[Story, ...] = STORIES,
                       hold_back: int = 0, shared_lines: bool = False,
                       real_background: bool = False) -> dict[str, Path]:
    """Write the data files into out_dir/data and the truth beside it (out_dir/truth.json).

    hold_back: keep the last N months out of out_dir/data and write each as its own monthly release,
    out_dir/releases/YYYY-MM/ (China's bulk CSV and the US API JSON for that month), as an operator gets
    them one month at a time: copy one into the data folder and run again to see an incremental run."""
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    cn, us = generate(seed, stories, shared_lines, real_background)
    months = _months()
    cutoff = months[len(months) - hold_back] if hold_back else None
    paths: dict[str, Path] = {"data_dir": data_dir, "truth": write_truth(out_dir, seed, stories)}
    parts = [("2019-2025" if not hold_back else f"2019-{cutoff.year}", data_dir, None, cutoff)]
    for month in months[len(months) - hold_back:] if hold_back else []:
        text = f"{month.year}-{month.month:02d}"
        parts.append((text, out_dir / "releases" / text, month, month))
    for label, folder, first, until in parts:
        folder.mkdir(parents=True, exist_ok=True)
        keep = pl.lit(True)
        if first is not None:
            keep = keep & (pl.col("period") >= first)
        if until is not None:
            keep = keep & (pl.col("period") <= until) if first is not None else keep & (pl.col("period") < until)
        cn_recs = _comtrade_records(cn.filter(keep), "CHN", "X", rng)
        us_recs = _comtrade_records(us.filter(keep), "USA", "M", rng)
        china_csv = folder / f"comtrade_CHN_X_monthly_{label}.csv"
        us_json = folder / f"comtrade_USA_M_monthly_{label}.json"
        cn_recs.write_csv(china_csv)
        us_json.write_text(json.dumps({"elapsedTime": "0.42 secs", "count": us_recs.height,
                                       "data": us_recs.to_dicts()}, default=str), encoding="utf-8")
        if first is None:
            paths.update(china=china_csv, us=us_json)
        else:
            paths[f"release_{label}"] = folder
    return paths


def write_truth(out_dir: Path, seed: int, stories: tuple[Story, ...] = STORIES) -> Path:
    """The stories of the world (planted routes and look-alikes), beside the data folder, never in it."""
    truth = Path(out_dir) / "truth.json"
    truth.write_text(json.dumps({"seed": seed, "stories": [asdict(s) | {"mineral": s.mineral, "end": s.end}
                                                            for s in stories]}, indent=2), encoding="utf-8")
    return truth
