"""Live fetchers: UN Comtrade+ and the US Census international trade API, into the data folder.

Each fetch writes the raw responses exactly as received, plus a `manifest.json` (what was asked, when,
how many records each answer held, how many attempts it took; API keys never written), into a new
folder `<out>/<source>_<UTC stamp>/`, so that `transship run --data <out>` ingests them like any file.
All of it is written into a hidden staging folder first and moved into place only when every request
has succeeded: an interrupted or failed fetch leaves nothing half-written.

Resilience: HTTP 429 waits for `Retry-After` (or backs off exponentially) and retries; 5xx and broken
connections or cut-off bodies are retried with back-off; other 4xx stop with the server's message.
Comtrade+ caps the records of one answer (`maxRecords`): an answer that reaches the cap is incomplete, so
the request is split (by periods, then by codes) until every answer is under it.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from warehouse.files import IngestError, parse_json

COMTRADE_URL = "https://comtradeapi.un.org"
CENSUS_URL = "https://api.census.gov"
CENSUS_FIELDS = ("CTY_CODE", "CTY_NAME", "I_COMMODITY", "I_COMMODITY_SDESC", "COMM_LVL", "GEN_VAL_MO", "CON_VAL_MO",
                 "GEN_QY1_MO", "CON_QY1_MO", "UNIT_QY1")


class FetchError(RuntimeError):
    """A fetch could not be completed; nothing was written. The message says what to do."""


@dataclass
class Retry:
    attempts: int = 5
    backoff_seconds: float = 2.0  # doubled after each failed attempt
    max_wait_seconds: float = 120.0


@dataclass(frozen=True)
class FetchLimits:
    """What a fetch may cost. An answer larger than max_answer_bytes is refused (a real Comtrade+ answer is
    capped at 100,000 records, some 70 MB; a Census answer is far smaller; parsing an answer takes about 15
    times its size in memory), as is one that takes longer than
    answer_seconds to arrive whole (the read timeout alone lets a server that sends a byte a second hold a
    fetch for ever); the whole fetch stops after total_seconds, waits for rate limits included."""

    max_answer_bytes: int = 128 << 20
    answer_seconds: float = 300.0
    total_seconds: float = 3600.0
    read_timeout_seconds: float = 60.0


class _Deadline:
    """The whole fetch's deadline, checked before each request and while each answer arrives."""

    def __init__(self, limits: FetchLimits) -> None:
        self.limits = limits
        self.ends = time.monotonic() + limits.total_seconds

    def left(self) -> float:
        return self.ends - time.monotonic()

    def check(self, url: str) -> None:
        if self.left() <= 0:
            raise FetchError(f"{url}: the fetch took longer than {self.limits.total_seconds:g} s in all (--deadline) and "
                             "was stopped. Nothing was written; ask for fewer months or codes at a time, or raise it.")


@dataclass
class FetchResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    requests: int = 0
    records: int = 0


def _redact(params: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k.lower() in ("key", "subscription-key") else v) for k, v in params.items()}


def _answer(client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str],
            deadline: _Deadline) -> tuple[httpx.Response, bytes]:
    """One GET, its body read in pieces: refused past the size cap, or when the answer as a whole takes longer
    than its time cap (or the fetch's deadline)."""
    limits = deadline.limits
    ends = time.monotonic() + min(limits.answer_seconds, max(deadline.left(), 0.0))
    with client.stream("GET", url, params=params, headers=headers) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limits.max_answer_bytes:
            raise FetchError(f"{url}: the answer would be {int(declared):,} bytes, more than the cap of "
                             f"{limits.max_answer_bytes:,} (--max-answer-mb). Nothing was written; ask for fewer "
                             "months or codes at a time, or raise the cap.")
        body = bytearray()
        for piece in response.iter_bytes():
            body += piece
            if len(body) > limits.max_answer_bytes:
                raise FetchError(f"{url}: the answer passed {limits.max_answer_bytes:,} bytes, the cap "
                                 "(--max-answer-mb), and was cut off. Nothing was written; ask for fewer months or "
                                 "codes at a time, or raise the cap.")
            if time.monotonic() > ends:
                deadline.check(url)
                raise FetchError(f"{url}: the answer was still arriving after {limits.answer_seconds:g} s "
                                 f"({len(body):,} bytes so far), the cap on one answer (--answer-seconds). Nothing "
                                 "was written; the server is too slow now: try again later.")
    return response, bytes(body)


def _get(client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str], retry: Retry,
         sleep: Callable[[float], None], log: list[str],
         deadline: _Deadline | None = None) -> tuple[httpx.Response, Any, int]:
    """One GET with retries; returns the response, its parsed JSON (None for 204) and the attempts used."""
    deadline = deadline or _Deadline(FetchLimits())
    wait = retry.backoff_seconds
    last = ""
    for attempt in range(1, retry.attempts + 1):
        deadline.check(url)
        try:
            response, body = _answer(client, url, params, headers, deadline)
        except httpx.ConnectError as exc:
            raise FetchError(f"cannot reach {url} ({exc}). Are you offline? Nothing was written; run the fetch "
                             "again when the network is back, or put downloaded files in the data folder.") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.TimeoutException) as exc:
            last = f"connection broke off ({type(exc).__name__}: {exc})"
        else:
            if response.status_code == 429:
                after = response.headers.get("Retry-After", "")
                pause = float(after) if after.replace(".", "", 1).isdigit() else wait
                last = f"HTTP 429 (rate limited), waited {pause:g} s"
                log.append(f"{url}: {last}")
                sleep(min(pause, retry.max_wait_seconds, max(deadline.left(), 0.0)))
                wait *= 2
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code} from the server"
            elif response.status_code == 204:
                return response, None, attempt
            elif response.status_code >= 400:
                text = body[:300].decode("utf-8", errors="replace").strip()
                raise FetchError(f"{url}: HTTP {response.status_code}: {text}. "
                                 + ("Check the API key." if response.status_code in (401, 403) else
                                    "Check the codes, periods and reporter asked for."))
            else:
                try:
                    return response, parse_json(Path(url), body), attempt
                except IngestError:
                    last = f"the answer is not complete JSON ({len(body)} bytes, cut off?)"
        log.append(f"{url}: attempt {attempt}: {last}")
        if attempt < retry.attempts:
            sleep(min(wait, retry.max_wait_seconds, max(deadline.left(), 0.0)))
            wait *= 2
    raise FetchError(f"{url}: gave up after {retry.attempts} attempts: {last}. Nothing was written.")


def _client(limits: FetchLimits) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(limits.read_timeout_seconds, connect=min(30.0, limits.read_timeout_seconds)))


class _Staging:
    """A hidden folder under out_dir, moved into place on success and removed on failure."""

    def __init__(self, out_dir: Path, source: str) -> None:
        self.out_dir = Path(out_dir)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.final = self.out_dir / f"{source}_{stamp}"
        if self.final.exists():
            self.final = self.out_dir / f"{source}_{stamp}_{uuid.uuid4().hex[:4]}"
        self.tmp = self.out_dir / f".fetching-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> _Staging:
        self.tmp.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.tmp.rename(self.final)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")


def months_between(first: str, last: str) -> list[str]:
    """'2024-11', '2025-02' -> ['2024-11', '2024-12', '2025-01', '2025-02']."""
    try:
        y, m = (int(x) for x in first.split("-"))
        y2, m2 = (int(x) for x in last.split("-"))
    except ValueError:
        raise FetchError(f"months must be YYYY-MM, got {first!r} and {last!r}") from None
    if not (1 <= m <= 12 and 1 <= m2 <= 12) or (y, m) > (y2, m2):
        raise FetchError(f"no months from {first} to {last}")
    out = []
    while (y, m) <= (y2, m2):
        out.append(f"{y}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def fetch_comtrade(
    out_dir: Path, *, reporter: int, flow: str, codes: list[str], months: list[str], api_key: str,
    base_url: str = COMTRADE_URL, max_records: int = 100000, retry: Retry | None = None,
    sleep: Callable[[float], None] = time.sleep, progress: Callable[[str], None] | None = None,
    limits: FetchLimits = FetchLimits(),
) -> FetchResult:
    """Monthly Comtrade+ records (`/data/v1/get/C/M/HS`) for one reporter and flow, by HS codes and months."""
    if not api_key:
        raise FetchError("Comtrade+ needs a subscription key: set COMTRADE_API_KEY (comtradedeveloper.un.org).")
    retry = retry or Retry()
    url = f"{base_url.rstrip('/')}/data/v1/get/C/M/HS"
    headers = {"Ocp-Apim-Subscription-Key": api_key}
    periods = [m.replace("-", "") for m in months]
    pending = [(periods[i:i + 12], list(codes)) for i in range(0, len(periods), 12)]  # the API takes 12 periods a call
    log: list[str] = []
    done: list[dict[str, Any]] = []
    result = FetchResult(folder=Path())
    deadline = _Deadline(limits)
    with _client(limits) as client, _Staging(out_dir, "comtrade") as staging:
        while pending:
            chunk_periods, chunk_codes = pending.pop(0)
            params = {"reporterCode": reporter, "flowCode": flow, "period": ",".join(chunk_periods),
                      "cmdCode": ",".join(chunk_codes), "includeDesc": "false", "maxRecords": max_records}
            if progress:
                progress(f"comtrade: {reporter} {flow} {chunk_periods[0]}..{chunk_periods[-1]} {','.join(chunk_codes)}")
            _, body, attempts = _get(client, url, params, headers, retry, sleep, log, deadline)
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise FetchError(f"{url}: unexpected answer (no 'data' list): {str(body)[:200]}")
            if body.get("error"):
                raise FetchError(f"{url}: Comtrade+ says: {body['error']}")
            records = body["data"]
            if len(records) >= max_records:
                # Capped: incomplete. Split the request and ask again.
                if len(chunk_periods) > 1:
                    half = len(chunk_periods) // 2
                    pending[:0] = [(chunk_periods[:half], chunk_codes), (chunk_periods[half:], chunk_codes)]
                elif len(chunk_codes) > 1:
                    half = len(chunk_codes) // 2
                    pending[:0] = [(chunk_periods, chunk_codes[:half]), (chunk_periods, chunk_codes[half:])]
                else:
                    raise FetchError(f"{url}: one period and one code still give {len(records)} records, the cap "
                                     f"(maxRecords={max_records}); raise --max-records.")
                log.append(f"{params['period']} {params['cmdCode']}: {len(records)} records reached the cap; split")
                continue
            name = f"comtrade_{reporter}_{flow}_{chunk_periods[0]}-{chunk_periods[-1]}_{len(done) + 1:03d}.json"
            (staging.tmp / name).write_text(json.dumps(body), encoding="utf-8")
            done.append({"file": name, "params": _redact(params), "records": len(records), "attempts": attempts})
            result.records += len(records)
        _write_manifest(staging.tmp, {
            "source": "UN Comtrade+ API", "url": url, "fetched_at": datetime.now(timezone.utc).isoformat(),
            "reporter": reporter, "flow": flow, "codes": codes, "months": months, "requests": done, "log": log})
    result.folder = staging.final
    result.files = sorted(staging.final.glob("comtrade_*.json"))
    result.requests = len(done)
    return result


def fetch_census(
    out_dir: Path, *, codes: list[str], months: list[str], api_key: str | None = None,
    base_url: str = CENSUS_URL, retry: Retry | None = None,
    sleep: Callable[[float], None] = time.sleep, progress: Callable[[str], None] | None = None,
    limits: FetchLimits = FetchLimits(),
) -> FetchResult:
    """US imports by partner (`/data/timeseries/intltrade/imports/hs`) for HS/HTS codes and months.

    One request per code and month; an empty answer (HTTP 204) is recorded in the manifest, not written."""
    retry = retry or Retry()
    url = f"{base_url.rstrip('/')}/data/timeseries/intltrade/imports/hs"
    log: list[str] = []
    done: list[dict[str, Any]] = []
    result = FetchResult(folder=Path())
    deadline = _Deadline(limits)
    with _client(limits) as client, _Staging(out_dir, "census") as staging:
        for month in months:
            for code in codes:
                level = f"HS{len(code)}"
                params: dict[str, Any] = {"get": ",".join(CENSUS_FIELDS), "time": month, "I_COMMODITY": code,
                                          "COMM_LVL": level}
                if api_key:
                    params["key"] = api_key
                if progress:
                    progress(f"census: {code} {month}")
                _, body, attempts = _get(client, url, params, {}, retry, sleep, log, deadline)
                entry = {"params": _redact(params), "attempts": attempts}
                if body is None:
                    done.append(entry | {"file": None, "records": 0, "note": "HTTP 204: no data for this query"})
                    continue
                if not (isinstance(body, list) and body and isinstance(body[0], list)):
                    raise FetchError(f"{url}: unexpected answer (not an array of arrays): {str(body)[:200]}")
                name = f"census_imports_{code}_{month}.json"
                (staging.tmp / name).write_text(json.dumps(body), encoding="utf-8")
                done.append(entry | {"file": name, "records": len(body) - 1})
                result.records += len(body) - 1
        _write_manifest(staging.tmp, {
            "source": "US Census Bureau international trade API", "url": url,
            "fetched_at": datetime.now(timezone.utc).isoformat(), "codes": codes, "months": months,
            "requests": done, "log": log})
    result.folder = staging.final
    result.files = sorted(staging.final.glob("census_*.json"))
    result.requests = len(done)
    return result
