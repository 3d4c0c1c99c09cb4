"""The live fetchers against a real HTTP server on 127.0.0.1 that replays answers in the real shapes:
paging by the record cap, a 429, a 500, a cut-off body, an empty answer, and no server at all."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from warehouse.build import build_models
from warehouse.connection import rows
from warehouse.fetch import FetchError, FetchLimits, Retry, fetch_census, fetch_comtrade, months_between
from warehouse.ingest import ingest_folder

FAST = Retry(attempts=4, backoff_seconds=0.01, max_wait_seconds=0.05)


def comtrade_record(period: str, partner: int, cmd: str, value: float) -> dict:
    return {"typeCode": "C", "freqCode": "M", "refPeriodId": int(period + "01"), "refYear": int(period[:4]),
            "refMonth": int(period[4:]), "period": period, "reporterCode": 156, "reporterISO": "CHN",
            "flowCode": "X", "partnerCode": partner, "partner2Code": 0, "cmdCode": cmd, "customsCode": "C00",
            "motCode": 0, "qtyUnitCode": 8, "qty": value / 10, "netWgt": value / 10, "cifvalue": None,
            "fobvalue": value, "primaryValue": value, "isReported": True, "isAggregate": False}


class Replay(BaseHTTPRequestHandler):
    """Scripted answers; `script` maps a request key to a list of answers, used in turn."""

    script: dict[str, list] = {}
    seen: list[dict] = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        Replay.seen.append({"path": url.path, "query": query, "headers": dict(self.headers)})
        if url.path.endswith("/get/C/M/HS"):
            key = f"comtrade {query['period']} {query['cmdCode']}"
        else:
            key = f"census {query['I_COMMODITY']} {query['time']}"
        answers = Replay.script.get(key) or [("default", None)]
        kind, payload = answers.pop(0) if len(answers) > 1 else answers[0]
        if kind == "429":
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
        elif kind == "500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"Internal Server Error")
        elif kind == "204":
            self.send_response(204)
            self.end_headers()
        elif kind == "cut":
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # the connection closes mid-body
            self.close_connection = True
        elif kind == "big":  # a large answer, its length declared or not (payload: bytes, declared)
            body, declared = payload
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if declared:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for start in range(0, len(body), 1 << 16):
                    self.wfile.write(body[start:start + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: what the cap is for
                pass
            self.close_connection = True
        elif kind == "drip":  # a byte at a time, slowly: each read is quick, the answer never ends
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        elif kind == "json":
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"unknown query")


@pytest.fixture
def server():
    Replay.script, Replay.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_comtrade_paging_429_500_and_cut_body_then_ingest(server, tmp_path, con):
    months = months_between("2024-11", "2025-02")
    # The first answer for all four months reaches the cap (3 records): the fetcher splits by period.
    full = [comtrade_record(p, 764, "282580", 1000.0 + i) for i, p in enumerate(["202411", "202412", "202501"])]
    Replay.script = {
        "comtrade 202411,202412,202501,202502 282580": [("json", {"count": 3, "data": full, "error": ""})],
        "comtrade 202411,202412 282580": [("429", None), ("json", {"count": 2, "data": full[:2], "error": ""})],
        "comtrade 202501,202502 282580": [("500", None), ("cut", {"count": 1, "data": full[2:]}),
                                           ("json", {"elapsedTime": "0.1 secs", "count": 2, "data": [
                                               full[2], comtrade_record("202502", 484, "282580", 7000.0)], "error": ""})],
    }
    result = fetch_comtrade(tmp_path / "data", reporter=156, flow="X", codes=["282580"], months=months,
                            api_key="secret", base_url=server, max_records=3, retry=FAST, sleep=lambda s: None)
    assert (result.requests, result.records) == (2, 4)
    assert [p.name for p in result.files] == ["comtrade_156_X_202411-202412_001.json",
                                              "comtrade_156_X_202501-202502_002.json"]
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert [r["attempts"] for r in manifest["requests"]] == [2, 3]
    assert "secret" not in (result.folder / "manifest.json").read_text()
    assert Replay.seen[0]["headers"]["Ocp-Apim-Subscription-Key"] == "secret"
    # No staging folder left behind; the data folder ingests as usual.
    assert [p.name for p in (tmp_path / "data").iterdir()] == [result.folder.name]
    outcomes = ingest_folder(con, tmp_path / "data", batch_id="b1")
    assert sorted((o.file_format, o.status) for o in outcomes) == [
        ("comtrade", "loaded"), ("comtrade", "loaded"), ("fetch_manifest", "companion")]
    build_models(con)
    assert rows(con, "SELECT partner_iso3, count(*), sum(value_usd) FROM intermediate.int_flows GROUP BY 1 ORDER BY 1") == [
        ("MEX", 1, 7000.0), ("THA", 3, 3003.0)]


def test_census_fetch_with_empty_answer(server, tmp_path, con):
    header = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "I_COMMODITY_SDESC", "COMM_LVL", "GEN_VAL_MO", "CON_VAL_MO",
              "GEN_QY1_MO", "CON_QY1_MO", "UNIT_QY1", "time", "I_COMMODITY"]
    Replay.script = {
        "census 8112921000 2025-01": [("json", [header,
            ["-", "TOTAL FOR ALL COUNTRIES", "8112921000", "GALLIUM", "HS10", "500", "500", "2", "2", "KG", "2025-01", "8112921000"],
            ["5520", "VIETNAM", "8112921000", "GALLIUM", "HS10", "400", "400", "1", "1", "KG", "2025-01", "8112921000"]])],
        "census 8112921000 2025-02": [("204", None)],
    }
    result = fetch_census(tmp_path / "data", codes=["8112921000"], months=["2025-01", "2025-02"],
                          base_url=server, retry=FAST, sleep=lambda s: None)
    assert (result.requests, result.records, [p.name for p in result.files]) == (2, 2, ["census_imports_8112921000_2025-01.json"])
    assert "key" not in Replay.seen[0]["query"]  # no key given: none sent
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert manifest["requests"][1]["note"] == "HTTP 204: no data for this query"
    ingest_folder(con, tmp_path / "data", batch_id="b1")
    build_models(con)
    assert rows(con, "SELECT partner_iso3, mineral, value_usd FROM intermediate.int_flows") == [("VNM", "gallium", 400.0)]


def test_failures_leave_nothing_behind(server, tmp_path):
    Replay.script = {"census 8110100000 2025-01": [("500", None)]}
    with pytest.raises(FetchError, match="gave up after 4 attempts: HTTP 500"):
        fetch_census(tmp_path / "data", codes=["8110100000"], months=["2025-01"], base_url=server, retry=FAST,
                     sleep=lambda s: None)
    assert list((tmp_path / "data").iterdir()) == []
    with pytest.raises(FetchError, match="HTTP 404: unknown query"):
        fetch_census(tmp_path / "data", codes=["9999999999"], months=["2025-01"], base_url=server, retry=FAST)
    assert list((tmp_path / "data").iterdir()) == []
    # No server at all: offline.
    with pytest.raises(FetchError, match="Are you offline"):
        fetch_census(tmp_path / "data", codes=["8110100000"], months=["2025-01"], base_url="http://127.0.0.1:9",
                     retry=FAST)
    assert list((tmp_path / "data").iterdir()) == []
    with pytest.raises(FetchError, match="COMTRADE_API_KEY"):
        fetch_comtrade(tmp_path / "data", reporter=156, flow="X", codes=["282580"], months=["2025-01"], api_key="")


@pytest.mark.parametrize("declared", [True, False], ids=["length declared", "length not declared"])
def test_an_answer_larger_than_the_cap_is_refused_and_nothing_is_written(server, tmp_path, declared):
    body = json.dumps([["CTY_CODE", "CTY_NAME", "I_COMMODITY", "GEN_VAL_MO", "time"]]
                      + [["5520", "VIETNAM", "8112921000", "1", "2025-01"]] * 40_000).encode()  # ~1.9 MB
    Replay.script = {"census 8112921000 2025-01": [("big", (body, declared))]}
    limits = FetchLimits(max_answer_bytes=1 << 20)
    with pytest.raises(FetchError, match=r"more than the cap of 1,048,576|passed 1,048,576 bytes, the cap"):
        fetch_census(tmp_path / "data", codes=["8112921000"], months=["2025-01"], base_url=server, retry=FAST,
                     sleep=lambda s: None, limits=limits)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_server_that_drips_is_given_up_on_and_the_whole_fetch_has_a_deadline(server, tmp_path):
    Replay.script = {"census 8112921000 2025-01": [("drip", 0.05)], "census 8112921000 2025-02": [("drip", 0.05)]}
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"still arriving after 1 s .* the cap on one answer"):
        fetch_census(tmp_path / "data", codes=["8112921000"], months=["2025-01"], base_url=server, retry=FAST,
                     sleep=lambda s: None, limits=FetchLimits(answer_seconds=1))
    assert time.monotonic() - started < 8  # each read was quick; the answer as a whole had a limit
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 1.5 s in all \(--deadline\)"):
        fetch_census(tmp_path / "data", codes=["8112921000"], months=["2025-01", "2025-02"], base_url=server,
                     retry=FAST, sleep=lambda s: None, limits=FetchLimits(answer_seconds=60, total_seconds=1.5))
    assert time.monotonic() - started < 8
    assert list((tmp_path / "data").iterdir()) == []
