"""`transship serve` against a real local Prefect server (the test session's): the deployment is registered
with its cron schedule and time zone, a run triggered from the server completes and builds the warehouse,
and everything started is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, query
from warehouse.sample_world import write_sample_world

pytestmark = pytest.mark.slow


def test_serve_registers_a_cron_deployment_and_runs_it_when_triggered(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    world = write_sample_world(tmp_path / "world", seed=7)
    warehouse = tmp_path / "w.duckdb"
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
        assert flow_run.state.is_completed(), flow_run.state
        ranks = query(warehouse, "SELECT hub_iso3 FROM flagged_routes ORDER BY rank")["hub_iso3"].to_list()
        assert ranks[:4] == ["THA", "MEX", "MYS", "VNM"]
        assert query(warehouse, "SELECT status FROM runs")["status"].to_list() == ["succeeded"]
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode is not None
