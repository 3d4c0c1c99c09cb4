"""Volume features: each leg's window and prior sums, how far the window beats the prior (spike ratios,
excess over the run rate), what could have been rerouted, the route's size against the mineral's floor and
the product's trade (volume weight), pass-through, shares, unit values and the window's peak.

Notation as in features/route_features.py: t, W, P, L, F and F$. Each function returns one Polars
expression (or a Running sum) named after the column it produces."""

from __future__ import annotations

import numpy as np
import polars as pl

from features.params import FeatureParams
from features.window import EXACT_SCALE, ROUTE_POS, Running, _divided, _exact, _window_sum, over_prior


def window_total(leg: str, p: FeatureParams) -> Running:
    """`<leg>_window`: Σ leg over the trailing window t-W+1..t. Unit: the leg's (kg or USD)."""
    return _window_sum(leg, p.window, f"{leg}_window")


def prior_total(leg: str, p: FeatureParams) -> Running:
    """`<leg>_prior`: Σ leg over the prior periods (over_prior), summed exactly in thousandths; scaled to P
    periods in the second pass (scaled_prior). Unit: the leg's."""
    return over_prior(f"{leg}_prior", _exact(pl.col(leg), EXACT_SCALE), p, scale=EXACT_SCALE)


def prior_count(p: FeatureParams) -> Running:
    """prior_periods: how many prior periods the route has before the window, P at most (min_prior at
    least, else null): the history its prior sums, medians and spreads are taken over."""
    return over_prior("prior_periods", (pl.col(ROUTE_POS) * 0 + 1).cast(pl.Int64), p)


def scaled_prior(leg: str, p: FeatureParams) -> pl.Expr:
    """`<leg>_prior` scaled to P periods where the route has fewer (× P / prior_periods): a year of history
    stands for three, so that every comparison with "the prior three years" reads the same. Unit: the leg's."""
    raw = pl.col(f"{leg}_prior")
    scaled = raw * p.prior / pl.col("prior_periods")
    return pl.when(pl.col("prior_periods") < p.prior).then(scaled).otherwise(raw).alias(f"{leg}_prior")


def spike_ratio(leg: str, floor: pl.Expr) -> pl.Expr:
    """`<leg>_spike_ratio` = window / max(prior, F). Dimensionless.

    The seeds' test is spike_ratio > 1: the window beat the whole prior three years. Taking F as the
    smallest denominator handles new routes (prior 0) on purpose: a new route of real size gets a large
    finite ratio, a new route of a few kilograms a small one."""
    return (pl.col(f"{leg}_window") / pl.max_horizontal(pl.col(f"{leg}_prior"), floor)).alias(f"{leg}_spike_ratio")


def excess_over_run_rate(leg: str, p: FeatureParams) -> pl.Expr:
    """`<leg>_excess` = window - prior * W / P: volume above the prior three-year run rate. Unit: the leg's."""
    return (pl.col(f"{leg}_window") - _divided(pl.col(f"{leg}_prior") * p.window, p.prior)).alias(f"{leg}_excess")


def co_spike_ratio_kg() -> pl.Expr:
    """co_spike_ratio_kg = min(cn_to_hub_kg_spike_ratio, hub_to_us_kg_spike_ratio): both legs beat their past."""
    return pl.min_horizontal("cn_to_hub_kg_spike_ratio", "hub_to_us_kg_spike_ratio").alias("co_spike_ratio_kg")


def route_excess_kg(p: FeatureParams) -> pl.Expr:
    """route_excess_kg = max over L = 0..max_lag of min(China->hub kg excess over t-W-L+1..t-L, hub->US kg
    excess over the window), each excess being the window's kg minus the prior run rate (prior × W / P).
    The most that can have been rerouted above the usual run rate, lag-aligned. kg; negative when either leg
    is below its run rate."""
    run_rate = _divided(pl.col("cn_to_hub_kg_prior") * p.window, p.prior)
    return pl.max_horizontal([
        pl.min_horizontal(pl.col(_lagged_window(lag)) - run_rate, pl.col("hub_to_us_kg_excess"))
        for lag in range(p.max_lag + 1)
    ]).alias("route_excess_kg")


def china_value_cover(p: FeatureParams) -> pl.Expr:
    """china_value_cover = max over L = 0..max_lag of (Σ China->hub USD over t-W-L+1..t-L - the prior run
    rate) / hub_to_us_usd_excess: how much of the rise in the value of the hub's exports to the US China's
    extra shipments to the hub could pay for, allowing up to max_lag periods in transit. About 1 / the
    pass-through on a rerouting route (the same goods, at the same prices, on both legs), about 0 where the
    hub sells more to the US of what China did not send it more of (a producer's own output), and on a
    shared HS6 line cheap tonnes from China do not cover high-value exports. Null when the hub's exports to
    the US did not rise in value (nothing to cover). Unitless; negative when China's shipments fell."""
    run_rate = _divided(pl.col("cn_to_hub_usd_prior") * p.window, p.prior)
    china = pl.max_horizontal([pl.col(_lagged_value_window(lag)) - run_rate for lag in range(p.max_lag + 1)])
    rise = pl.col("hub_to_us_usd_excess")
    return pl.when(rise > 0).then(china / rise).alias("china_value_cover")


def reroute_ceiling_kg(p: FeatureParams) -> pl.Expr:
    """reroute_ceiling_kg = max over L = 0..max_lag of min(Σ China->hub kg over t-W-L+1..t-L, Σ hub->US kg
    over t-W+1..t). The rerouting ceiling: the hub cannot have passed on more Chinese goods than it got, nor
    more than it sent, allowing up to max_lag periods in transit. kg."""
    return pl.max_horizontal([
        pl.min_horizontal(pl.col(_lagged_window(lag)), pl.col("hub_to_us_kg_window"))
        for lag in range(p.max_lag + 1)
    ]).alias("reroute_ceiling_kg")


def reroute_ceiling_share() -> pl.Expr:
    """reroute_ceiling_share = reroute_ceiling_kg / hub_to_us_kg_window: the share of the hub's US exports
    that could be Chinese goods passed on (0 when the hub sent nothing). 0..1."""
    return (pl.when(pl.col("hub_to_us_kg_window") > 0)
            .then(pl.col("reroute_ceiling_kg") / pl.col("hub_to_us_kg_window")).otherwise(0.0)
            .alias("reroute_ceiling_share"))


def three_leg_share_test() -> pl.Expr:
    """three_leg_share_test: the "China wash" test of the trade-diversion literature, on kg shares, window
    against prior: China's direct share of US imports falls, the hub's share of China's exports rises, and
    the hub's share of US imports rises. Boolean."""
    return ((pl.col("cn_direct_share_of_us_imports_change") < 0) & (pl.col("hub_share_of_cn_exports_change") > 0)
            & (pl.col("hub_share_of_us_imports_change") > 0)).alias("three_leg_share_test")


def three_leg_strength() -> pl.Expr:
    """three_leg_strength = min(-Δ China's direct share of US imports, Δ hub's share of China's exports,
    Δ hub's share of US imports): positive exactly when the three-leg test holds, and as large as its
    weakest leg. Share points, -1..1."""
    return pl.min_horizontal(-pl.col("cn_direct_share_of_us_imports_change"), pl.col("hub_share_of_cn_exports_change"),
                             pl.col("hub_share_of_us_imports_change")).alias("three_leg_strength")


def three_leg_excess_kg() -> pl.Expr:
    """three_leg_excess_kg: when the three-leg test holds, the transshipped volume as the smaller leg,
    counting only the excess over the route's earlier shares:
    min(cn_to_hub_kg_window - hub_share_of_cn_exports_prior × cn_to_world_kg_window,
        hub_to_us_kg_window - hub_share_of_us_imports_prior × us_from_world_kg_window), at least 0; else 0. kg."""
    cn_excess = pl.col("cn_to_hub_kg_window") - pl.col("hub_share_of_cn_exports_prior") * pl.col("cn_to_world_kg_window")
    us_excess = pl.col("hub_to_us_kg_window") - pl.col("hub_share_of_us_imports_prior") * pl.col("us_from_world_kg_window")
    return (pl.when(pl.col("three_leg_share_test"))
            .then(pl.min_horizontal(cn_excess, us_excess).clip(lower_bound=0.0)).otherwise(0.0)
            .alias("three_leg_excess_kg"))


def _lagged_window(lag: int) -> str:
    return f"_cn_to_hub_kg_window_lag{lag}"


def _lagged_value_window(lag: int) -> str:
    return f"_cn_to_hub_usd_window_lag{lag}"


def lagged_windows(p: FeatureParams) -> list[Running]:
    """Helper columns: Σ China->hub kg (read by route_excess_kg and reroute_ceiling_kg) and USD (read by
    china_value_cover) over t-W-L+1..t-L for L = 0..max_lag; computed once, not once per feature."""
    return [*[_window_sum("cn_to_hub_kg", p.window, _lagged_window(lag), offset=lag) for lag in range(p.max_lag + 1)],
            *[_window_sum("cn_to_hub_usd", p.window, _lagged_value_window(lag), offset=lag)
              for lag in range(p.max_lag + 1)]]


def lagged_window_helpers(p: FeatureParams) -> list[str]:
    """The helper columns of lagged_windows, dropped once the features that read them are computed."""
    return [name(lag) for name in (_lagged_window, _lagged_value_window) for lag in range(p.max_lag + 1)]


def floor_multiple() -> pl.Expr:
    """floor_multiple = max(route_excess_kg / volume_floor_kg, route_excess_usd / (volume_floor_usd × u)),
    u = floor_price_rise: the route's excess over its run rate in multiples of the mineral's volume floor,
    in kilograms, or in value against the value floor at the window's world price, the larger. Below 1 the
    route moved less than the smallest volume that counts as a real route (a tiny route whose ratios
    explode). The value floor rises with the world price (never falls with it): antimony from USD 11 to
    50/kg would otherwise let 4 t pass a floor set for 20 t. Unitless."""
    return pl.max_horizontal(pl.col("route_excess_kg") / pl.col("volume_floor_kg"),
                             pl.col("route_excess_usd") / (pl.col("volume_floor_usd") * floor_price_rise())
                             ).alias("floor_multiple")


def floor_price_rise() -> pl.Expr:
    """What the value floor is multiplied by: the larger of price_rise (the world price against the prior
    periods') and the window's world unit value (US imports from the world, USD/kg) against the price the
    two floors imply (volume_floor_usd / volume_floor_kg), never below 1. The second keeps the value floor
    at the kilogram floor's worth when the prior periods already carry a higher price (antimony's floors
    imply USD 10/kg: at USD 50/kg against a prior that averaged 25, the rise on the prior alone, 2x, would
    let 8 t worth USD 400,000 through a floor of 20 t); in an HS6 line whose other goods are cheap
    (gallium in a line of vanadium, germanium in one of zirconia) the line's unit value stays below what
    the floors imply, and the value floor stays whole. Never null (an undefined unit value counts as 1)."""
    world_against_floors = unit_value_ratio("us_from_world_usd_window", "us_from_world_kg_window",
                                            "volume_floor_usd", "volume_floor_kg", "_world_against_floors")
    return pl.max_horizontal(price_rise(), world_against_floors, 1.0)


def price_rise() -> pl.Expr:
    """max(world_unit_value_change, 1): how far the world price rose since the prior periods, never below 1
    (a fall does not lower a floor nor lift a value). What values are deflated by (mean_z's value legs) and
    the value floor raised by (floor_multiple). Never null."""
    return pl.max_horizontal(pl.col("world_unit_value_change"), 1.0)


def world_unit_value_change() -> pl.Expr:
    """world_unit_value_change = US imports' world unit value (USD/kg) in the window / in the prior periods;
    1 when undefined. Above 1 the product's price rose: USD spikes then say less than kg spikes."""
    return unit_value_ratio("us_from_world_usd_window", "us_from_world_kg_window", "us_from_world_usd_prior",
                            "us_from_world_kg_prior", "world_unit_value_change")


def route_excess_usd() -> pl.Expr:
    """route_excess_usd = min(cn_to_hub_usd_excess, hub_to_us_usd_excess): the smaller leg's value above its
    prior run rate over the window (not lag-aligned). USD."""
    return pl.min_horizontal("cn_to_hub_usd_excess", "hub_to_us_usd_excess").alias("route_excess_usd")


def _share_weight(share: pl.Expr, p: FeatureParams) -> pl.Expr:
    return (_divided(_divided(share * 100, p.full_weight_share).log1p(), float(np.log1p(100)))).clip(0.0, 1.0)


def volume_weight(p: FeatureParams) -> pl.Expr:
    """volume_weight = clip(log10(1 + 100 × s / S) / log10(101), 0, 1), where s is the route's excess as a
    share of the product's US imports in the window, in kilograms (max(route_excess_kg, 0) /
    max(us_from_world_kg_window, F)) or in value (max(route_excess_usd, 0) / max(us_from_world_usd_window,
    F_usd)), whichever is larger, and S = full_weight_share (default 10 %).

    0 for a route with no excess; 0.15 at S/100 of the US market; 0.52 at S/10; 1 from S up. It multiplies
    the anomaly score into the route score, so that a route moving a few hundred kilograms of a product the
    US imports by the thousand tonnes cannot outrank one moving thousands of tonnes; measured against the
    product's own market, so that a gallium route is not weighed against antimony tonnages, and in value as
    well as weight, so that a few hundred kilograms of gallium at USD 300-3,000/kg inside an HS6 line of
    cheaper metals counts for what it is worth. It counts excess over the run rate, not ratios, so a
    brand-new route of real size (prior 0) keeps a full weight."""
    share_kg = pl.col("route_excess_kg").clip(lower_bound=0.0) / pl.max_horizontal(
        pl.col("us_from_world_kg_window"), pl.col("volume_floor_kg"))
    share_usd = pl.col("route_excess_usd").clip(lower_bound=0.0) / pl.max_horizontal(
        pl.col("us_from_world_usd_window"), pl.col("volume_floor_usd"))
    by_value = _share_weight(share_usd, p).fill_null(0.0)
    return pl.max_horizontal(_share_weight(share_kg, p), by_value).alias("volume_weight")


SUPPLY = "_cn_to_hub_kg_supply"


def supply_window(p: FeatureParams) -> Running:
    """Helper column for pass_through_kg: Σ cn_to_hub_kg over t-W-L+1..t."""
    return _window_sum("cn_to_hub_kg", p.window + p.lag, SUPPLY)


def pass_through_kg(p: FeatureParams) -> pl.Expr:
    """pass_through_kg = hub_to_us_kg_window / (Σ cn_to_hub_kg over t-W-L+1..t × W/(W+L)), clipped to 0..10.

    How much of what China sent the hub (allowing L periods in transit) reached the US; 0 when China sent
    nothing."""
    supplied = _divided(pl.col(SUPPLY) * p.window, p.window + p.lag)
    ratio = pl.when(supplied > 0).then(pl.col("hub_to_us_kg_window") / supplied).otherwise(0.0)
    return ratio.clip(0.0, 10.0).alias("pass_through_kg")


def share(numerator: str, denominator: str, name: str) -> pl.Expr:
    """`name` = numerator / denominator (0 when the denominator is 0). Dimensionless, 0..1."""
    return (
        pl.when(pl.col(denominator) > 0).then(pl.col(numerator) / pl.col(denominator)).otherwise(0.0).alias(name)
    )


def share_change(name: str) -> pl.Expr:
    """`<name>_change` = share in the window - share in the prior periods. Dimensionless, -1..1."""
    return (pl.col(f"{name}_window") - pl.col(f"{name}_prior")).alias(f"{name}_change")


def unit_value_ratio(num_usd: str, num_kg: str, den_usd: str, den_kg: str, name: str) -> pl.Expr:
    """`name` = (num_usd / num_kg) / (den_usd / den_kg): one unit value (USD/kg) against another; 1 when
    either is undefined. A world price surge moves both, so the ratio stays near 1."""
    num = pl.when(pl.col(num_kg) > 0).then(pl.col(num_usd) / pl.col(num_kg))
    den = pl.when(pl.col(den_kg) > 0).then(pl.col(den_usd) / pl.col(den_kg))
    return pl.when(num.is_not_null() & den.is_not_null() & (den > 0)).then(num / den).otherwise(1.0).alias(name)


def window_peak_name(leg: str) -> str:
    return f"_{leg}_peak"


PEAK = window_peak_name("hub_to_us_kg")
USD_PEAK = window_peak_name("hub_to_us_usd")


def window_peaks(p: FeatureParams) -> list[Running]:
    """Helper columns for hub_to_us_peak_share and hub_to_us_mean_z: the largest hub->US kg and USD of the
    window."""
    return [Running(window_peak_name(leg), pl.col(leg), p.window, reach=p.window - 1, kind="max")
            for leg in ("hub_to_us_kg", "hub_to_us_usd")]


def hub_to_us_peak_share() -> pl.Expr:
    """hub_to_us_peak_share = max over the window of hub_to_us_kg / hub_to_us_kg_window: 1 for a one-off
    lump, 1/W for a steady flow (0 when the window is empty)."""
    return (
        pl.when(pl.col("hub_to_us_kg_window") > 0).then(pl.col(PEAK) / pl.col("hub_to_us_kg_window")).otherwise(0.0)
    ).alias("hub_to_us_peak_share")


def has_history(p: FeatureParams) -> pl.Expr:
    """has_history: the route has W + min_prior periods on the grid up to t (W + 12 months by default; the
    prior sums are over the min_prior..P periods before the window that exist, prior_periods) and both legs
    are known in all of them, so every window is complete. Counted by `grid_index` (the period's position on
    the frequency's grid) when the frame has it, so that a frame holding only a route's later periods
    counts right; else from the frame's first period. A period a side did not publish is unknown (a null
    leg, and so a null window or prior sum): a history with such a gap is not complete."""
    known = pl.all_horizontal(pl.col(f"{leg}_{part}").is_not_null() for leg in LEGS_KG for part in ("window", "prior"))
    return ((pl.col("grid_index") >= p.window + p.min_prior - 1) & known).alias("has_history")


LEGS_KG = ("cn_to_hub_kg", "hub_to_us_kg")


LEGS_USD = ("cn_to_hub_usd", "hub_to_us_usd")


CONTEXT = ("us_from_cn_kg", "cn_to_world_kg", "us_from_world_kg", "us_from_world_usd")
