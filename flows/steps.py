"""The score step's work as plain functions (no Prefect): the pipeline's task calls them, and so does the
evaluation harness, whose worker processes then do not import Prefect."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from features.route_features import FeatureParams, build_route_features
from flows.settings import code_version
from models.registry import choose_models, ensure_registry, latest, register, write_drift
from models.scoring import ScoreParams, score_routes, scoreable


def route_features_from(con: duckdb.DuckDBPyConnection, monthly: FeatureParams) -> pl.DataFrame:
    """features.route_features as a frame: the mart's legs with every feature, per frequency."""
    floors = con.sql("SELECT mineral, volume_floor_kg, volume_floor_usd FROM ref.minerals").pl()
    legs = con.sql("SELECT * FROM marts.fct_route_legs").pl()
    frames = [
        build_route_features(group, FeatureParams.for_frequency(freq, monthly), floors)
        for (freq,), group in legs.group_by(["frequency"], maintain_order=True)
    ]
    return pl.concat([f.collect() for f in frames], how="diagonal_relaxed") if frames else legs


def score_with_registry(con: duckdb.DuckDBPyConnection, features: pl.DataFrame, params: ScoreParams, run_id: str) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """Choose (reuse or fit) a model per (frequency, mineral), score, register new models, record drift.
    Returns the scores (with model_id), the explanations and a summary per model."""
    ensure_registry(con)
    registered = latest(con)
    candidates = features.filter(scoreable(features))
    reuse, reasons, drift = choose_models(candidates, registered, params.model_policy, params.drift_psi)
    scores, explanations, fitted = score_routes(features, params, reuse)
    for g in fitted:
        if g.scorer is not None and not g.reused:
            g.model_id = register(con, g, params, run_id, code_version())
        g.note = reasons.get((g.frequency, g.mineral), g.note) if g.scorer is not None else g.note
    write_drift(con, run_id, drift, registered)
    ids = pl.DataFrame({"frequency": [g.frequency for g in fitted], "mineral": [g.mineral for g in fitted],
                        "model_id": [g.model_id for g in fitted]}, schema={"frequency": pl.String, "mineral": pl.String,
                                                                          "model_id": pl.String})
    scores = scores.join(ids, on=["frequency", "mineral"], how="left")
    explanations = explanations.join(ids, on=["frequency", "mineral"], how="left")
    models = [
        {"frequency": g.frequency, "mineral": g.mineral, "model_id": g.model_id, "n_train": g.n_train,
         "periods": g.periods, "note": g.note, "reused": g.reused,
         "threshold": g.scorer.threshold_for(params.flag_quantile) if g.scorer is not None else None,
         "drift": drift[(g.frequency, g.mineral)].filter("drifted")["feature"].to_list()
         if (g.frequency, g.mineral) in drift else []}
        for g in fitted
    ]
    return scores, explanations, models
