"""The evaluation harness on seeded worlds of the project's own generator (worlds/stories.py): each world
written, loaded, built, featured and scored in a throwaway warehouse (the stages of flows/stages), then
every scorer measured against the truth (models/metrics.py); worlds run in parallel processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from worlds.stories import FIRST_EVALUATED

if TYPE_CHECKING:
    from features.params import FeatureParams
    from models.params import ScoreParams


# The months a route's score is read from (its highest), as the shared scoring tool reads them; no story of
# a seeded world starts before the first (worlds.stories.FIRST_EVALUATED).
EVAL_FIRST, EVAL_LAST = f"{FIRST_EVALUATED}-01", "2025-06-01"


def full_history_from(monthly: FeatureParams) -> str:
    """The first month (YYYY-MM) of the seeded worlds with the window and the whole prior in the data before
    it (2022-05 for a 5-month window and 36 prior months from 2019-01)."""
    from worlds.stories import START

    i = START.year * 12 + START.month - 1 + monthly.window + monthly.prior - 1
    return f"{i // 12}-{i % 12 + 1:02d}"


def with_difficulty(stories: pl.DataFrame, full_from: str) -> pl.DataFrame:
    """The truth's stories with the classes the harness reports planted routes by: size, history (whether the
    route's first month, YYYY-MM, is `full_from` or later: the window and the whole prior in the data before
    it), lag, the trade it grows on, mineral and whether its goods arrive as lumpy shipments."""
    def col(name: str, default) -> pl.Expr:
        return pl.col(name) if name in stories.columns else pl.lit(default)

    return stories.with_columns(
        history=pl.when(pl.col("start") >= full_from).then(pl.lit("full")).otherwise(pl.lit("short")),
        lag_months=pl.when(col("lag", 0) <= 1).then(pl.lit("0-1")).otherwise(pl.lit("2-4")),
        trade=pl.when(col("brand_new", False)).then(pl.lit("brand-new"))
        .when(col("existing_us_t", 0.0) > 0).then(pl.lit("existing")).otherwise(pl.lit("background")),
        shipments=pl.when(col("lumpy", False)).then(pl.lit("lumpy")).otherwise(pl.lit("steady")),
    )


# How many months before a leg's surge its own spread is measured over: the prior the features read.
VISIBILITY_MONTHS = 36
# The visibility classes, in the leg's monthly standard deviations (with_visibility).
VISIBILITY_CLASSES = ((0.5, "under 0.5 sd"), (2.0, "0.5-2 sd"), (float("inf"), "2 sd or more"))  # the first: models.metrics.BELOW_NOISE (tested)


def with_visibility(stories: pl.DataFrame, legs: pl.DataFrame) -> pl.DataFrame:
    """The planted stories with `visibility`: how far the planted trade stands out of the trade already on its
    legs, and `visibility_class` (VISIBILITY_CLASSES). Per leg (China -> hub from start - lag, hub -> US from
    start), its extra a month in kilograms, and in USD at the product's world price in the start month, each in
    standard deviations of the leg's own months before it (up to VISIBILITY_MONTHS), the louder unit; the
    route's is its quieter leg's (null when neither leg traded before: both stand out whatever their size).
    A route under half a standard deviation is inside its legs' month-to-month noise: no statistic of
    monthly totals tells it from them. `legs`: route-periods with hs_code, hub_iso3, period and the legs' kg
    and USD (the scored features). Other stories, and a truth without the generator's sizes, are returned as
    they are."""
    from worlds.sample import world_price
    from worlds.stories import _month_index

    if not {"kind", "start", "lag", "extra_cn_t", "extra_us_t"} <= set(stories.columns):
        return stories
    planted = stories.filter(pl.col("kind") == "planted").select("hub_iso3", "hs_code", "start", "lag",
                                                                 "extra_cn_t", "extra_us_t").unique()
    if planted.is_empty():
        return stories
    prices = pl.DataFrame([{"hs_code": hs, "start": start, "price": float(world_price(hs, _month_index(start)))}
                           for hs, start in planted.select("hs_code", "start").unique().rows()])
    series = legs.select("hs_code", "hub_iso3", "period", "cn_to_hub_kg", "cn_to_hub_usd", "hub_to_us_kg",
                         "hub_to_us_usd").unique(["hs_code", "hub_iso3", "period"])
    begins = planted.join(prices, on=["hs_code", "start"]).with_columns(
        us_from=pl.col("start").str.to_date("%Y-%m"))
    begins = begins.with_columns(cn_from=pl.col("us_from").dt.offset_by(pl.format("-{}mo", pl.col("lag"))))

    def spread(leg: str, since: str) -> list[pl.Expr]:
        before = ((pl.col("period") < pl.col(since))
                  & (pl.col("period") >= pl.col(since).dt.offset_by(f"-{VISIBILITY_MONTHS}mo")))
        return [pl.col(f"{leg}_{unit}").filter(before).std().alias(f"{leg}_{unit}_sd") for unit in ("kg", "usd")]

    def stands_out(leg: str, extra_t: str) -> pl.Expr:
        kg, usd = pl.col(extra_t) * 1000, pl.col(extra_t) * 1000 * pl.col("price")
        times = [(amount / pl.col(f"{leg}_{unit}_sd")).fill_nan(None).fill_null(float("inf"))
                 for amount, unit in ((kg, "kg"), (usd, "usd"))]
        return pl.when(pl.col(f"{leg}_kg_sd") > 0).then(pl.max_horizontal(times)).otherwise(float("inf"))

    measured = (begins.join(series, on=["hs_code", "hub_iso3"], how="left")
                .group_by("hub_iso3", "hs_code", "start", "lag", "extra_cn_t", "extra_us_t", "price")
                .agg(*spread("cn_to_hub", "cn_from"), *spread("hub_to_us", "us_from"))
                .with_columns(visibility=pl.min_horizontal(stands_out("cn_to_hub", "extra_cn_t"),
                                                           stands_out("hub_to_us", "extra_us_t"))))
    label = pl.lit(VISIBILITY_CLASSES[-1][1])
    for bound, name in reversed(VISIBILITY_CLASSES[:-1]):
        label = pl.when(pl.col("visibility") < bound).then(pl.lit(name)).otherwise(label)
    # Infinite (a leg with no trade before) is stored as unknown: the class says it, and JSON has no infinity.
    measured = measured.select("hub_iso3", "hs_code", label.alias("visibility_class"),
                               pl.when(pl.col("visibility").is_finite()).then(pl.col("visibility")).alias("visibility"))
    return stories.join(measured, on=["hub_iso3", "hs_code"], how="left")


def score_folder(data_dir: Path, workdir: Path, monthly: FeatureParams, params: ScoreParams,
                 batch_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Load, build, compute features and score the files in `data_dir` in-process (no Prefect), in a
    throwaway warehouse under `workdir`. Returns (the scored route-periods, the plain rules' values)."""
    from flows import stages
    from models.evidence import screens_silent_routes
    from models.scoring import score_routes
    from warehouse.connection import connect_read_write
    from warehouse.plain_rules import plain_rules

    workdir.mkdir(parents=True, exist_ok=True)
    con = connect_read_write(workdir / "world.duckdb")
    try:
        stages.load(con, data_dir, batch_id)
        stages.build(con)
        # As a run computes them: not for the routes whose hub never sent the US the product, when the
        # scoring parameters screen them out (models.evidence.screens_silent_routes).
        features = stages.route_features_from(con, monthly, screens_silent_routes(params))
        rules = plain_rules(con)
    finally:
        con.close()
    scores, _, _ = score_routes(features, params)
    return scores, rules


def score_world(seed: int, workdir: Path, monthly: FeatureParams, params: ScoreParams
                ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Write seeded world `seed` as Comtrade files and score it (score_folder). Returns (route scores, the
    truth's stories, the plain rules' values)."""
    from worlds.sample import write_sample_world
    from worlds.stories import random_stories

    stories = random_stories(seed)
    paths = write_sample_world(workdir, seed=seed, stories=stories, shared_lines=True, real_background=True)
    scores, rules = score_folder(paths["data_dir"], workdir, monthly, params, f"world-{seed}")
    truth = pl.DataFrame(json.loads(paths["truth"].read_text(encoding="utf-8"))["stories"])
    return scores, truth, rules


def evaluate_world(seed: int, root: str, monthly: FeatureParams, params: ScoreParams) -> dict:
    """Every scorer's metrics on one world (run in a worker process)."""
    import shutil
    import time

    from models.metrics import evaluate_scorer, flag_list_quality, scorers

    t0 = time.perf_counter()
    workdir = Path(root) / f"world-{seed:04d}"
    try:
        scores, truth, rules = score_world(seed, workdir, monthly, params)
        truth = with_visibility(with_difficulty(truth, full_history_from(monthly)), scores)
        frames = {"scores": scores, "rules": rules}
        results = {s.name: evaluate_scorer(frames[s.frame], truth, s, EVAL_FIRST, EVAL_LAST, monthly.window)
                   for s in scorers()}
        flags = flag_list_quality(scores, truth, EVAL_FIRST, EVAL_LAST)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    planted = truth.filter(pl.col("kind") == "planted").drop("description").to_dicts()
    return {"seed": seed, "seconds": round(time.perf_counter() - t0, 1), "planted": planted, "results": results,
            "flags": flags}


def summarise(worlds: list[dict]) -> dict:
    """Averages over worlds per scorer, the planted routes the model missed, and the flagged lists."""
    from models.metrics import BELOW_NOISE, pooled_flag_lists, scorers

    below_noise = sum(1 for w in worlds for r in w["planted"] if r.get("visibility_class") == BELOW_NOISE)
    summary = {}
    for s in scorers():
        per = [w["results"][s.name] for w in worlds]
        mean = lambda key: float(np.mean([p[key] for p in per if p.get(key) is not None]))  # noqa: E731
        lookalikes: dict[str, int] = {}
        for p in per:
            for kind in p["lookalikes_in_top_k"]:
                lookalikes[kind] = lookalikes.get(kind, 0) + 1
        summary[s.name] = {
            "kind": s.kind, "words": s.words,
            "average_precision": mean("average_precision"), "precision_at_k": mean("precision_at_k"),
            "average_precision_above_noise": (mean("average_precision_above_noise") if any(
                p.get("average_precision_above_noise") is not None for p in per) else None),
            "planted_below_noise": below_noise,
            "recall_top20": mean("recall_top20"),
            "planted": sum(p["planted"] for p in per),
            "planted_peaking_in_window": sum(p["planted_peaking_in_window"] for p in per),
            "real_size_planted": sum(p["real_size_planted"] for p in per),
            "real_size_in_top20": sum(p["real_size_in_top20"] for p in per),
            "lookalikes_in_top_k": lookalikes,
            "by_class": _pooled_classes([p["by_class"] for p in per]),
        }
    missed = []
    for w in worlds:
        ranks = {(r["hub_iso3"], r["hs_code"]): r for r in w["results"]["model"]["planted_ranks"]}
        k = w["results"]["model"]["planted"]
        for story in w["planted"]:
            r = ranks.get((story["hub_iso3"], story["hs_code"]), {})
            if not r or r["rank"] > k:
                missed.append({"seed": w["seed"], **{c: story.get(c) for c in (
                               "hub_iso3", "hs_code", "size_class", "lag", "brand_new", "existing_us_t", "extra_us_t",
                               "start", "months", "history", "ramp", "lumpy", "split_with", "visibility")},
                               "rank": r.get("rank"), "score": r.get("score")})
    return {"scorers": summary, "model_missed_top_k": missed,
            "flag_list": pooled_flag_lists([w["flags"] for w in worlds])}


def _pooled_classes(per_world: list[dict]) -> dict:
    """Per class column and value, the average precision over worlds weighted by their planted routes."""
    pooled: dict[str, dict[str, dict]] = {}
    for classes in per_world:
        for column, values in classes.items():
            for value, m in values.items():
                slot = pooled.setdefault(column, {}).setdefault(value, {"weighted": 0.0, "planted": 0})
                slot["weighted"] += m["average_precision"] * m["planted"]
                slot["planted"] += m["planted"]
    return {c: {v: {"average_precision": m["weighted"] / m["planted"], "planted": m["planted"]}
                for v, m in values.items()} for c, values in pooled.items()}


def in_workers(fn, argsets: list[dict], jobs: int, progress) -> list[dict]:
    """`fn(**args, root=root)` for each of `argsets`, `jobs` at a time in spawned processes (one: in this
    one), `root` a temporary folder removed afterwards; `progress(result, done, total)` after each. Results
    in the order they finish."""
    import tempfile
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    done: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="transship-eval-") as root:
        if jobs <= 1:
            for args in argsets:
                done.append(fn(**args, root=root))
                progress(done[-1], len(done), len(argsets))
        else:
            # spawn, not fork: Polars' thread pool does not survive a fork.
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(fn, **args, root=root) for args in argsets]):
                    done.append(fut.result())
                    progress(done[-1], len(done), len(argsets))
    return done


def run_evaluation(worlds: int, first_seed: int, jobs: int, out: Path, monthly: FeatureParams,
                   params: ScoreParams, progress=print) -> dict:
    """Generate `worlds` seeded worlds, score each, and write the metrics as JSON to `out`."""
    import time

    t0 = time.perf_counter()
    done = in_workers(evaluate_world, [{"seed": seed, "monthly": monthly, "params": params}
                                       for seed in range(first_seed, first_seed + worlds)],
                      jobs, lambda w, n, total: progress(f"world {n}/{total} (seed {w['seed']}) scored in "
                                                         f"{w['seconds']} s"))
    done.sort(key=lambda w: w["seed"])
    report = {"worlds": worlds, "first_seed": first_seed, "evaluation_months": [EVAL_FIRST, EVAL_LAST],
              "window": monthly.window, "parameters": {"n_estimators": params.n_estimators,
                                                       "max_samples": params.max_samples,
                                                       "min_route_score": params.min_route_score},
              "seconds": round(time.perf_counter() - t0, 1), **summarise(done), "per_world": done}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def print_evaluation(report: dict, features: bool = True) -> None:
    from rich.table import Table

    from flows.progress import wide_console

    console = wide_console()
    table = Table(title=f"Detection on {report['worlds']} seeded worlds (routes scored by their highest score, "
                        f"{report['evaluation_months'][0][:7]} to {report['evaluation_months'][1][:7]})",
                  title_justify="left")
    for col in ("scorer", "kind", "avg precision", "precision@k", "recall top 20", "peak in window",
                "real-size in top 20", "look-alikes in top k"):
        table.add_column(col, justify="left" if col in ("scorer", "kind", "look-alikes in top k") else "right",
                         no_wrap=col != "look-alikes in top k")
    rows = sorted(report["scorers"].items(), key=lambda kv: ({"model": 0, "rule": 1, "feature": 2}[kv[1]["kind"]],
                                                              -kv[1]["average_precision"]))
    for name, s in rows:
        if s["kind"] == "feature" and not features:
            continue
        table.add_row(name, s["kind"], f"{s['average_precision']:.3f}", f"{s['precision_at_k']:.3f}",
                      f"{s['recall_top20']:.3f}", f"{s['planted_peaking_in_window']}/{s['planted']}",
                      f"{s['real_size_in_top20']}/{s['real_size_planted']}",
                      ", ".join(f"{k} {v}" for k, v in sorted(s["lookalikes_in_top_k"].items())) or "-")
    console.print(table)
    shown = [n for n in ("model", "graded_score", "learned_score", "anomaly_score", "rule_a_excess", "rule_b_zscore")
             if n in report["scorers"]]
    by_class = Table(title="Average precision by the planted routes' difficulty (each class against every route "
                           "not planted)", title_justify="left")
    for col in ("class", "value", "planted", *shown):
        by_class.add_column(col, justify="left" if col in ("class", "value") else "right")
    for column, values in report["scorers"]["model"]["by_class"].items():
        for value, m in values.items():
            by_class.add_row(column, value, str(m["planted"]), *[
                f"{report['scorers'][n]['by_class'][column][value]['average_precision']:.3f}" for n in shown])
    console.print(by_class)
    model = report["scorers"]["model"]
    best_rule = max((s for s in report["scorers"].values() if s["kind"] == "rule"), key=lambda s: s["average_precision"])
    console.print(f"model average precision {model['average_precision']:.3f}; best plain rule "
                  f"{best_rule['average_precision']:.3f} (margin {model['average_precision'] - best_rule['average_precision']:+.3f}); "
                  f"real-size planted routes in the top 20: {model['real_size_in_top20']}/{model['real_size_planted']}")
    if model.get("average_precision_above_noise") is not None and model.get("planted_below_noise"):
        rule_b = report["scorers"].get("rule_b_zscore", {}).get("average_precision_above_noise")
        console.print(f"without the {model['planted_below_noise']} planted routes under half their legs' monthly "
                      f"spread (inside the noise, visibility class 'under 0.5 sd'): model "
                      f"{model['average_precision_above_noise']:.3f}"
                      + (f", rule B {rule_b:.3f}" if rule_b is not None else "")
                      + " (a diagnosis, not the figure above)", soft_wrap=True)
    flags = report.get("flag_list")
    if flags:
        console.print(f"flagged list (direction_ok, route score >= {report['parameters'].get('min_route_score')}): "
                      f"{flags['flagged']} routes over {report['worlds']} worlds, {flags['planted_flagged']} of "
                      f"{flags['planted']} planted routes among them (precision "
                      + (f"{flags['precision']:.2f}" if flags["precision"] is not None else "-")
                      + (f", recall {flags['recall']:.2f})" if flags["recall"] is not None else ")"))
    missed = report["model_missed_top_k"]
    if missed:
        console.print(f"planted routes the model ranked below the top k ({len(missed)}):")
        for m in missed:
            console.print(f"  seed {m['seed']}: {m['hs_code']} via {m['hub_iso3']}, {m['size_class']}, lag {m['lag']}, "
                          f"{'brand-new' if m['brand_new'] else 'existing' if m['existing_us_t'] else 'background'}, "
                          f"start {m['start']} ({m['history']} history)"
                          + (f", ramp {m['ramp']}" if m.get("ramp") else "") + (", lumpy" if m.get("lumpy") else "")
                          + (f", split with {m['split_with']}" if m.get("split_with") else "")
                          + (f", visibility {m['visibility']:.2f} sd" if m.get("visibility") is not None else "")
                          + f", rank {m['rank']}", soft_wrap=True)
