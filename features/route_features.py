"""Mirror-trade features per route (mineral, hs_code, hub) and period.

Input: `marts.fct_route_legs` as a frame (complete period grid). Output: one row per route-period with
the columns below. Pure: frames in, frames out; no I/O.

Notation: t = the period scored; W = window periods (t-W+1..t); P = prior periods (the P periods before
the window; 36 months = three years); L = lag periods allowed between China's shipment to the hub and
the hub's shipment to the US; F = the mineral's volume floor (kg) and F$ (USD).
Each function returns one Polars expression named after the column it produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ROUTE_KEYS = ("frequency", "mineral", "hs_code", "hub_iso3")


@dataclass(frozen=True)
class FeatureParams:
    """Windows in periods of the data's frequency."""

    window: int = 5
    prior: int = 36
    lag: int = 2

    @classmethod
    def for_frequency(cls, frequency: str, monthly: FeatureParams) -> FeatureParams:
        """Annual data: one-year window against the prior three years, no lag."""
        return monthly if frequency == "M" else FeatureParams(window=1, prior=3, lag=0)


def _window_sum(col: str, n: int, offset: int = 0) -> pl.Expr:
    """Σ col over periods t-offset-n+1 .. t-offset within the route (null until enough periods exist)."""
    expr = pl.col(col).shift(offset) if offset else pl.col(col)
    return expr.rolling_sum(window_size=n, min_samples=n).over(ROUTE_KEYS)


def window_total(leg: str, p: FeatureParams) -> pl.Expr:
    """`<leg>_window`: Σ leg over the trailing window t-W+1..t. Unit: the leg's (kg or USD)."""
    return _window_sum(leg, p.window).alias(f"{leg}_window")


def prior_total(leg: str, p: FeatureParams) -> pl.Expr:
    """`<leg>_prior`: Σ leg over the P periods before the window (t-W-P+1..t-W). Unit: the leg's."""
    return _window_sum(leg, p.prior, offset=p.window).alias(f"{leg}_prior")


def spike_ratio(leg: str, floor: pl.Expr) -> pl.Expr:
    """`<leg>_spike_ratio` = window / max(prior, F). Dimensionless.

    The seeds' test is spike_ratio > 1: the window beat the whole prior three years. Taking F as the
    smallest denominator handles new routes (prior 0) on purpose: a new route of real size gets a large
    finite ratio, a new route of a few kilograms a small one."""
    return (pl.col(f"{leg}_window") / pl.max_horizontal(pl.col(f"{leg}_prior"), floor)).alias(f"{leg}_spike_ratio")


def excess_over_run_rate(leg: str, p: FeatureParams) -> pl.Expr:
    """`<leg>_excess` = window - prior * W / P: volume above the prior three-year run rate. Unit: the leg's."""
    return (pl.col(f"{leg}_window") - pl.col(f"{leg}_prior") * p.window / p.prior).alias(f"{leg}_excess")


def co_spike_ratio_kg() -> pl.Expr:
    """co_spike_ratio_kg = min(cn_to_hub_kg_spike_ratio, hub_to_us_kg_spike_ratio): both legs beat their past."""
    return pl.min_horizontal("cn_to_hub_kg_spike_ratio", "hub_to_us_kg_spike_ratio").alias("co_spike_ratio_kg")


def route_excess_kg() -> pl.Expr:
    """route_excess_kg = min(cn_to_hub_kg_excess, hub_to_us_kg_excess): the most that can have been rerouted
    above the usual run rate, in kg."""
    return pl.min_horizontal("cn_to_hub_kg_excess", "hub_to_us_kg_excess").alias("route_excess_kg")


def pass_through_kg(p: FeatureParams) -> pl.Expr:
    """pass_through_kg = hub_to_us_kg_window / (Σ cn_to_hub_kg over t-W-L+1..t × W/(W+L)), clipped to 0..10.

    How much of what China sent the hub (allowing L periods in transit) reached the US; 0 when China sent
    nothing."""
    supplied = _window_sum("cn_to_hub_kg", p.window + p.lag) * p.window / (p.window + p.lag)
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


def hub_to_us_peak_share(p: FeatureParams) -> pl.Expr:
    """hub_to_us_peak_share = max over the window of hub_to_us_kg / hub_to_us_kg_window: 1 for a one-off
    lump, 1/W for a steady flow (0 when the window is empty)."""
    peak = pl.col("hub_to_us_kg").rolling_max(window_size=p.window, min_samples=p.window).over(ROUTE_KEYS)
    return (
        pl.when(pl.col("hub_to_us_kg_window") > 0).then(peak / pl.col("hub_to_us_kg_window")).otherwise(0.0)
    ).alias("hub_to_us_peak_share")


def has_history(p: FeatureParams) -> pl.Expr:
    """has_history: the route has W + P periods on the grid up to t, so every window is complete."""
    return (pl.int_range(pl.len()).over(ROUTE_KEYS) >= p.window + p.prior - 1).alias("has_history")


def mirror_gap(importer_side: str, exporter_side: str, floor: pl.Expr, name: str) -> pl.Expr:
    """`name` = (importer-reported - exporter-reported) / max(importer, exporter, floor), over the window.

    The mirror gap of the trade literature, with CIF values first brought to FOB (the *_fob_usd columns,
    rate in ref.source_settings). -1..1: near 0 when both sides agree; towards +1 when the importer
    declares more than the exporter (goods re-labelled on the way, or declared to the wrong origin);
    towards -1 when the exporter declares more (goods that never arrived as declared). Floored so that
    tiny flows do not swing it."""
    imp, exp = pl.col(importer_side), pl.col(exporter_side)
    return ((imp - exp) / pl.max_horizontal(imp, exp, floor)).alias(name)


def one_sided(reported: str, mirror: str, reporting: str, name: str) -> pl.Expr:
    """`name`: one side reports the flow in the window, the other side (which did report trade in that
    window) reports none of it. A flow declared by one side only is its own signal."""
    return ((pl.col(reported) > 0) & (pl.col(mirror) == 0) & (pl.col(reporting) > 0)).alias(name)


MIRROR_COLUMNS = ("cn_to_hub_fob_usd", "hub_to_us_fob_usd", "cn_to_us_fob_usd", "us_from_cn_fob_usd", "cn_to_us_kg",
                  "hub_reported_from_cn_kg", "hub_reported_from_cn_fob_usd", "hub_reported_to_us_kg",
                  "hub_reported_to_us_fob_usd", "hub_reports_period")


def mirror_features(lf: pl.LazyFrame, p: FeatureParams) -> pl.LazyFrame:
    """Mirror gaps between the two declarations of the same flow, and one-sided flows (needs the mart's
    *_fob_usd and hub_reported_* columns)."""
    totals = [c for c in MIRROR_COLUMNS if c != "hub_reports_period"]
    lf = lf.with_columns(
        *[window_total(c, p) for c in totals],
        pl.col("hub_reports_period").cast(pl.Int64).rolling_sum(window_size=p.window, min_samples=p.window)
        .over(ROUTE_KEYS).alias("hub_reports_window"),
    )
    floor_usd, floor_kg = pl.col("volume_floor_usd"), pl.col("volume_floor_kg")
    return lf.with_columns(
        mirror_gap("hub_reported_from_cn_fob_usd_window", "cn_to_hub_fob_usd_window", floor_usd, "mirror_gap_cn_hub_usd"),
        mirror_gap("hub_reported_from_cn_kg_window", "cn_to_hub_kg_window", floor_kg, "mirror_gap_cn_hub_kg"),
        mirror_gap("us_from_cn_fob_usd_window", "cn_to_us_fob_usd_window", floor_usd, "mirror_gap_cn_us_usd"),
        mirror_gap("us_from_cn_kg_window", "cn_to_us_kg_window", floor_kg, "mirror_gap_cn_us_kg"),
        mirror_gap("hub_to_us_fob_usd_window", "hub_reported_to_us_fob_usd_window", floor_usd, "mirror_gap_hub_us_usd"),
        one_sided("cn_to_hub_kg_window", "hub_reported_from_cn_kg_window", "hub_reports_window", "one_sided_cn_hub"),
        one_sided("hub_to_us_kg_window", "hub_reported_to_us_kg_window", "hub_reports_window", "one_sided_hub_us"),
    )


LEGS_KG = ("cn_to_hub_kg", "hub_to_us_kg")
LEGS_USD = ("cn_to_hub_usd", "hub_to_us_usd")
CONTEXT = ("us_from_cn_kg", "cn_to_world_kg", "us_from_world_kg", "us_from_world_usd")


def build_route_features(legs: pl.DataFrame | pl.LazyFrame, params: FeatureParams, floors: pl.DataFrame) -> pl.LazyFrame:
    """All route features for one frequency. `floors`: mineral, volume_floor_kg, volume_floor_usd."""
    p = params
    # Sort after the join: a join does not promise to keep row order, and every window below needs it.
    lf = legs.lazy().join(floors.lazy(), on="mineral", how="left").sort([*ROUTE_KEYS, "period"])
    totals = [*LEGS_KG, *LEGS_USD, *CONTEXT]
    lf = lf.with_columns(
        *[window_total(c, p) for c in totals],
        *[prior_total(c, p) for c in totals],
        has_history(p),
    )
    lf = lf.with_columns(
        *[spike_ratio(c, pl.col("volume_floor_kg")) for c in LEGS_KG],
        *[spike_ratio(c, pl.col("volume_floor_usd")) for c in LEGS_USD],
        *[excess_over_run_rate(c, p) for c in LEGS_KG],
        pass_through_kg(p),
        hub_to_us_peak_share(p),
        *[
            share(f"{leg}_{part}", f"{total}_{part}", f"{name}_{part}")
            for leg, total, name in (
                ("cn_to_hub_kg", "cn_to_world_kg", "hub_share_of_cn_exports"),
                ("hub_to_us_kg", "us_from_world_kg", "hub_share_of_us_imports"),
                ("us_from_cn_kg", "us_from_world_kg", "cn_direct_share_of_us_imports"),
            )
            for part in ("window", "prior")
        ],
        unit_value_ratio("hub_to_us_usd_window", "hub_to_us_kg_window", "us_from_world_usd_window",
                         "us_from_world_kg_window", "unit_value_vs_world"),
        unit_value_ratio("hub_to_us_usd_window", "hub_to_us_kg_window", "hub_to_us_usd_prior",
                         "hub_to_us_kg_prior", "unit_value_vs_own_history"),
    )
    lf = lf.with_columns(
        co_spike_ratio_kg(),
        route_excess_kg(),
        share_change("hub_share_of_cn_exports"),
        share_change("hub_share_of_us_imports"),
        share_change("cn_direct_share_of_us_imports"),
        # The plain rule: the window beat the whole prior three years on both legs (in kg).
        ((pl.col("cn_to_hub_kg_window") > pl.col("cn_to_hub_kg_prior"))
         & (pl.col("hub_to_us_kg_window") > pl.col("hub_to_us_kg_prior"))).alias("rule_flag"),
        (pl.col("hub_to_us_kg_prior") == 0).alias("new_route"),
        pl.lit(p.window).alias("window_periods"),
        pl.lit(p.prior).alias("prior_periods"),
    )
    if all(c in lf.collect_schema().names() for c in MIRROR_COLUMNS):
        lf = mirror_features(lf, p)
    return lf
