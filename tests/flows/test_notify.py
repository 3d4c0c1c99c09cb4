"""A run's end announced: the summary as a Prefect artifact, POSTed to a real loopback webhook and piped to a
shell command, for a run that succeeds and for one that fails; a dead webhook does not fail the run."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from flows.notify import ARTIFACT_KEY
from flows.pipeline import transship_pipeline
from flows.settings import Settings
from warehouse.files import IngestError

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_a_finished_and_a_failed_run_are_announced(prefect_harness, scored_warehouse, webhook, tmp_path):
    from prefect.artifacts import Artifact

    url, received = webhook
    data = Path(scored_warehouse[1]["data_dir"])
    out = tmp_path / "summary.md"
    settings = Settings(warehouse=tmp_path / "w.duckdb", reports_dir=tmp_path / "reports", notify_url=url,
                        notify_command=f'cat > {out} && echo "$TRANSSHIP_RUN_STATUS" >> {out}')
    run = transship_pipeline(data, settings)
    assert [r["status"] for r in received] == ["succeeded"] and received[0]["run_id"] == run["run_id"]
    assert "| 1 | THA:282580 | antimony |" in received[0]["summary"]
    text = out.read_text()
    assert text.startswith(f"## transship run {run['run_id']}: succeeded") and text.endswith("succeeded\n")
    artifact = Artifact.get(ARTIFACT_KEY)
    assert artifact is not None and run["run_id"] in artifact.data

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.csv").write_text("year,reporter,cmd,flow,value\n2024,156,282580,X,1\n")
    with pytest.raises(IngestError):
        transship_pipeline(bad, settings)
    assert received[-1]["status"] == "failed" and "broken.csv" in received[-1]["error"]
    assert received[-1]["error"].startswith("ingest: IngestError")
    assert "the last complete warehouse and report are unchanged" in out.read_text()


def test_a_dead_webhook_is_a_warning_not_a_failed_run(prefect_harness, scored_warehouse, tmp_path):
    settings = Settings(warehouse=tmp_path / "w.duckdb", reports_dir=tmp_path / "reports",
                        notify_url="http://127.0.0.1:9/nothing-listens-here", notify_command="exit 3")
    run = transship_pipeline(Path(scored_warehouse[1]["data_dir"]), settings)
    assert run["status"] == "succeeded"
    from flows.notify import notify

    problems = notify(run, "x", settings.notify_url, settings.notify_command, attempts=2)
    assert len(problems) == 2 and "after 2 attempts" in problems[0] and "exited 3" in problems[1]
