"""Study: a learned combination of the warehouse's columns against the route score (README, "A learned
combination"). Measured, not built: nothing here is part of a run.

Not part of the quick suite (pytest collects test_*.py only). Run it with

    .venv/bin/python tests/benchmarks/study_combiner.py --work /tmp/combiner

It scores the harness's seeded worlds (the training seeds 100-159 and 200-299, and 0-29) as
`transship evaluate` does (the default scoring parameters: the same screens), keeps each world's scored
route-periods under --work (a second run reads them back), fits a gradient-boosted classifier on the
training seeds' route-periods from 2021-01 that the forest scored (labelled: a planted route, from its start
to four months after its end), and prints the average precision of the classifier, of the route score and of
√(route_score × probability) on seeds 0-19 and 20-29 and on the validation worlds, per world.
The validation worlds are only measured: nothing here is chosen on them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# The columns the classifier reads: all stored by every run (features.route_features / route_scores).
COLUMNS = ("anomaly_score", "co_rise_z", "hub_to_us_mean_z", "hub_to_us_kg_mean_z", "hub_to_us_usd_mean_z",
           "cn_to_hub_kg_mean_z", "cn_to_hub_usd_mean_z", "cn_to_hub_kg_robust_z", "hub_to_us_kg_robust_z",
           "us_from_cn_kg_robust_z", "floor_multiple", "volume_weight", "china_value_cover", "hub_to_us_peak_share",
           "pass_through_kg", "co_movement", "signal_persistence", "world_unit_value_change", "prior_periods",
           "unit_value_vs_own_history", "three_leg_strength", "co_spike_ratio_kg", "route_excess_kg",
           "route_excess_usd")
TRAINING_SEEDS = (*range(100, 160), *range(200, 300))
# A planted route-period: from the route's start to this many months after its end (its windows).
LABEL_TAIL = "4mo"
CLASSIFIER = {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 15, "min_samples_leaf": 50,
              "l2_regularization": 1.0, "random_state": 0}


def _params():
    """The run's default scoring parameters: the classifier sees the route-periods a run's forest scores."""
    from models.params import ScoreParams

    return ScoreParams()


def score_seed(seed: int, work: str) -> int:
    """World `seed` written, loaded, built, featured and scored as a run scores it, kept as parquet."""
    from features.params import FeatureParams
    from flows.harness.seeded import full_history_from, score_world, with_difficulty, with_visibility

    out = Path(work) / f"{seed}.parquet"
    if not out.exists():
        workdir = Path(work) / f"world-{seed}"
        try:
            scores, truth, _ = score_world(seed, workdir, FeatureParams(), _params())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        truth = with_visibility(with_difficulty(truth, full_history_from(FeatureParams())), scores)
        truth.write_parquet(Path(work) / f"{seed}.truth.parquet")
        scores.select("hs_code", "hub_iso3", "period", "route_score", *COLUMNS).write_parquet(out)
    return seed


def _inputs(frame: pl.DataFrame) -> np.ndarray:
    return frame.select([pl.col(c).cast(pl.Float64).fill_nan(None).clip(-1e6, 1e6) for c in COLUMNS]).to_numpy()


def labelled(seed: int, work: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A seed's route-periods from 2021-01 that the forest scored, with `y` (planted, in its episode), and
    its planted routes."""
    from flows.harness.seeded import EVAL_FIRST, EVAL_LAST

    scores = pl.read_parquet(work / f"{seed}.parquet")
    truth = pl.read_parquet(work / f"{seed}.truth.parquet")
    planted = (truth.filter(pl.col("kind") == "planted").unique(["hs_code", "hub_iso3"])
               .select("hs_code", "hub_iso3", pl.col("start").str.to_date("%Y-%m").alias("_start"),
                       pl.col("end").str.to_date("%Y-%m").alias("_end")))
    rows = (scores.filter(pl.col("period").is_between(pl.lit(EVAL_FIRST).str.to_date(), pl.lit(EVAL_LAST).str.to_date()),
                          pl.col("anomaly_score").is_not_null())
            .join(planted, on=["hs_code", "hub_iso3"], how="left")
            .with_columns(y=(pl.col("period") >= pl.col("_start"))
                          & (pl.col("period") <= pl.col("_end").dt.offset_by(LABEL_TAIL)))
            .with_columns(pl.col("y").fill_null(False)))
    return rows, planted


def average_precision_of(rows: pl.DataFrame, planted: pl.DataFrame, column: str) -> float:
    """Routes by their highest `column` over the evaluated months, planted last among ties, as the harness
    ranks them (models.metrics)."""
    from flows.harness.seeded import EVAL_FIRST, EVAL_LAST
    from models.metrics import Scorer, average_precision, ranked_routes, route_scores_for

    routes = route_scores_for(rows, Scorer(column, "model", pl.col(column), ""), EVAL_FIRST, EVAL_LAST)
    ranked = ranked_routes(routes, planted)
    return average_precision(ranked["_planted"].to_numpy(), planted.height)


def with_probability(rows: pl.DataFrame, model) -> pl.DataFrame:
    """`rows` with the classifier's probability and the blend, on the route-periods the forest scored (null on
    those the screen left out, as their route score is: the classifier sees what it was trained on)."""
    scored = pl.col("anomaly_score").is_not_null()
    return rows.with_columns(pl.Series("probability", model.predict_proba(_inputs(rows))[:, 1])).with_columns(
        pl.when(scored).then(pl.col("probability")).alias("probability"),
        pl.when(scored).then((pl.col("probability") * pl.col("route_score")).sqrt()).alias("blend"))


def validation(model, root: Path, work: Path) -> list[dict]:
    """The classifier, the route score and the blend on each validation world (measured only)."""
    from features.params import FeatureParams
    from flows.harness.folders import VALIDATION_FROM, read_episodes, world_folders
    from flows.harness.seeded import score_folder
    from models.metrics import Scorer, evaluate_on_episodes

    out = []
    for name, data_dir, truth in world_folders(root):
        workdir = work / f"validation-{name}"
        try:
            scores, _ = score_folder(data_dir, workdir, FeatureParams(), _params(), f"study-{name}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        scores = with_probability(scores, model)
        episodes = read_episodes(truth)
        out.append({"world": name, **{c: evaluate_on_episodes(scores, episodes, Scorer(c, "model", pl.col(c), ""),
                                                              VALIDATION_FROM)["average_precision"]
                                       for c in ("probability", "route_score", "blend")}})
    return out


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Where the scored worlds are kept.")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--validation", type=Path, default=ROOT.parent / "shared" / "data" / "validation-worlds")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = [*TRAINING_SEEDS, *range(30)]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for i, seed in enumerate(pool.map(score_seed, seeds, [str(args.work)] * len(seeds)), 1):
            print(f"\r  scored {i}/{len(seeds)} worlds (seed {seed})", end="", flush=True)
    print()
    training = pl.concat([labelled(s, args.work)[0] for s in TRAINING_SEEDS])
    model = HistGradientBoostingClassifier(**CLASSIFIER).fit(_inputs(training), training["y"].to_numpy())
    print(f"fitted on {training.height:,} route-periods ({int(training['y'].sum()):,} planted)")
    report = {"classifier": CLASSIFIER, "columns": list(COLUMNS)}
    for name, group in (("seeds 0-19", range(20)), ("seeds 20-29", range(20, 30))):
        per = [(with_probability(rows, model), planted) for rows, planted in (labelled(s, args.work) for s in group)]
        report[name] = {c: round(float(np.mean([average_precision_of(r, p, c) for r, p in per])), 4)
                        for c in ("probability", "route_score", "blend")}
        print(name, report[name])
    if args.validation.is_dir():
        report["validation"] = validation(model, args.validation, args.work)
        for w in report["validation"]:
            print(w["world"], {k: round(v, 3) for k, v in w.items() if k != "world"})
    else:
        print(f"no validation worlds at {args.validation}: skipped")
    (args.work / "study_combiner.json").write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
