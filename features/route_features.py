"""Mirror-trade features per route (mineral, hs_code, hub) and period.

Input: `marts.fct_route_legs` as a frame (complete period grid). Output: one row per route-period with
the columns below. Pure: frames in, frames out; no I/O.

Notation: t = the period scored; W = window periods (t-W+1..t); P = prior periods (the P periods before
the window; 36 months = three years); L = lag periods allowed between China's shipment to the hub and
the hub's shipment to the US; F = the mineral's volume floor (kg) and F$ (USD).
Each function returns one Polars expression named after the column it produces.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from warehouse.contracts import KEYS, ROUTE_KEYS  # noqa: F401  (re-exported: the features' keys)



@dataclass(frozen=True)
class FeatureParams:
    """Windows in periods of the data's frequency.

    window: W, the periods scored together; prior: P, the history they are compared with (36 months =
    the seeds' three years); lag: L used by pass-through; max_lag: the longest transit considered by the
    lag-aligned features (0..max_lag); comove_window: periods over which legs' co-movement is measured;
    z_signal: the robust z-score both legs must reach for a period to count towards persistence;
    full_weight_share: a route whose excess is this share of the product's US imports gets full volume weight;
    min_prior: the fewest prior periods a route-period is scored from. Where fewer than P exist (data that
    begin less than W + P periods before t, a code new in an HS revision) the prior sums are over the periods
    that exist, scaled to P (prior_periods says how many), so that a route is scored from its second year.
    """

    window: int = 5
    prior: int = 36
    min_prior: int = 12
    lag: int = 2
    max_lag: int = 3
    comove_window: int = 12
    z_signal: float = 2.0
    full_weight_share: float = 0.10

    def __post_init__(self) -> None:
        if self.min_prior < 1:
            raise ValueError(f"min_prior must be at least 1 period, not {self.min_prior}")
        if self.min_prior > self.prior:  # a prior shorter than the minimum: the minimum is the whole prior
            object.__setattr__(self, "min_prior", self.prior)

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> FeatureParams:
        """The monthly parameters as a run stored them (main.runs.parameters -> features); defaults for
        anything missing."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (stored or {}).items() if k in names})

    @classmethod
    def for_frequency(cls, frequency: str, monthly: FeatureParams) -> FeatureParams:
        """Annual data: one-year window against the prior three years (all three needed: a median and a
        spread of fewer years say little), no lag, co-movement over 5 years."""
        if frequency == "M":
            return monthly
        return FeatureParams(window=1, prior=3, min_prior=3, lag=0, max_lag=0, comove_window=5,
                             z_signal=monthly.z_signal, full_weight_share=monthly.full_weight_share)


def periods_before(period: date, n: int, frequency: str) -> date:
    """The first day of the period n periods before `period`: months for "M", years for "A" (n < 0: after)."""
    if frequency == "A":
        return date(period.year - n, 1, 1)
    total = period.year * 12 + period.month - 1 - n
    return date(total // 12, total % 12 + 1, 1)


def first_period_read(stored: dict[str, Any] | None, period: date, frequency: str) -> date:
    """The first period the features of a route-period read, for the monthly parameters a run stored: its
    window, the prior periods and the transit lags (warehouse.lineage lists the files behind them)."""
    p = FeatureParams.for_frequency(frequency, FeatureParams.from_stored(stored))
    return periods_before(period, p.window + p.prior + p.max_lag - 1, frequency)


# Window sums are added as whole thousandths (grams, tenths of a cent): integer sums are exact, so a
# route's features come out the same whether its history is read from the first period or from a later
# one (an incremental run reads only what it needs; a floating-point running sum would differ in the
# last digits depending on where it started).
EXACT_SCALE = 1000
CORR_SCALE = 1_000_000  # log-volumes in millionths for the exact co-movement sums


def _exact(expr: pl.Expr, scale: int) -> pl.Expr:
    return (expr * scale).round(0).cast(pl.Int64)


# The frame is sorted by route and period, each route's periods contiguous. Windows run over the whole
# column and are kept only where they lie inside one route: ROUTE_POS (the row's position within its
# route) must be at least the window's reach. The same result as `.over(ROUTE_KEYS)`, without hashing four
# string keys per window (that was most of the time on millions of route-periods).
ROUTE_ID, ROUTE_POS = "_route_id", "_route_pos"
ROUTE_NO = "_route_no"  # optional in a frame of legs: see build_route_features


def route_positions(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add ROUTE_ID (0, 1, ... per route) and ROUTE_POS (0, 1, ... per period within the route) to a frame
    sorted by route and period."""
    new = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in ROUTE_KEYS]).fill_null(True)
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    return lf.with_columns(
        new.cast(pl.Int64).cum_sum().alias(ROUTE_ID),
        (row - pl.when(new).then(row).forward_fill()).alias(ROUTE_POS),
    )


def within_route(expr: pl.Expr, reach: int) -> pl.Expr:
    """expr where the `reach` periods before t lie in the same route, else null."""
    return pl.when(pl.col(ROUTE_POS) >= reach).then(expr)


def _divided(expr: pl.Expr, divisor: float) -> pl.Expr:
    """expr / divisor, correctly rounded every time. Polars divides by a constant sometimes exactly and
    sometimes by multiplying with its reciprocal, depending on the frame's size and plan: the same sum then
    came out a last digit apart in a small frame and a large one. NumPy's division is IEEE's."""
    return expr.cast(pl.Float64).map_batches(
        lambda s: pl.Series(s.name, s.to_numpy() / divisor, nan_to_null=True), return_dtype=pl.Float64,
        is_elementwise=True)


@dataclass(frozen=True)
class Running:
    """A column of the features' first pass: `values` (an expression over the frame's rows) summed, or with
    kind "max" maximised, over the n rows ending `offset` rows before t; null unless the route has `reach`
    periods before t and all n values are there. A sum is of exact integers (_exact), divided back by `scale`
    when given (else the integer sum is the column). With `min_n`, a row whose route has fewer than n periods
    before it (but at least min_n) gets the sum of those it has (the window cut at the route's first period):
    the prior periods of a short history; reach is then min_n - 1 + offset.

    One definition, two ways to compute it: `expr` over every row (a rolling window: a full build, where
    every row is kept), and running_at for some rows only (an incremental build, which keeps a tenth of the
    rows it reads). Both give the same values, bit for bit."""

    name: str
    values: pl.Expr
    n: int
    reach: int
    offset: int = 0
    scale: int | None = None
    kind: str = "sum"
    min_n: int | None = None

    def expr(self) -> pl.Expr:
        if self.min_n is not None:
            # Partial windows at a route's start: rolled within the route (a window must not reach into the
            # route before), then moved down `offset` rows; a window holding a null is null, as with n values.
            total = self.values.rolling_sum(window_size=self.n, min_samples=1).over(ROUTE_ID)
            nulls = self.values.is_null().cast(pl.Int32).rolling_sum(window_size=self.n, min_samples=1).over(ROUTE_ID)
            if self.offset:
                total, nulls = total.shift(self.offset).over(ROUTE_ID), nulls.shift(self.offset).over(ROUTE_ID)
            out = within_route(pl.when(nulls == 0).then(total), self.reach)
            return (_divided(out, self.scale) if self.scale else out).alias(self.name)
        v = self.values.shift(self.offset) if self.offset else self.values
        rolled = (v.rolling_sum if self.kind == "sum" else v.rolling_max)(window_size=self.n, min_samples=self.n)
        out = within_route(rolled, self.reach)
        return (_divided(out, self.scale) if self.scale else out).alias(self.name)


def running_at(frame: pl.DataFrame, runs: list[Running], rows: np.ndarray) -> pl.DataFrame:
    """The columns `runs` at the frame's rows `rows` (positions, ascending) only: the values Running.expr
    gives at those rows. A sum over the frame's rows a..b is total[b + 1] - total[a] of one running total
    per column, so a column costs one pass over the frame and a lookup per row kept, not a window at every
    row. A running total of Int64 may wrap around; the difference of two is still exact (arithmetic modulo
    2^64) whenever the window's own sum fits in an Int64, which the rolling sum needs as well."""
    position = frame[ROUTE_POS].to_numpy()[rows]
    # Each distinct `values` evaluated, and its running totals taken, once (a leg's window, prior periods
    # and lags share them).
    keys = [r.values.meta.serialize(format="json") for r in runs]
    distinct = dict(zip(keys, runs))
    values = frame.select([r.values.alias(f"_v{i}") for i, r in enumerate(distinct.values())])
    sources = dict(zip(distinct, values.get_columns()))
    totals: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    columns = []
    for key, r in zip(keys, runs):
        s = sources[key]
        last = rows - r.offset
        first = last - (r.n - 1)
        if r.min_n is not None:  # cut at the route's first row (rows - position)
            first = np.maximum(first, rows - position)
        ok = (first >= 0) & (position >= r.reach)
        first, last = np.where(ok, first, 0), np.where(ok, last, 0)
        if key not in totals:
            missing = s.is_null().to_numpy()
            count = np.concatenate(([0], np.cumsum(missing))) if missing.any() else None
            total = None
            if r.kind == "sum":
                if not s.dtype.is_integer():
                    raise TypeError(f"{r.name}: a running total is exact only over integers, not {s.dtype}")
                v = s.fill_null(0).to_numpy()
                total = np.concatenate((np.zeros(1, dtype=v.dtype), np.cumsum(v)))
            totals[key] = total, count
        total, count = totals[key]
        if r.kind == "sum":
            out = total[last + 1] - total[first]
        else:
            # Clipped: a row not ok may have fewer than n rows after its (cleared) first.
            window = np.minimum(first[:, None] + np.arange(r.n)[None, :], max(len(s) - 1, 0))
            out = s.fill_null(0).to_numpy()[window].max(axis=1)
        if count is not None:  # a window holding a null has fewer than n values: null, as min_samples=n gives
            ok &= count[last + 1] == count[first]
        column = pl.Series(r.name, out.astype(np.float64) / r.scale) if r.scale else pl.Series(r.name, out, dtype=s.dtype)
        columns.append(column.scatter(np.flatnonzero(~ok), None) if not ok.all() else column)
    return pl.DataFrame(columns)


def _window_sum(col: str, n: int, name: str, offset: int = 0, min_n: int | None = None) -> Running:
    """`name`: Σ col over periods t-offset-n+1 .. t-offset within the route (null until enough periods
    exist: n, or min_n when given, the sum then over the periods the route has), summed exactly in
    thousandths of the column's unit."""
    reach = (n if min_n is None else min_n) - 1 + offset
    return Running(name, _exact(pl.col(col), EXACT_SCALE), n, reach=reach, offset=offset, scale=EXACT_SCALE,
                   min_n=min_n)


def window_total(leg: str, p: FeatureParams) -> Running:
    """`<leg>_window`: Σ leg over the trailing window t-W+1..t. Unit: the leg's (kg or USD)."""
    return _window_sum(leg, p.window, f"{leg}_window")


def over_prior(name: str, values: pl.Expr, p: FeatureParams, scale: int | None = None) -> Running:
    """`name`: Σ values over the P periods before the window (t-W-P+1..t-W), or over those of them the route
    has (at least min_prior, else null): the prior periods every prior sum, count and square is taken over."""
    return Running(name, values, p.prior, reach=p.min_prior - 1 + p.window, offset=p.window, scale=scale,
                   min_n=p.min_prior)


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


def lagged_windows(p: FeatureParams) -> list[Running]:
    """Helper columns: Σ China->hub kg over t-W-L+1..t-L for L = 0..max_lag (read by route_excess_kg and
    reroute_ceiling_kg; computed once, not once per feature)."""
    return [_window_sum("cn_to_hub_kg", p.window, _lagged_window(lag), offset=lag) for lag in range(p.max_lag + 1)]


def _co_sum(name: str, lag: int) -> str:
    return f"_cm{lag}_{name}"


def co_movement_sums(lag: int, p: FeatureParams) -> list[Running]:
    """Helper columns for co_movement_at_lag: the exact sums Σx, Σy, Σxy, Σx², Σy² over the last
    comove_window periods, x = log(1 + China->hub kg) at t-L in millionths, y = log(1 + hub->US kg) at t.
    Materialised once: an expression that repeats them nests them, and Polars then evaluated them many
    times over (10x slower on a million route-periods)."""
    n = p.comove_window
    x = _exact(pl.col("cn_to_hub_kg").log1p(), CORR_SCALE)
    y = _exact(pl.col("hub_to_us_kg").log1p(), CORR_SCALE)

    def total(e: pl.Expr, name: str, offset: int = 0) -> Running:
        return Running(_co_sum(name, lag), e, n, reach=n - 1 + lag, offset=offset)

    # x at t-L: the sums of x and x² over the window ending L periods before t (the same values at every
    # lag, which running_at then sums once); x·y pairs each period with the one L before.
    return [total(x, "x", lag), total(y, "y"), total(x.shift(lag) * y, "xy"), total(x * x, "xx", lag), total(y * y, "yy")]


def co_movement_at_lag(lag: int, p: FeatureParams) -> pl.Expr:
    """`co_movement_lag<L>` = Pearson correlation of log(1 + China->hub kg) at t-L with log(1 + hub->US kg)
    at t, over the last comove_window periods of the route; 0 when either leg is constant. -1..1.
    Reads the sums of co_movement_sums."""
    n = p.comove_window
    sx, sy, sxy, sxx, syy = (pl.col(_co_sum(k, lag)) for k in ("x", "y", "xy", "xx", "yy"))
    # Pearson's r from exact integer sums: n Σxy - Σx Σy over sqrt((n Σx² - (Σx)²)(n Σy² - (Σy)²)).
    cov = n * sxy - sx * sy
    var_x, var_y = n * sxx - sx * sx, n * syy - sy * sy
    corr = pl.when((var_x > 0) & (var_y > 0)).then(
        cov.cast(pl.Float64) / (var_x.cast(pl.Float64) * var_y.cast(pl.Float64)).sqrt())
    return corr.fill_nan(0.0).fill_null(0.0).alias(f"co_movement_lag{lag}")


def co_movement(p: FeatureParams) -> list[pl.Expr]:
    """co_movement = max over L = 0..max_lag of co_movement_lag<L>; co_movement_lag = that L (periods)."""
    cols = [f"co_movement_lag{lag}" for lag in range(p.max_lag + 1)]
    return [pl.max_horizontal(cols).alias("co_movement"),
            pl.concat_list(cols).list.arg_max().cast(pl.Int32).alias("co_movement_lag")]


ROBUST_LEGS = ("cn_to_hub_kg", "hub_to_us_kg", "us_from_cn_kg")
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation is 1.4826 MADs


# A frame may carry this boolean column: then the robust baselines are computed only at its true rows (null
# elsewhere). An incremental build marks the rows whose features it keeps or whose z-scores those rows read
# (flows/stages/featurize.changed_route_features); the other rows of its frame are only the windows' history.
NEEDED = "_needed"


def _median_rows(a: np.ndarray) -> np.ndarray:
    """The median of each row of a 2-D array without NaN, computed as Polars computes a median (the two
    middle values of an even count combined as lo + (hi - lo) × 0.5, not as their mean): the same bits."""
    k = a.shape[1] // 2
    if a.shape[1] % 2:
        return np.partition(a, k, axis=1)[:, k]
    part = np.partition(a, [k - 1, k], axis=1)
    lo, hi = part[:, k - 1], part[:, k]
    return lo + (hi - lo) * 0.5


def _baselines_by_window(frame: pl.DataFrame, p: FeatureParams) -> tuple[pl.DataFrame, np.ndarray]:
    """The robust baselines of the NEEDED rows of `frame` whose prior periods all lie in the route and hold
    no null, from a rows-by-window array per leg (NumPy's partition, a fraction of a group-by's time).
    Returns them (ROUTE_ID, ROUTE_POS and the columns) and a mask of the frame's rows left to the caller."""
    needed = frame[NEEDED].to_numpy()
    span = p.window + p.prior - 1
    rows = np.flatnonzero(needed & (frame[ROUTE_POS].to_numpy() >= span))
    window = rows[:, None] - np.arange(span, p.window - 1, -1)[None, :]  # t-W-P+1 .. t-W
    values = {leg: frame[leg].cast(pl.Float64).to_numpy()[window] for leg in ROBUST_LEGS}
    complete = np.ones(len(rows), dtype=bool)
    for v in values.values():
        complete &= ~np.isnan(v).any(axis=1)
    rows, values = rows[complete], {leg: v[complete] for leg, v in values.items()}
    out = {ROUTE_ID: frame[ROUTE_ID].to_numpy()[rows], ROUTE_POS: frame[ROUTE_POS].to_numpy()[rows]}
    medians = {leg: _median_rows(v) for leg, v in values.items()}
    out |= {f"{leg}_median_prior": medians[leg] for leg in ROBUST_LEGS}
    out |= {f"{leg}_mad_prior": _median_rows(np.abs(v - medians[leg][:, None])) for leg, v in values.items()}
    left = needed.copy()
    left[rows] = False
    return pl.DataFrame(out).cast({ROUTE_ID: frame.schema[ROUTE_ID], ROUTE_POS: frame.schema[ROUTE_POS]}), left


def robust_baselines(lf: pl.LazyFrame, p: FeatureParams) -> pl.LazyFrame:
    """`<leg>_median_prior` and `<leg>_mad_prior`: the median and the median absolute deviation of the leg's
    per-period kg over the prior periods t-W-P+1..t-W (kg per period), for each leg of ROBUST_LEGS. Returns
    them keyed by ROUTE_ID and ROUTE_POS, to be joined to the frame (a row without its window gets none).

    The most expensive features (a median and a MAD over P values for every row and leg). With a NEEDED
    column, only its rows get them: a needed row with all its prior periods in the frame from an array of
    its window's values (_baselines_by_window), any other (a route's first periods, a null) from a list of
    its window's rows, aggregated. The same values either way, so the same medians as the rolling window
    over every row that a frame without NEEDED gets."""
    aggs = [
        *[pl.col(leg).median().alias(f"{leg}_median_prior") for leg in ROBUST_LEGS],
        *[(pl.col(leg) - pl.col(leg).median()).abs().median().alias(f"{leg}_mad_prior") for leg in ROBUST_LEGS],
    ]
    if NEEDED in lf.collect_schema().names():
        frame = lf.select(ROUTE_ID, ROUTE_POS, NEEDED, *ROBUST_LEGS).collect()
        fast, left = _baselines_by_window(frame, p)
        window_rows = (
            frame.filter(pl.Series(left)).lazy().select(ROUTE_ID, ROUTE_POS)
            .with_columns(_src=pl.int_ranges(pl.col(ROUTE_POS) - (p.window + p.prior - 1), pl.col(ROUTE_POS) - p.window + 1))
            .explode("_src")
        )
        history = frame.lazy().select(ROUTE_ID, pl.col(ROUTE_POS).alias("_src"), *ROBUST_LEGS)
        # Rows whose window holds no row of the route (the route's first W periods) get no group: null, as
        # the rolling window's empty window gives.
        slow = window_rows.join(history, on=[ROUTE_ID, "_src"], how="inner").group_by(ROUTE_ID, ROUTE_POS).agg(*aggs)
        return pl.concat([fast.lazy(), slow], how="vertical_relaxed")
    return lf.select(ROUTE_ID, ROUTE_POS, *ROBUST_LEGS).rolling(
        index_column=ROUTE_POS, period=f"{p.prior}i", offset=f"-{p.window + p.prior}i", closed="right",
        group_by=ROUTE_ID,
    ).agg(*aggs)


def robust_z(leg: str, p: FeatureParams, per_period: bool) -> pl.Expr:
    """`<leg>_robust_z` = (window mean per period - prior median) / max(1.4826 × prior MAD, F / W); with
    per_period, `<leg>_z_now` uses the period's own value instead of the window mean. The denominator's
    floor (the volume floor per period) keeps a route that never traded from dividing by zero. Unitless."""
    value = pl.col(leg) if per_period else _divided(pl.col(f"{leg}_window"), p.window)
    scale = pl.max_horizontal(MAD_TO_SD * pl.col(f"{leg}_mad_prior"), _divided(pl.col("volume_floor_kg"), p.window))
    name = f"{leg}_z_now" if per_period else f"{leg}_robust_z"
    return ((value - pl.col(f"{leg}_median_prior")) / scale).alias(name)


def signal_persistence(p: FeatureParams) -> pl.Expr:
    """signal_persistence: how many consecutive periods, up to and including t, both legs were unusual:
    hub->US kg at t and China->hub kg at some t-L (L = 0..max_lag) at least z_signal robust z-scores above
    their prior median. Periods."""
    cn_z = pl.max_horizontal([within_route(pl.col("cn_to_hub_kg_z_now").shift(lag), lag)
                              for lag in range(p.max_lag + 1)])
    on = ((pl.col("hub_to_us_kg_z_now") >= p.z_signal) & (cn_z >= p.z_signal)).fill_null(False)
    # A spell starts at each period that is off, and at each route's first period: the count is the running
    # count of "on" periods less its value just before the spell began.
    ons = on.cast(pl.Int32)
    running = ons.cum_sum()
    before_spell = pl.when((~on) | (pl.col(ROUTE_POS) == 0)).then(running - ons).forward_fill()
    return (running - before_spell).alias("signal_persistence")


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


def co_robust_z() -> pl.Expr:
    """co_robust_z = min(cn_to_hub_kg_robust_z, hub_to_us_kg_robust_z): how unusual the quieter leg is
    against its own history, both over the same window. High only when both legs are. Unitless.

    Not lag-aligned, on purpose: the maximum over four lags of noisy z-scores lets steady routes through
    (tried: a steady look-alike of the sample world passed the gate); route_excess_kg and
    signal_persistence carry the lag."""
    return pl.min_horizontal("cn_to_hub_kg_robust_z", "hub_to_us_kg_robust_z").alias("co_robust_z")


# The own-history z of each leg: the spread of its prior periods as a plain standard deviation (from an exact
# sum of squares), so that a route whose history is lumps and zeros has a spread its lumps set, where the
# MAD of mostly zeros is 0 and the robust z falls back to the mineral's floor. Values above SQUARE_CAP a
# period (500,000 t a month, or USD 500 M: far above any route of these minerals) count as SQUARE_CAP in
# the squares, so that 36 squares always fit an Int64.
SQUARE_CAP = 500_000_000
MEAN_Z_KG = ("cn_to_hub_kg", "hub_to_us_kg")
MEAN_Z_LEGS = (*MEAN_Z_KG, "cn_to_hub_usd", "hub_to_us_usd")


def _squares(leg: str) -> str:
    return f"_{leg}_squares_prior"


def prior_squares(leg: str, p: FeatureParams) -> Running:
    """Helper column for mean_z: Σ round(leg)² (kg or USD) over the prior periods (those prior_total sums),
    exact."""
    amount = pl.col(leg).clip(0, SQUARE_CAP).round().cast(pl.Int64)
    return over_prior(_squares(leg), amount * amount, p)


def mean_z(leg: str, p: FeatureParams) -> pl.Expr:
    """`<leg>_mean_z` = (window mean per period - prior mean) / max(prior standard deviation, 10 % of the
    prior mean, F / (100 W)): the leg's window against its own history, in its own spread (the plain rule B
    of the evaluation, with a floor of a hundredth of the mineral's volume floor per period, 1 kg for
    gallium and germanium). Judged against the route itself, so a route of a few hundred kilograms of
    gallium is as visible as one of thousands of tonnes of antimony. Unitless.

    For the USD legs, F is the value floor and the window mean is first brought back to the prior's world
    price (divided by world_unit_value_change when above 1): a price surge on steady tonnes stays within
    the route's own spread, while germanium at USD 1,000/kg arriving in a line of zirconia at USD 6/kg,
    invisible in kilograms, stands out in value."""
    n = pl.col("prior_periods").cast(pl.Float64)
    mean = _divided(pl.col(f"{leg}_prior"), p.prior)  # the scaled prior: Σ × P / n, so Σ / n
    variance = (pl.col(_squares(leg)).cast(pl.Float64) / n - mean * mean).clip(lower_bound=0.0)
    window_mean = _divided(pl.col(f"{leg}_window"), p.window)
    if leg.endswith("_usd"):
        floor = _divided(pl.col("volume_floor_usd"), 100.0 * p.window)
        window_mean = window_mean / pl.max_horizontal(pl.col("world_unit_value_change"), 1.0)  # never null
    else:
        floor = _divided(pl.col("volume_floor_kg"), 100.0 * p.window)
    scale = pl.max_horizontal(variance.sqrt(), 0.1 * mean, floor)
    return ((window_mean - mean) / scale).alias(f"{leg}_mean_z")


def co_mean_z() -> pl.Expr:
    """co_mean_z = min(cn_to_hub_kg_mean_z, hub_to_us_kg_mean_z): the quieter leg against its own history in
    its own spread (rule B's z-score, as a feature). Unitless."""
    return pl.min_horizontal(*[f"{leg}_mean_z" for leg in MEAN_Z_KG]).alias("co_mean_z")


def co_rise_z() -> pl.Expr:
    """co_rise_z = min(max(cn_to_hub_kg_robust_z, cn_to_hub_usd_mean_z), hub_to_us_kg_robust_z): both legs
    rising, as the quieter leg's rise against its own history. The China leg counts in kilograms (robust z)
    or in value at the prior's world price (mean z), whichever is louder: a few hundred kilograms of
    germanium into a hub that imports tonnes of cheaper goods of the same HS6 line barely moves its kilograms
    and multiplies its value. Unitless."""
    china = pl.max_horizontal("cn_to_hub_kg_robust_z", "cn_to_hub_usd_mean_z")
    return pl.min_horizontal(china, pl.col("hub_to_us_kg_robust_z")).alias("co_rise_z")


def hub_to_us_mean_z() -> pl.Expr:
    """hub_to_us_mean_z = max(hub_to_us_kg_mean_z, hub_to_us_usd_mean_z): the hub's exports to the US against
    their own history, in kilograms or in value at the prior's world price, whichever is louder. Unitless."""
    return pl.max_horizontal("hub_to_us_kg_mean_z", "hub_to_us_usd_mean_z").alias("hub_to_us_mean_z")


def floor_multiple() -> pl.Expr:
    """floor_multiple = max(route_excess_kg / volume_floor_kg, route_excess_usd / volume_floor_usd): the
    route's excess over its run rate in multiples of the mineral's volume floor, in kilograms or in value,
    the larger. Below 1 the route moved less than the smallest volume that counts as a real route (a tiny
    route whose ratios explode). Unitless."""
    return pl.max_horizontal(pl.col("route_excess_kg") / pl.col("volume_floor_kg"),
                             pl.col("route_excess_usd") / pl.col("volume_floor_usd")).alias("floor_multiple")


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


PEAK = "_hub_to_us_kg_peak"


def window_peak(p: FeatureParams) -> Running:
    """Helper column for hub_to_us_peak_share: the largest hub->US kg of the window."""
    return Running(PEAK, pl.col("hub_to_us_kg"), p.window, reach=p.window - 1, kind="max")


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


LEGS_KG = ("cn_to_hub_kg", "hub_to_us_kg")
LEGS_USD = ("cn_to_hub_usd", "hub_to_us_usd")
CONTEXT = ("us_from_cn_kg", "cn_to_world_kg", "us_from_world_kg", "us_from_world_usd")


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
    order = [ROUTE_NO, "period"] if ROUTE_NO in legs.collect_schema().names() else [*ROUTE_KEYS, "period"]
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
    helpers = [SUPPLY, PEAK, *[_squares(leg) for leg in MEAN_Z_LEGS],
               *(COVERAGE_SUMS if coverage else ()), *(_USD_SPANS if coverage else ()),
               *[_lagged_window(lag) for lag in range(p.max_lag + 1)],
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
        window_peak(p),
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
    lf = lf.with_columns(three_leg_excess_kg(), signal_persistence(p), co_robust_z(), co_mean_z(), co_rise_z(),
                         hub_to_us_mean_z(), floor_multiple(),
                         kg_coverage() if coverage else pl.lit(1.0).alias("kg_coverage"))
    return mirror_features(lf) if mirror else lf


def baseline_reach(p: FeatureParams) -> int:
    """How many periods before a running spell of signal_persistence its robust baselines are read: the
    lags at which the China->hub leg counts (0..max_lag) for the spell's first period. The period before the
    spell needs none: left without baselines it counts as off, which it was (it ended the spell before). An
    incremental build marks NEEDED from this far before the spell."""
    return p.max_lag


def lookback(p: FeatureParams) -> int:
    """How many periods before t the features of period t read, at most: the prior periods before the window
    (t-W-P+1, which the robust baselines read too), pass-through's lagged supply (t-W-L+1), the lagged
    windows (t-W-max_lag+1) and co-movement (t-comove_window-max_lag+1). A frame that starts this many
    periods before a route's first changed period gives every later period's features exactly, except
    signal_persistence, which also needs its running spell and baseline_reach (flows/stages/featurize.py reads both)."""
    return max(p.window + p.prior - 1, p.window + p.lag - 1, p.window + p.max_lag - 1,
               p.comove_window + p.max_lag - 1)
