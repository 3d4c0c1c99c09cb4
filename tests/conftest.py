from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings as hypothesis_settings

from warehouse.catalogue import load_catalogue
from warehouse.schema import ensure_schema, write_reference_tables

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real"

# The fuzz tests (hypothesis): in CI a fixed, bounded set of examples, the same on every run and no example
# database written into the checkout; HYPOTHESIS_PROFILE=fuzz for a long local hunt (tests.helpers.examples).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
hypothesis_settings.register_profile("fuzz", deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data folder {REAL} is absent (it lives in ../shared beside the checkout)")
    return REAL


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """A real DuckDB file with the raw layer and lookups in place."""
    c = duckdb.connect(str(tmp_path / "test.duckdb"))
    ensure_schema(c)
    write_reference_tables(c, load_catalogue())
    yield c
    c.close()


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect backend for the session (its start costs ~15 s, paid once)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["TRANSSHIP_QUIET"] = "1"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def sample_features(tmp_path_factory) -> "pl.DataFrame":
    """The bundled sample world (seed 7), loaded and built in a real DuckDB file, as route features."""
    from features.params import FeatureParams
    from flows import stages
    from worlds.sample import write_sample_world

    root = tmp_path_factory.mktemp("sample_features")
    paths = write_sample_world(root)
    c = duckdb.connect(str(root / "w.duckdb"))
    try:
        stages.load(c, paths["data_dir"], "sample")
        stages.build(c)
        return stages.route_features_from(c, FeatureParams())
    finally:
        c.close()


@pytest.fixture(scope="session")
def scored_warehouse(tmp_path_factory) -> tuple[Path, dict]:
    """The sample world (seed 7) loaded, built and scored into a real DuckDB file with the pipeline's own
    steps, without Prefect. Returns the file and the run's row."""
    from dataclasses import asdict

    from flows import stages
    from flows.settings import Settings, code_version
    from warehouse.connection import connect_read_write
    from warehouse.outputs import now_utc, write_flag_lists
    from worlds.sample import write_sample_world
    from models.combiner import load as load_combiner

    root = tmp_path_factory.mktemp("scored")
    paths = write_sample_world(root, seed=7)
    settings = Settings()
    run = {"run_id": "20250701T000000Z-test00", "started_at": now_utc(), "status": "succeeded",
           "data_dir": str(paths["data_dir"]), "code_version": code_version(),
           "parameters": {"features": asdict(settings.features), "combiner": load_combiner().model_id}}
    path = root / "w.duckdb"
    c = connect_read_write(path)  # the pipeline's own opener: v1.5.0 storage, readable by the 1.5 CLI
    try:
        run["input_files"] = [asdict(o) for o in stages.load(c, paths["data_dir"], run["run_id"])]
        stages.build(c)
        run["models"] = stages.features_and_scores(c, settings.features, settings.scoring, run["run_id"],
                                                   incremental=False)["models"]
        write_flag_lists(c, run["run_id"], settings.dismissed_regrowth)
        run["finished_at"] = now_utc()
        stages.finish(c, run)
        c.execute("CHECKPOINT")
    finally:
        c.close()
    return path, run
