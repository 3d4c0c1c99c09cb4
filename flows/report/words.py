"""The reports' words for how the run scored and flagged, read from the parameters the run recorded (main.runs
-> parameters), so that a report of an older run says what that run did: the HTML report's and the Markdown
report's preamble both take them from here."""

from __future__ import annotations

from typing import Any

from features.params import FeatureParams
from models.params import ScoreParams


def _scored_with(run: dict[str, Any]) -> ScoreParams:
    """The scoring parameters the run recorded (one recorded before a parameter existed: today's default)."""
    return ScoreParams.from_stored((run.get("parameters") or {}).get("scoring"))


def flag_threshold(run: dict[str, Any]) -> str:
    """The run's flag threshold on route_score, as recorded with its parameters."""
    return f"{_scored_with(run).min_route_score:g}"


def kg_coverage_needed(run: dict[str, Any]) -> str:
    """The share of a route's trade that must have a known weight for a flag, as the run scored it ("90 %")."""
    return f"{_scored_with(run).min_kg_coverage * 100:g} %"


def windowed_with(run: dict[str, Any]) -> tuple[FeatureParams, FeatureParams]:
    """The window parameters the run recorded, monthly and annual (one recorded before a parameter existed:
    today's default)."""
    monthly = FeatureParams.from_stored((run.get("parameters") or {}).get("features"))
    return monthly, FeatureParams.for_frequency("A", monthly)


def windows_words(run: dict[str, Any]) -> str:
    """The run's window and prior in words, for monthly and annual data: 'the window is the last 5 months
    and the prior the 36 months before it (annual data: the last year and the 3 years before it)'."""
    monthly, annual = windowed_with(run)

    def n(count: int, unit: str) -> str:
        return unit if count == 1 else f"{count} {unit}s"

    return (f"the window is the last {n(monthly.window, 'month')} and the prior the {n(monthly.prior, 'month')} "
            f"before it (annual data: the last {n(annual.window, 'year')} and the {n(annual.prior, 'year')} before it)")


def history_words(run: dict[str, Any]) -> str:
    """How much history a route-period is scored from, with the run's own window parameters (both reports)."""
    monthly, annual = windowed_with(run)
    return (f"Scored from {monthly.min_prior} months of history: a prior shorter than {monthly.prior} months is "
            f"scaled to {monthly.prior} months (the warehouse's prior_periods says how long; annual data need "
            f"{'all ' if annual.min_prior == annual.prior else ''}{annual.min_prior} prior years)")


def flag_rule_words(run: dict[str, Any]) -> str:
    """When a route is flagged, with the run's own thresholds (both reports)."""
    return (f"both legs carry tonnes beyond their prior run rate, {kg_coverage_needed(run)} of its trade has a "
            f"known weight, and its route score is at least {flag_threshold(run)}, one threshold for every mineral")


def score_words(run: dict[str, Any]) -> str:
    """What lowers the route score, in words, with the thresholds the run scored with."""
    used = _scored_with(run)
    z = used.min_rise_z
    rise = ("does not rise beyond its own history" if z == 0 else
            f"rises less than {z:g} robust standard deviation{'' if z == 1 else 's'} beyond its own history")
    power = "its square root" if used.forest_power == 0.5 else f"to the power {used.forest_power:g}"
    return (f"the isolation forest's anomaly score ({power}), lowered smoothly (never to 0) when the "
            "route's excess is a small share of the product's US imports or below the mineral's volume floor, "
            f"when the quieter leg {rise}, when the hub's exports to the US, their largest month aside, stay "
            f"within {used.min_us_mean_z:g} standard deviations of their own history, when China's extra "
            f"shipments to the hub are worth less than {used.min_value_cover * 100:g} % of the rise in the value of "
            "the hub's exports to the US, when the US's imports from China direct do not fall, and when one "
            f"month carries more than {used.max_peak_share * 100:g} % of the window (in annual data the window is "
            "one year, and neither month test applies)")
