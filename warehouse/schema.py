"""Warehouse DDL: the append-only raw layer, the lookup tables, and the run log.

Layers (schemas): `raw` (every load, stamped) -> `ref` (lookups) -> `staging` (each source typed, mapped and
converted, one relation per source) -> `intermediate` (the sources joined and summed into flows) -> `marts`
-> `features`,
then the analyst-facing outputs in the default schema `main`: `route_scores`, `flagged_routes`, `runs`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.catalogue import Catalogue
from warehouse.connection import execute_script
from warehouse.contracts import relation_sql
from warehouse.countries import country_table
from warehouse.national import QTY_UNITS
from warehouse.review import ensure_review_schema

CONCORDANCE = Path(__file__).parent / "catalogue" / "hs_concordance.toml"
CENSUS_MEASURES = ("general imports", "imports for consumption")


@dataclass(frozen=True)
class SourceParams:
    """How the sources are read. Written to `ref.source_settings`, which staging reads.

    census_import_measure: US imports as "general imports" (everything entering the US, bonded warehouses
        and foreign-trade zones included: where a diversion shows first) or "imports for consumption"
        (goods released into the US economy). Census publishes both; raw keeps both.
    cif_fob_rate: the freight-and-insurance margin taken off a CIF import value before comparing it with
        the partner's FOB export value (mirror gaps). 0.10 is the IMF Direction of Trade Statistics
        convention; set it to your own estimate for a route if you have one.
    """

    census_import_measure: str = "general imports"
    cif_fob_rate: float = 0.10

    def __post_init__(self) -> None:
        if self.census_import_measure not in CENSUS_MEASURES:
            raise ValueError(f"census_import_measure must be one of {CENSUS_MEASURES}")
        if not 0 <= self.cif_fob_rate < 1:
            raise ValueError("cif_fob_rate must be between 0 and 1 (0.10 = 10%)")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw layer and run log if they are missing (idempotent; never drops anything)."""
    execute_script(con, relation_sql("ddl", "raw"))
    # How the run built (full or incremental, why, and what it rebuilt); runs recorded before it existed have NULL.
    con.execute("ALTER TABLE main.runs ADD COLUMN IF NOT EXISTS build JSON")
    # The models the run used, one entry per model group: fitted or reused and why, drift, and the route-periods
    # scored, screened out and sampled; runs recorded before it existed have NULL.
    con.execute("ALTER TABLE main.runs ADD COLUMN IF NOT EXISTS models JSON")
    execute_script(con, relation_sql("ddl", "raw_national"))
    ensure_review_schema(con)
    # Warehouses from before the intermediate layer: the flows, the records set aside and the revisions were
    # staging relations. They are rebuilt from raw under their new names (intermediate.int_*) by the next
    # build, a full one (its SQL changed); the old tables would only go stale.
    for old in ("stg_flows", "stg_flows_excluded", "stg_revisions"):
        con.execute(f"DROP TABLE IF EXISTS staging.{old}")


def concordance_table(path: Path = CONCORDANCE) -> pl.DataFrame:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    links = doc.get("links", [])
    return pl.DataFrame(
        [(x["from_revision"], x["from_code"], x["to_code"], x["relationship"], x.get("note", ""), doc["source"])
         for x in links],
        schema={"from_revision": pl.String, "from_code": pl.String, "to_code": pl.String,
                "relationship": pl.String, "note": pl.String, "source": pl.String},
        orient="row",
    )


def write_reference_tables(
    con: duckdb.DuckDBPyConnection, catalogue: Catalogue, sources: SourceParams | None = None
) -> None:
    """Rebuild the lookup tables: `ref.countries`, `ref.minerals`, `ref.catalogue_codes`,
    `ref.hs_concordance`, `ref.qty_units` and `ref.source_settings`."""
    sources = sources or SourceParams()
    countries = country_table()
    minerals = catalogue.minerals
    codes = catalogue.codes
    concordance = concordance_table()
    units = pl.DataFrame({"qty_unit": list(QTY_UNITS), "kg_per_unit": list(QTY_UNITS.values())})
    settings = pl.DataFrame({"census_import_measure": [sources.census_import_measure],
                             "cif_fob_rate": [sources.cif_fob_rate]})
    con.execute("CREATE OR REPLACE TABLE ref.hs_concordance AS SELECT * FROM concordance")
    con.execute("CREATE OR REPLACE TABLE ref.qty_units AS SELECT * FROM units")
    con.execute("CREATE OR REPLACE TABLE ref.source_settings AS SELECT * FROM settings")
    con.execute("CREATE OR REPLACE TABLE ref.countries AS SELECT * FROM countries")
    con.execute("CREATE OR REPLACE TABLE ref.minerals AS SELECT * FROM minerals")
    con.execute("CREATE OR REPLACE TABLE ref.catalogue_codes AS SELECT * FROM codes")
