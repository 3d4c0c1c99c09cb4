"""What the warehouse's relations promise: the route key every table from the mart on is keyed by, and per
relation its key and meaning (warehouse/sql/contracts.toml), read by the build's key checks and the
comments; and where each relation's SQL lives (warehouse/sql/<layer>/<name>.sql)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# A route (China -> hub -> US of one product, per frequency), and a route-period: defined here only; the
# features, the models and every store read them from here.
ROUTE_KEYS = ("frequency", "mineral", "hs_code", "hub_iso3")
KEYS = [*ROUTE_KEYS, "period"]


SQL_DIR = Path(__file__).parent / "sql"


def relation_sql(layer: str, name: str) -> str:
    """The SQL of a relation: warehouse/sql/<layer>/<name>.sql."""
    return (SQL_DIR / layer / f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Contract:
    relation: str  # schema.name
    key: tuple[str, ...]  # the columns that identify a row; () for a lookup or a log without one
    comment: str  # grain, key and units in the words analysts read (COMMENT ON)
    may_be_empty: bool = False  # a run can leave it empty (no rejects, no decisions, no revisions)


@cache
def contracts() -> dict[str, Contract]:
    """Every relation's contract, by schema.name (warehouse/sql/contracts.toml)."""
    data = tomllib.loads((SQL_DIR / "contracts.toml").read_text(encoding="utf-8"))
    return {name: Contract(name, tuple(c.get("key", ())), c["comment"], bool(c.get("may_be_empty", False)))
            for name, c in data["relations"].items()}
