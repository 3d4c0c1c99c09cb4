"""Train the learned part of route_score (models/combiner.py) on the project's own harness worlds, and write it
as models/combiner.json. Reproducible: the same code gives the same worlds, the same rows and the same file.

    .venv/bin/python -m flows.harness.train_combiner --work /tmp/combiner [--out models/combiner.json]

It scores the training seeds' worlds (100-159 and 200-299) as a run scores them, without the learned part
(ScoreParams(learned=False): what the classifier reads does not depend on it), keeps each world's scored
route-periods under --work (a second run reads them back: about 5 minutes on 2 cores the first time, 30 s
after), and fits a HistGradientBoostingClassifier (CLASSIFIER) on the route-periods from 2021-01 that the
forest scored, labelled planted from a planted route's first month to LABEL_TAIL after its last. Seeds 0-29
(what `transship evaluate` reports) and the validation worlds are never trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import polars as pl

from models.combiner import COLUMNS, PATH, document, dumps, inputs

TRAINING_SEEDS = (*range(100, 160), *range(200, 300))
# A planted route-period: from the route's start to this many months after its end (its windows).
LABEL_TAIL = "4mo"
# Chosen on the training seeds (README, "The score"); early stopping holds out a seeded tenth of the rows and
# stops when 10 rounds do not improve on it (it did not stop: 300 rounds).
CLASSIFIER = {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 15, "min_samples_leaf": 50,
              "l2_regularization": 1.0, "early_stopping": True, "validation_fraction": 0.1, "n_iter_no_change": 10,
              "random_state": 0}


def training_params():
    """The scoring parameters the training worlds are scored with: the defaults, without the learned part."""
    from models.params import ScoreParams

    return ScoreParams(learned=False)


def score_seed(seed: int, work: str) -> int:
    """World `seed` written, loaded, built, featured and scored as a run scores it, kept as parquet (its
    scored route-periods and its truth)."""
    from features.params import FeatureParams
    from flows.harness.seeded import full_history_from, score_world, with_difficulty, with_visibility

    out = Path(work) / f"{seed}.parquet"
    if not out.exists():
        workdir = Path(work) / f"world-{seed}"
        try:
            scores, truth, _ = score_world(seed, workdir, FeatureParams(), training_params())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        truth = with_visibility(with_difficulty(truth, full_history_from(FeatureParams())), scores)
        truth.write_parquet(Path(work) / f"{seed}.truth.parquet")
        scores.select("hs_code", "hub_iso3", "period", "graded_score", *COLUMNS).write_parquet(out)
    return seed


def score_seeds(seeds: list[int], work: Path, jobs: int) -> None:
    """Every seed's world scored (score_seed) in `jobs` processes, with progress."""
    work.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for i, seed in enumerate(pool.map(score_seed, seeds, [str(work)] * len(seeds)), 1):
            print(f"\r  scored {i}/{len(seeds)} worlds (seed {seed})", end="", flush=True)
    print()


def labelled(seed: int, work: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A seed's route-periods from 2021-01 that the forest scored, with `y` (planted, in its episode), and
    its planted routes."""
    from flows.harness.seeded import EVAL_FIRST, EVAL_LAST

    scores = pl.read_parquet(work / f"{seed}.parquet")
    truth = pl.read_parquet(work / f"{seed}.truth.parquet")
    planted = (truth.filter(pl.col("kind") == "planted").unique(["hs_code", "hub_iso3"], maintain_order=True)
               .select("hs_code", "hub_iso3", pl.col("start").str.to_date("%Y-%m").alias("_start"),
                       pl.col("end").str.to_date("%Y-%m").alias("_end")))
    rows = (scores.filter(pl.col("period").is_between(pl.lit(EVAL_FIRST).str.to_date(), pl.lit(EVAL_LAST).str.to_date()),
                          pl.col("anomaly_score").is_not_null())
            .join(planted, on=["hs_code", "hub_iso3"], how="left", maintain_order="left")
            .with_columns(y=(pl.col("period") >= pl.col("_start"))
                          & (pl.col("period") <= pl.col("_end").dt.offset_by(LABEL_TAIL)))
            .with_columns(pl.col("y").fill_null(False)))
    return rows, planted


def training_rows(work: Path) -> pl.DataFrame:
    return pl.concat([labelled(s, work)[0] for s in TRAINING_SEEDS])


def fit(training: pl.DataFrame, settings: dict | None = None):
    """The classifier fitted on the labelled training rows (with CLASSIFIER's settings, or `settings`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**(settings or CLASSIFIER)).fit(inputs(training), training["y"].to_numpy())


def usual_values(training: pl.DataFrame) -> dict[str, float]:
    """Each column's median over the training rows not planted (0 where it is never known): what an
    explanation resets a column to."""
    quiet = training.filter(~pl.col("y"))
    return {c: float(v) if v is not None and np.isfinite(v) else 0.0
            for c in COLUMNS for v in [quiet[c].cast(pl.Float64).fill_nan(None).median()]}


def provenance(training: pl.DataFrame, model) -> dict:
    """How the combiner was made: seeds, rows, the classifier's settings, and a hash of its training rows."""
    import sklearn

    digest = hashlib.sha256(np.ascontiguousarray(inputs(training)).tobytes()
                            + training["y"].to_numpy().astype(np.uint8).tobytes()).hexdigest()
    return {"trained_by": "python -m flows.harness.train_combiner", "seeds": "100-159, 200-299",
            "rows": training.height, "planted_rows": int(training["y"].sum()), "label": f"planted, to {LABEL_TAIL} after",
            "classifier": CLASSIFIER, "rounds": int(model.n_iter_), "scikit_learn": sklearn.__version__,
            "training_rows_sha256": digest}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Where the scored worlds are kept.")
    parser.add_argument("--out", type=Path, default=PATH, help="Where the combiner is written.")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    score_seeds(list(TRAINING_SEEDS), args.work, args.jobs)
    training = training_rows(args.work)
    model = fit(training)
    args.out.write_text(dumps(document(model, usual_values(training), provenance(training, model))), encoding="utf-8")
    print(f"fitted on {training.height:,} route-periods ({int(training['y'].sum()):,} planted), "
          f"{model.n_iter_} rounds: {args.out}")


if __name__ == "__main__":
    main()
