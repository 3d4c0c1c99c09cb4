"""What the warehouse's relations promise: the route key every table from the mart on is keyed by."""

from __future__ import annotations

from pathlib import Path

# A route (China -> hub -> US of one product, per frequency), and a route-period: defined here only; the
# features, the models and every store read them from here.
ROUTE_KEYS = ("frequency", "mineral", "hs_code", "hub_iso3")
KEYS = [*ROUTE_KEYS, "period"]


SQL_DIR = Path(__file__).parent / "sql"


def relation_sql(layer: str, name: str) -> str:
    """The SQL of a relation: warehouse/sql/<layer>/<name>.sql."""
    return (SQL_DIR / layer / f"{name}.sql").read_text(encoding="utf-8")
