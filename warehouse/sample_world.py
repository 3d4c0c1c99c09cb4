"""The bundled sample world: monthly China-reported exports and US-reported imports, 2019-01 to 2025-06,
in UN Comtrade+ formats (a bulk-download CSV for China, an API JSON for the US), with planted
transshipment routes and the legitimate look-alikes that make the job hard. Seeded and deterministic.

The truth (which routes were planted, which are look-alikes) is written apart from the data, so that a
run over the data folder cannot see it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pycountry

START, END = date(2019, 1, 1), date(2025, 6, 1)
BAN = date(2024, 12, 1)

# HS6 code -> (mineral, China->world t/month before controls, US-from-world t/month, USD/kg before the surge)
PRODUCTS: dict[str, tuple[str, float, float, float]] = {
    "282580": ("antimony", 3000.0, 1500.0, 11.0),
    "811010": ("antimony", 700.0, 450.0, 12.0),
    "261710": ("antimony", 300.0, 120.0, 4.0),
    "811292": ("gallium_germanium", 12.0, 6.0, 400.0),
    "282560": ("gallium_germanium", 8.0, 3.0, 900.0),
}
# The catalogue's volume floor per scoring window, in tonnes (warehouse/catalogue/minerals.toml).
FLOOR_T = {"antimony": 20.0, "gallium_germanium": 0.5}
# The real partner structure (generate(real_background=True), the harness worlds): per mineral, the spread
# of partner sizes (standard deviation of log USD value per partner) of China's exports and of US imports,
# and the share of China's partners that also sell to the US. Measured on CEPII BACI V202601, 2019-2023
# means per partner (../shared/data/real/baci-critical-2002-2024; tests/warehouse/test_sample_world.py
# measures them again): 811010 for antimony (64 partners of China, 30 of the US), 811292 for gallium and
# germanium (72 and 46). In BACI the five largest partners carry 64-79 % of each side; with these spreads
# over the sample world's 50 partners, 87-92 % of China's exports (the demo world's spreads of 1.2-1.3:
# about half).
REAL_PARTNER_SPREAD: dict[str, tuple[float, float, float]] = {
    "antimony": (2.73, 2.55, 30 / 64),
    "gallium_germanium": (3.41, 2.56, 46 / 72),
}
PARTNERS = (
    "THA MEX VNM MYS BOL TJK OMN IND BEL JPN LAO KOR DEU NLD GBR FRA ITA ESP CAN BRA ARG CHL PER TUR RUS "
    "KAZ SAU ARE ISR EGY ZAF NGA AUS NZL IDN PHL SGP PAK BGD LKA POL CZE AUT SWE FIN NOR CHE HKG TWN KHM"
).split()


@dataclass(frozen=True)
class Story:
    """One route's story. Planted routes carry their own shape; look-alikes follow their kind's recipe."""

    hub_iso3: str
    hs_code: str
    kind: str  # planted | producer_surge | hub_demand_surge | price_surge | one_off | tiny_route
    description: str
    start: str  # first month of the hub->US surge (YYYY-MM)
    extra_cn_t: float = 0.0  # planted: extra China->hub tonnes per month
    extra_us_t: float = 0.0  # planted: extra hub->US tonnes per month (extra_cn_t x pass-through)
    lag: int = 0  # planted: months between China's shipment and the hub's
    months: int = 0  # planted: length of the surge
    existing_cn_t: float = 0.0  # planted on an existing trade: its China->hub tonnes per month
    existing_us_t: float = 0.0  # ... and its hub->US tonnes per month
    brand_new: bool = False  # planted: the hub shipped none of the product to the US before
    size_class: str = ""  # planted: large | medium | small (barely above noise) | faint (at or below the floor)
    ramp: int = 0  # planted: months the surge takes to reach its size (0: at once)
    lumpy: bool = False  # planted: the surge arrives as shipments (a Poisson number of lots a month)
    split_with: str = ""  # planted: the other hub a route split over two hubs also runs through

    @property
    def mineral(self) -> str:
        return PRODUCTS[self.hs_code][0]

    @property
    def end(self) -> str:
        """Last month of the hub->US surge (planted), else the start month."""
        i = _month_index(self.start) + max(self.months - 1, 0)
        return f"{START.year + i // 12}-{i % 12 + 1:02d}"


STORIES = (
    Story("THA", "282580", "planted", "antimony oxides via Thailand after the ban (the reported case), lag 1 month",
          "2024-12", 470.0, 460.0, 1, 7, size_class="large"),
    Story("MEX", "282580", "planted", "antimony oxides via Mexico after the ban (the reported case), no lag",
          "2024-12", 320.0, 307.0, 0, 7, size_class="large"),
    Story("VNM", "811292", "planted", "gallium/germanium via Viet Nam, lag 2 months, 90% pass-through",
          "2025-01", 1.6, 1.45, 2, 6, size_class="large"),
    Story("MYS", "811010", "planted", "antimony metal via Malaysia, grown on an existing trade, 80% pass-through",
          "2025-01", 45.0, 36.0, 1, 6, 30.0, 10.0, size_class="medium"),
    Story("BOL", "811010", "producer_surge", "Bolivian producer sells more antimony metal to the US; no China leg", "2024-12"),
    Story("TJK", "261710", "producer_surge", "Tajik antimony ore to the US surges; no China leg", "2025-01"),
    Story("OMN", "282580", "producer_surge", "Omani smelter's oxide exports to the US surge; no China leg", "2024-12"),
    Story("IND", "282580", "hub_demand_surge", "India buys more Chinese oxide for its own use; India->US flat", "2024-10"),
    Story("BEL", "811010", "price_surge", "steady volumes both legs; US dollar values rise with the world price", "2023-07"),
    Story("JPN", "282580", "one_off", "one lump China->Japan and one Japan->US a month later", "2025-01"),
    Story("LAO", "282580", "tiny_route", "a few hundred kg to a few tonnes: ratios explode, volume does not", "2025-01"),
)
LOOKALIKE_KINDS = ("producer_surge", "hub_demand_surge", "price_surge", "one_off", "tiny_route")


def _month_text(i: int) -> str:
    return f"{START.year + (START.month - 1 + i) // 12}-{(START.month - 1 + i) % 12 + 1:02d}"


LOOKALIKE_WORDS = {
    "producer_surge": "a producer sells more to the US; no China leg",
    "hub_demand_surge": "the hub buys more from China for its own use; hub->US flat",
    "price_surge": "steady volumes on both legs; dollar values rise with the world price",
    "one_off": "one lump China->hub and one hub->US a month later",
    "tiny_route": "a route below the volume floor: ratios explode, volume does not",
}
SIZE_SHARES = {"large": (0.10, 0.30), "medium": (0.03, 0.10)}


def random_stories(seed: int) -> tuple[Story, ...]:
    """A varied world for the evaluation harness: 3 to 6 planted routes and one look-alike of each kind.

    Planted routes vary in hub, product, start month (seven in ten around the December 2024 ban, 2024-09 to
    2025-02; the rest from 2020-06 on, so some have only 17 months of history before them), size (extra
    hub->US tonnes per month as a share of the product's US imports: large 10-30 %, medium 3-10 %; small:
    1.5 to 4 of the mineral's volume floors over five months; faint: 0.5 to 1.5 floors, at or under what
    the catalogue calls noise), lag (0-4 months), pass-through (40-100 %), length (3-9 months), a ramp
    (none, or 1-3 months to full size), whether the goods arrive as lumpy shipments, and kind: brand-new
    (no hub->US trade before), grown on an existing trade (as large as half to twice the surge, noisy), or
    on the hub's ordinary background. About one route in seven is split over two hubs (each planted, each
    carrying half). Every story has its own hub."""
    rng = np.random.default_rng(10_000 + seed)
    hubs = [str(h) for h in rng.permutation(PARTNERS)]
    codes = list(PRODUCTS)
    first, last = _month_index("2020-06"), _month_index("2025-02")
    around_ban = _month_index("2024-09")
    stories: list[Story] = []
    for _ in range(int(rng.integers(3, 7))):
        hub, hs = hubs.pop(), codes[int(rng.integers(len(codes)))]
        size = str(rng.choice(["large", "medium", "small", "faint"], p=[0.3, 0.3, 0.25, 0.15]))
        if size in ("small", "faint"):  # in volume floors over five months
            low, high = (1.5, 4.0) if size == "small" else (0.5, 1.5)
            extra_us = round(FLOOR_T[PRODUCTS[hs][0]] / 5 * float(rng.uniform(low, high)), 3)
        else:
            extra_us = round(PRODUCTS[hs][2] * float(rng.uniform(*SIZE_SHARES[size])), 3)
        pass_through = float(rng.uniform(0.4, 1.0))
        lag, months = int(rng.integers(0, 5)), int(rng.integers(3, 10))
        start_i = int(rng.integers(around_ban, last + 1)) if rng.random() < 0.7 else int(rng.integers(first, around_ban))
        start = _month_text(start_i)
        shape = str(rng.choice(["brand-new", "existing", "background"]))
        existing = (extra_us / pass_through * float(rng.uniform(0.5, 2.0)), extra_us * float(rng.uniform(0.5, 2.0))) \
            if shape == "existing" else (0.0, 0.0)
        ramp = int(rng.integers(1, 4)) if rng.random() < 0.4 else 0
        lumpy = bool(rng.random() < 0.3)
        split = bool(rng.random() < 0.15)
        words = {"brand-new": "brand-new route", "existing": "grown on an existing trade",
                 "background": "on the hub's ordinary trade"}[shape]
        ways = [hub, hubs.pop()] if split else [hub]
        for i, way in enumerate(ways):
            share = 1 / len(ways)
            other = ways[1 - i] if split else ""
            stories.append(Story(
                way, hs, "planted",
                f"{size} route via {way}, {words}, lag {lag}, {pass_through:.0%} pass-through, {months} months"
                + (f", ramp {ramp} months" if ramp else "") + (", lumpy shipments" if lumpy else "")
                + (f", split with {other}" if other else ""),
                start, round(extra_us / pass_through * share, 3), round(extra_us * share, 3), lag, months,
                round(existing[0], 3), round(existing[1], 3), shape == "brand-new", size, ramp, lumpy, other))
    for kind in LOOKALIKE_KINDS:
        hub, hs = hubs.pop(), codes[int(rng.integers(len(codes)))]
        stories.append(Story(hub, hs, kind, LOOKALIKE_WORDS[kind], _month_text(int(rng.integers(first, last + 1)))))
    return tuple(stories)


def _months() -> list[date]:
    out, y, m = [], START.year, START.month
    while (y, m) <= (END.year, END.month):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _month_index(text: str) -> int:
    y, m = map(int, text.split("-"))
    return (y - START.year) * 12 + (m - START.month)


def _m49(iso3: str) -> int:
    return {"USA": 842, "TWN": 490}.get(iso3) or int(pycountry.countries.get(alpha_3=iso3).numeric)


# Goods that share an HS6 line with gallium and germanium (indium, niobium, vanadium, rhenium in 811292;
# zirconium dioxide in 282560): tonnes a month per tonne of the metals, and their USD/kg. 811292 from CEPII
# BACI 2024 (US imports 803 t, USD 413/kg on average, against about 72 t a year of the metals here); 282560
# an assumption (zirconia is bulk and cheap; the shared BACI subset does not hold the line). The harness's
# worlds carry them (generate(shared_lines=True)): a route of a few hundred kg of gallium is small against
# its line in weight and in value.
OTHER_IN_LINE = {"811292": (10.0, 300.0), "282560": (30.0, 6.0)}


def generate(seed: int = 7, stories: tuple[Story, ...] = STORIES, shared_lines: bool = False,
             real_background: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """China-reported exports and US-reported imports (tonnes and USD by partner, code and month).
    shared_lines: add the other goods of gallium's and germanium's HS6 lines (OTHER_IN_LINE), drawn with
    a generator of their own (the rest of the world stays as without them). real_background: partner sizes
    as concentrated as in the real trade (REAL_PARTNER_SPREAD: a few large partners, a long tail of small
    ones whose months are mostly empty) instead of the demo world's milder spread."""
    rng = np.random.default_rng(seed)
    other_rng = np.random.default_rng(seed + 500_000)
    months = _months()
    n_t = len(months)
    t = np.arange(n_t)
    ban_i = _month_index(f"{BAN.year}-{BAN.month:02d}")
    sep24 = _month_index("2024-09")
    aug23 = _month_index("2023-08")

    cn_rows, us_rows = [], []
    for hs, (mineral, cn_world, us_world, price0) in PRODUCTS.items():
        # World price: antimony from ~11 to ~50 USD/kg (mid-2023 to early 2025); Ga/Ge doubles after Aug 2023.
        if mineral == "antimony":
            ramp = np.clip((t - _month_index("2023-07")) / (_month_index("2025-03") - _month_index("2023-07")), 0, 1)
            price = price0 * (1 + ramp * (50 / 11 - 1))
        else:
            price = price0 * np.where(t >= aug23, 1.8, 1.0)
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
                    cn = cn * 0.2
                    us = us + (us_world * 0.25) * (t >= s0) * rng.lognormal(0, 0.2, n_t)
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
                    tiny = FLOOR_T[mineral] / FLOOR_T["antimony"]
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
                cn, cn_usd = cn + other_cn, cn_usd + other_cn * 1000 * other_price
                us, us_usd = us + other_us, us_usd + other_us * 1000 * other_price * 1.04
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
            direct, direct_us, direct_usd = direct + other, direct_us + other, direct_usd + other * 1000 * other_price
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


# ---------------------------------------------------------------- the same world in national formats
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
