"""Detection metrics against a world's truth. Pure: frames in, numbers out.

A route (hs_code, hub) is scored by its highest score over the evaluation months (over all of its series,
e.g. gallium and germanium), and ranked; planted routes are the positives, everything else (look-alikes
and the background) the negatives. Tied routes rank planted last (then by hub and code): a tie never
works in a scorer's favour, which matters for the yes/no plain rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score

from models.iforest import MODEL_FEATURES


@dataclass(frozen=True)
class Scorer:
    name: str
    kind: str  # model | rule | feature
    expr: pl.Expr  # higher = more suspicious, per route-period
    words: str


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
    ("anomaly_score", 1, "isolation forest score alone (no gates, no volume weight)"),
)


def scorers() -> list[Scorer]:
    out = [
        Scorer("model", "model", pl.col("route_score"),
               "isolation forest × volume weight, gated (models/scoring.py)"),
        Scorer("rule_literal", "rule", pl.col("rule_flag").cast(pl.Float64),
               "plain rule: window beats the prior 3 years on both legs (kg)"),
        Scorer("rule_seeds_usd", "rule", pl.col("seeds_test_usd").cast(pl.Float64),
               "plain rule in USD, with the floor as smallest prior"),
        Scorer("rule_seeds_kg", "rule", pl.col("seeds_test_kg").cast(pl.Float64),
               "plain rule in kg, with the floor as smallest prior"),
        Scorer("rule_seeds_ranked", "rule", _rule_ranked(),
               "plain rule in kg with the floor, ranked by kg above the run rate"),
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


def evaluate_scorer(scores: pl.DataFrame, stories: pl.DataFrame, scorer: Scorer, first: str, last: str,
                    window: int, top: int = 20) -> dict:
    """Metrics of one scorer on one world. `stories`: the truth (hub_iso3, hs_code, kind, start, end, ...)."""
    routes = route_scores_for(scores, scorer, first, last)
    ranked = (routes.join(stories.select("hs_code", "hub_iso3", "kind", "size_class", "start", "end"),
                          on=["hs_code", "hub_iso3"], how="left")
              .with_columns(pl.col("kind").fill_null("background"),
                            pl.col("score").replace([np.inf, -np.inf], None).fill_null(-1e300))
              .with_columns((pl.col("kind") == "planted").alias("_planted"))
              .sort(["score", "_planted", "hub_iso3", "hs_code"], descending=[True, False, False, False])
              .with_row_index("rank", offset=1))
    y = (ranked["kind"] == "planted").to_numpy()
    n_pos = int(y.sum())
    k = max(n_pos, 1)
    planted = ranked.filter(pl.col("kind") == "planted")
    # A planted route peaks in its own window when its best period lies between its start and W-1 periods
    # after its end (the windows that still contain the surge).
    peak_ok = planted.filter(
        (pl.col("peak_period") >= pl.col("start").str.to_date("%Y-%m"))
        & (pl.col("peak_period") <= pl.col("end").str.to_date("%Y-%m").dt.offset_by(f"{window - 1}mo")))
    real = planted.filter(pl.col("size_class").is_in(["large", "medium"]))
    return {
        "average_precision": float(average_precision_score(y, ranked["score"].to_numpy())) if n_pos else None,
        "precision_at_k": float(y[:k].sum() / k) if n_pos else None,
        "recall_top20": float(y[:top].sum() / n_pos) if n_pos else None,
        "planted": n_pos,
        "planted_peaking_in_window": peak_ok.height,
        "real_size_planted": real.height,
        "real_size_in_top20": real.filter(pl.col("rank") <= top).height,
        "lookalikes_in_top_k": ranked.head(k).filter(~pl.col("kind").is_in(["planted", "background"]))["kind"].to_list(),
        "lookalikes_in_top20": ranked.head(top).filter(~pl.col("kind").is_in(["planted", "background"]))["kind"].to_list(),
        "planted_ranks": planted.select("hub_iso3", "hs_code", "rank", "score", "peak_period")
        .with_columns(pl.col("peak_period").cast(pl.String)).to_dicts(),
    }


LABEL_KEYS = ["frequency", "mineral", "hs_code", "hub_iso3"]


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
