"""The model registry in the warehouse: models stored with their cards, the latest loaded back, drift
recorded (the rules in models/registry.py, the rows in warehouse/model_store.py)."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from models import artifact
from models.registry import drift_rows, model_card_for, registered_models
from models.params import ScoreParams
from models.scoring import FittedGroup
from warehouse import model_store
from warehouse.model_store import ensure_registry

__all__ = ["ensure_registry", "latest", "record_drift", "register"]


def register(con: duckdb.DuckDBPyConnection, group: FittedGroup, params: ScoreParams, run_id: str,
             code_version: str) -> str:
    """Store a freshly fitted model with its card (once per model_id). Returns the model_id."""
    card = model_card_for(group, params, code_version)
    model_store.store_model(con, card, json.dumps(card), run_id, artifact.dumps(group.scorer), artifact.FORMAT)
    return card["model_id"]


def latest(con: duckdb.DuckDBPyConnection,
           refused: dict[tuple[str, str], str] | None = None) -> dict[tuple[str, str], FittedGroup]:
    """The latest registered model per (frequency, mineral) that loads safely; with `refused`, why the others
    did not, per group."""
    return registered_models(model_store.latest_models(con), refused)


def record_drift(con: duckdb.DuckDBPyConnection, run_id: str, drift: dict[tuple[str, str], pl.DataFrame],
                 registered: dict[tuple[str, str], FittedGroup]) -> None:
    """The run's drift reports into models.drift."""
    model_store.write_drift(con, run_id, drift_rows(run_id, drift, registered))
