"""Fit (or reuse) one RouteScorer per (frequency, mineral), score its route-periods, explain the top ones.
Pure: frames in, frames out.

Which route-periods are scored: those with the window and at least min_prior prior periods on the grid
(12 months by default; the prior sums are over what exists, scaled to P, and `prior_periods` says how many)
and some trade on either leg in the window or the prior periods. A route with no trade at all has nothing
to score.

Scores, per route-period (higher = more suspicious, all of them):
- anomaly_score: the isolation forest's score in (0, 1] (models/iforest.py);
- score_percentile: the share of the model's training route-periods that scored at or below it;
- route_score, the ranking: √(graded_score × learned_score) on monthly route-periods (learned_score: the
  classifier of models/combiner.py, trained on the harness), graded_score on annual ones;
- graded_score: the forest's score moved by each piece of direction evidence, none of which
  erases it (a route that misses a threshold by a little ranks just below one that meets it, not with
  the quiet routes at 0):
      graded_score = √anomaly_score × (0.5 + 0.5 × volume_weight) × (0.1 + 0.9 × √min(1, max(0, floor_multiple)))
                    × σ(co_rise_z − min_rise_z) × σ(hub_to_us_mean_z − min_us_mean_z)
                    × (0.5 + 0.5 × σ(−us_from_cn_kg_robust_z − min_direct_fall_z))
                    × σ((max_peak_share − hub_to_us_peak_share) / 0.05)
                    × (0.05 + 0.95 × min(1, max(0, china_value_cover / min_value_cover)))
  with σ the logistic function (0.5 at the threshold; a z 2 below it keeps 0.12 of the score, a peak share
  0.1 above it 0.12). The forest counts by its square root (forest_power ½): on the harness it separates
  less than the evidence does, and a forest score of 0.5 then keeps 0.71 of the evidence, not half. The
  evidence counts kilograms and value, the louder, wherever a product's value can
  hide in its weight (the China leg, the hub's exports to the US, the floor), so that a few hundred
  kilograms of germanium at USD 1,000/kg inside an HS6 line of cheaper goods counts for what it is worth
  (the z-scores take values at the prior's world price, so a price surge on steady tonnes does not rise
  in them; the value floor rises with the world price, so a few tonnes at a surged price do not pass it):
  - both legs must rise: co_rise_z is the quieter leg against its own history, the China leg up to
    max_lag periods before the hub's exports (in transit), in kilograms (robust z: median and MAD, floored
    at the mineral's volume floor) or in value (mean z), the hub -> US leg in kilograms (robust z); half the
    score at 0 (min_rise_z), whole from about 3;
  - China's extra shipments pay for what the hub passed on: china_value_cover is China's exports to the
    hub in value above their run rate (up to max_lag periods before) against the rise in the value of the
    hub's exports to the US. About 1 / the pass-through on a rerouting route; about 0 for a producer
    selling more of its own output, or a hub whose tonnes of cheap goods from China rose with its
    high-value exports of the same HS6 line. Whole from half (min_value_cover), a twentieth at none;
  - the hub's exports to the US must beat their own history: hub_to_us_mean_z is that leg's window mean
    without its largest period (one lump of germanium in a line of zirconia is loud in value for the five
    windows it sits in, and is not a route) against its own prior mean in its own standard deviation
    (lumps and zeros set the spread; a route of a few hundred kilograms is judged in its own scale), in
    kilograms or in value, at least 2 of them for half the score: a new hub -> US leg of gallium stands out
    there even when the China -> hub rise is buried in the hub's own tonnes of the line, and a hub buying
    more for itself (its exports to the US flat) does not. Leaving the largest period out does most of
    what a factor on the window's peak share (hub_to_us_peak_share, in kg) did, and in value too; that
    factor now lowers only a window nearly all one period (below);
  - volume: against the product's US imports (volume_weight, halves the score at most: small against the
    market may still be a route) and against the mineral's volume floor (floor_multiple, the excess in
    multiples of the floor; a tenth of the score with no excess at all, half at a fifth of the floor): a
    tiny route whose ratios explode ranks below a real one. The value floor is kept at the kilogram floor's
    worth at the window's world price (features/volumes.py, floor_price_rise);
  - the direct route falls: the US's imports from China direct over the window against their own history
    (us_from_cn_kg_robust_z, the same for every hub of a product and period): a fall of min_direct_fall_z
    (1) or more keeps the score whole, no change (or no direct trade to fall) keeps 0.63 of it, a rise
    about half. The third leg of the signature (China -> hub and hub -> US rise while China -> US falls) ranks a
    route above the same rise in a month when buyers could still buy from China direct; it never erases
    a route on its own;
  - not one lump: a window whose largest period carries more than max_peak_share (0.85) of the hub's
    exports to the US keeps little (95 % keeps 0.12): one lump and a trickle on a route with no trade
    before, where the trickle alone is many of its own (zero) standard deviations. Until 2026-12-06 the
    factor was at 0.6 with a slope of 0.1, and lowered routes whose goods come as a few lots; with
    hub_to_us_mean_z leaving the largest period out and the value floor's change above, average precision
    on the training seeds (100-159 and 200-299) went from 0.841 to 0.852;
  - windows of fewer than 3 periods (annual data): no peak-share factor, and hub_to_us_mean_z keeps their
    largest period.
  The thresholds, slopes and the forest's power were chosen on the project's own harness: seeds 100-159
  of the widened generator (`transship evaluate --worlds 60 --seed 100`; 200-299 as well for the changes of
  2026-12-06, last: `--worlds 100 --seed 200`); seeds 0-19 (its default) and
  20-29 are measured, not chosen on, as are the validation worlds (README).
- the checks, stored with the scores: `direction_ok`, the route carries tonnes in the transshipment
  direction and its weights can be trusted: route_excess_kg (both legs above their prior run rate,
  lag-aligned) is above 0 and kg_coverage (the share of the route's trade over the window and prior whose
  weight is known or estimated) is at least `min_kg_coverage` (default 0.9), so that years of trade of
  unpublished weight are not read as years of no trade, and a price surge (value up, tonnes flat) is not a
  route; `sustained`, no single period carries more than `max_peak_share` (default 0.85) of the window's
  hub->US kg (windows of 3 periods or more; annual data pass), which the score weighs and the flag does not
  require.

`flagged`, the review queue, by one of two thresholds an analyst can reason about (neither refits):
- min_route_score (default 0.5): direction_ok and route_score at or above it. One threshold for every
  mineral and section: the isolation forest's score is normalised by the expected path length of its
  sample size (0.5 = as easy to isolate as a typical point), so it means the same in every model, and the
  evidence factors are absolute. The list grows with what happened, not with the number of models or
  routes: a group of quiet trade flags nothing. The volume floor and the robust z, hard gates before, are
  weighed in the score instead (a route 10 t above its run rate where the floor is 20 t can be flagged on
  strong evidence). Chosen with the learned half on the project's own generators: the lowest threshold,
  in steps of 0.05, at which the flagged routes are at least 98 % planted on the harness's training seeds
  and at least 90 % on each scale world of 1 M, 2 M and 5 M rows (README);
- queue_size N (when set, instead): per frequency and period, the N direction_ok route-periods with the
  highest route_score, whatever their score (a review team with a fixed capacity); a route-period screened
  out of the forest's scoring (below) has no route score and is never in the queue.

The screen: graded_score = √anomaly_score × evidence, evidence the product of the factors above (stored as
a column), and anomaly_score <= 1, so a route-period whose evidence is below min_evidence (0.003) cannot have
a graded score that high, nor a route score above √min_evidence (0.055; learned_score <= 1). Neither the
forest nor the classifier scores it: anomaly_score, score_percentile, graded_score, learned_score and
route_score stay NULL. Every route whose best route score reaches √min_evidence keeps exactly the score it
would have without the screen, and no flag can change (the threshold is far above). Chosen below the weakest
planted route's best score on the harness (README), it keeps the forests from most of a large universe's
route-periods.
The training sample: a group of more than train_sample_rows (50,000) route-periods fits its forest on a
seeded sample of about that many, the same share of every period (training_sample); the percentiles, the
normal ranges and the drift deciles are read from it. Each tree draws max_samples (256) rows anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from models.combiner import COLUMNS as COMBINER_COLUMNS, learned_scores, load as load_combiner, route_score_from
from models.evidence import evidence, gates, graded_route_score
from models.explain import explain_group, explanation_schema
from models.iforest import MODEL_FEATURE_COLUMNS, RouteScorer
from models.params import ScoreParams
from warehouse.contracts import KEYS, ROUTE_KEYS


@dataclass
class FittedGroup:
    frequency: str
    mineral: str
    scorer: RouteScorer | None
    n_train: int
    periods: tuple[str, str] | None
    note: str
    training_sha256: str | None = None
    n_routes: int = 0
    model_id: str | None = None
    reused: bool = False
    extra: dict = field(default_factory=dict)




# The feature columns scoring reads (of ~120): keys, what makes a row scoreable, the model's inputs, the
# gates, the volume weight and the rule flag (both stored with the scores), the history lengths (notes).
# Reading only these keeps a product group in memory at a quarter of its full width.
SCORING_INPUTS = tuple(dict.fromkeys([
    *KEYS, "has_history", "cn_to_hub_kg_window", "cn_to_hub_kg_prior", "hub_to_us_kg_window", "hub_to_us_kg_prior",
    "hub_to_us_usd_window", "cn_to_hub_usd_window", *MODEL_FEATURE_COLUMNS, "route_excess_kg", "volume_floor_kg",
    "co_rise_z", "hub_to_us_mean_z", "floor_multiple", "us_from_cn_kg_robust_z", "china_value_cover", "kg_coverage",
    "hub_to_us_peak_share", "window_periods", "prior_periods", "min_prior_periods", "full_prior_periods",
    "volume_weight", "rule_flag", *(c for c in COMBINER_COLUMNS if c != "anomaly_score")]))


def scoreable(features: pl.DataFrame) -> pl.Expr:
    return pl.col("has_history") & (
        (pl.col("cn_to_hub_kg_window") + pl.col("cn_to_hub_kg_prior")
         + pl.col("hub_to_us_kg_window") + pl.col("hub_to_us_kg_prior")
         + pl.col("hub_to_us_usd_window") + pl.col("cn_to_hub_usd_window")) > 0
    )


def hashed_columns(group: pl.DataFrame) -> pl.DataFrame:
    """The columns of `group` that training_sha256 hashes (route keys, period, model inputs): the same
    columns, not copies (18 of the 37 that scoring reads)."""
    return group.select([c for c in (*KEYS, *MODEL_FEATURE_COLUMNS) if c in group.columns])


def training_sha256(group: pl.DataFrame) -> str:
    """A hash of the rows a model is trained on: route keys, period and model inputs, in key order, as CSV
    text (stable across library versions)."""
    frame = in_key_order(hashed_columns(group))
    # The CSV text of the whole frame, hashed in slices: a section of the universe is millions of rows.
    digest = hashlib.sha256()
    for start in range(0, max(frame.height, 1), HASH_SLICE_ROWS):
        digest.update(frame.slice(start, HASH_SLICE_ROWS).write_csv(include_header=start == 0,
                                                                    float_precision=9).encode())
    return digest.hexdigest()


HASH_SLICE_ROWS = 200_000


def in_key_order(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` sorted by route and period; the frame itself (no copy) when it already is, as a group read
    from the warehouse is. Whether it is, is read in one pass (each row against the next), not by sorting:
    a section of the universe is millions of rows keyed by strings."""
    if frame.height < 2 or frame.select(_not_after_next(KEYS).all()).item():
        return frame
    return frame[frame.select(pl.arg_sort_by(KEYS, maintain_order=True)).to_series()]


def _not_after_next(keys: list[str]) -> pl.Expr:
    """Per row: its `keys` are at or before the next row's, in the order of a sort by them (lexicographic
    over the keys; strings by their bytes, as Polars sorts them). True on the last row."""
    ordered = pl.col(keys[-1]) <= pl.col(keys[-1]).shift(-1)
    for key in reversed(keys[:-1]):
        ordered = (pl.col(key) < pl.col(key).shift(-1)) | ((pl.col(key) == pl.col(key).shift(-1)) & ordered)
    return ordered.fill_null(True)


def training_sample(group: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """The rows a group's forest is fitted on: all of them up to train_sample_rows, else a seeded sample of
    about that many, the same share of every period (stratified, so every period's trade is in what the
    forest learns as normal). Each tree draws max_samples (256) rows anyway: what a larger training set
    changes is only the reference the percentiles and the normal ranges are read from. The sample is a
    function of the rows (in key order) and the parameters, so the same rows give the same model."""
    if group.height <= params.train_sample_rows:
        return group
    share = params.train_sample_rows / group.height
    rank = pl.int_range(pl.len()).shuffle(seed=params.random_state).over("period")
    return group.filter(rank < (pl.len() * share).ceil().over("period"))


def score_group(group: pl.DataFrame, scorer: RouteScorer, params: ScoreParams,
                known: np.ndarray | None = None) -> pl.DataFrame:
    """evidence, anomaly_score, score_percentile, score_threshold, gates and route_score for one model's
    rows. The screen: the forest scores only the rows whose evidence reaches min_evidence; the rest could
    not carry a route score of min_evidence whatever the forest said, and keep anomaly_score and route_score
    NULL. `known`: every row's anomaly score when fitting computed it already (a group fitted whole)."""
    ceiling = group.select(evidence(params)).to_series()  # once: for the screen and as the stored column
    keep = (ceiling >= params.min_evidence).fill_null(False)
    mask = keep.to_numpy()
    scores = np.full(group.height, np.nan)
    if known is not None:
        scores[mask] = known[mask]
    elif mask.any():
        inputs = group.select(MODEL_FEATURE_COLUMNS)
        scores[mask] = scorer.anomaly_score(inputs if mask.all() else inputs.filter(keep))
    anomaly = pl.Series("anomaly_score", scores).fill_nan(None)
    percentile = pl.Series("score_percentile", scorer.score_percentile(scores)).fill_nan(None)
    direction_ok, sustained = gates(params)
    out = group.with_columns(
        ceiling, anomaly,
        pl.when(anomaly.is_null()).then(None).otherwise(percentile).alias("score_percentile"),
        score_threshold=pl.lit(params.min_route_score),
    ).with_columns(direction_ok, sustained).with_columns(graded_route_score(params))
    return with_learned(out, params)


def with_learned(frame: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """learned_score (models/combiner.py: monthly route-periods the forest scored; NULL elsewhere, or when
    params.learned is off) and route_score: √(graded_score × learned_score), graded_score where there is no
    learned score."""
    learned = (learned_scores(frame, load_combiner()) if params.learned
               else pl.lit(None, dtype=pl.Float64).alias("learned_score"))
    return frame.with_columns(learned).with_columns(
        route_score_from(pl.col("graded_score"), pl.col("learned_score")).alias("route_score"))


def flag_eligible() -> pl.Expr:
    """Tonnes in the transshipment direction, of trusted weight (direction_ok)."""
    return pl.col("direction_ok").fill_null(False)


def apply_threshold(scores: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """`flagged` by the route-score threshold, or by the review-queue size per frequency and period, among
    the flag-eligible route-periods."""
    eligible = flag_eligible()
    if params.queue_size:
        rank = (pl.when(eligible).then(pl.col("route_score")).otherwise(None)
                .rank("ordinal", descending=True).over("frequency", "period"))
        flagged = eligible & (rank <= params.queue_size)
    else:
        flagged = eligible & (pl.col("route_score") >= pl.col("score_threshold"))
    return scores.with_columns(flagged=flagged.fill_null(False))


def not_scored_note(group: pl.DataFrame) -> str:
    """Why a group (one frequency and mineral) has no scoreable route-period, in words: the history a period
    needs against the periods the data cover, and, where the frame says which periods each side published,
    the ones missing (unknown, so never counted as history)."""
    monthly = group["frequency"][0] == "M"
    unit = "months" if monthly else "years"

    def counted(n: int) -> str:
        return f"{n} {unit if n != 1 else unit[:-1]}"

    needed = int(group["window_periods"][0]) + int(group["min_prior_periods"][0])
    periods = group.select("period", *[c for c in ("cn_side_published", "us_side_published") if c in group.columns])
    periods = periods.unique("period").sort("period")
    shown = (lambda d: str(d)[:7] if monthly else str(d)[:4])  # noqa: E731
    note = (f"not scored: a period needs {counted(needed)} of history on both legs (window + the fewest prior "
            f"{unit} scored from); the data cover "
            f"{counted(periods.height)} ({shown(periods['period'].min())} to {shown(periods['period'].max())})")
    if {"cn_side_published", "us_side_published"} <= set(periods.columns):
        missing = periods.filter(~(pl.col("cn_side_published") & pl.col("us_side_published")))
        if missing.height:
            listed = ", ".join(shown(p) for p in missing["period"].head(6)) + (", ..." if missing.height > 6 else "")
            note += (f", of which {missing.height} not published by China's side or the US side ({listed}): "
                     "unknown, not zero")
    return note


def score_routes(features: pl.DataFrame, params: ScoreParams,
                 reuse: dict[tuple[str, str], FittedGroup] | None = None,
                 ) -> tuple[pl.DataFrame, pl.DataFrame, list[FittedGroup]]:
    """Scores for every scoreable route-period, the explanations, and the model per (frequency, mineral).

    `reuse` maps (frequency, mineral) to a registered model to score with instead of fitting one."""
    reuse = reuse or {}
    # Copies avoided where they are not needed: a group read from the warehouse is scoreable, sorted and one
    # (frequency, mineral), and at universe scale a section is millions of rows.
    keep = scoreable(features).fill_null(False)
    candidates = in_key_order(features if features.select(keep.all()).item() else features.filter(keep))
    scored: list[pl.DataFrame] = []
    explained: list[pl.DataFrame] = []
    fitted: list[FittedGroup] = []
    for (frequency, mineral), group in by_group(candidates):
        periods = (str(group["period"].min()), str(group["period"].max()))
        prior = reuse.get((frequency, mineral))
        known = None
        if prior is not None and prior.scorer is not None:
            scorer, entry = prior.scorer, prior
        elif group.height < params.min_train_rows:
            fitted.append(FittedGroup(frequency, mineral, None, group.height, periods,
                                      f"not scored: {group.height} route-periods with enough history, "
                                      f"need {params.min_train_rows}"))
            continue
        else:
            scorer = RouteScorer(n_estimators=params.n_estimators, max_samples=params.max_samples,
                                 random_state=params.random_state)
            sample = training_sample(group, params)
            if sample is group:  # fitted whole: fitting scored every row already
                known = scorer.fit_score(group)
            else:
                scorer.fit(sample)
            # The hash of the rows the forest was fitted on: the same rows fitted the same way, the same model.
            entry = FittedGroup(frequency, mineral, scorer, group.height, periods, "fitted",
                                training_sha256=training_sha256(sample),
                                n_routes=group.select(ROUTE_KEYS).unique().height,
                                extra={"sampled": sample.height})
            del sample
        out = apply_threshold(score_group(group, scorer, params, known), params)
        screened_out = out["anomaly_score"].null_count()
        entry.extra = {**entry.extra, "route_periods": out.height, "screened_out": screened_out,
                       "forest_scored": out.height - screened_out}
        out, long = explain_group(out, scorer, params)
        scored.append(out)
        explained.append(long)
        fitted.append(entry)
    done = {(g.frequency, g.mineral) for g in fitted}
    for (frequency, mineral), group in by_group(features):
        if (frequency, mineral) not in done:
            fitted.append(FittedGroup(frequency, mineral, None, 0, None, not_scored_note(group)))
    if not scored:  # same columns, no rows: downstream tables keep their shape
        empty = candidates.head(0).with_columns(
            evidence=pl.lit(None, dtype=pl.Float64), anomaly_score=pl.lit(None, dtype=pl.Float64),
            score_percentile=pl.lit(None, dtype=pl.Float64),
            score_threshold=pl.lit(None, dtype=pl.Float64), direction_ok=pl.lit(None, dtype=pl.Boolean),
            sustained=pl.lit(None, dtype=pl.Boolean), graded_score=pl.lit(None, dtype=pl.Float64),
            learned_score=pl.lit(None, dtype=pl.Float64), route_score=pl.lit(None, dtype=pl.Float64),
            flagged=pl.lit(None, dtype=pl.Boolean), top_features=pl.lit(None, dtype=pl.String))
        return empty, explanation_schema(), fitted
    if len(scored) == 1:  # one group (as read from the warehouse): no concatenated copy
        return scored[0], explained[0], fitted
    return (pl.concat(scored, how="vertical_relaxed"), pl.concat(explained, how="vertical_relaxed"), fitted)


def by_group(frame: pl.DataFrame) -> Iterable[tuple[tuple[str, str], pl.DataFrame]]:
    """((frequency, mineral), its rows) for each group in `frame`. A frame of one group (as one is read from
    the warehouse) is given as it is: group_by copies every group, and a section of the universe is
    millions of rows."""
    if frame.height and frame.select((pl.col("frequency") == pl.first("frequency")).all()
                                     & (pl.col("mineral") == pl.first("mineral")).all()).item():
        return [((frame["frequency"][0], frame["mineral"][0]), frame)]
    return frame.group_by(["frequency", "mineral"], maintain_order=True)
