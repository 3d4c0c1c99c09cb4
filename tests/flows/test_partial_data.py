"""Runs on data that cannot be scored, as a fresh deployment or a new analyst meets them: each succeeds,
publishes what it loaded (rejects included), and says in the terminal and the report why nothing was scored."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from flows.pipeline import transship_pipeline
from flows.settings import Settings
from tests.helpers import query

pytestmark = pytest.mark.slow

CENSUS = [["CTY_CODE", "CTY_NAME", "I_COMMODITY", "COMM_LVL", "GEN_VAL_MO", "CON_VAL_MO", "GEN_QY1_MO", "CON_QY1_MO",
           "UNIT_QY1", "time"],
          ["5700", "CHINA", "2825800000", "HS10", "1000000", "1000000", "50000", "50000", "KG", "2024-01"],
          ["-", "TOTAL FOR ALL COUNTRIES", "2825800000", "HS10", "3000000", "3000000", "150000", "150000", "KG",
           "2024-01"]]


def folder(tmp_path: Path, files: dict[str, bytes | str]) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name, content in files.items():
        (data / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return data


@pytest.mark.parametrize(("files", "why"), [
    ({}, "the data folder holds no files"),
    ({"notes.txt": "minutes of the meeting\n", "photo.jpg": b"\xff\xd8\xff\xe0\0\x10JFIF"},
     "none of the 2 files under the data folder is in a format transship reads"),
    ({"c.csv": "reporterCode,partnerCode,cmdCode,flowCode,period,primaryValue\n156,764,282580,X,209901,100\n"
               "156,764,282580,X,202401,inf\n"},
     "every row read was set aside as a reject (2)"),
    ({"census_imports_2825800000_2024-01.json": json.dumps(CENSUS)},
     "the data hold US imports only, and China's exports are missing"),
    # Both sides, but the US buys the oxide from China alone: Thailand's route has no second leg.
    ({"c.csv": "reporterCode,partnerCode,cmdCode,flowCode,period,primaryValue,netWgt\n"
               "156,764,282580,X,202401,100000,5000\n842,156,282580,M,202401,90000,4500\n"},
     "the US side holds no imports of the watched products from any third country"),
], ids=["empty folder", "unrecognised files", "every row rejected", "census: only China and the world total",
        "no third country sells to the US"])
def test_a_run_with_nothing_to_score_succeeds_and_says_why(prefect_harness, tmp_path, files, why):
    settings = Settings(warehouse=tmp_path / "w.duckdb", reports_dir=tmp_path / "reports")
    run = transship_pipeline(folder(tmp_path, files), settings)
    assert run["status"] == "succeeded"
    assert why in run["build"]["coverage"]["why_nothing_scored"]
    report = (Path(run["report_dir"]) / "report.md").read_text()
    assert f"**Nothing was scored**: " in report and why in report
    page = (Path(run["report_dir"]) / "report.html").read_text()
    assert why in html.unescape(page)
    assert "No route was flagged in this run: nothing was scored (above)." in report
    # A report that draws no chart does not carry plotly.js (4.8 MB).
    assert len(page) < 100_000 and "Plotly" not in page
    published = query(settings.warehouse, """
        SELECT (SELECT count(*) FROM main.runs WHERE status = 'succeeded') AS runs,
               (SELECT count(*) FROM raw.rejects) AS rejects, (SELECT count(*) FROM main.route_scores) AS scores,
               (SELECT count(*) FROM main.flagged_routes) AS flagged""").row(0)
    assert published == (1, 2 if "reject" in why else 0, 0, 0)  # the rejects that explain it are kept


def test_the_comtrade_extract_with_a_missing_year_says_what_it_could_not_score(prefect_harness, real_data, tmp_path):
    settings = Settings(warehouse=tmp_path / "w.duckdb", reports_dir=tmp_path / "reports")
    run = transship_pipeline(real_data / "critical-materials-atlas" / "comtrade_raw", settings)
    assert run["status"] == "succeeded"
    # 2022 and 2024 only: 2023 is unknown on both sides' legs, never a year of zero trade.
    legs = query(settings.warehouse, """
        SELECT year(period) AS year, bool_and(cn_side_published AND us_side_published) AS published,
               count(cn_to_hub_kg) AS known_cn, count(hub_to_us_kg) AS known_us, count(*) AS routes
        FROM marts.fct_route_legs GROUP BY ALL ORDER BY year""")
    assert legs["year"].to_list() == [2022, 2023, 2024]
    assert legs["published"].to_list() == [True, False, True]
    assert legs.row(1)[2:4] == (0, 0) and legs.row(0)[2] == legs.row(0)[4]
    why = run["build"]["coverage"]["why_nothing_scored"]
    assert "annual data cover 3 years (2022 to 2024) and a period needs 4 years" in why
    assert "1 of those years was not published by one side (unknown, not zero)" in why
    # The report opens with what the data cover, and says they end before the rerouting after the ban.
    page = html.unescape((Path(run["report_dir"]) / "report.html").read_text())
    assert "(ends before 2025: before the rerouting that followed the December 2024 ban)" in page
    assert "Every source ends before 2025" in page
    notes = {m["mineral"]: m["note"] for m in run["models"]}
    assert "not published by China's side or the US side (2023): unknown, not zero" in notes["antimony"]
