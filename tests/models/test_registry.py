"""The model registry on a real DuckDB file: cards, deterministic ids, reuse, and the drift check."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import numpy as np
import polars as pl
import pytest

from flows.stages.registry import ensure_registry, latest, register
from models.registry import choose_models
from models.params import ScoreParams
from models.scoring import score_routes, scoreable

PARAMS = ScoreParams(n_estimators=60)


@pytest.fixture
def registry(tmp_path):
    con = duckdb.connect(str(tmp_path / "registry.duckdb"))
    ensure_registry(con)
    yield con
    con.close()


@pytest.fixture(scope="module")
def early(sample_features):
    """The sample world up to 2024-06, before any planted route starts."""
    return sample_features.filter(pl.col("period") <= date(2024, 6, 1))


def test_a_fitted_model_is_stored_with_its_card_once(registry, early):
    _, _, fitted = score_routes(early, PARAMS)
    ids = [register(registry, g, PARAMS, "run-1", "test") for g in fitted if g.scorer is not None]
    again = [register(registry, g, PARAMS, "run-2", "test") for g in score_routes(early, PARAMS)[2] if g.scorer]
    assert ids == again  # same data, same parameters: same model, stored once
    assert registry.sql("SELECT count(*) FROM models.registry").fetchall()[0][0] == len(ids) == 2
    card = json.loads(registry.execute("SELECT card FROM models.registry WHERE mineral = 'antimony'").fetchall()[0][0])
    assert card["training_periods"][1] == "2024-06-01"
    assert card["n_train"] == early.filter(scoreable(early), pl.col("mineral") == "antimony").height
    assert [f["column"] for f in card["features"]][:2] == ["co_spike_ratio_kg", "co_robust_z"]
    assert card["parameters"]["n_estimators"] == 60 and card["score_direction"].startswith("anomaly_score higher")


def test_a_registered_model_scores_like_the_fitted_one(registry, early):
    scores, _, fitted = score_routes(early, PARAMS)
    for g in fitted:
        if g.scorer is not None:
            register(registry, g, PARAMS, "run-1", "test")
    reused, _, groups = score_routes(early, PARAMS, reuse=latest(registry))
    assert all(g.reused for g in groups if g.scorer is not None)
    # Bit for bit, and the same rows screened out (NULL) of the forest's scoring.
    assert np.array_equal(reused["anomaly_score"].to_numpy(), scores["anomaly_score"].to_numpy(), equal_nan=True)
    assert 0 < reused["anomaly_score"].null_count() < reused.height


def test_auto_reuses_until_the_training_rows_change_or_the_new_periods_drift(registry, early, sample_features):
    for g in score_routes(early, PARAMS)[2]:
        if g.scorer is not None:
            register(registry, g, PARAMS, "run-1", "test")
    models = latest(registry)
    candidates = early.filter(scoreable(early))
    reuse, reasons, _ = choose_models(candidates, models, "auto", 0.25)
    assert set(reuse) == {("M", "antimony"), ("M", "gallium_germanium")}
    assert "training rows unchanged" in reasons[("M", "antimony")]

    revised = candidates.with_columns(
        pl.when((pl.col("hub_iso3") == "DEU") & (pl.col("period") == date(2023, 3, 1)))
        .then(pl.col("co_spike_ratio_kg") + 1).otherwise(pl.col("co_spike_ratio_kg")).alias("co_spike_ratio_kg"))
    reuse, reasons, _ = choose_models(revised, models, "auto", 0.25)
    assert not reuse and "have changed" in reasons[("M", "antimony")]

    # New months whose inputs moved far from the training data: drift, so auto refits and says why.
    shifted = sample_features.filter(scoreable(sample_features)).with_columns(
        pl.when(pl.col("period") > date(2024, 6, 1)).then(pl.col("co_movement") + 2).otherwise(pl.col("co_movement")))
    reuse, reasons, drift = choose_models(shifted, models, "auto", 0.25)
    assert "drift" in reasons[("M", "antimony")] and "co_movement" in reasons[("M", "antimony")]
    report = drift[("M", "antimony")]
    assert report["new_rows"][0] > 0 and "co_movement" in report.filter("drifted")["feature"].to_list()
    # Without the shift the new months drift too, for real: after the ban China's direct share collapses.
    _, _, real = choose_models(sample_features.filter(scoreable(sample_features)), models, "auto", 0.25)
    assert "cn_direct_share_of_us_imports_change" in real[("M", "antimony")].filter("drifted")["feature"].to_list()
    # reuse keeps the model but still reports the drift
    reuse, reasons, _ = choose_models(shifted, models, "reuse", 0.25)
    assert ("M", "antimony") in reuse and "drift on" in reasons[("M", "antimony")]
    assert "co_movement" in reasons[("M", "antimony")]


def test_the_latest_model_is_the_one_fitted_last_even_when_it_was_stored_before(registry, early):
    first = [g for g in score_routes(early, PARAMS)[2] if g.mineral == "antimony"][0]
    other = [g for g in score_routes(early.filter(pl.col("period") <= date(2024, 3, 1)), PARAMS)[2]
             if g.mineral == "antimony"][0]
    a = register(registry, first, PARAMS, "run-1", "test")
    b = register(registry, other, PARAMS, "run-2", "test")
    assert latest(registry)[("M", "antimony")].model_id == b
    assert register(registry, first, PARAMS, "run-3", "test") == a  # the first data again: the first model
    assert latest(registry)[("M", "antimony")].model_id == a
    assert registry.sql("SELECT count(*) FROM models.registry").fetchall()[0][0] == 2


def test_a_registry_from_before_last_fitted_at_is_brought_up_to_date(tmp_path, early):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        con.execute("""CREATE SCHEMA models; CREATE TABLE models.registry (
            model_id VARCHAR PRIMARY KEY, frequency VARCHAR NOT NULL, mineral VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL, run_id VARCHAR NOT NULL, code_version VARCHAR,
            training_first_period DATE, training_last_period DATE, n_train BIGINT, n_routes BIGINT,
            training_sha256 VARCHAR, card JSON, artifact BLOB)""")
        ensure_registry(con)
        g = [g for g in score_routes(early, PARAMS)[2] if g.mineral == "antimony"][0]
        model_id = register(con, g, PARAMS, "run-1", "test")
        assert latest(con)[("M", "antimony")].model_id == model_id
    finally:
        con.close()


def test_reuse_without_a_registered_model_says_what_to_do(registry, early):
    with pytest.raises(LookupError, match="--model refit"):
        choose_models(early.filter(scoreable(early)), latest(registry), "reuse", 0.25)
