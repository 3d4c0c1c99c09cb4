"""--dask-address: a run's files read, and a full build's product groups fitted and scored, on a Dask cluster
(issue 7). The cluster is a real local one (a scheduler and two worker processes) started by the test."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace

import pytest

from flows.fanout import FanOutError, check_scheduler, prepare_file_task, score_group_task
from flows.pipeline import transship_pipeline
from flows.settings import Settings
from models.params import ScoreParams
from tests.helpers import query, table_differences
from warehouse.build import loading_code_fingerprint
from warehouse.files import IngestError, file_sha256
from warehouse.ingest import FileToLoad
from worlds.sample import write_sample_world


@pytest.fixture
def dask_cluster():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    try:
        yield cluster
    finally:
        cluster.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_groups_scored_on_a_dask_cluster_give_the_single_process_scores(prefect_harness, dask_cluster, tmp_path):
    paths = write_sample_world(tmp_path / "world", seed=7)
    here = Settings(warehouse=tmp_path / "here" / "w.duckdb", reports_dir=tmp_path / "here" / "reports")
    there = replace(here, warehouse=tmp_path / "dask" / "w.duckdb", reports_dir=tmp_path / "dask" / "reports",
                    dask_address=dask_cluster.scheduler_address, dask_in_flight=2)
    single = transship_pipeline(paths["data_dir"], here)
    fanned = transship_pipeline(paths["data_dir"], there)

    assert fanned["status"] == "succeeded" and fanned["parameters"]["dask_address"] == dask_cluster.scheduler_address
    # Every file loaded was read, and every product group scored, on the cluster's workers, none here.
    groups = query(here.warehouse, "SELECT count(DISTINCT (frequency, mineral)) FROM features.route_features").item()
    files = len([f for f in fanned["input_files"] if f["status"] == "loaded"])
    assert groups >= 2 and files >= 2
    assert files == len([f for f in single["input_files"] if f["status"] == "loaded"])
    from distributed import Client

    with Client(dask_cluster.scheduler_address) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert sum(executed.values()) == groups + files and len(executed) == 2
    # ... and reported its task run to this run's Prefect server (not to a server of its own).
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="score M ")))
    assert len([t for t in task_runs if t.state and t.state.is_completed()]) == groups
    with get_client(sync_client=True) as prefect:
        reads = prefect.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="read ")))
    assert len([t for t in reads if t.state and t.state.is_completed()]) == files
    # The same warehouse, scores and explanations included, to the last digit.
    assert query(there.warehouse, "SELECT count(*) FROM main.route_scores").item() > 5_000
    assert table_differences(here.warehouse, there.warehouse, skip_tables=frozenset({"main.runs", "models.registry"}),
                             same_run={fanned["run_id"]: single["run_id"]}) == {}
    assert ([m["n_train"] for m in single["models"]] == [m["n_train"] for m in fanned["models"]])


@pytest.mark.slow
def test_an_unreachable_scheduler_stops_the_run_before_it_writes(prefect_harness, tmp_path):
    paths = write_sample_world(tmp_path / "world", seed=7)
    address = f"tcp://127.0.0.1:{_free_port()}"
    settings = Settings(warehouse=tmp_path / "w.duckdb", reports_dir=tmp_path / "reports", dask_address=address)
    with pytest.raises(FanOutError, match=f"cannot reach the Dask scheduler at {address}.*leave out --dask-address"):
        transship_pipeline(paths["data_dir"], settings)
    assert not list(tmp_path.glob("w.duckdb.building-*"))
    assert query(settings.warehouse, "SELECT status, error FROM runs").row(0)[0] == "failed"


def test_scheduler_address_checked_with_advice():
    with pytest.raises(FanOutError, match="not a Dask scheduler address; give it as tcp://HOST:PORT"):
        check_scheduler("http://example:8786")
    with pytest.raises(FanOutError, match="cannot reach the Dask scheduler"):
        check_scheduler(f"127.0.0.1:{_free_port()}", timeout_s=1)


def test_without_the_dask_extra_the_address_is_refused_with_the_install_command(monkeypatch):
    """prefect-dask is an extra (`.[dask]`): an environment built by `make demo` does not have it."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "prefect_dask" else real(name, *a))
    with pytest.raises(FanOutError, match=r"needs the dask extra.*pip install .*'\.\[dask\]'"):
        check_scheduler("tcp://127.0.0.1:8786")


def test_a_worker_with_other_scoring_code_refuses_to_score(sample_features):
    with pytest.raises(FanOutError, match="runs different scoring code or libraries than this run"):
        score_group_task.fn(sample_features.head(10), ScoreParams(), {}, "0000 (scikit-learn 0.0)")


def test_a_worker_reads_only_the_file_the_run_planned(tmp_path):
    countries = __import__("polars").DataFrame({"m49_code": [840], "iso3": ["USA"]})
    path = tmp_path / "comtrade_2024.csv"
    path.write_text("refYear,reporterCode,partnerCode,flowCode,cmdCode,primaryValue,netWgt\n2024,156,842,X,811010,10,1\n")
    ok = prepare_file_task.fn(FileToLoad(path, "comtrade", file_sha256(path)), countries, loading_code_fingerprint())
    assert ok.frame.height == 1 and ok.file_format == "comtrade"
    with pytest.raises(IngestError, match="this machine's copy differs from the run's"):
        prepare_file_task.fn(FileToLoad(path, "comtrade", "0" * 64), countries, loading_code_fingerprint())
    with pytest.raises(IngestError, match="not found on this machine; a Dask worker must see the data folder"):
        prepare_file_task.fn(FileToLoad(tmp_path / "gone.csv", "comtrade", "0" * 64), countries,
                             loading_code_fingerprint())
    with pytest.raises(FanOutError, match="runs different loading code or libraries than this run"):
        prepare_file_task.fn(FileToLoad(path, "comtrade", file_sha256(path)), countries, "0000 (polars 0.0)")
