"""Mirror-trade features per route (mineral, hs_code, hub) and period.

Input: `marts.fct_route_legs` as a frame (complete period grid). Output: one row per route-period with
the columns below. Pure: frames in, frames out; no I/O.

Notation: t = the period scored; W = window periods (t-W+1..t); P = prior periods (the P periods before
the window; 36 months = three years); L = lag periods allowed between China's shipment to the hub and
the hub's shipment to the US; F = the mineral's volume floor (kg) and F$ (USD).
The columns are defined in features/volumes.py, features/signals.py and features/mirror.py (each function
returns one Polars expression named after the column it produces); this module assembles them in two passes
(build_route_features) with the engine of features/window.py.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from features.params import FeatureParams
from features.window import (ROBUST_LEGS, ROUTE_ID, ROUTE_POS, Running, robust_baselines, route_positions,
                             running_at)
from features.incremental import NEEDED, ROUTE_NO
from features.volumes import (CONTEXT, LEGS_KG, LEGS_USD, PEAK, SUPPLY, USD_PEAK, china_value_cover,
                              co_spike_ratio_kg, excess_over_run_rate, floor_multiple, has_history, hub_to_us_peak_share,
                              lagged_window_helpers, lagged_windows, pass_through_kg, prior_count, prior_total,
                              reroute_ceiling_kg, reroute_ceiling_share, route_excess_kg, route_excess_usd,
                              scaled_prior, share, share_change, spike_ratio, supply_window, three_leg_excess_kg,
                              three_leg_share_test, three_leg_strength, unit_value_ratio, volume_weight, window_peaks,
                              window_total, world_unit_value_change)
from features.signals import (MEAN_Z_LEGS, _co_sum, _squares, co_mean_z, co_movement, co_movement_at_lag,
                              co_movement_sums, co_rise_z, co_robust_z, hub_to_us_mean_z, mean_z, prior_squares,
                              robust_z, signal_persistence)
from features.mirror import (COVERAGE_SUMS, MIRROR_COLUMNS, _USD_SPANS, coverage_sums, coverage_total, kg_coverage,
                             mirror_features, mirror_windows)
from warehouse.contracts import KEYS


def build_route_features(legs: pl.DataFrame | pl.LazyFrame, params: FeatureParams, floors: pl.DataFrame) -> pl.LazyFrame:
    """All route features for one frequency. `floors`: mineral, volume_floor_kg, volume_floor_usd.

    Two passes. The first computes every sum over past periods (windows, prior periods, lags, co-movement)
    on every row, since each reads the rows before it. The second computes everything else from those
    sums, row by row. With a NEEDED column in `legs`, only its true rows are kept: they get the first pass's
    sums (looked up from running totals, running_at) and robust baselines, and go through the second pass;
    an incremental build's frame is mostly history that only those sums read.
    A route's needed rows must be its last ones (signal_persistence counts its spells from the first).

    `legs` may carry ROUTE_NO, a number per route (the routes in key order): then the rows are sorted by it
    and the period, a third of the time of sorting by the four key columns (two of them strings)."""
    p = params
    # Sort after the join: a join does not promise to keep row order, and every window below needs it.
    # Collected here: the robust baselines read this frame too, and a lazy plan sorted it twice (a third of
    # the time of an incremental build's batch).
    legs = legs.lazy()
    order = [ROUTE_NO, "period"] if ROUTE_NO in legs.collect_schema().names() else KEYS
    frame = route_positions(legs.join(floors.lazy(), on="mineral", how="left").sort(order)
                            .drop(ROUTE_NO, strict=False)).collect()
    names = frame.columns
    if "grid_index" not in names:
        frame = frame.with_columns(grid_index=pl.col(ROUTE_POS))
    lf = frame.lazy()
    coverage = "value_kg_missing_usd" in names
    mirror = all(c in names for c in MIRROR_COLUMNS)
    # Pass 1: the sums over past periods.
    runs = first_pass(p, coverage=coverage, mirror=mirror)
    baselines = robust_baselines(lf, p)
    if NEEDED in names:
        # The needed rows only, with their sums looked up from running totals (running_at), and their
        # positions counted again from each route's first needed row, which signal_persistence takes as the
        # start of the route.
        rows = np.flatnonzero(frame[NEEDED].fill_null(False).to_numpy())
        lf = pl.concat([frame.filter(pl.col(NEEDED)), running_at(frame, runs, rows)], how="horizontal").lazy()
        lf = lf.join(baselines, on=[ROUTE_ID, ROUTE_POS], how="left", maintain_order="left")
        lf = route_positions(lf.drop(ROUTE_ID, ROUTE_POS))
    else:
        # The features after this one need the route's periods in order: the join keeps the left frame's.
        lf = lf.with_columns(*[r.expr() for r in runs])
        lf = lf.join(baselines, on=[ROUTE_ID, ROUTE_POS], how="left", maintain_order="left")
    if coverage:
        lf = lf.with_columns(coverage_total())
    lf = row_features(lf, p, coverage=coverage, mirror=mirror)
    helpers = [SUPPLY, PEAK, USD_PEAK, *[_squares(leg) for leg in MEAN_Z_LEGS],
               *(COVERAGE_SUMS if coverage else ()), *(_USD_SPANS if coverage else ()),
               *lagged_window_helpers(p),
               *[_co_sum(k, lag) for lag in range(p.max_lag + 1) for k in ("x", "y", "xy", "xx", "yy")]]
    marker = [NEEDED] if NEEDED in names else []
    return lf.drop("grid_index", ROUTE_ID, ROUTE_POS, *helpers, *marker)


def first_pass(p: FeatureParams, coverage: bool, mirror: bool) -> list[Running]:
    """build_route_features' first pass: every sum over past periods (windows, prior periods, lags,
    co-movement; coverage and mirror windows when the frame has their columns)."""
    totals = [*LEGS_KG, *LEGS_USD, *CONTEXT]
    return [
        *[window_total(c, p) for c in totals],
        *[prior_total(c, p) for c in totals],
        prior_count(p),
        *[prior_squares(leg, p) for leg in MEAN_Z_LEGS],
        supply_window(p),
        *window_peaks(p),
        *lagged_windows(p),
        *[e for lag in range(p.max_lag + 1) for e in co_movement_sums(lag, p)],
        *(coverage_sums(p) if coverage else []),
        *(mirror_windows(p) if mirror else []),
    ]


def row_features(lf: pl.LazyFrame, p: FeatureParams, coverage: bool, mirror: bool) -> pl.LazyFrame:
    """build_route_features' second pass: the features computed row by row from the first pass's sums and
    the robust baselines (signal_persistence excepted: it counts along the frame's rows, by ROUTE_POS)."""
    lf = lf.with_columns(has_history(p), *[scaled_prior(c, p) for c in (*LEGS_KG, *LEGS_USD, *CONTEXT)])
    lf = lf.with_columns(
        *[spike_ratio(c, pl.col("volume_floor_kg")) for c in LEGS_KG],
        *[spike_ratio(c, pl.col("volume_floor_usd")) for c in LEGS_USD],
        *[excess_over_run_rate(c, p) for c in (*LEGS_KG, *LEGS_USD)],
        pass_through_kg(p),
        hub_to_us_peak_share(),
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
        route_excess_kg(p),
        route_excess_usd(),
        reroute_ceiling_kg(p),
        china_value_cover(p),
        share_change("hub_share_of_cn_exports"),
        share_change("hub_share_of_us_imports"),
        share_change("cn_direct_share_of_us_imports"),
        *[co_movement_at_lag(lag, p) for lag in range(p.max_lag + 1)],
        world_unit_value_change(),
        # The plain rule, literally: the window beat the whole prior three years on both legs (in kg).
        ((pl.col("cn_to_hub_kg_window") > pl.col("cn_to_hub_kg_prior"))
         & (pl.col("hub_to_us_kg_window") > pl.col("hub_to_us_kg_prior"))).alias("rule_flag"),
        # The seeds' test in both units, with new routes handled on purpose: the floor is the smallest prior,
        # so a brand-new route passes only when it moved at least the floor.
        ((pl.col("cn_to_hub_kg_spike_ratio") > 1) & (pl.col("hub_to_us_kg_spike_ratio") > 1)).alias("seeds_test_kg"),
        ((pl.col("cn_to_hub_usd_spike_ratio") > 1) & (pl.col("hub_to_us_usd_spike_ratio") > 1)).alias("seeds_test_usd"),
        (pl.col("hub_to_us_kg_prior") == 0).alias("new_route"),
        pl.lit(p.window).alias("window_periods"),
        pl.lit(p.min_prior).alias("min_prior_periods"),
        pl.lit(p.prior).alias("full_prior_periods"),
    )
    lf = lf.with_columns(
        reroute_ceiling_share(),
        three_leg_share_test(),
        three_leg_strength(),
        *co_movement(p),
        volume_weight(p),
        *[robust_z(leg, p, per_period=False) for leg in ROBUST_LEGS],
        *[robust_z(leg, p, per_period=True) for leg in ROBUST_LEGS],
        *[mean_z(leg, p) for leg in MEAN_Z_LEGS],
    )
    lf = lf.with_columns(three_leg_excess_kg(), signal_persistence(p), co_robust_z(), co_mean_z(), co_rise_z(p),
                         hub_to_us_mean_z(p), floor_multiple(),
                         kg_coverage() if coverage else pl.lit(1.0).alias("kg_coverage"))
    return mirror_features(lf) if mirror else lf
