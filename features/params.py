"""The features' parameters (windows in periods of the data's frequency) and the period calendar."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any



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
