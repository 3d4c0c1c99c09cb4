"""The model registry's storage: models.registry (one row per fitted model: its card as JSON and the model
as plain data) and models.drift (per run, model and input: the population stability index of the new
periods). What is stored and when a model is reused is decided in models/registry.py; this module only
reads and writes the rows. Storing a model with the run that fitted it publishes the two together."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import execute_script
from warehouse.contracts import relation_sql

DRIFT_COLUMNS = ("run_id", "model_id", "feature", "psi", "new_rows", "first_new_period", "last_new_period", "drifted")


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    execute_script(con, relation_sql("ddl", "models"))
    # Registries written before last_fitted_at existed: add it, taking the time the model was stored.
    con.execute("ALTER TABLE models.registry ADD COLUMN IF NOT EXISTS last_fitted_at TIMESTAMP")
    con.execute("UPDATE models.registry SET last_fitted_at = created_at WHERE last_fitted_at IS NULL")
    # Registries from before models were stored as plain data: their artifacts are pickles, never loaded.
    con.execute("ALTER TABLE models.registry ADD COLUMN IF NOT EXISTS artifact_format VARCHAR")


def store_model(con: duckdb.DuckDBPyConnection, card: dict[str, Any], card_json: str, run_id: str,
                artifact: bytes, artifact_format: str) -> None:
    """One model's row (once per model_id). The same model fitted again (same data, same way) keeps its
    first row; only last_fitted_at moves (with the artifact), so that "the latest model" is the one fitted
    last, not the one first stored. `card`: model_id, frequency, mineral, code_version, training_periods,
    n_train, n_routes and training_sha256 are read from it."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    periods = card.get("training_periods") or [None, None]
    con.execute(
        """INSERT INTO models.registry (model_id, frequency, mineral, created_at, run_id, code_version,
               training_first_period, training_last_period, n_train, n_routes, training_sha256, card, artifact,
               last_fitted_at, artifact_format)
           VALUES (?, ?, ?, ?, ?, ?, ?::DATE, ?::DATE, ?, ?, ?, ?::JSON, ?, ?, ?)
           ON CONFLICT (model_id) DO UPDATE SET last_fitted_at = excluded.last_fitted_at,
               artifact = excluded.artifact, artifact_format = excluded.artifact_format""",
        [card["model_id"], card["frequency"], card["mineral"], now, run_id, card["code_version"], periods[0],
         periods[1], card["n_train"], card["n_routes"], card["training_sha256"], card_json, artifact, now,
         artifact_format])


def latest_models(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The latest stored model per (frequency, mineral): its row, the artifact as bytes, unread."""
    cur = con.execute("""
        SELECT model_id, frequency, mineral, training_first_period::VARCHAR AS first_period,
               training_last_period::VARCHAR AS last_period, n_train, n_routes, training_sha256, artifact,
               artifact_format
        FROM models.registry
        QUALIFY row_number() OVER (PARTITION BY frequency, mineral ORDER BY last_fitted_at DESC, model_id) = 1""")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def write_drift(con: duckdb.DuckDBPyConnection, run_id: str, drift: pl.DataFrame | None) -> None:
    """The run's rows of models.drift (DRIFT_COLUMNS), replacing any it had."""
    con.execute("DELETE FROM models.drift WHERE run_id = ?", [run_id])
    if drift is not None and drift.height:
        con.register("_drift", drift.select(DRIFT_COLUMNS))
        try:
            con.execute("INSERT INTO models.drift SELECT * FROM _drift")
        finally:
            con.unregister("_drift")


def model_card(con: duckdb.DuckDBPyConnection, model_id: str) -> str | None:
    """A stored model's card (JSON text), or None."""
    found = con.execute("SELECT card FROM models.registry WHERE model_id = ?", [model_id]).fetchall()
    return found[0][0] if found else None


def model_listing(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every stored model, newest first: model_id, frequency, mineral, created_at, training periods, rows,
    routes, the route-periods it scores now, and the inputs that drifted in the last run."""
    return con.sql("""
        SELECT r.model_id, r.frequency, r.mineral, r.created_at, r.training_first_period, r.training_last_period,
               r.n_train, r.n_routes, (SELECT count(*) FROM main.route_score_values s WHERE s.model_id = r.model_id) AS scoring_now,
               (SELECT string_agg(feature, ', ') FROM models.drift d WHERE d.model_id = r.model_id AND d.drifted
                AND d.run_id = (SELECT max(run_id) FROM models.drift)) AS drift_last_run
        FROM models.registry r ORDER BY r.created_at DESC, r.model_id""").fetchall()
