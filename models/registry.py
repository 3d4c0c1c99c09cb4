"""The model registry's rules: every fitted model has a card and an id, and is reused or refitted by policy.
The rows live in the warehouse (`models.registry`, warehouse/model_store.py); flows/stages/registry.py
reads and writes them with these functions.

A model is stored with the run that fitted it, so publishing the warehouse publishes its models
atomically. The card says what it was trained on and how: features, training periods, parameters,
library and code versions, row counts and a hash of its training rows. The artifact is the RouteScorer as
plain data (models/artifact.py: JSON and NumPy arrays, never a pickle), checked before it is used, so a
warehouse received from elsewhere cannot run code here. A model stored otherwise (the pickles of earlier
versions) or failing the checks is not loaded: its group is fitted anew, and the run says why.

model_id = "<frequency>-<mineral>-<12 hex>", a hash of the training rows, the parameters, the features and
the library versions: fitting the same data the same way gives the same id, so a re-run adds nothing.

Reuse policy per (frequency, mineral) (`ScoreParams.model_policy`):
- refit: always fit a new model;
- reuse: score with the latest registered model (an error when there is none);
- auto (default): reuse the latest registered model when the rows of its training periods are unchanged
  (same hash: no revision touched them) and the new periods pass the drift check; otherwise refit, and
  say why.
The drift check compares the new periods' model inputs with the training data by population stability
index (models/iforest.py, RouteScorer.drift): any input above `drift_psi` (default 0.25) is drift.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib.metadata import version
from typing import Any

import polars as pl

from models import artifact
from models.params import ScoreParams
from models.scoring import FittedGroup, by_group, hashed_columns, training_sample, training_sha256

LIBRARIES = ("scikit-learn", "numpy", "polars", "duckdb")


def library_versions() -> dict[str, str]:
    return {lib: version(lib) for lib in LIBRARIES}


def make_card(group: FittedGroup, params: ScoreParams, code_version: str) -> dict[str, Any]:
    scorer = group.scorer
    assert scorer is not None
    return {
        "frequency": group.frequency, "mineral": group.mineral,
        "features": [asdict(f) for f in scorer.features_],
        "training_periods": list(group.periods or ()),
        "n_train": group.n_train, "n_routes": group.n_routes,
        # The rows the forest was fitted on (training_sample): n_train, or a seeded sample of them.
        "n_sampled": group.extra.get("sampled", group.n_train),
        "training_sha256": group.training_sha256,
        "parameters": {"n_estimators": scorer.n_estimators, "max_samples": scorer.max_samples,
                       "random_state": scorer.random_state,
                       "train_sample_rows": params.train_sample_rows, "min_route_score": params.min_route_score,
                       "queue_size": params.queue_size, "max_peak_share": params.max_peak_share},
        "thresholds": {str(q): scorer.threshold_for(q) for q in (0.9, 0.95, 0.98, 0.99)},
        "score_direction": "anomaly_score higher = more suspicious",
        "libraries": library_versions(),
        "code_version": code_version,
    }


def model_id_for(card: dict[str, Any]) -> str:
    ident = {k: card[k] for k in ("training_sha256", "parameters", "features", "libraries")}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
    return f"{card['frequency']}-{card['mineral']}-{digest}"


def model_card_for(group: FittedGroup, params: ScoreParams, code_version: str) -> dict[str, Any]:
    """A freshly fitted model's card with its model_id (what the registry stores with the artifact)."""
    card = make_card(group, params, code_version)
    card["model_id"] = model_id_for(card)
    return card


def registered_models(stored: list[dict[str, Any]],
                      refused: dict[tuple[str, str], str] | None = None) -> dict[tuple[str, str], FittedGroup]:
    """The stored models (warehouse.model_store.latest_models: the latest per frequency and mineral) loaded
    from plain data (models/artifact.py). A model that cannot be loaded safely is left out; with `refused`,
    why is noted there per group."""
    out = {}
    for row in stored:
        frequency, mineral, model_id = row["frequency"], row["mineral"], row["model_id"]
        try:
            if row["artifact_format"] != artifact.FORMAT:
                raise artifact.ArtifactError(
                    "stored by an earlier transship as a pickle, which is never loaded (a pickle can run code)"
                    if row["artifact_format"] is None else f"stored in an unknown format {row['artifact_format']!r}")
            scorer = artifact.loads(bytes(row["artifact"] or b""))
        except artifact.ArtifactError as exc:
            if refused is not None:
                refused[(frequency, mineral)] = f"registered model {model_id} not loaded: {exc}"
            continue
        out[(frequency, mineral)] = FittedGroup(frequency, mineral, scorer, row["n_train"],
                                                (row["first_period"], row["last_period"]), "reused",
                                                training_sha256=row["training_sha256"], n_routes=row["n_routes"],
                                                model_id=model_id, reused=True)
    return out


def drift_report(model: FittedGroup, rows: pl.DataFrame, psi_limit: float) -> pl.DataFrame:
    """PSI of each input over the periods after the model's training periods (empty when there are none)."""
    assert model.scorer is not None and model.periods is not None
    new = rows.filter(pl.col("period") > pl.lit(model.periods[1]).str.to_date())
    if new.is_empty():
        return pl.DataFrame(schema={"feature": pl.String, "psi": pl.Float64, "new_rows": pl.Int64,
                                    "first_new_period": pl.Date, "last_new_period": pl.Date, "drifted": pl.Boolean})
    return model.scorer.drift(new).with_columns(
        new_rows=pl.lit(new.height, dtype=pl.Int64), first_new_period=pl.lit(new["period"].min()),
        last_new_period=pl.lit(new["period"].max()), drifted=pl.col("psi") > psi_limit)


def trained_sample(group: pl.DataFrame, first: str, last: str, params: ScoreParams) -> pl.DataFrame:
    """training_sample of the group's rows from period `first` to `last`, in the columns training_sha256
    hashes. The sample is drawn from the periods alone (it depends on nothing else) and only its rows are
    copied: filtering the whole group first copied most of it (for the 20 M world's largest section checked
    against its registered model, traced alone: 3.28 GB resident at the peak, 2.12 GB now)."""
    periods = group.select("period").with_row_index("_row").filter(
        pl.col("period").is_between(pl.lit(first).str.to_date(), pl.lit(last).str.to_date()))
    rows = training_sample(periods, params)["_row"]
    return hashed_columns(group).select(pl.all().gather(rows))


def choose_models(candidates: pl.DataFrame, registered: dict[tuple[str, str], FittedGroup], policy: str,
                  psi_limit: float, training_unchanged: bool = False,
                  refused: dict[tuple[str, str], str] | None = None, params: ScoreParams | None = None,
                  ) -> tuple[dict[tuple[str, str], FittedGroup], dict[tuple[str, str], str],
                             dict[tuple[str, str], pl.DataFrame]]:
    """Which registered models to reuse, the reason for each group's choice, and the drift reports.

    training_unchanged: the caller knows that no row of the models' training periods changed (an
    incremental run that touched only later periods), so `candidates` may hold only the later rows and the
    training rows are not hashed again. refused: why a group's registered model was not loaded (latest).
    params: the run's scoring parameters, whose training sample (models.scoring.training_sample) of the
    group's rows over the model's training periods is what a model fitted now would be fitted on, and is
    hashed against the model's (today's defaults when not given)."""
    reuse: dict[tuple[str, str], FittedGroup] = {}
    reasons: dict[tuple[str, str], str] = {}
    drift: dict[tuple[str, str], pl.DataFrame] = {}
    for (frequency, mineral), group in by_group(candidates):
        key = (frequency, mineral)
        model = registered.get(key)
        if policy == "refit":
            reasons[key] = "refit: asked for"
            continue
        if model is None:
            why = (refused or {}).get(key)
            if policy == "reuse":
                raise LookupError(f"--model reuse: {why or 'no registered model'} for {mineral} ({frequency}); "
                                  "run once with --model refit (or auto) to fit one")
            reasons[key] = f"fitted anew: {why}" if why else "fitted: no registered model yet"
            continue
        report = drift_report(model, group, psi_limit)
        drift[key] = report
        drifted = report.filter("drifted")["feature"].to_list()
        if policy == "reuse":
            reuse[key] = model
            reasons[key] = f"reused {model.model_id} as asked" + (f"; drift on {', '.join(drifted)}" if drifted else "")
            continue
        first, last = model.periods or ("", "")
        if not training_unchanged and (training_sha256(trained_sample(group, first, last, params or ScoreParams()))
                                       != model.training_sha256):
            reasons[key] = f"refit: the rows {model.model_id} was trained on have changed (revised or new inputs)"
        elif drifted:
            reasons[key] = f"refit: drift since {model.model_id} on {', '.join(drifted)} (PSI > {psi_limit})"
        else:
            reuse[key] = model
            new_rows = int(report["new_rows"][0]) if report.height else 0
            reasons[key] = f"reused {model.model_id}: training rows unchanged, {new_rows} new route-periods, no drift"
    return reuse, reasons, drift


def drift_rows(run_id: str, drift: dict[tuple[str, str], pl.DataFrame],
               registered: dict[tuple[str, str], FittedGroup]) -> pl.DataFrame | None:
    """The run's drift reports as rows of models.drift (None when there are none)."""
    frames = [report.with_columns(run_id=pl.lit(run_id), model_id=pl.lit(registered[key].model_id))
              for key, report in drift.items() if report.height]
    return pl.concat(frames) if frames else None
