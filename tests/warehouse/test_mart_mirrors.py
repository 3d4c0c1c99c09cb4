"""The route legs join each route to its own figures: China's and the US's reports of the route (the legs)
and the hub's own reports of the same trade (the mirrors, hub_reported_*), period by period. Two hubs
trading the same product in the same months, with different figures each, from Comtrade+ bulk files
of four reporters."""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.build import build_models
from warehouse.catalogue import load_catalogue
from warehouse.ingest import ingest_folder
from warehouse.schema import ensure_schema, write_reference_tables
from worlds.scale import COLUMNS

HEADER = ",".join(COLUMNS)  # the Comtrade+ bulk file's columns, as the scale worlds write them
M49 = {"CHN": 156, "USA": 842, "THA": 764, "MYS": 458}
MONTHS = range(1, 7)
# (reporter, flow, partner) -> kg in month m: base + m. Each figure differs, so a row joined to another
# hub's or another month's figures shows.
FIGURES = {
    ("CHN", "X", "THA"): 10_000, ("CHN", "X", "MYS"): 20_000, ("CHN", "X", "USA"): 30_000,
    ("USA", "M", "THA"): 11_000, ("USA", "M", "MYS"): 21_000, ("USA", "M", "CHN"): 31_000,
    ("THA", "M", "CHN"): 12_000, ("THA", "X", "USA"): 13_000,
    ("MYS", "M", "CHN"): 22_000, ("MYS", "X", "USA"): 23_000,
}


def write_files(folder: Path) -> None:
    folder.mkdir()
    for reporter in M49:
        lines = [HEADER]
        for (rep, flow, partner), base in FIGURES.items():
            if rep != reporter:
                continue
            for m in MONTHS:
                kg, usd = base + m, (base + m) * 12.0
                cif, fob = (f"{usd}", "") if flow == "M" else ("", f"{usd}")
                lines.append(f"C,M,2024{m:02d}01,2024,{m},2024{m:02d},{M49[rep]},{rep},{flow},{M49[partner]},{partner},0,"
                             f"811010,C00,0,8,{kg},{kg},{cif},{fob},{usd},true,false")
        (folder / f"comtrade_{reporter}_monthly_2024.csv").write_text("\n".join(lines) + "\n")


def test_each_route_period_carries_its_own_legs_and_its_hubs_own_reports(tmp_path):
    write_files(tmp_path / "data")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    write_reference_tables(con, load_catalogue())
    ingest_folder(con, tmp_path / "data", batch_id="mirrors", progress=lambda _: None)
    build_models(con)
    got = con.sql("""SELECT hub_iso3, month(period) AS m, cn_to_hub_kg, hub_to_us_kg, us_from_cn_kg, cn_to_us_kg,
                            hub_reported_from_cn_kg, hub_reported_to_us_kg, hub_reports_period,
                            hub_reported_from_cn_fob_usd > 0 AND hub_reported_to_us_fob_usd > 0 AS fob_known
                     FROM marts.fct_route_legs WHERE hs_code = '811010' ORDER BY hub_iso3, period""").fetchall()
    expected = []
    for hub in ("MYS", "THA"):
        for m in MONTHS:
            f = {k: v + m for k, v in FIGURES.items()}
            expected.append((hub, m, f["CHN", "X", hub], f["USA", "M", hub], f["USA", "M", "CHN"], f["CHN", "X", "USA"],
                             f[hub, "M", "CHN"], f[hub, "X", "USA"], True, True))
    assert got == expected
