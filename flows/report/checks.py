"""The report's checks of each flagged route against the legitimate look-alikes (the brief's list: a producer
selling more, a small route, one shipment, a world price surge, a direct route still open), in words, from
the route's own figures in main.flagged_routes."""

from __future__ import annotations

import polars as pl

from features.params import FeatureParams
from warehouse.contracts import ROUTE_KEYS

# The look-alikes the checks below name, and where each line of a check stops reading as consistent.
SUPPLY_DOUBT = 0.5  # reroute_ceiling_share: China's shipments could cover less than half of the hub's to the US
VALUE_DOUBT = 0.5  # china_value_cover: China's extra shipments worth less than half of the hub's rise in value
FLOOR_DOUBT = 2.0  # floor_multiple: an excess under twice the smallest volume that counts as a route
LUMP_DOUBT = 0.5  # hub_to_us_peak_share: one month carries more than half of the window's exports to the US
PRICE_SURGE = 1.5  # world_unit_value_change: the world price half as high again as over the prior


def lookalike_checks(flagged: pl.DataFrame, monthly: FeatureParams) -> pl.DataFrame:
    """Each flagged route's peak period read against the legitimate look-alikes: a producer or other
    suppliers (what China shipped the hub, allowing for transit, could not cover what the hub sent the US, in
    tonnes; or China's extra shipments were worth little of the rise in the value of the hub's), a small
    route, one shipment, a world price surge, and the direct route that did not fall. Per route
    (ROUTE_KEYS): `rule_out`, the lines that point to a look-alike, for the analyst to rule out first, and
    `consistent`, the lines that do not. Read from the route's own figures in flagged_routes; none of them
    moves its score (models/evidence.py does). A figure that is unknown (NULL or NaN) gives no line."""
    annual = FeatureParams.for_frequency("A", monthly)
    window = pl.when(pl.col("frequency") == "A").then(annual.window).otherwise(monthly.window)
    prior = pl.when(pl.col("frequency") == "A").then(annual.prior).otherwise(monthly.prior)
    unit = pl.when(pl.col("frequency") == "A").then(pl.lit("year")).otherwise(pl.lit("month"))

    def pct(column: str) -> pl.Expr:
        return (pl.col(column).fill_nan(None).fill_null(0.0).clip(0.0, 1.0) * 100).round(0).cast(pl.Int64)

    transit = pl.when(pl.col("frequency") == "A").then(pl.lit("in the same year")).otherwise(
        pl.lit(f"allowing up to {monthly.max_lag} months in transit"))
    supply = pl.col("reroute_ceiling_share").fill_nan(None)

    def supply_words(only: str = "") -> pl.Expr:
        return pl.format("China's shipments to the hub, {}, could cover {}{}% of what the hub sent the US in the "
                         "window", transit, pl.lit(only), pct("reroute_ceiling_share"))
    cover = pl.col("china_value_cover").fill_nan(None)
    cover_words = pl.when(cover >= 1).then(pl.format(
        "China's extra shipments to the hub, {}, were worth as much as the rise in the value of the hub's exports "
        "to the US, or more", transit)).otherwise(pl.format(
        "China's extra shipments to the hub, {}, were worth {}% of the rise in the value of the hub's exports to "
        "the US", transit, pct("china_value_cover")))
    floor = pl.col("floor_multiple").fill_nan(None)
    floor_words = pl.format("its excess is {} times the smallest volume that counts as a route (the mineral's "
                            "volume floor)", floor.round(1))
    lump = pl.col("hub_to_us_peak_share").fill_nan(None)
    lump_words = pl.format("{}% of the hub's exports to the US in the window came in one {}",
                           pct("hub_to_us_peak_share"), unit)
    price = pl.col("world_unit_value_change").fill_nan(None)
    price_words = pl.format("the world price is {}x its prior level, but the excess is counted in tonnes, which a "
                            "price does not move", price.round(2))
    direct_window, direct_prior = pl.col("us_from_cn_kg_window").fill_null(0.0), pl.col("us_from_cn_kg_prior").fill_null(0.0)
    # NULL without a prior (no direct route to fall): every branch below is evaluated on every row.
    direct_rate = pl.when(direct_prior > 0).then((direct_window / window) / (direct_prior / prior)).fill_nan(None)
    direct_words = pl.when(direct_rate < 1).then(
        pl.format("the US's imports from China direct fell to {}% of their prior rate",
                  (direct_rate * 100).round(0).cast(pl.Int64))).otherwise(
        pl.format("the US's imports from China direct ran at {}x their prior rate", direct_rate.round(2)))
    no_direct = pl.lit("the US imported nothing from China direct before the window: no direct route to fall")

    rule_out = [
        pl.when(supply < SUPPLY_DOUBT).then(pl.format("a producer or other suppliers: {}", supply_words("only "))),
        pl.when(cover < VALUE_DOUBT).then(pl.format("a producer selling its own output: {}", cover_words)),
        pl.when(floor < FLOOR_DOUBT).then(pl.format("a small route: {}", floor_words)),
        pl.when((pl.col("frequency") == "M") & (lump > LUMP_DOUBT)).then(pl.format("one shipment: {}", lump_words)),
        pl.when((direct_prior > 0) & (direct_rate >= 1)).then(pl.format("the direct route still open: {}", direct_words)),
    ]
    consistent = [
        pl.when(supply >= SUPPLY_DOUBT).then(supply_words()),
        pl.when(cover >= VALUE_DOUBT).then(cover_words),
        pl.when(floor >= FLOOR_DOUBT).then(floor_words),
        pl.when((pl.col("frequency") == "M") & (lump <= LUMP_DOUBT)).then(lump_words),
        pl.when(price >= PRICE_SURGE).then(price_words),
        pl.when((direct_prior > 0) & (direct_rate < 1)).then(direct_words),
        pl.when(direct_prior <= 0).then(no_direct),
    ]
    return flagged.select(
        *ROUTE_KEYS,
        rule_out=pl.concat_list(rule_out).list.drop_nulls(),
        consistent=pl.concat_list(consistent).list.drop_nulls(),
    )
