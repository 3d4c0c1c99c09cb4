"""A scheduled run downloads what its settings file asks for ([fetch.census], [fetch.comtrade]) before it
builds, each download a Prefect task retried on its own: against a real HTTP server on 127.0.0.1 that fails
the first attempt and answers the second, and one that never answers."""

from __future__ import annotations

import json

import pytest

from flows.scheduled import last_months, scheduled_run
from tests.helpers import query
from tests.warehouse.test_fetch import Replay, server  # noqa: F401 - the loopback server fixture

pytestmark = pytest.mark.slow

HEADER = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "I_COMMODITY_SDESC", "COMM_LVL", "GEN_VAL_MO", "CON_VAL_MO",
          "GEN_QY1_MO", "CON_QY1_MO", "UNIT_QY1", "time", "I_COMMODITY"]


def settings_file(tmp_path, base_url: str) -> None:
    (tmp_path / "w.toml").write_text(
        '[fetch.census]\ncodes = ["8112921000"]\nmonths = 1\nattempts = 1\nretries = 1\nretry_delay_seconds = 0\n'
        f'base_url = "{base_url}"\n')


def test_the_download_is_retried_by_prefect_then_loaded(prefect_harness, server, tmp_path):  # noqa: F811
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    (month,) = last_months(1)
    Replay.script = {f"census 8112921000 {month}": [("500", None), ("json", [HEADER,
        ["5520", "VIETNAM", "8112921000", "GALLIUM", "HS10", "400", "400", "1", "1", "KG", month, "8112921000"]])]}
    settings_file(tmp_path, server)
    (tmp_path / "incoming").mkdir()
    run = scheduled_run(data_dir=str(tmp_path / "incoming"), warehouse=str(tmp_path / "w.duckdb"),
                        reports_dir=str(tmp_path / "reports"))
    assert run["status"] == "succeeded"
    assert len([s for s in Replay.seen if s["path"].endswith("/imports/hs")]) == 2  # the failed try, the retry
    loaded = query(tmp_path / "w.duckdb", "SELECT source_file, rows_loaded FROM raw.loads")
    assert loaded.height == 1 and loaded["source_file"][0].endswith(f"census_imports_8112921000_{month}.json")
    manifest = json.loads(next((tmp_path / "incoming").glob("census_*/manifest.json")).read_text())
    assert manifest["months"] == [month]
    with get_client(sync_client=True) as client:
        (task_run,) = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["fetch census"])),
                                            limit=1, sort="EXPECTED_START_TIME_DESC")
    assert task_run.run_count == 2 and task_run.state.is_completed()


def test_a_download_that_keeps_failing_fails_the_run_before_anything_is_built(prefect_harness, server, tmp_path):  # noqa: F811
    from warehouse.fetch import FetchError

    (month,) = last_months(1)
    Replay.script = {f"census 8112921000 {month}": [("500", None)]}
    settings_file(tmp_path, server)
    (tmp_path / "incoming").mkdir()
    with pytest.raises(FetchError, match="gave up after 1 attempt"):
        scheduled_run(data_dir=str(tmp_path / "incoming"), warehouse=str(tmp_path / "w.duckdb"),
                      reports_dir=str(tmp_path / "reports"))
    assert not (tmp_path / "w.duckdb").exists() and list((tmp_path / "incoming").iterdir()) == []
