"""The HTML report: the same rows as the CSV and Parquet, hostile names shown as text, and the page opened
from disk in a real headless Chromium (Debian's chromium + chromium-driver) with no console errors and
every chart drawn. The browser test saves a screenshot (to $TRANSSHIP_TEST_ARTIFACTS when set)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.report.html import gather, write_outputs

HOSTILE_HUB = 'Thai<img src=x onerror="window.__pwned=1">land<script>window.__pwned=2</script>'
HOSTILE_NOTE = "checked </script><script>window.__pwned=3</script> & closed"


@pytest.fixture(scope="module")
def report(scored_warehouse, tmp_path_factory) -> dict:
    path, run = scored_warehouse
    con = duckdb.connect(str(path), read_only=True)
    try:
        data = gather(con, run, top_n=25)
    finally:
        con.close()
    # Names come from files we do not control: make the top route's hub name and a decision note hostile.
    data.flagged = data.flagged.with_columns(
        hub_name=pl.when(pl.col("rank") == 1).then(pl.lit(HOSTILE_HUB)).otherwise(pl.col("hub_name")),
        decision=pl.when(pl.col("rank") == 2).then(pl.lit("watching")).otherwise(pl.col("decision")),
        decided_by=pl.when(pl.col("rank") == 2).then(pl.lit("<b>Ann</b>")).otherwise(pl.col("decided_by")),
        decision_note=pl.when(pl.col("rank") == 2).then(pl.lit(HOSTILE_NOTE)).otherwise(pl.col("decision_note")),
        decided_at=pl.when(pl.col("rank") == 2).then(pl.lit(run["finished_at"])).otherwise(pl.col("decided_at")))
    out = tmp_path_factory.mktemp("report")
    paths = write_outputs(out, data, top_n=25)
    return {"paths": paths, "data": data, "run": run}


def test_csv_and_parquet_hold_the_same_rows_as_the_report_table(report):
    paths, flagged = report["paths"], report["data"].flagged
    csv = pl.read_csv(paths["csv"], try_parse_dates=True)
    parquet = pl.read_parquet(paths["parquet"])
    assert csv.height == parquet.height == flagged.height == 4
    assert parquet.equals(flagged)
    assert csv["hub_iso3"].to_list() == parquet["hub_iso3"].to_list() == ["THA", "MEX", "MYS", "VNM"]
    html = paths["html"].read_text()
    assert html.count('<tr data-card="route-') == flagged.height  # one table row per route


def test_the_report_is_self_contained_and_escapes_names(report):
    from plotly.offline import get_plotlyjs

    html = report["paths"]["html"].read_text()
    assert get_plotlyjs() in html  # the charting library is inline...
    page = html.replace(get_plotlyjs(), "")  # ...and nothing else is fetched
    assert not re.search(r"<script[^>]+src=|<link|<img|@import|https?://", page)
    assert "Thai&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;land&lt;script&gt;" in html
    assert "checked &lt;/script&gt;&lt;script&gt;window.__pwned=3&lt;/script&gt; &amp; closed" in html
    assert "&lt;b&gt;Ann&lt;/b&gt;" in html
    assert "window.__pwned=1\">" not in html and "<script>window.__pwned" not in html
    for section in ("Summary", "What changed since the last run", "Flagged routes", "Watch list",
                    "Held back by analysts' dismissals", "Why the model flags it"):
        assert section in html
    assert "This is the first run on this warehouse" in html


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium is not installed here (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    return browser, driver


def test_the_report_renders_in_headless_chromium_with_its_charts_and_no_console_errors(report, tmp_path):
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(report["paths"]["html"].resolve().as_uri())
        n_routes = report["data"].flagged.height
        drawn = ("return [document.querySelectorAll('.legs-chart .main-svg .scatterlayer .trace').length,"
                 " document.querySelectorAll('.why-chart .main-svg .barlayer .point').length];")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(drawn)[0] > 0 and d.execute_script(drawn)[1] > 0)
        traces, bars = driver.execute_script(drawn)
        assert traces >= 3 * n_routes  # three legs per route, plus the prior run-rate segments
        assert bars >= n_routes
        assert driver.execute_script("return document.querySelectorAll('.legs-chart .js-plotly-plot').length") == n_routes
        assert driver.execute_script("return typeof window.__pwned") == "undefined"
        first_hub = driver.find_element(By.CSS_SELECTOR, "#flagged-table tbody tr td:nth-child(2)").text
        assert '<img src=x onerror="window.__pwned=1">' in first_hub  # shown as text

        # Sorting: score ascending puts the lowest-scored route first.
        driver.find_element(By.XPATH, "//table[@id='flagged-table']//th[normalize-space()='score']").click()
        scores = [float(e.get_attribute("data-value")) for e in
                  driver.find_elements(By.CSS_SELECTOR, "#flagged-table tbody tr td:nth-child(6)")]
        assert scores == sorted(scores) and len(scores) == n_routes
        # Filtering by a hub's name.
        driver.find_element(By.ID, "filter").send_keys("Malaysia")
        visible = driver.execute_script("return [...document.querySelectorAll('#flagged-table tbody tr')]"
                                        ".filter(r => !r.hidden).map(r => r.cells[1].textContent.trim())")
        assert visible == ["MYS Malaysia"]
        assert driver.find_element(By.ID, "shown-count").text == f"1 of {n_routes} routes shown"
        # The route cards follow the table: Malaysia's card alone is shown.
        cards = ("return [...document.querySelectorAll('section.route')].filter(c => !c.hidden)"
                 ".map(c => c.querySelector('h3').textContent)")
        shown_cards = driver.execute_script(cards)
        assert len(shown_cards) == 1 and "(MYS)" in shown_cards[0]
        driver.find_element(By.ID, "filter").clear()
        driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
        assert len(driver.execute_script(cards)) == n_routes

        # The routes of the run on one picture: China, each flagged route's hub and the US as nodes, one
        # band per route on each side, drawn.
        hubs = report["data"].flagged["hub_iso3"].n_unique()
        nodes = "return document.querySelectorAll('.routes-chart .sankey-node').length"
        links = "return document.querySelectorAll('.routes-chart .sankey-link').length"
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(nodes) > 0)
        assert driver.execute_script(nodes) == hubs + 2 and driver.execute_script(links) == 2 * n_routes
        # What the data cover, per source: the first and last period and the records not used, with why.
        coverage = driver.execute_script("return [...document.querySelectorAll('#coverage tbody tr')]"
                                         ".map(r => [...r.cells].map(c => c.textContent.trim()))")
        expected = report["data"].scope["coverage"]
        assert [row[0] for row in coverage] == [c["source"] for c in expected] and coverage
        assert coverage[0][2] == "2019-01" and coverage[0][5] == f"{expected[0]['excluded']:,}"
        assert all(f"{r['reason']} {r['records']:,}" in coverage[0][6] for r in expected[0]["reasons"])

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shots = Path(os.environ.get("TRANSSHIP_TEST_ARTIFACTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        shot = shots / "report-chromium.png"
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
        print(f"screenshot: {shot}")
    finally:
        driver.quit()


def test_close_calls_name_the_check_that_held_each_look_alike_back(report):
    calls = report["data"].close_calls
    why = {(r["hub_iso3"], r["hs_code"]): r["why_not"] for r in calls.iter_rows(named=True)}
    # The one-off: without its largest month, the window is the hub's usual trade; and that month is all of it.
    assert why[("JPN", "282580")].startswith(
        "the hub's exports to the US, their largest month aside, stay within their own history (z 0.0 < 2.0); "
        "one lump: a single period carries 100% of the hub's exports to the US (at most 85%)")
    # The price surge: its exports to the US, in value at the prior's world price, stay within their own history.
    assert why[("BEL", "811010")].startswith(
        "the hub's exports to the US, their largest month aside, stay within their own history (z 0.2 < 2.0)")
    # The tiny route: 7.9 t of oxide, worth more than the value floor only at the surged world price.
    assert why[("LAO", "282580")].startswith("excess 7.9 t is below the mineral's floor of 20.0 t (in value too, "
                                             "its floor raised with the world price)")
    # A small background route of the gallium/germanium line: its excess below the floor, its exports to the US
    # within their own history, in a month the US's imports from China direct held; the learned half, which reads
    # it as ordinary trade, says so too.
    assert why[("CAN", "811292")] == ("excess 0.2 t is below the mineral's floor of 0.5 t (in value too, its floor "
                                      "raised with the world price); the hub's exports to the US, their largest "
                                      "month aside, stay within their own history (z 0.5 < 2.0); "
                                      "the US's imports from China direct have not fallen (z -0.18; a fall is -1.0 or below); "
                                      "route score 0.009 = √(graded 0.033 x learned 0.002) is below the flag threshold 0.5")
    # A route below its run rate by a few kilograms reads an excess of 0.0 t, not -0.0.
    assert why[("BEL", "811292")].startswith("excess 0.0 t is below the mineral's floor of 0.5 t")
    assert not set(why) & set(zip(report["data"].flagged["hub_iso3"], report["data"].flagged["hs_code"]))
    assert (calls["score_percentile"] >= 0.98).all() and calls.height <= 10
    html = report["paths"]["html"].read_text()
    assert "Close calls: anomalous but not flagged" in html and "one lump: a single period carries 100%" in html


def test_each_card_reads_the_seeds_test_and_the_rate_change_side_by_side(report):
    """Mexico-like legs (1,554.8 t in 5 months against 2,072.6 t over 36): 0.75 of the prior total, which is
    not a decline, and 5.4 times the prior monthly rate; a route with no prior reads 'new', not 105.81x; a
    few kilograms below zero read 0.0 t, not -0.0."""
    from plotly.offline import get_plotlyjs

    from flows.report.html import of_prior_total, rate_change, tonnes

    assert of_prior_total(1_554_800.0, 2_072_600.0) == "0.75"
    assert rate_change(1_554_800.0, 2_072_600.0, 5, 36) == "5.4x"
    assert of_prior_total(40_000.0, 0.0) == rate_change(40_000.0, 0.0, 5, 36) == "new"
    assert tonnes(-40.0) == "0.0" and tonnes(1_369_661.5) == "1,369.7" and tonnes(None) == "-"
    html = report["paths"]["html"].read_text()
    assert html.count("window ÷ prior total</th>") == report["data"].flagged.height
    assert html.count("rate vs prior rate</th>") == report["data"].flagged.height
    assert "spike ratio</th>" not in html
    page = html.replace(get_plotlyjs(), "")  # the charting library's own code has -0.0 literals
    assert not re.search(r">-0\.0<|-0\.0 t\b|z -0\.0+(?![0-9])", page)
    # Each card's figures are those of its row.
    for r in report["data"].flagged.iter_rows(named=True):
        cells = (f'<td class="num">{of_prior_total(r["hub_to_us_kg_window"], r["hub_to_us_kg_prior"])}</td>'
                 f'<td class="num">{rate_change(r["hub_to_us_kg_window"], r["hub_to_us_kg_prior"], 5, 36)}</td>')
        assert cells in html, r["hub_iso3"]


def test_each_flagged_route_is_checked_against_the_look_alikes(report):
    """The demo's four planted routes read as consistent on every check; a route shaped like a producer, a
    small one-shipment route whose direct trade still runs, is told to be ruled out on each, in words."""
    from features.params import FeatureParams
    from flows.report.checks import lookalike_checks

    flagged = report["data"].flagged
    checks = lookalike_checks(flagged, FeatureParams())
    assert checks["rule_out"].list.len().to_list() == [0, 0, 0, 0]
    tha = checks.row(0, named=True)
    assert tha["hub_iso3"] == "THA"
    assert tha["consistent"][0] == ("China's shipments to the hub, allowing up to 3 months in transit, could cover "
                                    "100% of what the hub sent the US in the window")
    assert tha["consistent"][1] == ("China's extra shipments to the hub, allowing up to 3 months in transit, were "
                                    "worth 96% of the rise in the value of the hub's exports to the US")
    assert "the US's imports from China direct fell to 0% of their prior rate" in tha["consistent"]
    assert any(line.startswith("the world price is 2.7") for line in tha["consistent"])  # antimony's surge

    producer = flagged.head(1).with_columns(
        reroute_ceiling_share=pl.lit(0.12), china_value_cover=pl.lit(0.04), floor_multiple=pl.lit(1.43), hub_to_us_peak_share=pl.lit(0.71),
        us_from_cn_kg_window=pl.lit(5_000.0), us_from_cn_kg_prior=pl.lit(27_000.0), world_unit_value_change=pl.lit(1.0))
    annual = producer.with_columns(frequency=pl.lit("A"), us_from_cn_kg_prior=pl.lit(0.0))
    # No direct trade at all, and unknown figures (a route-period the features could not fill): no 0/0 breaks it.
    no_direct = producer.with_columns(us_from_cn_kg_window=pl.lit(0.0), us_from_cn_kg_prior=pl.lit(0.0),
                                      reroute_ceiling_share=pl.lit(float("nan")), floor_multiple=pl.lit(None),
                                      china_value_cover=pl.lit(None, dtype=pl.Float64))
    rows = lookalike_checks(pl.concat([producer, annual, no_direct]), FeatureParams())
    assert rows["rule_out"][2].to_list() == ["one shipment: 71% of the hub's exports to the US in the window came "
                                             "in one month"]  # the unknown supply and floor say nothing
    assert rows["consistent"][2].to_list() == ["the US imported nothing from China direct before the window: no "
                                               "direct route to fall"]
    assert rows["rule_out"][0].to_list() == [
        "a producer or other suppliers: China's shipments to the hub, allowing up to 3 months in transit, could "
        "cover only 12% of what the hub sent the US in the window",
        "a producer selling its own output: China's extra shipments to the hub, allowing up to 3 months in "
        "transit, were worth 4% of the rise in the value of the hub's exports to the US",
        "a small route: its excess is 1.4 times the smallest volume that counts as a route (the mineral's volume floor)",
        "one shipment: 71% of the hub's exports to the US in the window came in one month",
        # 5 t over 5 months against 27 t over 36: 1.33 times the prior rate.
        "the direct route still open: the US's imports from China direct ran at 1.33x their prior rate",
    ]
    assert rows["consistent"][0].to_list() == []
    # China's extra shipments worth more than the hub's rise in value (a pass-through under 100 %).
    covered = lookalike_checks(producer.with_columns(china_value_cover=pl.lit(1.8)), FeatureParams())
    assert covered["consistent"][0].to_list() == [
        "China's extra shipments to the hub, allowing up to 3 months in transit, were worth as much as the rise "
        "in the value of the hub's exports to the US, or more"]
    # A year has no lump to show and no transit beyond itself; no direct trade before: none to fall.
    assert rows["rule_out"][1].to_list()[0].startswith("a producer or other suppliers: China's shipments to the hub, "
                                                       "in the same year, could cover only 12%")
    assert len(rows["rule_out"][1]) == 3
    assert rows["consistent"][1].to_list() == ["the US imported nothing from China direct before the window: no "
                                               "direct route to fall"]

    page = report["paths"]["html"].read_text()
    assert page.count("Other explanations, checked") == flagged.height
    assert page.count('<li class="consistent">Consistent: China&#39;s shipments to the hub') == flagged.height


def test_the_reports_words_for_the_score_follow_the_runs_own_thresholds(report):
    """The paragraph that says what lowers the score reads the thresholds the run scored with (its stored
    parameters), not today's defaults; a run recorded before a parameter existed reads today's."""
    from flows.report.words import score_words

    today = score_words({})
    assert "the quieter leg does not rise beyond its own history" in today
    assert "within 2 standard deviations" in today and "worth less than 50 % of the rise" in today
    assert "one month carries more than 85 % of the window" in today and "(its square root)" in today
    older = score_words({"parameters": {"scoring": {"min_rise_z": 1.0, "forest_power": 1.0, "max_peak_share": 0.6}}})
    assert "rises less than 1 robust standard deviation beyond" in older and "(to the power 1)" in older
    assert "more than 60 % of the window" in older
    html = report["paths"]["html"].read_text()
    assert "Score: the isolation forest&#39;s anomaly score (its square root)" in html
    assert html.count("within 2 standard deviations of their own history") == 1
    assert "Flagged when both legs carry tonnes beyond their prior run rate, 90 % of its trade has a known weight" in html
    assert "Scored from 12 months of history: a prior shorter than 36 months is scaled to 36 months" in html
    from flows.report.markdown import render_markdown

    text = render_markdown(report["run"], report["data"].flagged, 25)
    paragraph = text[text.index("Score: the route score"):text.index("\n\n", text.index("Score: the route score"))]
    assert " ".join(paragraph.split()).startswith("Score: the route score, higher = more suspicious: " + today)
    assert "90 % of its trade has a known weight" in " ".join(paragraph.split()) and "--queue-size" in paragraph
    assert max(len(line) for line in paragraph.splitlines()) <= 110
    # The history the run was scored from is its own (a run with a 24-month prior from 6 months).
    from flows.report.words import history_words

    assert history_words({"parameters": {"features": {"prior": 24, "min_prior": 6}}}).startswith(
        "Scored from 6 months of history: a prior shorter than 24 months is scaled to 24 months")
    assert history_words({}).endswith("annual data need all 3 prior years)")


def test_the_summary_says_which_leg_the_screened_routes_lack():
    from flows.report.markdown import features_screen_line

    build = {"screened_before_features": {"routes": 5, "route_periods": 400, "routes_without_us_leg": 3,
                                          "routes_without_china_leg": 2}}
    assert features_screen_line({"build": build}) == (
        "features: 5 routes (400 route-periods) screened out before them: 3 whose hub never sent the US the "
        "product (no route score there could reach the screen); 2 with no trade from China to the hub "
        "recorded (no Chinese goods to pass on)")
    only_us = {"screened_before_features": {**build["screened_before_features"], "routes_without_china_leg": 0,
                                            "routes": 3}}
    assert features_screen_line({"build": only_us}).endswith("3 whose hub never sent the US the product (no route "
                                                             "score there could reach the screen)")
    # A run recorded before China's leg was screened (no counts per leg) reads as it did.
    old = {"screened_before_features": {"routes": 3, "route_periods": 300}}
    assert features_screen_line({"build": old}).endswith("their hub never sent the US the product, so no route "
                                                         "score there could reach the screen")
    assert features_screen_line({"build": {"screened_before_features": {"routes": 0, "route_periods": 0}}}) is None
