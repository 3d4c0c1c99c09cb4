"""A full build of marts.fct_route_legs runs a batch of products per query (bounded memory): the batches
together give exactly the table one query gives, and the build says how far it is."""

from __future__ import annotations

import duckdb

from warehouse.catalogue import load_catalogue
from warehouse.schema import ensure_schema, write_reference_tables
from warehouse.build import BuildPlan, _build_mart, build_models
from warehouse.connection import rows, scalar
from warehouse.ingest import ingest_folder
from worlds.sample import write_sample_world


def test_mart_in_batches_equals_one_query(tmp_path):
    paths = write_sample_world(tmp_path)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    write_reference_tables(con, load_catalogue())
    ingest_folder(con, paths["data_dir"], batch_id="sample", progress=lambda _: None)
    build_models(con)  # one batch: the sample world is far below mart_batch_rows
    con.execute("CREATE TABLE main.one_query AS SELECT * FROM marts.fct_route_legs")
    products = scalar(con, "SELECT count(DISTINCT (frequency, hs_code)) FROM marts.fct_route_legs")
    per_product = scalar(con, "SELECT max(n) FROM (SELECT count(*) AS n FROM marts.fct_route_legs GROUP BY frequency, hs_code)")
    assert products >= 3

    said: list[str] = []
    con.execute("DELETE FROM build.dirty_routes")
    written = _build_mart(con, BuildPlan("full", "test"), batch_rows=per_product, progress=said.append)
    assert written == scalar(con, "SELECT count(*) FROM main.one_query") > 0
    assert len(said) >= 3 and said[-1] == f"build: route legs, batch {len(said)} of {len(said)}"
    assert rows(con, "SELECT count(*) FROM (FROM main.one_query EXCEPT ALL FROM marts.fct_route_legs)") == [(0,)]
    assert rows(con, "SELECT count(*) FROM (FROM marts.fct_route_legs EXCEPT ALL FROM main.one_query)") == [(0,)]
    # Every route is marked for a full rebuild of its features, once.
    assert scalar(con, "SELECT count(*) FROM build.dirty_routes") == scalar(
        con, "SELECT count(DISTINCT (frequency, mineral, hs_code, hub_iso3)) FROM marts.fct_route_legs")


def test_mart_batches_are_sized_from_duckdbs_memory_limit(tmp_path):
    from warehouse.build import MART_BATCH_BOUNDS, mart_batch_rows, memory_limit_bytes

    sizes = {}
    for limit in ("100MB", "400MB", "1536MB", "200GB"):
        con = duckdb.connect(str(tmp_path / f"{limit}.duckdb"), config={"memory_limit": limit})
        sizes[limit] = (memory_limit_bytes(con), mart_batch_rows(con))
        con.close()
    # DuckDB reports 1536MB as '1.4 GiB': read back within its rounding.
    assert abs(sizes["1536MB"][0] - 1536 * 10**6) < 0.05 * 1536 * 10**6
    assert sizes["100MB"][1] == MART_BATCH_BOUNDS[0] and sizes["200GB"][1] == MART_BATCH_BOUNDS[1]
    assert 1_800_000 < sizes["400MB"][1] < 2_100_000 and 7_000_000 < sizes["1536MB"][1] < 8_000_000


def test_mart_skips_its_precedence_filters_only_when_every_flow_has_the_same_precedence(tmp_path):
    """build.mart_sql leaves out fct_route_legs.sql's choices by source precedence where they would keep every
    row (one precedence among the flows that feed the legs: the sample world is Comtrade files only), and the
    table is the one the filters give; with two precedences they stay."""
    from warehouse.build import PRECEDENCE_FILTERS, mart_sql
    from warehouse.contracts import relation_sql

    paths = write_sample_world(tmp_path)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    write_reference_tables(con, load_catalogue())
    ingest_folder(con, paths["data_dir"], batch_id="sample", progress=lambda _: None)
    build_models(con)  # leaves the mart's inputs (temp tables) on the connection, every period in scope
    assert scalar(con, "SELECT count(DISTINCT source_rank) FROM _mart_flows") == 1
    fast = mart_sql(con)
    assert not any(text in fast for text in PRECEDENCE_FILTERS)
    with_filters = relation_sql("marts", "fct_route_legs")
    assert all(text in with_filters for text in PRECEDENCE_FILTERS)
    con.execute(f"CREATE TABLE main.with_filters AS {with_filters}")
    assert scalar(con, "SELECT count(*) FROM main.with_filters") == scalar(con, "SELECT count(*) FROM marts.fct_route_legs") > 0
    assert rows(con, "SELECT count(*) FROM (FROM main.with_filters EXCEPT ALL FROM marts.fct_route_legs)") == [(0,)]
    assert rows(con, "SELECT count(*) FROM (FROM marts.fct_route_legs EXCEPT ALL FROM main.with_filters)") == [(0,)]

    con.execute("CREATE OR REPLACE TEMP VIEW _mart_flows AS SELECT * FROM (VALUES (1), (2)) AS t(source_rank)")
    assert mart_sql(con) == with_filters
