"""Detection metrics against a world's truth. Pure: frames in, numbers out.

A route (hs_code, hub) is scored by its highest score over the evaluation months (over all of its series,
e.g. gallium and germanium), and ranked; planted routes are the positives, everything else (look-alikes
and the background) the negatives. Tied routes rank planted last (then by hub and code): a tie never
works in a scorer's favour, which matters for the yes/no plain rules and for gates that zero many routes.
A route the scorer never scored is not ranked; a planted one counts as missed (average precision is over
every planted route of the truth, ranked or not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score

from warehouse.contracts import ROUTE_KEYS
from models.iforest import MODEL_FEATURES


@dataclass(frozen=True)
class Scorer:
    name: str
    kind: str  # model | rule | feature
    expr: pl.Expr  # higher = more suspicious, per route-period
    words: str
    frame: str = "scores"  # what it reads: the model's scored route-periods, or "rules" (warehouse.plain_rules)


def _rule_ranked() -> pl.Expr:
    """The seeds' test (with the floor), ranked by the lag-aligned kg excess: 0 when the test fails."""
    return pl.when(pl.col("seeds_test_kg")).then(1.0 + pl.col("route_excess_kg").clip(lower_bound=0.0).log1p()).otherwise(0.0)


EXTRA_FEATURES = (
    ("cn_to_hub_kg_spike_ratio", 1, "China->hub kg, window vs prior"),
    ("hub_to_us_kg_spike_ratio", 1, "hub->US kg, window vs prior"),
    ("hub_to_us_usd_spike_ratio", 1, "hub->US USD, window vs prior"),
    ("reroute_ceiling_kg", 1, "rerouting ceiling (kg)"),
    ("hub_share_of_us_imports_change", 1, "rise in hub's share of US imports"),
    ("hub_share_of_cn_exports_change", 1, "rise in hub's share of China's exports"),
    ("volume_weight", 1, "volume weight"),
    ("anomaly_score", 1, "isolation forest score alone, no evidence factors (on the route-periods the screen passes)"),
)


PLAIN_RULES = (
    Scorer("rule_a_excess", "rule", pl.col("rule_a_excess_kg"),
           "rule A: smaller of both legs' kg excess, 5-month window over prior 36 months", "rules"),
    Scorer("rule_b_zscore", "rule", pl.col("rule_b_z"),
           "rule B: smaller of both legs' z-scores, 5-month mean vs prior 36 months, from 12 prior months",
           "rules"),
)


def route_scorers() -> list[Scorer]:
    """route_score and its two halves, each measured on its own."""
    return [Scorer("model", "model", pl.col("route_score"),
                   "route_score: √(graded_score × learned_score) (models/scoring.py, models/combiner.py)"),
            Scorer("graded_score", "model", pl.col("graded_score"),
                   "the forest's score moved by the direction evidence alone (models/evidence.py)"),
            Scorer("learned_score", "model", pl.col("learned_score"),
                   "the learned classifier alone (trained on the harness's seeds 100-159 and 200-299)")]


def scorers() -> list[Scorer]:
    out = [
        *route_scorers(),
        Scorer("rule_literal", "rule", pl.col("rule_flag").cast(pl.Float64),
               "plain rule: window beats the prior 3 years on both legs (kg)"),
        Scorer("rule_seeds_usd", "rule", pl.col("seeds_test_usd").cast(pl.Float64),
               "plain rule in USD, with the floor as smallest prior"),
        Scorer("rule_seeds_kg", "rule", pl.col("seeds_test_kg").cast(pl.Float64),
               "plain rule in kg, with the floor as smallest prior"),
        Scorer("rule_seeds_ranked", "rule", _rule_ranked(),
               "plain rule in kg with the floor, ranked by kg above the run rate"),
        *PLAIN_RULES,
    ]
    seen = set()
    for f in MODEL_FEATURES:
        seen.add(f.column)
        out.append(Scorer(f.column, "feature", pl.col(f.column).cast(pl.Float64).fill_nan(None) * f.direction, f.words))
    for column, direction, words in EXTRA_FEATURES:
        if column not in seen:
            out.append(Scorer(column, "feature", pl.col(column).cast(pl.Float64).fill_nan(None) * direction, words))
    return out


def route_scores_for(scores: pl.DataFrame, scorer: Scorer, first: str, last: str) -> pl.DataFrame:
    """hs_code, hub_iso3, score (highest over first..last and over series), peak_period."""
    window = scores.filter(pl.col("period").is_between(pl.lit(first).str.to_date(), pl.lit(last).str.to_date()))
    return (window.with_columns(scorer.expr.fill_null(-np.inf).alias("_s"))
            .sort("_s", "period", descending=[True, False])
            .group_by("hs_code", "hub_iso3", maintain_order=True)
            .agg(pl.col("_s").first().alias("score"), pl.col("period").first().alias("peak_period")))


def average_precision(planted_in_rank_order: np.ndarray, n_planted: int) -> float:
    """Average precision of a ranking (best first; ties already ordered planted last) over `n_planted`
    positives, some of which may be absent from the ranking (never scored): each counts 0."""
    y = np.asarray(planted_in_rank_order, dtype=bool)
    if not n_planted:
        return float("nan")
    hits = np.cumsum(y)
    return float((hits[y] / (np.flatnonzero(y) + 1)).sum() / n_planted)


def ranked_routes(routes: pl.DataFrame, planted: pl.DataFrame) -> pl.DataFrame:
    """`routes` (hs_code, hub_iso3, score, ...) with a null score dropped, ranked best first, planted last
    among ties (then by hub and code); `planted`: the planted routes' hs_code and hub_iso3."""
    marks = planted.select("hs_code", "hub_iso3").unique().with_columns(_planted=pl.lit(True))
    return (routes.filter(pl.col("score").is_not_null() & pl.col("score").is_finite())
            .join(marks, on=["hs_code", "hub_iso3"], how="left")
            .with_columns(pl.col("_planted").fill_null(False))
            .sort(["score", "_planted", "hub_iso3", "hs_code"], descending=[True, False, False, False])
            .with_row_index("rank", offset=1))


def evaluate_scorer(scores: pl.DataFrame, stories: pl.DataFrame, scorer: Scorer, first: str, last: str,
                    window: int, top: int = 20) -> dict:
    """Metrics of one scorer on one world. `stories`: the truth (hub_iso3, hs_code, kind, start, end, ...)."""
    routes = route_scores_for(scores, scorer, first, last).with_columns(
        pl.col("score").replace([np.inf, -np.inf], None))
    stories_planted = stories.filter(pl.col("kind") == "planted")
    ranked = (ranked_routes(routes, stories_planted)
              .join(stories.select("hs_code", "hub_iso3", "kind", "size_class", "start", "end"),
                    on=["hs_code", "hub_iso3"], how="left")
              .with_columns(pl.col("kind").fill_null("background")))
    y = ranked["_planted"].to_numpy()
    n_pos = stories_planted.select("hs_code", "hub_iso3").unique().height
    k = max(n_pos, 1)
    planted = ranked.filter(pl.col("kind") == "planted")
    # A planted route peaks in its own window when its best period lies between its start and W-1 periods
    # after its end (the windows that still contain the surge).
    peak_ok = planted.filter(
        (pl.col("peak_period") >= pl.col("start").str.to_date("%Y-%m"))
        & (pl.col("peak_period") <= pl.col("end").str.to_date("%Y-%m").dt.offset_by(f"{window - 1}mo")))
    real = planted.filter(pl.col("size_class").is_in(["large", "medium"]))
    classes = [c for c in DIFFICULTY_CLASSES if c in stories.columns]
    return {
        "by_class": {c: class_average_precision(routes, stories_planted, c) for c in classes},
        "average_precision": average_precision(y, n_pos) if n_pos else None,
        "average_precision_above_noise": above_noise_average_precision(routes, stories_planted),
        "precision_at_k": float(y[:k].sum() / k) if n_pos else None,
        "recall_top20": float(y[:top].sum() / n_pos) if n_pos else None,
        "planted": n_pos,
        "planted_unscored": n_pos - planted.height,
        "planted_peaking_in_window": peak_ok.height,
        "real_size_planted": stories_planted.filter(pl.col("size_class").is_in(["large", "medium"])).height,
        "real_size_in_top20": real.filter(pl.col("rank") <= top).height,
        "lookalikes_in_top_k": ranked.head(k).filter(~pl.col("kind").is_in(["planted", "background"]))["kind"].to_list(),
        "lookalikes_in_top20": ranked.head(top).filter(~pl.col("kind").is_in(["planted", "background"]))["kind"].to_list(),
        "planted_ranks": planted.select("hub_iso3", "hs_code", "rank", "score", "peak_period")
        .with_columns(pl.col("peak_period").cast(pl.String)).to_dicts(),
    }


def flag_list_quality(scores: pl.DataFrame, stories: pl.DataFrame, first: str, last: str) -> dict:
    """The model's flagged list on one world: routes with a flagged period between `first` and `last`, and
    how many of them are planted."""
    flagged = (scores.filter(pl.col("flagged").fill_null(False)
                             & pl.col("period").is_between(pl.lit(first).str.to_date(), pl.lit(last).str.to_date()))
               .select("hs_code", "hub_iso3").unique())
    planted = stories.filter(pl.col("kind") == "planted").select("hs_code", "hub_iso3").unique()
    return {"flagged": flagged.height, "planted": planted.height,
            "planted_flagged": flagged.join(planted, on=["hs_code", "hub_iso3"], how="semi").height}


def pooled_flag_lists(per_world: list[dict]) -> dict:
    """flag_list_quality of several worlds added up, with the precision and recall of the whole."""
    flagged, found, planted = (sum(w[k] for w in per_world) for k in ("flagged", "planted_flagged", "planted"))
    return {"flagged": flagged, "planted_flagged": found, "planted": planted,
            "precision": found / flagged if flagged else None, "recall": found / planted if planted else None}


def months_apart(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Whole months from date a to date b."""
    return (b.dt.year() - a.dt.year()) * 12 + (b.dt.month() - a.dt.month())


# The visibility class of a planted route whose extra a month is under half its legs' own monthly standard
# deviation (flows.harness.seeded.with_visibility): inside their noise, which no statistic of monthly
# totals tells it from.
BELOW_NOISE = "under 0.5 sd"


def above_noise_average_precision(routes: pl.DataFrame, planted: pl.DataFrame) -> float | None:
    """Average precision with the planted routes below their legs' noise (visibility_class BELOW_NOISE) left
    out of the ranking, neither found nor counted as false alarms: how the ranking does on the planted routes
    the data can show (class_average_precision of the class "above the noise"). None when the truth has no
    visibility, or no planted route is above the noise."""
    if "visibility_class" not in planted.columns:
        return None
    above = (planted.unique(["hs_code", "hub_iso3"], keep="first", maintain_order=True)
             .with_columns(_above_noise=pl.col("visibility_class").fill_null("") != BELOW_NOISE))
    return class_average_precision(routes, above, "_above_noise").get("True", {}).get("average_precision")


def class_average_precision(routes: pl.DataFrame, planted: pl.DataFrame, column: str) -> dict[str, dict]:
    """Average precision per value of `column` of the planted routes (hs_code, hub_iso3, column): each class's
    planted routes against every route that is not planted (the other planted routes left out of that
    ranking). {value: {"average_precision", "planted"}}."""
    out = {}
    for value in sorted(planted[column].drop_nulls().unique().to_list(), key=str):
        mine = planted.filter(pl.col(column) == value).select("hs_code", "hub_iso3")
        others = planted.filter(pl.col(column) != value).select("hs_code", "hub_iso3")
        ranked = ranked_routes(routes.join(others, on=["hs_code", "hub_iso3"], how="anti"), mine)
        out[str(value)] = {"average_precision": average_precision(ranked["_planted"].to_numpy(), mine.height),
                           "planted": mine.height}
    return out


def evaluate_on_episodes(frame: pl.DataFrame, episodes: pl.DataFrame, scorer: Scorer, first: str,
                         top: int = 20, slack_months: int = 2) -> dict:
    """One scorer against a truth of planted episodes (hub_iso3, hs_code, start, end as dates), as the
    validation worlds give it: routes scored by their highest score from `first` on, average precision over
    every planted route, precision at k = planted routes, recall in the top 20, planted routes whose best
    period lies in their episode (give or take `slack_months`), and planted routes never scored."""
    routes = route_scores_for(frame, scorer, first, "9999-12-01").with_columns(
        pl.col("score").replace([np.inf, -np.inf], None))
    planted = episodes.group_by("hs_code", "hub_iso3").agg(pl.col("start").min(), pl.col("end").max())
    ranked = ranked_routes(routes, planted)
    y = ranked["_planted"].to_numpy()
    n = planted.height
    k = max(n, 1)
    found = planted.join(ranked.select("hs_code", "hub_iso3", "rank", "score", "peak_period"),
                         on=["hs_code", "hub_iso3"], how="left").sort("rank", nulls_last=True)
    timely = found.filter(months_apart(pl.col("start"), pl.col("peak_period")) >= -slack_months,
                          months_apart(pl.col("peak_period"), pl.col("end")) >= -slack_months)
    return {
        "average_precision": average_precision(y, n) if n else None,
        "precision_at_k": float(y[:k].sum() / k) if n else None,
        "recall_top20": float(y[:top].sum() / n) if n else None,
        "planted": n, "timely": timely.height, "unscored": found.filter(pl.col("rank").is_null()).height,
        "routes_ranked": ranked.height,
        "planted_ranks": found.with_columns(pl.col("start", "end", "peak_period").cast(pl.String)).to_dicts(),
        "top": ranked.head(top).select("hub_iso3", "hs_code", "_planted", "score").to_dicts(),
    }


# The planted routes' difficulty classes the harness reports average precision for (flows.harness adds them
# to the truth's stories).
DIFFICULTY_CLASSES = ("size_class", "history", "lag_months", "trade", "mineral", "shipments", "visibility_class")


LABEL_KEYS = list(ROUTE_KEYS)


def evaluate_on_labels(scores: pl.DataFrame, labels: pl.DataFrame, scorer: Scorer) -> dict:
    """A scorer against analysts' labels (`labels`: the route keys and `label`, true = confirmed, false =
    dismissed). A labelled route's score is its highest over its scored periods. Average precision needs
    both kinds of label; `flagged_precision` applies to the model's own flags (`flagged` column)."""
    per_route = (scores.join(labels.select(*LABEL_KEYS, "label"), on=LABEL_KEYS, how="inner")
                 .with_columns(scorer.expr.fill_null(-np.inf).alias("_s"))
                 .group_by(LABEL_KEYS).agg(pl.col("_s").max().alias("score"), pl.col("label").first(),
                                           pl.col("flagged").any().alias("flagged")))
    y = per_route["label"].to_numpy().astype(bool)
    both = 0 < y.sum() < len(y)
    flagged = per_route.filter(pl.col("flagged"))
    return {
        "labelled": per_route.height, "confirmed": int(y.sum()),
        "average_precision": float(average_precision_score(
            y, per_route["score"].replace([np.inf, -np.inf], None).fill_null(-1e300).to_numpy())) if both else None,
        "flagged_precision": flagged["label"].mean() if flagged.height else None,
    }
