"""Signal features: how the legs move together and beyond their own history: co-movement of China -> hub
and hub -> US over lags, robust z-scores of each leg against its prior median and MAD, z-scores of the
window mean in the prior's own spread (mean_z, co_mean_z, co_rise_z, hub_to_us_mean_z), and how long the
signal has persisted. Notation as in features/route_features.py."""

from __future__ import annotations

import polars as pl

from features.params import FeatureParams
from features.volumes import price_rise, window_peak_name
from features.window import CORR_SCALE, MAD_TO_SD, ROUTE_POS, Running, _divided, _exact, over_prior, within_route


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


def mean_z(leg: str, p: FeatureParams, without_peak: bool = False) -> pl.Expr:
    """`<leg>_mean_z` = (window mean per period - prior mean) / max(prior standard deviation, 10 % of the
    prior mean, F / (100 W)): the leg's window against its own history, in its own spread (the plain rule B
    of the evaluation, with a floor of a hundredth of the mineral's volume floor per period, 1 kg for
    gallium and germanium). Judged against the route itself, so a route of a few hundred kilograms of
    gallium is as visible as one of thousands of tonnes of antimony. Unitless.

    For the USD legs, F is the value floor and the window mean is first brought back to the prior's world
    price (divided by world_unit_value_change when above 1): a price surge on steady tonnes stays within
    the route's own spread, while germanium at USD 1,000/kg arriving in a line of zirconia at USD 6/kg,
    invisible in kilograms, stands out in value.

    without_peak (hub -> US only, a window of 3 periods or more): the window's mean without its largest
    period, (window - peak) / (W - 1), so that one lump does not read as a sustained rise (hub_to_us_mean_z).
    The expression is unnamed then."""
    n = pl.col("prior_periods").cast(pl.Float64)
    mean = _divided(pl.col(f"{leg}_prior"), p.prior)  # the scaled prior: Σ × P / n, so Σ / n
    variance = (pl.col(_squares(leg)).cast(pl.Float64) / n - mean * mean).clip(lower_bound=0.0)
    if without_peak and p.window >= 3:
        window_mean = _divided(pl.col(f"{leg}_window") - pl.col(window_peak_name(leg)), p.window - 1)
    else:
        window_mean = _divided(pl.col(f"{leg}_window"), p.window)
    if leg.endswith("_usd"):
        floor = _divided(pl.col("volume_floor_usd"), 100.0 * p.window)
        window_mean = window_mean / price_rise()
    else:
        floor = _divided(pl.col("volume_floor_kg"), 100.0 * p.window)
    scale = pl.max_horizontal(variance.sqrt(), 0.1 * mean, floor)
    z = (window_mean - mean) / scale
    return z if without_peak else z.alias(f"{leg}_mean_z")


def co_mean_z() -> pl.Expr:
    """co_mean_z = min(cn_to_hub_kg_mean_z, hub_to_us_kg_mean_z): the quieter leg against its own history in
    its own spread (rule B's z-score, as a feature). Unitless."""
    return pl.min_horizontal(*[f"{leg}_mean_z" for leg in MEAN_Z_KG]).alias("co_mean_z")


def co_rise_z(p: FeatureParams) -> pl.Expr:
    """co_rise_z = min(max over L = 0..max_lag of China(t-L), hub_to_us_kg_robust_z), China =
    max(cn_to_hub_kg_robust_z, cn_to_hub_usd_mean_z): both legs rising, as the quieter leg's rise against its
    own history, the China leg up to max_lag periods before the hub's exports (goods in transit: a route
    whose China leg rose three months before its US leg shows both rising when the US leg does). The China
    leg counts in kilograms (robust z) or in value at the prior's world price (mean z), whichever is louder:
    a few hundred kilograms of germanium into a hub that imports tonnes of cheaper goods of the same HS6 line
    barely moves its kilograms and multiplies its value. Unitless.

    Lag-aligned, unlike co_robust_z: a steady route's noisy China z-scores at four lags let it through when
    the score was a gate on this alone; china_value_cover (the value China sent against the value passed on)
    now weighs the same route, and on the harness the lag-aligned rise ranks better (README)."""
    china = pl.max_horizontal("cn_to_hub_kg_robust_z", "cn_to_hub_usd_mean_z")
    lagged = pl.max_horizontal([within_route(china.shift(lag), lag) for lag in range(p.max_lag + 1)])
    return pl.min_horizontal(lagged, pl.col("hub_to_us_kg_robust_z")).alias("co_rise_z")


def hub_to_us_mean_z(p: FeatureParams) -> pl.Expr:
    """hub_to_us_mean_z = max over kg and value of the hub's exports to the US against their own history
    (mean_z), without the window's largest period: in kilograms or in value at the prior's world price,
    whichever is louder, and a rise only when the window's other periods carry it. One lump of germanium
    in a line of zirconia is loud in value for the whole window it sits in; without it, the window is the
    route's usual trade. A window under 3 periods (annual data) keeps all of them. Unitless."""
    return pl.max_horizontal(mean_z("hub_to_us_kg", p, without_peak=True),
                             mean_z("hub_to_us_usd", p, without_peak=True)).alias("hub_to_us_mean_z")
