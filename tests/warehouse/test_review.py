"""Naming a route for a decision, on a small real DuckDB file."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from warehouse.connection import WarehouseError
from warehouse.review import RouteRef, resolve_route


@pytest.fixture
def scored(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("""
        CREATE TABLE main.runs (run_id VARCHAR, status VARCHAR);
        INSERT INTO main.runs VALUES ('r1', 'succeeded');
        CREATE TABLE main.route_scores AS SELECT * FROM (VALUES
            ('M', 'gallium', '811292', 'VNM', DATE '2025-01-01', 0.5, 120000.0, true),
            ('M', 'germanium', '811292', 'VNM', DATE '2025-01-01', 0.4, 80000.0, false),
            ('A', 'antimony', '811010', 'THA', DATE '2024-01-01', 0.3, 9000.0, false),
            ('M', 'antimony', '811010', 'THA', DATE '2025-02-01', 0.2, 5000.0, false)
        ) AS t(frequency, mineral, hs_code, hub_iso3, period, route_score, route_excess_kg, flagged);
        CREATE TABLE main.flagged_routes AS SELECT 1 AS rank, 'M' AS frequency, 'gallium' AS mineral,
            '811292' AS hs_code, 'VNM' AS hub_iso3, DATE '2025-01-01' AS peak_period, 0.5 AS peak_route_score,
            120000.0 AS evidence_kg, 'r1' AS run_id;
    """)
    yield con
    con.close()


def test_a_code_shared_by_two_minerals_or_two_frequencies_asks_which(scored):
    with pytest.raises(WarehouseError, match="--frequency M --mineral gallium; --frequency M --mineral germanium"):
        resolve_route(scored, RouteRef.parse("vnm:811292"))
    with pytest.raises(WarehouseError, match="--frequency A --mineral antimony; --frequency M --mineral antimony"):
        resolve_route(scored, RouteRef.parse("THA/811010"))


def test_the_evidence_is_the_flagged_peak_or_for_an_unflagged_route_its_largest_excess(scored):
    flagged = resolve_route(scored, RouteRef.parse("VNM:811292"), mineral="gallium")
    assert (flagged["was_flagged"], flagged["rank_seen"], flagged["evidence_kg"]) == (True, 1, 120000.0)
    quiet = resolve_route(scored, RouteRef.parse("VNM:811292"), mineral="germanium")
    assert (quiet["was_flagged"], quiet["rank_seen"], quiet["evidence_kg"]) == (False, None, 80000.0)
    assert quiet["reviewed_period"] == date(2025, 1, 1) and quiet["run_id"] == "r1"
    annual = resolve_route(scored, RouteRef(hub_iso3="THA", hs_code="811010"), frequency="A")
    assert annual["frequency"] == "A" and annual["evidence_kg"] == 9000.0


@pytest.mark.parametrize("text", ["THA-282580", "TH:282580", "THA:28", "THAI:282580", ""])
def test_route_names_that_cannot_be_read_say_how_to_write_them(text):
    with pytest.raises(WarehouseError, match=r"HUB:HS .*e\.g\. THA:282580"):
        RouteRef.parse(text)
