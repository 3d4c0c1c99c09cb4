"""The per-run HTML report: one self-contained file (Plotly's JavaScript inline, no network), built from the
published warehouse.

What an analyst reads, in order: what was scored; what changed since the last run (new, escalated,
dropped); the model's precision on the routes analysts have decided; a sortable, filterable table of the
flagged routes; then per route a chart of both legs with the scoring window against the prior three years,
the explanation (features, values and normal ranges, as bars) and the analyst's last decision; routes held
back by a dismissal, with the reason; the watch list; revisions.

Every piece of text from data (country, product, analyst, note) is escaped by Jinja's autoescape in the
page and by html.escape inside Plotly's titles and hover text (Plotly renders a subset of HTML there).
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from features.params import FeatureParams, periods_before

from warehouse.contracts import ROUTE_KEYS
from flows.report.checks import lookalike_checks
from flows.report.words import flag_rule_words, flag_threshold, history_words, score_words, windowed_with
from flows.spreadsheet import spreadsheet_safe
from models.iforest import in_tonnes
from models.params import ScoreParams
from warehouse import report_queries as q
from warehouse.outputs import flagged_routes

LEG_COLOURS = {"cn_to_hub_kg": "#c0392b", "hub_to_us_kg": "#1f5fa8", "us_from_cn_kg": "#7f7f7f"}
LEG_NAMES = {"cn_to_hub_kg": "China -> hub (China's exports)", "hub_to_us_kg": "hub -> US (US imports)",
             "us_from_cn_kg": "China -> US direct (US imports)"}


@dataclass
class ReportData:
    run: dict[str, Any]
    scope: dict[str, Any]
    flagged: pl.DataFrame
    changes: pl.DataFrame
    held_back: pl.DataFrame
    watch: pl.DataFrame
    labels: pl.DataFrame
    revisions: pl.DataFrame
    legs: pl.DataFrame
    explanations: pl.DataFrame
    close_calls: pl.DataFrame
    previous_run_id: str | None


def gather(con: duckdb.DuckDBPyConnection, run: dict[str, Any], top_n: int) -> ReportData:
    """Everything the report shows, read from the published warehouse (warehouse/report_queries.py)."""
    flagged = flagged_routes(con)
    legs, explanations = q.shown_routes_detail(con, flagged.head(top_n).select(*ROUTE_KEYS))
    scope = {"files": q.files_loaded(con), "periods": q.periods_scored(con), "minerals": q.minerals_scored(con),
             "coverage": source_coverage(con)}
    scoring = (run.get("parameters") or {}).get("scoring", {})
    return ReportData(close_calls=close_calls(con, scoring), previous_run_id=q.previous_run_id(con, run["run_id"]),
                      run=run, scope=scope, flagged=flagged, legs=legs, explanations=explanations,
                      **q.report_lists(con))


# China's ban on exports of antimony, gallium and germanium to the US began in December 2024; the rerouting
# reported after it (Thailand, Mexico) shows from 2025. Data that end before 2025 cannot show it.
AFTER_BAN = date(2025, 1, 1)


def source_coverage(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per source and frequency, what the warehouse holds: the first and last period of the flows used, how
    many flows, the records loaded but not used as flows with the reasons (duplicates, totals, groupings,
    superseded releases...), and whether the data end before 2025 (before the rerouting that followed the
    December 2024 ban could show). The files' rows read,
    loaded and set aside are the scope's `files`."""
    used, excluded = q.flows_by_source(con)
    out = []
    for row in used.iter_rows(named=True):
        mine = excluded.filter((pl.col("source") == row["source"]) & (pl.col("frequency") == row["frequency"]))
        out.append({**row, "excluded": int(mine["records"].sum()) if mine.height else 0,
                    "reasons": mine.select("reason", "records").to_dicts(),
                    "before_ban": row["last"] is not None and row["last"] < AFTER_BAN})
    return out


def _shown(figure: pl.Expr, digits: int) -> pl.Expr:
    """`figure` rounded for the page, never as -0.0 (a few kilograms, or a z a hair, below 0 read 0.0)."""
    rounded = figure.round(digits)
    return pl.when(rounded == 0).then(pl.lit(0.0)).otherwise(rounded)


def close_calls(con: duckdb.DuckDBPyConnection, scoring: dict[str, Any], limit: int = 10) -> pl.DataFrame:
    """Routes the isolation forest puts in its top 2 % of route-periods (score_percentile >= 0.98) that are
    not flagged, each at its most anomalous period, with what held it back in words (no tonnes above the
    run rate, weights unknown, or a route score below the flag threshold, with the evidence that lowered
    it): what an analyst asks first when the list is short or empty."""
    calls = q.close_call_rows(con, limit)
    used = ScoreParams.from_stored(scoring)
    min_z, min_us_z, min_fall = used.min_rise_z, used.min_us_mean_z, used.min_direct_fall_z
    min_cov, max_peak, min_cover = used.min_kg_coverage, used.max_peak_share, used.min_value_cover
    # hub_to_us_mean_z leaves the window's largest period out where the window has 3 periods or more (monthly
    # data); a year's window is the year itself.
    largest_aside = pl.when(pl.col("frequency") == "A").then(pl.lit("")).otherwise(pl.lit(", their largest month aside,"))
    reasons = [
        pl.when(pl.col("floor_multiple").fill_null(0) < 1)
        .then(pl.format("excess {} t is below the mineral's floor of {} t (in value too, its floor raised with the world price)",
                        _shown(pl.col("route_excess_kg").fill_null(0).clip(lower_bound=0.0) / 1000, 1),
                        (pl.col("volume_floor_kg") / 1000).round(1))),
        pl.when(pl.col("co_rise_z").fill_null(-1e9) < min_z)
        .then(pl.format("the legs do not both rise beyond their own history (z {} < {})",
                        _shown(pl.col("co_rise_z"), 2), pl.lit(min_z))),
        pl.when(pl.col("hub_to_us_mean_z").fill_null(-1e9) < min_us_z)
        .then(pl.format("the hub's exports to the US{} stay within their own history (z {} < {})",
                        largest_aside, _shown(pl.col("hub_to_us_mean_z"), 2), pl.lit(min_us_z))),
        pl.when(pl.col("us_from_cn_kg_robust_z").fill_null(0) > -min_fall)
        .then(pl.format("the US's imports from China direct have not fallen (z {}; a fall is -{} or below)",
                        _shown(pl.col("us_from_cn_kg_robust_z").fill_null(0), 2), pl.lit(min_fall))),
        pl.when(pl.col("kg_coverage").fill_null(0) < min_cov)
        .then(pl.format("only {}% of the trade has a known or estimated weight (needs {}%)",
                        (pl.col("kg_coverage").fill_null(0) * 100).round(0).cast(pl.Int64), pl.lit(round(min_cov * 100)))),
        pl.when(~pl.col("sustained").fill_null(False))
        .then(pl.format("one lump: a single period carries {}% of the hub's exports to the US (at most {}%)",
                        (pl.col("hub_to_us_peak_share") * 100).round(0).cast(pl.Int64), pl.lit(round(max_peak * 100)))),
        pl.when(pl.col("china_value_cover").fill_nan(None) < min_cover)
        .then(pl.format("China's extra shipments to the hub cover {}% of the rise in the value of its exports to "
                        "the US (from {}% they count in full)",
                        (pl.col("china_value_cover").clip(lower_bound=0.0) * 100).round(0).cast(pl.Int64),
                        pl.lit(round(min_cover * 100)))),
    ]
    below = pl.col("direction_ok").fill_null(False) & (pl.col("route_score") < pl.col("score_threshold"))
    # With a learned score, which half held it back: "route score 0.009 = √(graded 0.033 x learned 0.002)".
    halves = pl.when(pl.col("learned_score").is_not_null()).then(pl.format(
        " = √(graded {} x learned {})", pl.col("graded_score").round(3), pl.col("learned_score").round(3))).otherwise(pl.lit(""))
    reasons.append(pl.when(below)
                   .then(pl.format("route score {}{} is below the flag threshold {}", pl.col("route_score").round(3),
                                   halves, pl.col("score_threshold").round(3))))
    return calls.with_columns(why_not=pl.concat_list(reasons).list.drop_nulls().list.join("; "))


# ---------------------------------------------------------------- charts
def legs_chart(route: dict[str, Any], legs: pl.DataFrame, window: int, prior: int) -> go.Figure:
    """Both legs and the direct route over time, in tonnes; the scoring window (ending at the peak period)
    shaded against the prior periods, with each leg's prior run rate drawn across the prior span."""
    freq = route["frequency"]
    peak: date = route["peak_period"]
    win_start = periods_before(peak, window - 1, freq)
    prior_start = periods_before(win_start, prior, freq)
    fig = go.Figure()
    step = 12 if freq == "M" else 1
    for leg, colour in LEG_COLOURS.items():
        direct = leg == "us_from_cn_kg"
        # The direct route is often a hundred times the legs: on an axis of its own (right), so that it does
        # not flatten them; the buttons turn both axes to a log scale.
        fig.add_trace(go.Scatter(
            x=legs["period"].to_list(), y=(legs[leg] / 1000).to_list(),
            name=LEG_NAMES[leg] + (" (right axis)" if direct else ""), mode="lines", yaxis="y2" if direct else "y",
            line={"color": colour, "width": 2, "dash": "dot" if direct else "solid"},
            hovertemplate="%{x|%Y-%m}: %{y:,.1f} t<extra>" + html.escape(LEG_NAMES[leg]) + "</extra>"))
        in_prior = legs.filter((pl.col("period") >= prior_start) & (pl.col("period") < win_start))
        if leg != "us_from_cn_kg" and in_prior.height:
            rate = float(in_prior[leg].sum()) / prior / 1000
            fig.add_trace(go.Scatter(
                x=[prior_start, win_start], y=[rate, rate], mode="lines", showlegend=False,
                line={"color": colour, "width": 1, "dash": "dash"},
                hovertemplate=f"prior run rate: {rate:,.1f} t per period<extra></extra>"))
    fig.add_vrect(x0=prior_start, x1=win_start, fillcolor="#888", opacity=0.10, line_width=0,
                  annotation_text=f"prior {prior} {'months' if freq == 'M' else 'years'}",
                  annotation_position="top left")
    fig.add_vrect(x0=win_start, x1=periods_before(peak, -1, freq), fillcolor="#f39c12", opacity=0.25, line_width=0,
                  annotation_text="window", annotation_position="top left")
    fig.update_layout(
        template="none", height=320, margin={"l": 55, "r": 55, "t": 44, "b": 40},
        yaxis={"title": {"text": "tonnes per " + ("month" if freq == "M" else "year")}, "rangemode": "tozero",
               "gridcolor": "#eee"},
        yaxis2={"title": {"text": "direct, t", "font": {"color": LEG_COLOURS["us_from_cn_kg"]}}, "overlaying": "y",
                "side": "right", "rangemode": "tozero", "showgrid": False,
                "tickfont": {"color": LEG_COLOURS["us_from_cn_kg"]}},
        updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "xanchor": "left", "y": 1.18, "yanchor": "top",
                      "showactive": True, "pad": {"r": 4, "t": 0}, "font": {"size": 11},
                      "buttons": [{"label": "linear", "method": "relayout",
                                   "args": [{"yaxis.type": "linear", "yaxis2.type": "linear"}]},
                                  {"label": "log", "method": "relayout",
                                   "args": [{"yaxis.type": "log", "yaxis2.type": "log"}]}]}],
        xaxis={"dtick": f"M{step}" if freq == "M" else None, "tickformat": "%Y", "gridcolor": "#eee"},
        legend={"orientation": "h", "y": -0.18}, font={"family": "system-ui, sans-serif", "size": 12})
    return fig


MINERAL_COLOURS = ("#c0392b", "#1f5fa8", "#27764a", "#b9770e", "#6c3483", "#117a65", "#7f7f7f")


def routes_picture(flagged: pl.DataFrame) -> go.Figure:
    """The run's flagged routes on one picture: China -> each hub -> the US, one band per route, its width
    the route's excess tonnes beyond the prior run rate at its peak (route_excess_kg), coloured by mineral."""
    hubs = flagged.select("hub_iso3", "hub_name").unique("hub_iso3", keep="first", maintain_order=True)
    index = {h: i + 1 for i, h in enumerate(hubs["hub_iso3"].to_list())}
    labels = ["China", *[f"{n or h} ({h})" for h, n in hubs.iter_rows()], "United States"]
    minerals = sorted(set(flagged["mineral"].to_list()))
    colour = {m: MINERAL_COLOURS[i % len(MINERAL_COLOURS)] for i, m in enumerate(minerals)}
    source, target, value, colours, hover = [], [], [], [], []
    for r in flagged.iter_rows(named=True):
        t = max(float(r["route_excess_kg"] or 0.0), 0.0) / 1000
        # Plotly draws labels as SVG text from a few HTML-like tags: <, > and & escaped, quotes left as they are
        # (it would show &quot; as written).
        words = html.escape(f"#{r['rank']} {r['hub_iso3']} {r['mineral']} HS {r['hs_code']}: {t:,.1f} t beyond the run rate",
                            quote=False)
        for a, b in ((0, index[r["hub_iso3"]]), (index[r["hub_iso3"]], len(labels) - 1)):
            source.append(a)
            target.append(b)
            value.append(max(t, 1e-3))
            colours.append(colour[r["mineral"]] + "99")
            hover.append(words)
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": [html.escape(x, quote=False) for x in labels], "pad": 14, "thickness": 14, "color": "#5b6475",
              "hovertemplate": "%{label}: %{value:,.1f} t<extra></extra>"},
        link={"source": source, "target": target, "value": value, "color": colours, "customdata": hover,
              "hovertemplate": "%{customdata}<extra></extra>"}))
    fig.update_layout(template="none", height=max(260, 26 * len(index) + 80),
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, font={"family": "system-ui, sans-serif", "size": 12})
    return fig


def explanation_chart(expl: pl.DataFrame) -> go.Figure:
    """How much resetting each top feature to the route's typical value lowers the anomaly score."""
    expl = expl.sort("position", descending=True)
    hover = [html.escape(f"{w}: value {_num(v)}; typical {_num(t)}; normal range {_num(lo)} .. {_num(hi)}")
             for w, v, t, lo, hi in expl.select("words", "value", "typical", "normal_low", "normal_high").iter_rows()]
    labels = ["<br>".join(textwrap.wrap(html.escape(w), 34)) for w in expl["words"].to_list()]
    fig = go.Figure(go.Bar(
        x=expl["score_drop"].to_list(), y=labels, orientation="h",
        marker={"color": "#1f5fa8"}, customdata=hover, hovertemplate="%{customdata}<br>score drop %{x:.3f}<extra></extra>"))
    fig.update_layout(template="none", height=70 + 48 * max(expl.height, 1),
                      margin={"l": 10, "r": 10, "t": 10, "b": 35},
                      xaxis={"title": {"text": "anomaly score drop when reset to typical"}, "gridcolor": "#eee"},
                      yaxis={"automargin": True}, font={"family": "system-ui, sans-serif", "size": 12})
    return fig


def _chart_html(fig: go.Figure, div_id: str, toolbar: bool = True) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True, "displayModeBar": "hover" if toolbar else False})


# ---------------------------------------------------------------- formatting (used by the template)
def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, Decimal):  # DuckDB's sums of integers (HUGEINT) arrive as Decimal
        v = int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def tonnes(kg: Any) -> str:
    """kg as metric tonnes with one decimal, '-' when unknown; never '-0.0' (a few kilograms below 0 are 0.0)."""
    if kg is None:
        return "-"
    shown = round(kg / 1000, 1)
    return f"{shown if shown != 0 else 0.0:,.1f}"


def ratio(x: Any) -> str:
    """A ratio as 'x times': '1.03x'; '-' when unknown."""
    return "-" if x is None else f"{x:,.2f}x"


def usd(x: Any) -> str:
    """US dollars in full: 'USD 1,234,567'; '-' when unknown."""
    return "-" if x is None else f"USD {x:,.0f}"


def of_prior_total(window: Any, prior: Any) -> str:
    """The seeds' test, as the mission defines it: the window's tonnes against the whole prior three years'
    total (beats it above 1). 'new' when the prior carried nothing."""
    if window is None or prior is None:
        return "-"
    if prior <= 0:
        return "new" if window > 0 else "-"
    return f"{window / prior:,.2f}"


def rate_change(window: Any, prior: Any, window_periods: int, prior_periods: int) -> str:
    """The rate in the window (per period) against the rate over the prior periods: '5.0x' = five times the
    usual monthly rate, '0.2x' = a fifth of it. 'new' when the prior carried nothing."""
    if window is None or prior is None:
        return "-"
    if prior <= 0:
        return "new" if window > 0 else "-"
    return f"{(window / window_periods) / (prior / prior_periods):,.1f}x"


def period_text(d: Any, frequency: str = "M") -> str:
    """A period as an analyst reads it: 2025-04 for a month, 2025 for a year (the warehouse stores its first
    day); '-' when there is none."""
    if d is None:
        return "-"
    return f"{d:%Y}" if frequency == "A" else f"{d:%Y-%m}"


def finished_text(at: Any) -> str:
    """A run's finish time to the second (the warehouse keeps microseconds); '-' when there is none."""
    return at.strftime("%Y-%m-%d %H:%M:%S") if hasattr(at, "strftime") else str(at or "-")


def label_summary(labels: pl.DataFrame) -> dict[str, Any]:
    """The model's precision and recall on the routes analysts decided (confirmed = true, dismissed = false)."""
    decided = labels.height
    flagged = labels.filter(pl.col("model_flags"))
    tp = flagged.filter(pl.col("label")).height
    confirmed = labels.filter(pl.col("label")).height
    return {"decided": decided, "confirmed": confirmed, "dismissed": decided - confirmed,
            "flagged": flagged.height, "true_positives": tp,
            "precision": tp / flagged.height if flagged.height else None,
            "recall": tp / confirmed if confirmed else None}


def change_counts(changes: pl.DataFrame) -> dict[str, int]:
    counts = dict(changes.group_by("change").len().iter_rows()) if changes.height else {}
    return {k: int(counts.get(k, 0)) for k in ("new", "escalated", "steady", "eased", "dropped", "first run")}


# ---------------------------------------------------------------- page
def _env() -> Environment:
    env = Environment(loader=PackageLoader("flows", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, t=tonnes, ratio=ratio, period=period_text, finished=finished_text,
                       of_prior=of_prior_total, usd=usd)
    env.globals.update(rate_change=rate_change)
    return env


def render_html(data: ReportData, top_n: int) -> str:
    from plotly.offline import get_plotlyjs

    monthly, _ = windowed_with(data.run)
    routes, shown = [], data.flagged.head(top_n)
    checks = lookalike_checks(shown, monthly)  # row i: the route of row i of `shown`
    for i, r in enumerate(shown.iter_rows(named=True)):
        key = (pl.col("frequency") == r["frequency"]) & (pl.col("mineral") == r["mineral"]) & \
              (pl.col("hs_code") == r["hs_code"]) & (pl.col("hub_iso3") == r["hub_iso3"])
        params = FeatureParams.for_frequency(r["frequency"], monthly)
        window, prior = params.window, params.prior
        expl = data.explanations.filter(key)
        expl = in_tonnes(expl) if expl.height else expl
        routes.append({
            "row": r, "anchor": f"route-{i + 1}", "window": window, "prior": prior,
            "legs_chart": _chart_html(legs_chart(r, data.legs.filter(key), window, prior), f"legs-{i + 1}"),
            "explanation_chart": _chart_html(explanation_chart(expl), f"why-{i + 1}", toolbar=False) if expl.height else None,
            "explanation": expl.to_dicts(),
            "checks": checks.row(i, named=True),
        })
    watch = [{"route": k, "rows": g.sort("period").to_dicts()}
             for k, g in data.watch.group_by(["hub_iso3", "hs_code", "mineral", "frequency"], maintain_order=True)]
    return _env().get_template("report.html.j2").render(
        run=data.run, scope=data.scope, flagged=data.flagged.to_dicts(), routes=routes, top_n=top_n,
        changes=data.changes.to_dicts(), counts=change_counts(data.changes),
        held_back=data.held_back.to_dicts(), watch=watch, labels=label_summary(data.labels),
        label_rows=data.labels.to_dicts(), revisions=data.revisions.to_dicts(), models=data.run.get("models", []),
        close_calls=data.close_calls.to_dicts(), previous_run_id=data.previous_run_id,
        flag_threshold=flag_threshold(data.run),
        score_words=score_words(data.run), history_words=history_words(data.run), flag_rule_words=flag_rule_words(data.run),
        routes_picture=_chart_html(routes_picture(data.flagged), "routes-picture") if data.flagged.height else None,
        minerals_shown=sorted(set(data.flagged["mineral"].to_list())) if data.flagged.height else [],
        # plotly.js (4.8 MB) only in a report that draws a chart: one with no flagged route draws none.
        plotly_js=get_plotlyjs() if data.flagged.height else "")


def write_outputs(out: Path, data: ReportData, top_n: int) -> dict[str, Path]:
    """report.html, flagged_routes.csv and flagged_routes.parquet (the same rows; in the CSV, text that a
    spreadsheet would run as a formula starts with an apostrophe) into out/."""
    paths = {"html": out / "report.html", "csv": out / "flagged_routes.csv", "parquet": out / "flagged_routes.parquet"}
    paths["html"].write_text(render_html(data, top_n), encoding="utf-8")
    spreadsheet_safe(data.flagged).write_csv(paths["csv"])
    data.flagged.write_parquet(paths["parquet"])
    return paths
