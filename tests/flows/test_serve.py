"""`transship serve` against a real local Prefect server (the test session's): the deployment is registered
with its cron schedule and time zone, a run triggered from the server completes and builds the warehouse,
and everything started is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, cli, query, table_differences
from worlds.sample import write_sample_world

pytestmark = pytest.mark.slow


def test_serve_registers_a_cron_deployment_and_runs_it_when_triggered(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    world = write_sample_world(tmp_path / "world", seed=7)
    warehouse = tmp_path / "w.duckdb"
    # Settings set once, beside the warehouse: a catalogue of our own (antimony's floor at 30 t) and a review
    # queue of 3 per period. The deployment's run reads them as `transship run` does.
    catalogue = (ROOT / "warehouse" / "catalogue" / "minerals.toml").read_text().replace(
        "volume_floor_kg = 20000", "volume_floor_kg = 30000", 1)
    (tmp_path / "catalogues").mkdir()
    (tmp_path / "catalogues" / "ours.toml").write_text(catalogue)
    (tmp_path / "w.toml").write_text('[run]\ncatalogue = "catalogues/ours.toml"\nqueue_size = 3\n')
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TRANSSHIP_QUIET": "1",
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--data", str(world["data_dir"]), "--warehouse", str(warehouse),
         "--reports", str(tmp_path / "reports"), "--cron", "0 6 20 * *", "--timezone", "Europe/Brussels",
         "--name", "drill"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deployment = None
        deadline = time.monotonic() + 90
        while deployment is None and time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()
            try:
                with get_client(sync_client=True) as client:
                    deployment = client.read_deployment_by_name("transship-scheduled/drill")
            except Exception:
                time.sleep(0.5)
        assert deployment is not None, "the deployment was not registered within 90 s"
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == ("0 6 20 * *", "Europe/Brussels")
        assert deployment.parameters["warehouse"] == str(warehouse)

        flow_run = run_deployment("transship-scheduled/drill", timeout=240)
        assert flow_run.state.is_completed(), flow_run.state.message
        ranks = query(warehouse, "SELECT hub_iso3 FROM flagged_routes ORDER BY rank")["hub_iso3"].to_list()
        assert sorted(ranks[:3]) == ["MEX", "MYS", "THA"]  # Thailand and Mexico a thousandth apart
        assert query(warehouse, "SELECT status FROM runs")["status"].to_list() == ["succeeded"]
        # The run used and recorded the file's settings: the catalogue's floor, the queue of 3.
        assert query(warehouse, "SELECT volume_floor_kg FROM ref.minerals WHERE mineral = 'antimony'")["volume_floor_kg"][0] == 30000
        recorded = json.loads(query(warehouse, "SELECT parameters::VARCHAR AS p FROM runs")["p"][0])
        assert recorded["scoring"]["queue_size"] == 3 and recorded["catalogue"].endswith("catalogues/ours.toml")
        assert recorded["settings"]["file"] == str(tmp_path / "w.toml")
        assert recorded["settings"]["from"] == {"catalogue": "file", "queue_size": "file"}
        # The same settings given on the command line, on another warehouse with no file beside it: the same
        # warehouse, table by table.
        other = tmp_path / "cli" / "w.duckdb"
        other.parent.mkdir()
        done = cli("run", "--data", str(world["data_dir"]), "--warehouse", str(other), "--reports",
                   str(tmp_path / "cli-reports"), "--catalogue", str(tmp_path / "catalogues" / "ours.toml"),
                   "--queue-size", "3")
        assert done.returncode == 0, done.stderr
        same = query(other, "SELECT run_id FROM runs")["run_id"][0]
        first = query(warehouse, "SELECT run_id FROM runs")["run_id"][0]
        assert table_differences(warehouse, other, same_run={same: first}) == {}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        killed = False
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            killed = True
    # Ctrl-C stops the served schedule within 30 s, on its own (not killed).
    assert not killed and server.returncode in (0, 1, 130, -signal.SIGINT), server.returncode
