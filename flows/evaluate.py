"""How the demo did against the sample world's truth: where the planted routes ranked, which look-alikes
got in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from warehouse.connection import connect_read_only
from warehouse.outputs import flagged_routes

if TYPE_CHECKING:
    from features.params import FeatureParams
    from models.scoring import ScoreParams


def demo_scorecard(flagged: pl.DataFrame, truth_path: Path) -> pl.DataFrame:
    """One row per story of the truth file, with its rank among flagged routes (null = not flagged)."""
    stories = pl.DataFrame(json.loads(Path(truth_path).read_text(encoding="utf-8"))["stories"])
    # A route can be flagged in a metal's own series (gallium, germanium) when national lines separate it:
    # the story's best-ranked series counts.
    # Ranks are counted over distinct routes (hs_code, hub), so one route flagged in two series counts once.
    ranks = (flagged.sort("rank").group_by("hs_code", "hub_iso3", maintain_order=True).first()
             .with_row_index("route_rank", offset=1)
             .select("hs_code", "hub_iso3", pl.col("route_rank").cast(pl.Int64).alias("rank"), "peak_period",
                     "peak_score", pl.col("mineral").alias("flagged_series")))
    return stories.join(ranks, on=["hs_code", "hub_iso3"], how="left").sort(
        pl.col("rank").is_null(), "rank", "kind")


def demo_verdict(warehouse: Path, truth_path: Path) -> pl.DataFrame:
    from rich.console import Console
    from rich.table import Table

    con = connect_read_only(warehouse)
    try:
        flagged = flagged_routes(con)
    finally:
        con.close()
    card = demo_scorecard(flagged, truth_path)
    planted = card.filter(pl.col("kind") == "planted")
    n = planted.height
    in_top = planted.filter(pl.col("rank") <= n).height
    lookalikes_in = card.filter(pl.col("kind") != "planted", pl.col("rank").is_not_null())
    console = Console()
    table = Table(title="Sample world: truth vs flagged routes", title_justify="left")
    for col in ("kind", "route", "rank", "story"):
        table.add_column(col)
    for r in card.iter_rows(named=True):
        table.add_row(r["kind"], f"{r['hs_code']} {r['hub_iso3']}", "-" if r["rank"] is None else str(r["rank"]),
                      r["description"])
    console.print(table)
    console.print(
        f"[bold]Planted routes in the top {n} of the flagged list: {in_top}/{n}.[/bold] "
        + ("No look-alike was flagged." if lookalikes_in.is_empty() else
           "Look-alikes flagged: " + ", ".join(f"{r['kind']} {r['hs_code']} {r['hub_iso3']} (rank {r['rank']})"
                                               for r in lookalikes_in.iter_rows(named=True)))
        + f" Other (background) routes flagged: "
          f"{flagged.select('hs_code', 'hub_iso3').unique().height - card['rank'].is_not_null().sum()}.")
    return card


# ---------------------------------------------------------------- the evaluation harness
EVAL_FIRST, EVAL_LAST = "2021-01-01", "2025-06-01"


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


def score_folder(data_dir: Path, workdir: Path, monthly: FeatureParams, params: ScoreParams,
                 batch_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Load, build, compute features and score the files in `data_dir` in-process (no Prefect), in a
    throwaway warehouse under `workdir`. Returns (the scored route-periods, the plain rules' values)."""
    from flows import stages
    from models.scoring import score_routes
    from warehouse.connection import connect_read_write
    from warehouse.plain_rules import plain_rules

    workdir.mkdir(parents=True, exist_ok=True)
    con = connect_read_write(workdir / "world.duckdb")
    try:
        stages.load(con, data_dir, batch_id)
        stages.build(con)
        features = stages.route_features_from(con, monthly)
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

    from models.evaluation import evaluate_scorer, flag_list_quality, scorers

    t0 = time.perf_counter()
    workdir = Path(root) / f"world-{seed:04d}"
    try:
        scores, truth, rules = score_world(seed, workdir, monthly, params)
        truth = with_difficulty(truth, full_history_from(monthly))
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
    from models.evaluation import pooled_flag_lists, scorers

    summary = {}
    for s in scorers():
        per = [w["results"][s.name] for w in worlds]
        mean = lambda key: float(np.mean([p[key] for p in per if p[key] is not None]))  # noqa: E731
        lookalikes: dict[str, int] = {}
        for p in per:
            for kind in p["lookalikes_in_top_k"]:
                lookalikes[kind] = lookalikes.get(kind, 0) + 1
        summary[s.name] = {
            "kind": s.kind, "words": s.words,
            "average_precision": mean("average_precision"), "precision_at_k": mean("precision_at_k"),
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
                               "start", "months", "history", "ramp", "lumpy", "split_with")},
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
    shown = [n for n in ("model", "anomaly_score", "rule_a_excess", "rule_b_zscore") if n in report["scorers"]]
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
                          + f", rank {m['rank']}", soft_wrap=True)


# ---------------------------------------------------------------- folders of files with their truth
VALIDATION_FROM = "2021-01-01"


def world_folders(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, data folder, truth file) for each folder under `root` that has a truth beside it
    (`NAME_truth.json`, the validation worlds' layout) or inside it (`truth.json`)."""
    found = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for truth in (folder.with_name(folder.name + "_truth.json"), folder / "truth.json"):
            if truth.is_file():
                found.append((folder.name, folder, truth))
                break
    return found


def read_episodes(truth: Path) -> pl.DataFrame:
    """The planted routes of a truth file: hub_iso3, hs_code, start, end (first days of months), kg.
    Accepts the validation worlds' `episodes` (hs6, YYYY-MM) and the sample world's `stories`."""
    from warehouse.files import IngestError, parse_json

    data = parse_json(truth, truth.read_bytes())
    try:
        rows = _episode_rows(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise IngestError(f"{truth}: a planted route lacks a field or has a bad one ({exc!r}): each needs hub_iso3, "
                          "hs6 (or hs_code), start and end as YYYY-MM") from None
    if rows is None:
        raise IngestError(f"{truth}: not a truth file: expected a JSON object with an `episodes` list "
                          "(hub_iso3, hs6, start, end) or a `stories` list")
    frame = pl.DataFrame(rows, schema={"hub_iso3": pl.String, "hs_code": pl.String, "start": pl.String,
                                       "end": pl.String, "kg": pl.Float64})
    return frame.with_columns(pl.col("start", "end").str.to_date("%Y-%m"))


def _episode_rows(data: object) -> list[dict] | None:
    if isinstance(data, dict) and isinstance(data.get("episodes"), list):
        rows = [{"hub_iso3": str(e["hub_iso3"]), "hs_code": str(e["hs6"])[:6], "start": str(e["start"])[:7],
                 "end": str(e["end"])[:7], "kg": float(e.get("kg") or 0)} for e in data["episodes"]]
    elif isinstance(data, dict) and isinstance(data.get("stories"), list):
        rows = [{"hub_iso3": str(e["hub_iso3"]), "hs_code": str(e["hs_code"]), "start": str(e["start"])[:7],
                 "end": str(e["end"])[:7], "kg": 0.0} for e in data["stories"] if e.get("kind") == "planted"]
    else:
        return None
    return rows


def folder_scorers() -> list:
    from models.evaluation import PLAIN_RULES, Scorer

    return [Scorer("model", "model", pl.col("route_score"), "route_score (models/scoring.py)"),
            Scorer("forest_alone", "model", pl.col("anomaly_score"),
                   "isolation forest score alone (on the route-periods the screen passes)"),
            *PLAIN_RULES]


def evaluate_folder(name: str, data_dir: Path, truth: Path, root: str, monthly: FeatureParams,
                    params: ScoreParams) -> dict:
    """Every folder scorer's metrics on one folder of files (run in a worker process)."""
    import shutil
    import time

    from models.evaluation import evaluate_on_episodes, flag_list_quality

    t0 = time.perf_counter()
    episodes = read_episodes(truth)
    workdir = Path(root) / name
    try:
        scores, rules = score_folder(data_dir, workdir, monthly, params, f"folder-{name}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    frames = {"scores": scores, "rules": rules}
    results = {s.name: evaluate_on_episodes(frames[s.frame], episodes, s, VALIDATION_FROM) for s in folder_scorers()}
    flags = flag_list_quality(scores, episodes.with_columns(kind=pl.lit("planted")), VALIDATION_FROM, "9999-12-01")
    return {"world": name, "data_dir": str(data_dir), "truth": str(truth),
            "seconds": round(time.perf_counter() - t0, 1), "results": results, "flags": flags}


def run_folder_evaluation(root: Path, jobs: int, out: Path, monthly: FeatureParams, params: ScoreParams,
                          progress=print) -> dict:
    """Score every world folder under `root` (world_folders) and write the metrics as JSON to `out`."""
    import time

    from models.evaluation import pooled_flag_lists
    from warehouse.files import IngestError

    worlds = world_folders(root)
    if not worlds:
        raise IngestError(f"{root}: no folder with a truth file beside it (NAME_truth.json) or inside it "
                          "(truth.json)")
    t0 = time.perf_counter()
    done = in_workers(evaluate_folder, [{"name": name, "data_dir": d, "truth": t, "monthly": monthly, "params": params}
                                         for name, d, t in worlds], jobs,
                      lambda w, n, total: progress(f"{w['world']} scored in {w['seconds']} s ({n}/{total})"))
    done.sort(key=lambda w: w["world"])
    names = [s.name for s in folder_scorers()]
    mean = {n: float(np.mean([w["results"][n]["average_precision"] for w in done])) for n in names}
    report = {"root": str(root), "from": VALIDATION_FROM, "seconds": round(time.perf_counter() - t0, 1),
              "mean_average_precision": mean, "flag_list": pooled_flag_lists([w["flags"] for w in done]),
              "per_world": done}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def below_top_k(model: dict) -> list[dict]:
    """The planted routes a scorer's results rank below the top k (k = planted routes) or never scored."""
    return [p for p in model["planted_ranks"] if p["rank"] is None or p["rank"] > model["planted"]]


def print_folder_evaluation(report: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    from flows.progress import wide_console

    console = wide_console()
    names = [s.name for s in folder_scorers()]
    table = Table(title=f"Average precision per world ({report['root']}; routes = hub x HS6 by their highest score "
                        f"from {report['from'][:7]}; ties rank planted routes last)", title_justify="left")
    table.add_column("world")
    table.add_column("planted", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("model - better rule", justify="right")
    table.add_column("planted missed (rank > planted) / never scored", justify="right")
    table.add_column("flagged (planted)", justify="right")

    def margin(r: dict) -> float:
        return r["model"] - max(r["rule_a_excess"], r["rule_b_zscore"])

    for w in report["per_world"]:
        res = w["results"]
        aps = {n: res[n]["average_precision"] for n in names}
        model = res["model"]
        missed = len(below_top_k(model))
        table.add_row(Text(w["world"]), str(model["planted"]), *[f"{aps[n]:.3f}" for n in names],
                      f"{margin(aps):+.3f}", f"{missed} / {model['unscored']}",
                      f"{w['flags']['flagged']} ({w['flags']['planted_flagged']})")
    mean, flags = report["mean_average_precision"], report["flag_list"]
    table.add_row("mean", "", *[f"{mean[n]:.3f}" for n in names], f"{margin(mean):+.3f}", "",
                  f"{flags['flagged']} ({flags['planted_flagged']}) in all")
    console.print(table)
    for w in report["per_world"]:
        model = w["results"]["model"]
        missed = below_top_k(model)
        if missed:
            console.print(Text(f"{w['world']}: planted routes the model ranks below the top {model['planted']}: " + "; ".join(
                f"{p['hub_iso3']}/{p['hs_code']} {p['start'][:7]}..{p['end'][:7]} "
                + ("never scored" if p["rank"] is None else f"rank {p['rank']} (score {p['score']:.3f}, peak {p['peak_period'][:7]})")
                for p in missed)), soft_wrap=True)
