"""A score traced back to its run, model, code version and input files (with hashes that match the files)."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.helpers import cli
from warehouse.connection import WarehouseError
from features.params import first_period_read
from warehouse.lineage import parse_period, route_lineage
from warehouse.review import RouteRef


@pytest.fixture
def ro(scored_warehouse):
    con = duckdb.connect(str(scored_warehouse[0]), read_only=True)
    yield con
    con.close()


def test_a_flagged_score_leads_to_its_run_model_and_the_files_with_their_hashes(ro, scored_warehouse):
    _, run = scored_warehouse
    found = route_lineage(ro, RouteRef.parse("THA:282580"), "2025-04", reach=first_period_read)
    assert found.score["flagged"] and found.run["run_id"] == run["run_id"]
    assert found.run["code_version"] == run["code_version"]
    assert found.model["model_id"] == found.score["model_id"] and found.model["run_id"] == run["run_id"]
    assert len(found.model["training_sha256"]) == 64
    # 5-month window + 36 prior + 3 months of transit lag = 44 months back from 2025-04.
    assert found.first_period == date(2021, 9, 1)
    files = {Path(f).name: (sha, reported) for f, sha, reported in
             found.files.select("source_file", "file_sha256", "reported").iter_rows()}
    data_dir = Path(run["data_dir"])
    assert set(files) == {p.name for p in data_dir.iterdir()}
    for name, (sha, _) in files.items():
        assert sha == hashlib.sha256((data_dir / name).read_bytes()).hexdigest()
    assert sorted(r for _, r in files.values()) == ["CHN X", "USA M"]
    assert (found.files["loaded_by_run"] == run["run_id"]).all()


def test_lineage_refuses_periods_and_routes_it_cannot_trace(ro):
    with pytest.raises(WarehouseError, match="it is scored from 2020-05 to 2025-06"):
        route_lineage(ro, RouteRef.parse("THA:282580"), "2019-04", reach=first_period_read)
    with pytest.raises(WarehouseError, match="no trade of 282580 by ZZZ with China or the US; check the hub"):
        route_lineage(ro, RouteRef.parse("ZZZ:282580"), "2025-04", reach=first_period_read)
    with pytest.raises(WarehouseError, match="YYYY-MM"):
        parse_period("April 2025")
    assert parse_period("2024") == (date(2024, 1, 1), "A") and parse_period("2025-04-01") == (date(2025, 4, 1), "M")


def test_the_lineage_command_prints_the_chain(scored_warehouse):
    path, run = scored_warehouse
    done = cli("lineage", "1", "2025-04", "--warehouse", str(path))
    assert done.returncode == 0, done.stderr
    assert run["run_id"] in done.stdout and "model    M-antimony-" in done.stdout
    # Both halves of the route score, and the learned combiner the run scored with, by its file's hash.
    from models.combiner import load

    assert " = √(graded 0." in done.stdout and f"learned  {load().model_id}: " in done.stdout
    # Each input file on a line of its own with its whole SHA-256, never broken across lines, however long
    # the path (the run's data folder here is deep under pytest's temporary folder).
    files = sorted(Path(run["data_dir"]).glob("comtrade_*"))
    assert files
    for f in files:
        assert f"    {f}\n" in done.stdout
        assert f"sha256 {hashlib.sha256(f.read_bytes()).hexdigest()}\n" in done.stdout


def test_a_screened_route_period_says_so_instead_of_scores_of_zero(ro, scored_warehouse):
    """A route-period whose evidence kept it from the forest has no scores: the lineage says why, with its
    evidence, and does not print a route score of 0.000 it never had."""
    hub, hs, period, ev = ro.sql("""SELECT hub_iso3, hs_code, strftime(period, '%Y-%m'), evidence
                                    FROM main.route_scores WHERE anomaly_score IS NULL AND frequency = 'M'
                                    ORDER BY evidence DESC, hub_iso3, hs_code, period LIMIT 1""").fetchall()[0]
    done = cli("lineage", f"{hub}:{hs}", period, "--warehouse", str(scored_warehouse[0]))
    assert done.returncode == 0, done.stderr
    assert f"screened out of the forest's scoring (evidence {ev:.4f}" in done.stdout
    assert "route_score 0.000" not in done.stdout


def test_a_route_screened_out_before_the_features_says_which_leg_it_lacks(ro):
    """The sample world's routes whose hub never sent the US the product have legs in the mart and no score:
    the lineage says so instead of sending the analyst to check the codes."""
    hub = ro.sql("""SELECT hub_iso3 FROM marts.fct_route_legs WHERE hs_code = '282580' GROUP BY hub_iso3
                    HAVING bool_and(coalesce(hub_to_us_kg, 0) = 0 AND coalesce(hub_to_us_usd, 0) = 0)
                    ORDER BY hub_iso3 LIMIT 1""").fetchall()[0][0]
    with pytest.raises(WarehouseError, match=f"{hub} never sent the US the product in any period loaded, so the "
                                             "route was screened out before the features"):
        route_lineage(ro, RouteRef.parse(f"{hub}:282580"), "2025-04", reach=first_period_read)


def test_which_legs_a_route_lacks_is_read_from_the_mart(tmp_path):
    from warehouse.feature_store import missing_legs

    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute("""CREATE TABLE marts.fct_route_legs AS SELECT * FROM (VALUES
        ('BOL', '811010', 0.0, 0.0, NULL, NULL, 500.0, 6000.0),      -- a producer: US leg only
        ('THA', '282580', 900.0, 9000.0, NULL, NULL, 800.0, 8000.0),  -- both legs
        ('KAZ', '811010', NULL, NULL, 40.0, 400.0, 0.0, 0.0),         -- China's leg from the hub's own report
        ('JPN', '282580', 300.0, 3000.0, NULL, NULL, NULL, NULL))     -- China's leg only
        AS t(hub_iso3, hs_code, cn_to_hub_kg, cn_to_hub_usd, hub_reported_from_cn_kg, hub_reported_from_cn_fob_usd,
             hub_to_us_kg, hub_to_us_usd)""")
    assert missing_legs(con, "BOL", "811010") == ["no trade of the product from China to BOL is recorded (by China or by BOL)"]
    assert missing_legs(con, "THA", "282580") == []
    assert missing_legs(con, "KAZ", "811010") == ["KAZ never sent the US the product"]
    assert missing_legs(con, "JPN", "282580") == ["JPN never sent the US the product"]
    assert missing_legs(con, "ZZZ", "282580") is None
    con.close()
