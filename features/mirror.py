"""Mirror and coverage features: what each side reported against what its partner reported of the same
trade (mirror gaps, one-sided flows), and the share of the trade with a known weight (kg_coverage)."""

from __future__ import annotations

import polars as pl

from features.params import FeatureParams
from features.window import Running, _window_sum
from features.volumes import window_total


COVERAGE_SUMS = ("_kg_missing_usd_span", "_usd_span")


_USD_SPANS = ("_cn_to_hub_usd_span", "_hub_to_us_usd_span")


def coverage_sums(p: FeatureParams) -> list[Running]:
    """Helper columns for kg_coverage: Σ value_kg_missing_usd and, for coverage_total, Σ cn_to_hub_usd and
    Σ hub_to_us_usd over t-W-P+1..t."""
    span, least = p.window + p.prior, p.window + p.min_prior
    return [_window_sum("value_kg_missing_usd", span, COVERAGE_SUMS[0], min_n=least),
            *[_window_sum(leg, span, name, min_n=least)
              for leg, name in zip(("cn_to_hub_usd", "hub_to_us_usd"), _USD_SPANS)]]


def coverage_total() -> pl.Expr:
    """Helper column for kg_coverage: Σ (cn_to_hub_usd + hub_to_us_usd) over t-W-P+1..t, from coverage_sums."""
    return (pl.col(_USD_SPANS[0]) + pl.col(_USD_SPANS[1])).alias(COVERAGE_SUMS[1])


def kg_coverage() -> pl.Expr:
    """kg_coverage = 1 - Σ value_kg_missing_usd / Σ (cn_to_hub_usd + hub_to_us_usd), both over the window and
    the prior periods (t-W-P+1..t): the share of the route's trade whose weight is known or estimated; 1 when
    the route has no trade. Below 1, kg features compare periods whose weights were not published as if
    they were zero: a route with years of trade of unknown weight would look brand-new in kg."""
    missing, total = pl.col(COVERAGE_SUMS[0]), pl.col(COVERAGE_SUMS[1])
    return pl.when(total > 0).then(1 - missing / total).otherwise(1.0).clip(0.0, 1.0).alias("kg_coverage")


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


def mirror_windows(p: FeatureParams) -> list[Running]:
    """The window totals of the mirror columns, and hub_reports_window: in how many of the window's periods
    the hub reported any trade (read by mirror_features)."""
    totals = [c for c in MIRROR_COLUMNS if c != "hub_reports_period"]
    return [
        *[window_total(c, p) for c in totals],
        Running("hub_reports_window", pl.col("hub_reports_period").cast(pl.Int64), p.window, reach=p.window - 1),
    ]


def mirror_features(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Mirror gaps between the two declarations of the same flow, and one-sided flows (needs the mart's
    *_fob_usd and hub_reported_* columns, and mirror_windows)."""
    floor_usd, floor_kg = pl.col("volume_floor_usd"), pl.col("volume_floor_kg")
    # A gap with the hub's side only means something when the hub reported in the window: else null.
    hub_reports = pl.col("hub_reports_window") > 0
    return lf.with_columns(
        pl.when(hub_reports).then(mirror_gap("hub_reported_from_cn_fob_usd_window", "cn_to_hub_fob_usd_window",
                                             floor_usd, "mirror_gap_cn_hub_usd")).alias("mirror_gap_cn_hub_usd"),
        pl.when(hub_reports).then(mirror_gap("hub_reported_from_cn_kg_window", "cn_to_hub_kg_window",
                                             floor_kg, "mirror_gap_cn_hub_kg")).alias("mirror_gap_cn_hub_kg"),
        mirror_gap("us_from_cn_fob_usd_window", "cn_to_us_fob_usd_window", floor_usd, "mirror_gap_cn_us_usd"),
        mirror_gap("us_from_cn_kg_window", "cn_to_us_kg_window", floor_kg, "mirror_gap_cn_us_kg"),
        pl.when(hub_reports).then(mirror_gap("hub_to_us_fob_usd_window", "hub_reported_to_us_fob_usd_window",
                                             floor_usd, "mirror_gap_hub_us_usd")).alias("mirror_gap_hub_us_usd"),
        one_sided("cn_to_hub_kg_window", "hub_reported_from_cn_kg_window", "hub_reports_window", "one_sided_cn_hub"),
        one_sided("hub_to_us_kg_window", "hub_reported_to_us_kg_window", "hub_reports_window", "one_sided_hub_us"),
    )
