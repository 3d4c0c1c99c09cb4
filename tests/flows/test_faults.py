"""Crash drills: the run process killed with SIGKILL during ingest, build, scoring and publication; two runs
started at once. Each time the last complete warehouse still opens with its old contents, the next run
finishes with the same result as an uninterrupted one, no row is loaded twice, and the killed run is
noted as abandoned.

The runs are real `transship run` processes; they talk to the test session's Prefect server (so a killed
process leaves no temporary server behind)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from flows.pipeline import transship_pipeline
from flows.settings import Settings
from tests.helpers import ROOT, query
from worlds.sample import write_sample_world

pytestmark = pytest.mark.slow

SCORES = ("SELECT frequency, mineral, hs_code, hub_iso3, period, route_score, anomaly_score, flagged, model_id "
          "FROM route_scores ORDER BY ALL")


def run_cmd(data: Path, warehouse: Path, api_url: str, fault: str | None = None) -> list[str] | dict:
    env = {**os.environ, "TRANSSHIP_QUIET": "1", "PREFECT_API_URL": api_url}
    env.pop("TRANSSHIP_FAULT", None)
    if fault:
        env["TRANSSHIP_FAULT"] = fault
    args = [sys.executable, "-m", "flows.cli", "run", "--data", str(data), "--warehouse", str(warehouse),
            "--reports", str(warehouse.parent / "reports")]
    return {"args": args, "env": env, "cwd": ROOT}


def run(data: Path, warehouse: Path, api_url: str, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(**run_cmd(data, warehouse, api_url, fault), capture_output=True, text=True, timeout=300)


def contents(warehouse: Path) -> dict:
    return {
        "loads": query(warehouse, "SELECT file_sha256, rows_loaded FROM raw.loads ORDER BY ALL").rows(),
        "records": query(warehouse, "SELECT count(*) AS n, count(DISTINCT (file_sha256, source_row)) AS d "
                                    "FROM raw.comtrade_records").row(0),
        "succeeded": query(warehouse, "SELECT count(*) AS n FROM runs WHERE status = 'succeeded'")["n"][0],
        "scores": query(warehouse, SCORES),
        "flagged": query(warehouse, "SELECT rank, hub_iso3, hs_code FROM flagged_routes ORDER BY rank").rows(),
    }


@pytest.fixture(scope="module")
def drill(prefect_harness, tmp_path_factory):
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    root = tmp_path_factory.mktemp("drill")
    world = write_sample_world(root / "world", seed=7)
    first, both = root / "first", root / "both"
    first.mkdir()
    shutil.copytree(world["data_dir"], both)
    for f in world["data_dir"].glob("comtrade_CHN_*"):
        shutil.copy2(f, first / f.name)  # the first run has China's file only; the second adds the US's
    # The base warehouse and the uninterrupted reference run in this process (same pipeline, no interpreter start).
    base = root / "base" / "w.duckdb"
    transship_pipeline(first, Settings(warehouse=base, reports_dir=base.parent / "reports"))
    reference = root / "reference" / "w.duckdb"
    reference.parent.mkdir()
    shutil.copy2(base, reference)
    transship_pipeline(both, Settings(warehouse=reference, reports_dir=reference.parent / "reports"))
    return {"api_url": api_url, "root": root, "both": both, "base": base, "before": contents(base),
            "after": contents(reference)}


POINTS = ("ingest", "build", "score", "publish")


@pytest.fixture(scope="module")
def killed(drill):
    """For each point, a copy of the base warehouse, a run killed there, then the next run; the four
    drills run side by side (independent files), each step's outcome recorded."""
    lives = {}
    for point in POINTS:
        lives[point] = drill["root"] / point / "w.duckdb"
        lives[point].parent.mkdir()
        shutil.copy2(drill["base"], lives[point])
    procs = {point: subprocess.Popen(**run_cmd(drill["both"], live, drill["api_url"], fault=f"{point}:kill"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for point, live in lives.items()}
    out = {}
    for point, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        out[point] = {"killed_rc": proc.returncode, "killed_err": err,
                      "left_build": bool(list(lives[point].parent.glob("w.duckdb.building-*"))),
                      "after_kill": contents(lives[point])}
    procs = {point: subprocess.Popen(**run_cmd(drill["both"], live, drill["api_url"]),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for point, live in lives.items()}
    for point, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        live = lives[point]
        out[point].update(resumed_rc=proc.returncode, resumed_err=err, after_resume=contents(live),
                          stale=list(live.parent.glob("w.duckdb.building-*")),
                          abandoned=query(live, "SELECT status, error FROM runs WHERE status = 'abandoned'"))
    return out


@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_mid_way_leaves_the_last_warehouse_and_the_next_run_finishes_the_same(drill, killed, point):
    k = killed[point]
    assert k["killed_rc"] == -signal.SIGKILL, k["killed_err"]
    assert k["left_build"]  # it died with its build half-written
    now = k["after_kill"]  # the live file opens, with the last complete run's contents
    for key in ("loads", "records", "succeeded", "flagged"):
        assert now[key] == drill["before"][key], key
    assert now["scores"].equals(drill["before"]["scores"])

    assert k["resumed_rc"] == 0, k["resumed_err"]
    after = k["after_resume"]
    for key in ("loads", "records", "flagged"):
        assert after[key] == drill["after"][key], key
    n, distinct = after["records"]
    assert n == distinct  # no row loaded twice
    assert after["scores"].equals(drill["after"]["scores"])
    assert not k["stale"]
    assert k["abandoned"].height == 1 and "ended before publishing" in k["abandoned"]["error"][0]


def test_a_second_run_started_meanwhile_refuses_and_does_not_disturb_the_first(drill):
    live = drill["root"] / "concurrent" / "w.duckdb"
    live.parent.mkdir()
    shutil.copy2(drill["base"], live)
    gate = live.parent / "go"
    first = subprocess.Popen(**run_cmd(drill["both"], live, drill["api_url"], fault=f"build:wait={gate}"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(live.parent.glob("w.duckdb.building-*")) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.1)
        second = run(drill["both"], live, drill["api_url"])
        assert second.returncode == 2
        assert "another transship run is writing this warehouse" in second.stderr
        assert "the last complete warehouse stays readable" in second.stderr
        assert contents(live)["loads"] == drill["before"]["loads"]  # readable, unchanged, while the first holds
    finally:
        gate.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    after = contents(live)
    assert after["loads"] == drill["after"]["loads"] and after["scores"].equals(drill["after"]["scores"])
    assert query(live, "SELECT count(*) AS n FROM runs")["n"][0] == drill["before"]["succeeded"] + 1


def test_a_dead_runs_note_survives_a_failing_run_and_lands_with_the_next_good_one(drill):
    from warehouse.files import IngestError

    live = drill["root"] / "dead-then-failing" / "w.duckdb"
    live.parent.mkdir()
    shutil.copy2(drill["base"], live)
    dead = live.with_name("w.duckdb.building-20250101T000000Z-dead00")
    shutil.copy2(drill["base"], dead)  # what a killed run leaves
    broken = drill["root"] / "broken"
    broken.mkdir()
    (broken / "broken.csv").write_text("year,reporter,cmd,flow,value\n2024,156,282580,X,1\n")
    settings = Settings(warehouse=live, reports_dir=live.parent / "reports")
    with pytest.raises(IngestError):
        transship_pipeline(broken, settings)
    assert dead.exists()  # kept: the failed run could not publish its note about it
    transship_pipeline(drill["both"], settings)
    assert not dead.exists()
    noted = query(live, "SELECT run_id, started_at, status FROM runs WHERE status = 'abandoned'")
    assert noted.rows() == [("20250101T000000Z-dead00", datetime(2025, 1, 1), "abandoned")]
