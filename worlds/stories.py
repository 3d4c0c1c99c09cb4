"""The stories a simulated world is made of: planted rerouting routes and the legitimate look-alikes, for
the bundled sample world (STORIES, seed 7) and the harness's random worlds (random_stories). Seeded and
deterministic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np

START, END = date(2019, 1, 1), date(2025, 6, 1)
BAN = date(2024, 12, 1)
# The first month the harness's evaluation reads scores from (flows.harness.seeded.EVAL_FIRST; the shared
# scoring tool's too, `score_worlds.py`: a route's score is its highest from 2021-01). No story of a random
# world starts before it: a planted route whose months all came before it (2020-09 to 2020-11, say) would
# count as missed whatever the scorer, and a look-alike there would fool none.
FIRST_EVALUATED = "2021-01"

# HS6 code -> (mineral, China->world t/month before controls, US-from-world t/month, USD/kg before the surge)
PRODUCTS: dict[str, tuple[str, float, float, float]] = {
    "282580": ("antimony", 3000.0, 1500.0, 11.0),
    "811010": ("antimony", 700.0, 450.0, 12.0),
    "261710": ("antimony", 300.0, 120.0, 4.0),
    "811292": ("gallium_germanium", 12.0, 6.0, 400.0),
    "282560": ("gallium_germanium", 8.0, 3.0, 900.0),
}


def _months() -> list[date]:
    out, y, m = [], START.year, START.month
    while (y, m) <= (END.year, END.month):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _month_index(text: str) -> int:
    y, m = map(int, text.split("-"))
    return (y - START.year) * 12 + (m - START.month)


@cache
def floor_t(mineral: str) -> float:
    """The bundled catalogue's volume floor per scoring window, in tonnes (warehouse/catalogue/minerals.toml)."""
    from warehouse.catalogue import load_catalogue

    floors = load_catalogue().minerals.select("mineral", "volume_floor_kg").rows()
    return {m: kg / 1000 for m, kg in floors}[mineral]

# The real partner structure (generate(real_background=True), the harness worlds): per mineral, the spread
# of partner sizes (standard deviation of log USD value per partner) of China's exports and of US imports,
# and the share of China's partners that also sell to the US. Measured on CEPII BACI V202601, 2019-2023
# means per partner (../shared/data/real/baci-critical-2002-2024; tests/worlds/test_sample.py
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
    extra_us_t: float = 0.0  # planted: extra hub->US tonnes per month (extra_cn_t x pass-through); producer_surge:
    # its extra exports to the US a month (0: a quarter of the product's US imports)
    lag: int = 0  # planted: months between China's shipment and the hub's
    months: int = 0  # planted: length of the surge
    existing_cn_t: float = 0.0  # planted on an existing trade: its China->hub tonnes per month
    existing_us_t: float = 0.0  # ... and its hub->US tonnes per month
    brand_new: bool = False  # planted: the hub shipped none of the product to the US before
    size_class: str = ""  # planted: large | medium | small (barely above noise) | faint (at or below the floor)
    ramp: int = 0  # planted: months the surge takes to reach its size (0: at once)
    lumpy: bool = False  # planted: the surge arrives as shipments (a Poisson number of lots a month)
    split_with: str = ""  # planted: the other hub a route split over two hubs also runs through
    cn_scale: float = 0.2  # producer_surge: its imports from China against an ordinary partner's, never rising

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
    Story("BOL", "811010", "producer_surge", "Bolivian producer sells more antimony metal to the US; it buys little from China, and no more", "2024-12"),
    Story("TJK", "261710", "producer_surge", "Tajik antimony ore to the US surges; it buys little from China, and no more", "2025-01"),
    Story("OMN", "282580", "producer_surge", "Omani smelter's oxide exports to the US surge; it buys little from China, and no more", "2024-12"),
    Story("IND", "282580", "hub_demand_surge", "India buys more Chinese oxide for its own use; India->US flat", "2024-10"),
    Story("BEL", "811010", "price_surge", "steady volumes both legs; US dollar values rise with the world price", "2023-07"),
    Story("JPN", "282580", "one_off", "one lump China->Japan and one Japan->US a month later", "2025-01"),
    Story("LAO", "282580", "tiny_route", "a few hundred kg to a few tonnes: ratios explode, volume does not", "2025-01"),
)
LOOKALIKE_KINDS = ("producer_surge", "hub_demand_surge", "price_surge", "one_off", "tiny_route")


def _month_text(i: int) -> str:
    return f"{START.year + (START.month - 1 + i) // 12}-{(START.month - 1 + i) % 12 + 1:02d}"


LOOKALIKE_WORDS = {
    "producer_surge": "a producer sells more to the US; its imports from China do not rise",
    "hub_demand_surge": "the hub buys more from China for its own use; hub->US flat",
    "price_surge": "steady volumes on both legs; dollar values rise with the world price",
    "one_off": "one lump China->hub and one hub->US a month later",
    "tiny_route": "a route below the volume floor: ratios explode, volume does not",
}
SIZE_SHARES = {"large": (0.10, 0.30), "medium": (0.03, 0.10)}


def random_stories(seed: int) -> tuple[Story, ...]:
    """A varied world for the evaluation harness: 3 to 6 planted routes, one to three producer surges and one
    look-alike of each other kind.

    Planted routes vary in hub, product, start month (seven in ten around the December 2024 ban, 2024-09 to
    2025-02; the rest from FIRST_EVALUATED, 2021-01, on, so some have only 24 months of history before
    them), size (extra hub->US tonnes per month as a share of the product's US imports: large 10-30 %, medium
    3-10 %; small: 1.5 to 4 of the mineral's volume floors over five months; faint: 0.5 to 1.5 floors, at or
    under what the catalogue calls noise), lag (0-4 months), pass-through (40-100 %), length (3-9 months), a ramp
    (none, or 1-3 months to full size), whether the goods arrive as lumpy shipments, and kind: brand-new
    (no hub->US trade before), grown on an existing trade (as large as half to twice the surge, noisy), or
    on the hub's ordinary background. About one route in seven is split over two hubs (each planted, each
    carrying half). Every story has its own hub."""
    rng = np.random.default_rng(10_000 + seed)
    hubs = [str(h) for h in rng.permutation(PARTNERS)]
    codes = list(PRODUCTS)
    first, last = _month_index(FIRST_EVALUATED), _month_index("2025-02")
    around_ban = _month_index("2024-09")

    def start_month() -> int:
        """Seven in ten around the ban (2024-09 to 2025-02), the rest from FIRST_EVALUATED on."""
        return int(rng.integers(around_ban, last + 1)) if rng.random() < 0.7 else int(rng.integers(first, around_ban))

    stories: list[Story] = []
    for _ in range(int(rng.integers(3, 7))):
        hub, hs = hubs.pop(), codes[int(rng.integers(len(codes)))]
        size = str(rng.choice(["large", "medium", "small", "faint"], p=[0.3, 0.3, 0.25, 0.15]))
        if size in ("small", "faint"):  # in volume floors over five months
            low, high = (1.5, 4.0) if size == "small" else (0.5, 1.5)
            extra_us = round(floor_t(PRODUCTS[hs][0]) / 5 * float(rng.uniform(low, high)), 3)
        else:
            extra_us = round(PRODUCTS[hs][2] * float(rng.uniform(*SIZE_SHARES[size])), 3)
        pass_through = float(rng.uniform(0.4, 1.0))
        lag, months = int(rng.integers(0, 5)), int(rng.integers(3, 10))
        start_i = start_month()
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
        if kind == "producer_surge":
            continue
        hub, hs = hubs.pop(), codes[int(rng.integers(len(codes)))]
        stories.append(Story(hub, hs, kind, LOOKALIKE_WORDS[kind], _month_text(int(rng.integers(first, last + 1)))))
    # Producers: one to three a world, each selling 5-40 % of the product's US imports more a month from its
    # start (after the ban seven times in ten), buying from China 5-100 % of what an ordinary partner of its
    # size would, and no more after the surge than before.
    for _ in range(int(rng.integers(1, 4))):
        hub, hs = hubs.pop(), codes[int(rng.integers(len(codes)))]
        start_i = start_month()
        surge = round(PRODUCTS[hs][2] * float(rng.uniform(0.05, 0.40)), 3)
        cn_scale = round(float(rng.uniform(0.05, 1.0)), 2)
        stories.append(Story(hub, hs, "producer_surge",
                             f"{LOOKALIKE_WORDS['producer_surge']}: {surge:g} t a month more, buying {cn_scale:.0%} "
                             "of an ordinary partner's from China", _month_text(start_i), extra_us_t=surge,
                             cn_scale=cn_scale))
    return tuple(stories)


