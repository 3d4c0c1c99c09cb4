"""The scale generator and watching every product: a small universe world through the real loader, the
all-products catalogue's groups, and the full feature build in batches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from features.params import FeatureParams
from warehouse.contracts import KEYS
from flows.stages.featurize import route_features_from, write_all_features
from warehouse.build import build_models
from warehouse.catalogue import ALL_PRODUCTS_CATALOGUE, CatalogueError, load_catalogue
from warehouse.ingest import ingest_folder
from worlds.scale import write_scale_world
from warehouse.schema import ensure_schema, write_reference_tables


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.csv"))}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("scale")
    return root, write_scale_world(root, rows=60_000, seed=3, n_partners=40, hold_back=1, codes_per_chunk=8)


def test_generator_is_seeded_sized_and_writes_files_per_reporter_and_year(small_world, tmp_path):
    root, info = small_world
    names = sorted(Path(p).name for p in info["files"])
    assert [n for n in names if n.startswith("comtrade_CHN_X_monthly_20")][:2] == [
        "comtrade_CHN_X_monthly_2019.csv", "comtrade_CHN_X_monthly_2020.csv"]
    assert "comtrade_USA_M_monthly_2025-12.csv" in names  # the held-back month, as a release
    assert (root / "releases" / "2025-12" / "comtrade_USA_M_monthly_2025-12.csv").exists()
    assert 0.5 * 60_000 < info["rows_written"] < 2 * 60_000  # "about": the benchmark reports the real count
    lines = sum(sum(1 for _ in open(p, "rb")) - 1 for p in info["files"])
    assert lines == info["rows_written"]
    # Same seed and size: byte-identical files, written chunk by chunk.
    again = write_scale_world(tmp_path, rows=60_000, seed=3, n_partners=40, hold_back=1, codes_per_chunk=8)
    assert _digest(tmp_path) == _digest(root)
    assert again["rows_written"] == info["rows_written"]
    truth = json.loads((root / "truth.json").read_text())
    assert truth["stories"], "a world with stories to find"
    assert {s["kind"] for s in truth["stories"]} <= {"planted", "producer_surge", "hub_demand_surge"}
    assert not (root / "data" / "truth.json").exists()


def test_all_products_catalogue_groups_every_code_and_named_minerals_keep_theirs(tmp_path):
    cat = load_catalogue(ALL_PRODUCTS_CATALOGUE)
    groups = set(cat.minerals["mineral"])
    assert {"antimony", "gallium_germanium", "section_I", "section_XVI", "section_XXI"} <= groups
    assert len([g for g in groups if g.startswith("section_")]) == 21
    assert cat.codes.filter(pl.col("code").str.len_chars() == 2).height == 96  # chapters 01-97 but 77
    by_chapter = tmp_path / "chapters.toml"
    by_chapter.write_text('[all_products]\ngroup_by = "chapter"\nvolume_floor_kg = 1000\nvolume_floor_usd = 5000\n')
    chapters = load_catalogue(by_chapter)
    assert chapters.minerals.height == 96 and "hs28" in set(chapters.minerals["mineral"])
    bad = tmp_path / "bad.toml"
    bad.write_text('[all_products]\ngroup_by = "heading"\nvolume_floor_kg = 1\nvolume_floor_usd = 1\n')
    with pytest.raises(CatalogueError, match="group_by must be one of chapter, section"):
        load_catalogue(bad)


@pytest.fixture(scope="module")
def built(small_world, tmp_path_factory) -> duckdb.DuckDBPyConnection:
    root, _ = small_world
    con = duckdb.connect(str(tmp_path_factory.mktemp("wh") / "w.duckdb"))
    ensure_schema(con)
    write_reference_tables(con, load_catalogue(ALL_PRODUCTS_CATALOGUE))
    outcomes = ingest_folder(con, root / "data", batch_id="scale", progress=lambda _: None)
    build_models(con)
    yield con, outcomes
    con.close()


def test_the_world_loads_reconciles_and_every_flow_has_its_group(built):
    con, outcomes = built
    assert all(o.rows_read == o.rows_loaded + o.rows_rejected for o in outcomes)
    assert sum(o.rows_rejected for o in outcomes) == 0
    kept, excluded = con.sql("""SELECT (SELECT count(*) FROM intermediate.int_flows),
                                       (SELECT count(*) FROM intermediate.int_flows_excluded)""").fetchall()[0]
    assert kept + excluded == sum(o.rows_loaded for o in outcomes)
    # World rows and the exact duplicates a bulk file carries are set aside, with their reason.
    reasons = dict(con.sql("SELECT exclusion_reason LIKE 'exact duplicate%', count(*) FROM intermediate.int_flows_excluded "
                           "GROUP BY ALL").fetchall())
    assert reasons.get(True, 0) > 0 and reasons.get(False, 0) > 0
    unmatched = con.sql("SELECT count(*) FROM intermediate.int_flows WHERE mineral IS NULL").fetchall()[0][0]
    assert unmatched == 0
    chapters_vs_groups = con.sql("""SELECT DISTINCT left(hs_code, 2) AS chapter, mineral FROM intermediate.int_flows
                                    WHERE mineral LIKE 'section_%'""").pl()
    assert chapters_vs_groups["chapter"].n_unique() == chapters_vs_groups.height  # one group per chapter


def test_full_features_in_batches_equal_one_batch(built):
    con, _ = built
    whole = route_features_from(con, FeatureParams()).sort(KEYS)
    n = write_all_features(con, FeatureParams(), batch_rows=5_000)
    assert n == whole.height > 3 * 5_000  # several batches really ran
    stored = con.sql("SELECT * FROM features.route_features").pl().sort(KEYS)
    assert stored.columns == whole.columns
    assert stored.equals(whole)
