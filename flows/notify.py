"""What a run tells the outside when it ends: a short Markdown summary, kept as a Prefect artifact and, when
configured, sent to a webhook (JSON POST) and/or piped to a shell command.

Notification problems never change the run's outcome: they are logged and printed as warnings.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import httpx
import polars as pl

ARTIFACT_KEY = "transship-run-summary"


def summary_markdown(run: dict[str, Any], flagged: pl.DataFrame | None = None, top: int = 10) -> str:
    """The run in a few lines: status, inputs, counts, the top flagged routes, or the error."""
    files = run.get("input_files") or []
    counts = run.get("layer_counts") or {}
    lines = [f"## transship run {run['run_id']}: {run['status']}", "",
             f"- started {run.get('started_at')}, finished {run.get('finished_at')} (UTC); code {run.get('code_version')}",
             f"- data `{run.get('data_dir')}`: {len(files)} files, "
             f"{sum(1 for f in files if f.get('status') == 'loaded')} newly loaded, "
             f"{sum(f.get('rows_read', 0) for f in files):,} rows read, "
             f"{sum(f.get('rows_rejected', 0) for f in files):,} set aside"]
    if run["status"] != "succeeded":
        lines += [f"- **error**: {run.get('error')}", "- the last complete warehouse and report are unchanged"]
        return "\n".join(lines) + "\n"
    lines.append(f"- route-periods scored {counts.get('main.route_scores', 0):,}; routes flagged "
                 f"{counts.get('main.flagged_routes', 0):,}")
    if run.get("report_dir"):
        lines.append(f"- report: `{run['report_dir']}/report.html`")
    if flagged is not None and flagged.height:
        lines += ["", "| rank | route | mineral | peak | score |", "|---:|---|---|---|---:|"]
        for r in flagged.head(top).iter_rows(named=True):
            lines.append(f"| {r['rank']} | {r['hub_iso3']}:{r['hs_code']} | {r['mineral']} | {r['peak_period']} "
                         f"| {r['peak_route_score']:.3f} |")
    return "\n".join(lines) + "\n"


def notify(run: dict[str, Any], summary: str, url: str | None, command: str | None,
           attempts: int = 3) -> list[str]:
    """Send the summary where the operator asked; returns the problems met (empty when all went through).

    url: POST {"run_id", "status", "error", "report_dir", "summary"} as JSON, retried with back-off.
    command: run through the shell with the summary on standard input and TRANSSHIP_RUN_ID,
    TRANSSHIP_RUN_STATUS and TRANSSHIP_REPORT_DIR in its environment."""
    problems: list[str] = []
    if url:
        payload = {"run_id": run["run_id"], "status": run["status"], "error": run.get("error"),
                   "report_dir": run.get("report_dir"), "summary": summary}
        for attempt in range(1, attempts + 1):
            try:
                response = httpx.post(url, json=payload, timeout=10)
                response.raise_for_status()
                break
            except httpx.HTTPError as exc:
                if attempt == attempts:
                    problems.append(f"webhook {url}: {exc} (after {attempts} attempts)")
                else:
                    time.sleep(0.5 * 2 ** (attempt - 1))
    if command:
        env = {**os.environ, "TRANSSHIP_RUN_ID": run["run_id"], "TRANSSHIP_RUN_STATUS": run["status"],
               "TRANSSHIP_REPORT_DIR": str(run.get("report_dir") or "")}
        try:
            done = subprocess.run(command, shell=True, input=summary, text=True, env=env, capture_output=True,
                                  timeout=120)
            if done.returncode != 0:
                problems.append(f"notify command exited {done.returncode}: {done.stderr.strip()[:300]}")
        except subprocess.TimeoutExpired:
            problems.append("notify command did not finish within 120 s")
    return problems
