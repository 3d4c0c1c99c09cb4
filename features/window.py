"""The exact-window engine the features are computed with: sums over each route's past periods, added as
whole thousandths so that they come out the same whichever period a route's history is read from; each
defined once (Running) and computed either over every row (a rolling window: a full build) or at some rows
only (running_at: an incremental build); and the robust baselines (median and MAD of the prior periods)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from features.params import FeatureParams
from features.incremental import NEEDED
from warehouse.contracts import ROUTE_KEYS


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


def run_starts(keys) -> pl.Expr:
    """True on each row whose `keys` differ from the row before's (and on the first row): where a run of rows
    with the same keys starts, in a frame sorted by them. Its running count numbers the runs."""
    return pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)


def route_positions(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add ROUTE_ID (0, 1, ... per route) and ROUTE_POS (0, 1, ... per period within the route) to a frame
    sorted by route and period."""
    new = run_starts(ROUTE_KEYS)
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


def over_prior(name: str, values: pl.Expr, p: FeatureParams, scale: int | None = None) -> Running:
    """`name`: Σ values over the P periods before the window (t-W-P+1..t-W), or over those of them the route
    has (at least min_prior, else null): the prior periods every prior sum, count and square is taken over."""
    return Running(name, values, p.prior, reach=p.min_prior - 1 + p.window, offset=p.window, scale=scale,
                   min_n=p.min_prior)


ROBUST_LEGS = ("cn_to_hub_kg", "hub_to_us_kg", "us_from_cn_kg")
# The legs of ROBUST_LEGS that are the product's, not the route's (US imports from China direct: one value
# per product and period, the same on every route of the product).
PRODUCT_LEGS = ("us_from_cn_kg",)
# A row's product and period, for those legs (robust_baselines).
_PRODUCT, _PERIOD = "_product", "_period_key"
PRODUCT_KEYS = ("frequency", "mineral", "hs_code")


MAD_TO_SD = 1.4826  # a normal distribution's standard deviation is 1.4826 MADs


def _median_rows(a: np.ndarray) -> np.ndarray:
    """The median of each row of a 2-D array without NaN, computed as Polars computes a median (the two
    middle values of an even count combined as lo + (hi - lo) × 0.5, not as their mean): the same bits.
    Reorders each row of `a` in place (a median does not depend on the order)."""
    k = a.shape[1] // 2
    if a.shape[1] % 2:
        a.partition(k, axis=1)
        return a[:, k].copy()
    a.partition([k - 1, k], axis=1)
    lo, hi = a[:, k - 1], a[:, k]
    return lo + (hi - lo) * 0.5


def _median_and_mad(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's median and median absolute deviation (_median_rows), in `values`' own memory: it is
    overwritten."""
    median = _median_rows(values)
    np.subtract(values, median[:, None], out=values)
    np.abs(values, out=values)
    return median, _median_rows(values)


def _baselines_by_window(frame: pl.DataFrame, p: FeatureParams, needed: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    """The robust baselines of the `needed` rows of `frame` whose prior periods in the route hold no null,
    from a rows-by-window array per leg and window length (NumPy's partition, a fraction of a group-by's
    time): P columns where the route has all its prior periods, fewer in its first periods (a short
    history), none before its first prior period (no baseline: null). Returns them (ROUTE_ID, ROUTE_POS and
    the columns) and a mask of the frame's rows left to the caller (a window holding a null).

    Two short cuts, the same values: a window more than half of whose values are 0 has a median and a MAD
    of 0 (no array built); and where the frame carries each row's product and period (_PRODUCT, _PERIOD:
    robust_baselines adds them when the product's legs hold one value per product and period), a product's
    leg (PRODUCT_LEGS) is computed once per product, period and window length. A route's rows are its
    consecutive periods (the mart's grid), so those windows hold the same periods, and so the same values.
    On 2.3 M route-periods of the 5 M-row scale world: 3.96 -> 1.40 s."""
    position = frame[ROUTE_POS].to_numpy()
    # How many prior periods t-W-P+1..t-W lie in the route: up to P.
    length = np.minimum(position - p.window + 1, p.prior)
    legs = {leg: frame[leg].cast(pl.Float64).to_numpy() for leg in ROBUST_LEGS}
    # A window holding a null (NaN here) is left to the caller: a row is complete when no NaN lies in
    # its window, counted from a running count of the NaNs (none at all, as a rule: no count).
    gaps = np.zeros(frame.height, dtype=bool)
    for v in legs.values():
        gaps |= np.isnan(v)
    nan_before = np.concatenate([[0], np.cumsum(gaps)]) if gaps.any() else None
    # Most small routes carry nothing in most periods: where more than half a window's values are 0 (and the
    # leg is never negative), its median is 0 and so is its MAD (the median of the values themselves), with
    # no array built. Counted, as the NaNs, from a running count of the zeros.
    zeros_before = {leg: np.concatenate([[0], np.cumsum(v == 0)]) for leg, v in legs.items() if not (v < 0).any()}
    product = period = None
    span = 1
    if _PRODUCT in frame.columns:
        product, period = frame[_PRODUCT].to_numpy(), frame[_PERIOD].to_numpy()
        if len(period):  # a period's key: its day from the frame's first, below `span`
            period = period - period.min()
            span = int(period.max()) + 1
    left = needed & (length >= 1)
    route_ids = frame[ROUTE_ID].to_numpy()
    parts = []
    for n in np.unique(length[left]):
        rows = np.flatnonzero(left & (length == n))
        if nan_before is not None:  # NaNs among rows t-W-n+1 .. t-W
            rows = rows[nan_before[rows - p.window + 1] == nan_before[rows - p.window - n + 1]]
        offsets = np.arange(p.window + n - 1, p.window - 1, -1)[None, :]  # t-W-n+1 .. t-W
        out = {ROUTE_ID: route_ids[rows], ROUTE_POS: position[rows]}
        # A product's leg has the same window on every route of the product with this many prior periods
        # before this period: computed once per product and period, and given to each of its rows.
        once, each = np.unique(product[rows] * span + period[rows], return_index=True,
                               return_inverse=True)[1:] if product is not None else (None, None)
        for leg, v in legs.items():
            shared = once is not None and leg in PRODUCT_LEGS
            at = rows[once] if shared else rows
            median, mad = np.zeros(len(at)), np.zeros(len(at))
            zeros = zeros_before.get(leg)
            spread = (2 * (zeros[at - p.window + 1] - zeros[at - p.window - n + 1]) <= n
                      if zeros is not None else np.ones(len(at), dtype=bool))
            median[spread], mad[spread] = _median_and_mad(v[at[spread][:, None] - offsets])
            if shared:
                median, mad = median[each], mad[each]
            out[f"{leg}_median_prior"], out[f"{leg}_mad_prior"] = median, mad
        parts.append(pl.DataFrame(out))
        left[rows] = False
    schema = {ROUTE_ID: frame.schema[ROUTE_ID], ROUTE_POS: frame.schema[ROUTE_POS],
              **{f"{leg}_{kind}_prior": pl.Float64 for kind in ("median", "mad") for leg in ROBUST_LEGS}}
    fast = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=schema)
    return fast.select(list(schema)).cast(schema), left


def robust_baselines(lf: pl.LazyFrame, p: FeatureParams) -> pl.LazyFrame:
    """`<leg>_median_prior` and `<leg>_mad_prior`: the median and the median absolute deviation of the leg's
    per-period kg over the prior periods t-W-P+1..t-W (kg per period), for each leg of ROBUST_LEGS, over the
    prior periods the route has. Returns them keyed by ROUTE_ID and ROUTE_POS, to be joined to the frame (a
    row without a prior period in the route gets none: null).

    The most expensive features (a median and a MAD over P values for every row and leg). Every row, or with
    a NEEDED column only its rows, from an array of its window's values (_baselines_by_window); a window
    holding a null (a period a side did not publish) from a list of its window's rows, aggregated (nulls left
    out). The same values either way: the medians a rolling window over every row gives (Polars'
    rolling group-by, which this replaced: 2.5 times slower on 1 M route-periods)."""
    aggs = [
        *[pl.col(leg).median().alias(f"{leg}_median_prior") for leg in ROBUST_LEGS],
        *[(pl.col(leg) - pl.col(leg).median()).abs().median().alias(f"{leg}_mad_prior") for leg in ROBUST_LEGS],
    ]
    names = lf.collect_schema().names()
    marked = NEEDED in names
    keyed = all(k in names for k in (*PRODUCT_KEYS, "period"))
    # Where the frame says which product and period a row is (it does in the features), a product's legs are
    # computed once per product and period (_baselines_by_window). Products told apart where the keys change
    # from one row to the next: the same number, the same product (a product met twice gets two numbers).
    product = [run_starts(PRODUCT_KEYS).cast(pl.Int64).cum_sum().alias(_PRODUCT),
               pl.col("period").cast(pl.Int64).alias(_PERIOD)] if keyed else []
    frame = lf.select(ROUTE_ID, ROUTE_POS, *([NEEDED] if marked else []), *ROBUST_LEGS, *product).collect()
    if keyed and frame.group_by(_PRODUCT, _PERIOD).agg(
            [pl.col(leg).n_unique() for leg in PRODUCT_LEGS]).select(pl.max_horizontal(PRODUCT_LEGS).max()).item() != 1:
        frame = frame.drop(_PRODUCT, _PERIOD)  # not one value per product and period: every row its own
    needed = frame[NEEDED].fill_null(False).to_numpy() if marked else np.ones(frame.height, dtype=bool)
    fast, left = _baselines_by_window(frame, p, needed)
    window_rows = (
        frame.filter(pl.Series(left)).lazy().select(ROUTE_ID, ROUTE_POS)
        .with_columns(_src=pl.int_ranges(pl.col(ROUTE_POS) - (p.window + p.prior - 1), pl.col(ROUTE_POS) - p.window + 1))
        .explode("_src")
    )
    history = frame.lazy().select(ROUTE_ID, pl.col(ROUTE_POS).alias("_src"), *ROBUST_LEGS)
    # Positions before the route's first row have no row to join: the window is what the route has.
    slow = window_rows.join(history, on=[ROUTE_ID, "_src"], how="inner").group_by(ROUTE_ID, ROUTE_POS).agg(*aggs)
    return pl.concat([fast.lazy(), slow], how="vertical_relaxed")
