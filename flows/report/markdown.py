"""The per-run report folder: the HTML report (flows.report.html), a Markdown digest of the top flagged
routes for e-mail and terminals, and the flagged rows as CSV and Parquet."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import polars as pl

from flows.report.checks import lookalike_checks
from flows.report.html import (ReportData, finished_text, of_prior_total, period_text, rate_change, tonnes,
                               write_outputs)
from flows.report.words import flag_rule_words, flag_threshold, history_words, score_words, windows_words


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _why_nothing(run: dict[str, Any]) -> str | None:
    return ((run.get("build") or {}).get("coverage") or {}).get("why_nothing_scored")


def forest_line(run: dict[str, Any]) -> str | None:
    """What the forests spent their time on, over the models of a run: route-periods scored, screened out
    (evidence too low for any route score to matter) and sampled to fit on. None when no model says."""
    models = [m for m in run.get("models", []) if "screened_out" in m]
    if not models:
        return None
    total = sum(m["route_periods"] for m in models)
    out = sum(m["screened_out"] for m in models)
    bound = (run.get("parameters") or {}).get("scoring", {}).get("min_evidence")
    line = (f"forests: {total - out:,} of {total:,} route-periods scored, {out:,} screened out (evidence below "
            f"{bound}: their route score could not reach it)")
    fitted = [m for m in models if "sampled" in m]
    if fitted:
        line += (f"; {len(fitted)} fitted on {sum(m['sampled'] for m in fitted):,} route-periods "
                 f"({'a seeded sample' if any(m['sampled'] < m['n_train'] for m in fitted) else 'all'} of "
                 f"{sum(m['n_train'] for m in fitted):,})")
    return line


def features_screen_line(run: dict[str, Any]) -> str | None:
    """The routes screened out before the features (a leg that never carried the product), or None."""
    silent = (run.get("build") or {}).get("screened_before_features") or {}
    if not silent.get("routes"):
        return None
    line = f"features: {silent['routes']:,} routes ({silent['route_periods']:,} route-periods) screened out before them"
    if "routes_without_china_leg" not in silent:  # a run recorded before China's leg was screened too
        return line + ": their hub never sent the US the product, so no route score there could reach the screen"
    why = [f"{silent['routes_without_us_leg']:,} whose hub never sent the US the product (no route score "
           "there could reach the screen)" if silent["routes_without_us_leg"] else "",
           f"{silent['routes_without_china_leg']:,} with no trade from China to the hub recorded (no Chinese goods "
           "to pass on)" if silent["routes_without_china_leg"] else ""]
    return line + ": " + "; ".join(w for w in why if w)


def render_revisions(revisions: pl.DataFrame | None) -> list[str]:
    """The section on figures published again with different numbers, and the flags they touched."""
    if revisions is None or revisions.is_empty():
        return []
    lines = ["## Revisions loaded in this run", "",
             "These flows were published again with different figures; the latest figures are used. "
             "`flag change` compares this run's flag with the previous run's "
             f"({revisions['previous_run_id'][0] or 'none'}).", "",
             "| HS | reporter | counterpart | periods | flows | value change (USD) | qty change (t) | sources | flag change |",
             "|---|---|---|---|---:|---:|---:|---|---|"]
    for r in revisions.iter_rows(named=True):
        lines.append(
            f"| {r['hs_code']} | {r['reporter_iso3']} | {r['counterpart_iso3']} | {r['first_period']}..{r['last_period']} "
            f"| {r['revised_flows']} | {r['value_change_usd'] or 0:+,.0f} | {tonnes(r['qty_change_kg'])} | {r['sources']} "
            f"| {r['flag_change']} |")
    return lines + [""]


def render_coverage(coverage: list[dict[str, Any]] | None) -> list[str]:
    """What the data cover per source: first and last period, flows used, records not used and why."""
    if not coverage:
        return []
    cut = {"M": 7, "A": 4}
    lines = ["What the warehouse holds, per source:", "",
             "| source | data | first | last | flows used | records not used as flows | why not used |",
             "|---|---|---|---|---:|---:|---|"]
    for c in coverage:
        span = cut[c["frequency"]]
        last = str(c["last"])[:span]
        if c["before_ban"]:
            last += " (ends before 2025: before the rerouting that followed the December 2024 ban)"
        reasons = "; ".join(f"{r['reason']} {r['records']:,}" for r in c["reasons"])
        lines.append(f"| {c['source']} | {'monthly' if c['frequency'] == 'M' else 'annual'} "
                     f"| {str(c['first'])[:span]} | {last} | {c['flows']:,} | {c['excluded']:,} "
                     f"| {_md_escape(reasons)} |")
    return [*lines, ""]


def render_markdown(run: dict[str, Any], flagged: pl.DataFrame, top_n: int,
                    revisions: pl.DataFrame | None = None, coverage: list[dict[str, Any]] | None = None) -> str:
    lines = [
        f"# transship: flagged routes, run {run['run_id']}",
        "",
        f"- Finished: {finished_text(run.get('finished_at'))} (UTC); code {run.get('code_version')}",
        f"- Data folder: `{run.get('data_dir')}`",
        f"- Input files: {len(run.get('input_files', []))} "
        f"({sum(1 for f in run.get('input_files', []) if f['status'] == 'loaded')} newly loaded; a file loaded by "
        f"an earlier run is not read again); rows read in this run {sum(f['rows_read'] for f in run.get('input_files', [])):,}"
        f" = loaded {sum(f['rows_loaded'] for f in run.get('input_files', [])):,}"
        f" + set aside as rejects {sum(f['rows_rejected'] for f in run.get('input_files', [])):,}",
        f"- Route-periods scored: {run.get('layer_counts', {}).get('main.route_scores', 0):,}; "
        f"routes flagged: {flagged.height}",
        *([f"- **Nothing was scored**: {_md_escape(why)}"] if (why := _why_nothing(run)) else []),
        "",
        *render_coverage(coverage),
        *textwrap.wrap(
            f"Score: the route score, higher = more suspicious: {score_words(run)}. {history_words(run)}. A "
            f"route is flagged when {flag_rule_words(run)} (or it is in the period's review queue with "
            "--queue-size). `why`: the features whose reset to the route's typical values lowers the score most, "
            f"with the model's normal range. Tonnes (t) are metric tonnes; {windows_words(run)}.", width=110,
            break_on_hyphens=False, break_long_words=False),
        "",
    ]
    for g in run.get("models", []):
        lines.append(f"- {g['frequency']} {g['mineral']}: model {g.get('model_id') or '-'}: {g['note']}")
    if screened := features_screen_line(run):
        lines.append(f"- {screened}")
    if forests := forest_line(run):
        lines.append(f"- {forests}")
    if run.get("models"):
        lines.append("")
    if flagged.is_empty():
        why = ("nothing was scored (above)" if _why_nothing(run) else
               f"no route reached the flag threshold ({flag_threshold(run)}) with tonnes beyond its prior run rate "
               "on both legs; the closest, and what held each back, are under Close calls in report.html")
        lines += [f"No route was flagged in this run: {why}.", ""]
        return "\n".join(lines + render_revisions(revisions))
    lines += [
        "Window ÷ prior total is the seeds' test (above 1: the window carried more than the whole prior); rate",
        "vs prior rate compares tonnes per period (5.0x: five times the usual rate; 0.2x: a fifth of it). Rule",
        "out first: the legitimate look-alikes the route's own figures point to (a producer or other suppliers,",
        "a small route, one shipment, a direct route still open); report.html gives each check in full.",
        "",
        "| rank | mineral | HS | hub | peak period | score | China->hub t (window / prior) | hub->US t (window / prior) "
        "| window ÷ prior total (China->hub, hub->US) | rate vs prior rate (China->hub, hub->US) | pass-through "
        "| plain rule | rule out first | why |",
        "|---:|---|---|---|---|---:|---|---|---|---|---:|---|---|---|",
    ]
    from features.params import FeatureParams

    monthly = FeatureParams.from_stored((run.get("parameters") or {}).get("features"))
    shown = flagged.head(top_n)
    rule_out = lookalike_checks(shown, monthly)["rule_out"].to_list()  # item i: the route of row i of `shown`
    for i, r in enumerate(shown.iter_rows(named=True)):
        params = FeatureParams.for_frequency(r["frequency"], monthly)
        w, p = params.window, params.prior
        lines.append(
            f"| {r['rank']} | {_md_escape(r['mineral'])} | {r['hs_code']} | {r['hub_iso3']} ({_md_escape(r['hub_name'])}) "
            f"| {period_text(r['peak_period'], r['frequency'])} | {r['peak_route_score']:.3f} "
            f"| {tonnes(r['cn_to_hub_kg_window'])} / {tonnes(r['cn_to_hub_kg_prior'])} "
            f"| {tonnes(r['hub_to_us_kg_window'])} / {tonnes(r['hub_to_us_kg_prior'])} "
            f"| {of_prior_total(r['cn_to_hub_kg_window'], r['cn_to_hub_kg_prior'])}, "
            f"{of_prior_total(r['hub_to_us_kg_window'], r['hub_to_us_kg_prior'])} "
            f"| {rate_change(r['cn_to_hub_kg_window'], r['cn_to_hub_kg_prior'], w, p)}, "
            f"{rate_change(r['hub_to_us_kg_window'], r['hub_to_us_kg_prior'], w, p)} "
            f"| {r['pass_through_kg']:.2f} | {'yes' if r['rule_flag'] else 'no'} "
            f"| {_md_escape('; '.join(rule_out[i])) or '-'} | {_md_escape(r['top_features'])} |"
        )
    if flagged.height > top_n:
        lines += ["", f"{flagged.height - top_n} more flagged routes are in flagged_routes.csv."]
    lines.append("")
    return "\n".join(lines + render_revisions(revisions))


def write_report(reports_dir: Path, run: dict[str, Any], data: ReportData, top_n: int) -> Path:
    """reports/<run_id>/{report.html, report.md, flagged_routes.csv, flagged_routes.parquet}; reports/latest
    is a copy of the newest, replaced in one rename."""
    out = Path(reports_dir) / run["run_id"]
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, data, top_n)
    (out / "report.md").write_text(render_markdown(run, data.flagged, top_n, data.revisions,
                                                         data.scope.get("coverage")), encoding="utf-8")
    latest = Path(reports_dir) / "latest"
    tmp = Path(reports_dir) / ".latest.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out, tmp)
    shutil.rmtree(latest, ignore_errors=True)
    tmp.rename(latest)
    return out
