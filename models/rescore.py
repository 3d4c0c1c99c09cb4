"""An incremental build's scoring with the model a group already has: the new and changed route-periods
scored, and only the stored rows whose flag or explanation they change rewritten (a new month adds one
period per route, not a rewrite of the group)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from models.explain import _with_notes, explanation_schema, route_typical, rows_to_explain
from models.iforest import RouteScorer, explanation_text
from models.params import ScoreParams
from models.scoring import apply_threshold, score_group
from warehouse.contracts import KEYS, ROUTE_KEYS


@dataclass
class Rescored:
    """What an incremental run changes in one group (rescore_changed): `rows` to append to
    main.route_score_values (the new route-periods, and stored ones whose flag or explanation changed),
    `explanations` to append to main.route_explanations, and the keys to delete first: `stale_rows`
    (stored rows rewritten) and `stale_explanations` (stored rows explained again, or no longer)."""
    rows: pl.DataFrame
    explanations: pl.DataFrame
    stale_rows: pl.DataFrame
    stale_explanations: pl.DataFrame


def rescore_changed(context: pl.DataFrame, new_rows: pl.DataFrame, scorer: RouteScorer, params: ScoreParams,
                    changed_routes: pl.DataFrame, features_for: Callable[[pl.DataFrame], pl.DataFrame],
                    route_rows_for: Callable[[pl.DataFrame], pl.DataFrame]) -> Rescored:
    """One group with the model it already has, after new or changed route-periods arrived: score those
    (`new_rows`), flag and explain as score_routes would over the whole group, and return only what changed.

    `context`: the group's stored rows of main.route_score_values (the changed routes' rows from their first
    changed period on already removed) that new rows can affect: those with route_score > 0 or an
    explanation. Every other stored row has no route score (screened out: NULL) or one of 0, and no
    explanation, and keeps them: a flag needs route_score > 0 (a flag-eligible row has a positive anomaly
    score and factors), and so does the peak period of a top route. So the flags and peaks over context +
    new rows are those over the whole group. (The screen leaves most rows NULL: the context is the rows the
    forest scored, a few per cent of a large group.)

    A row's explanation depends on the model (unchanged), its own features and its route's typical values
    (the median over the route's scored periods): a row keeps its explanation when its route is not among
    `changed_routes` and it was explained before. Rows of changed routes, and rows explained now but not
    before, are explained here: their features read through `features_for(keys)` (keys -> feature rows in
    the same order), their routes' scored periods through `route_rows_for(routes)`."""
    columns = [c for c in context.columns if c not in ("flagged", "top_features")]
    parts = [context.select(columns)]
    if new_rows.height:
        fresh = score_group(new_rows, scorer, params)
        parts.append(fresh.select([pl.col(c) if c in fresh.columns else pl.lit(None).alias(c) for c in columns]))
    group = pl.concat(parts, how="vertical_relaxed").sort(KEYS)
    scored = apply_threshold(group, params)
    before = context.select(*KEYS, pl.col("flagged").alias("_flagged_before"), pl.col("top_features").alias("_before"),
                            pl.lit(True).alias("_stored"))
    scored = scored.with_columns(rows_to_explain(scored, params)).join(before, on=KEYS, how="left",
                                                                       maintain_order="left")
    changed = changed_routes.select(ROUTE_KEYS).unique().with_columns(_changed=pl.lit(True))
    scored = scored.join(changed, on=list(ROUTE_KEYS), how="left", maintain_order="left").with_columns(
        pl.col("_stored").fill_null(False),
        _again=pl.col("explained") & (pl.col("_changed").fill_null(False) | pl.col("_before").is_null()))

    again = scored.filter("_again").select(KEYS)
    long = explanation_schema()
    text = again.with_columns(top_features=pl.lit(None, dtype=pl.String))
    if again.height:
        chosen = features_for(again)
        typical_of = route_typical(route_rows_for(again.select(ROUTE_KEYS).unique()))
        typical = chosen.select(ROUTE_KEYS).join(typical_of, on=list(ROUTE_KEYS), how="left", nulls_equal=True,
                                                 maintain_order="left")
        explained_now = scorer.explain(chosen, typical, top=params.explain_top)
        row_keys = again.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
        text = row_keys.join(explanation_text(explained_now), on="row", how="left").with_columns(
            pl.col("top_features").fill_null("no feature far from the route's typical"))
        # The forest's score of each row as scored (the features carry none).
        chosen = chosen.with_columns(anomaly_score=scored.filter("_again")["anomaly_score"])
        text = _with_notes(text, chosen, params).drop("row")
        long = explained_now.join(row_keys, on="row").drop("row")
    out = scored.join(text.rename({"top_features": "_now"}), on=KEYS, how="left", maintain_order="left").with_columns(
        top_features=pl.when(pl.col("_again")).then(pl.col("_now"))
        .when(pl.col("explained")).then(pl.col("_before")).otherwise(None))
    unexplained = pl.col("_stored") & ~pl.col("explained") & pl.col("_before").is_not_null()
    rewrite = (~pl.col("_stored") | pl.col("_again") | unexplained
               | (pl.col("flagged") != pl.col("_flagged_before")).fill_null(True))
    out = out.filter(rewrite)
    return Rescored(
        rows=out.drop("explained", "_flagged_before", "_before", "_stored", "_changed", "_again", "_now"),
        explanations=long,
        stale_rows=out.filter("_stored").select(KEYS),
        stale_explanations=out.filter(pl.col("_stored") & (pl.col("_again") | unexplained)).select(KEYS))
