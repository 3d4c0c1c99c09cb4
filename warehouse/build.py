"""Run the SQL models, layer by layer, and check each relation's key.

Each `.sql` file under `sql/<layer>/` builds the relation it is named after. Layers run in LAYERS order;
within a layer, in the order listed in MODELS (dependencies first).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse import faults
from warehouse.connection import rows, scalar

SQL_DIR = Path(__file__).parent / "sql"
MODELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (layer, relation, key columns)
    ("staging", "stg_comtrade__records", ("file_sha256", "source_row")),
    ("staging", "stg_national__records", ("file_sha256", "source_row", "part")),
    ("staging", "stg_flows", ("source", "frequency", "period", "reporter_iso3", "partner_iso3", "flow", "hs_code")),
    ("staging", "stg_flows_excluded", ("file_sha256", "source_row", "part")),
    ("staging", "stg_revisions", ("old_file_sha256", "source", "frequency", "period", "reporter_iso3",
                                  "partner_iso3", "flow", "hs_code")),
    ("marts", "fct_route_legs", ("frequency", "mineral", "hs_code", "hub_iso3", "period")),
)


class KeyViolation(RuntimeError):
    """A relation's declared key is not unique or has nulls: a bug or a source the rules do not cover."""


def check_key(con: duckdb.DuckDBPyConnection, relation: str, key: tuple[str, ...]) -> None:
    cols = ", ".join(key)
    nulls = " OR ".join(f"{c} IS NULL" for c in key)
    dup = next(iter(rows(con, f"SELECT {cols}, count(*) AS n FROM {relation} GROUP BY ALL HAVING count(*) > 1 LIMIT 1")), None)
    if dup:
        raise KeyViolation(f"{relation}: key ({cols}) is not unique, e.g. {dup[:-1]} appears {dup[-1]} times")
    if scalar(con, f"SELECT count(*) FROM {relation} WHERE {nulls}"):
        raise KeyViolation(f"{relation}: a key column ({cols}) has NULLs")


def build_models(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild staging and marts from raw; return the row count of each relation."""
    counts: dict[str, int] = {}
    for layer, name, key in MODELS:
        if layer == "marts":
            faults.at("build")
        con.execute((SQL_DIR / layer / f"{name}.sql").read_text(encoding="utf-8"))
        relation = f"{layer}.{name}"
        check_key(con, relation, key)
        counts[relation] = scalar(con, f"SELECT count(*) FROM {relation}")
    check_reconciled(con)
    return counts


def check_reconciled(con: duckdb.DuckDBPyConnection) -> None:
    """Every loaded record is either behind a flow or set aside with a reason: none is lost in staging."""
    loaded = scalar(con, "SELECT (SELECT count(*) FROM raw.comtrade_records) + (SELECT count(*) FROM raw.national_records)")
    used = scalar(con, "SELECT coalesce(sum(records), 0) FROM staging.stg_flows")
    aside = scalar(con, "SELECT count(*) FROM staging.stg_flows_excluded")
    if loaded != used + aside:
        raise KeyViolation(f"staging lost records: {loaded:,} loaded but {used:,} in flows + {aside:,} set aside")
