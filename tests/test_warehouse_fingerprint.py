"""The sample world's warehouse, table by table, against a fingerprint stored before the code was moved
around (issue 26): a change of layout must not change a single value.

A fingerprint holds, per table, its columns, its row count and one digest per column over its values in a
fixed row order. What two runs over the same inputs may differ in is left out: the run stamps
(tests.helpers.RUN_STAMPS), the temporary folder the files were read from, the code version, and
build.state (it stores a hash of the code itself). Floats are compared to 10 significant digits.

When a change is meant to change the warehouse (a new column, another score), write the fingerprint again
and say why in the commit:  TRANSSHIP_WRITE_FINGERPRINT=1 .venv/bin/pytest tests/test_warehouse_fingerprint.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import duckdb
import polars as pl

from tests.helpers import RUN_STAMPS

STORED = Path(__file__).resolve().parent / "fingerprints" / "sample_world_seed7.json"
LEFT_OUT = frozenset({"build.state"})


def fingerprint(path: Path, replace: dict[str, str]) -> dict[str, dict]:
    """{schema.table: {"columns": [...], "rows": n, "digests": {column: sha256[:16]}}} of every base table.
    `replace`: text replaced in every string value first (the data folder, the code version)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.sql(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        out: dict[str, dict] = {}
        for table in tables:
            if table in LEFT_OUT:
                continue
            kinds = dict(con.sql(f"DESCRIBE {table}").select("column_name", "column_type").fetchall())
            cols = [c for c in kinds if c not in RUN_STAMPS]
            # Every value as text (DuckDB's own rendering: exact for decimals, dates, lists, JSON, blobs),
            # floats apart, rounded below the last bits a parallel sum may move.
            select = ", ".join(f'"{c}"' if kinds[c] in ("DOUBLE", "FLOAT") else f'CAST("{c}" AS VARCHAR) AS "{c}"'
                               for c in cols)
            frame = con.sql(f"SELECT {select} FROM {table}").pl()
            frame = frame.with_columns(pl.col(pl.Float64, pl.Float32).round_sig_figs(10).cast(pl.String))
            for old, new in replace.items():
                frame = frame.with_columns(pl.col(pl.String).str.replace_all(old, new, literal=True))
            frame = frame.sort(cols, nulls_last=True) if cols else frame
            digests = {c: hashlib.sha256("\x1f".join(frame[c].fill_null("<null>").to_list()).encode()).hexdigest()[:16]
                       for c in cols}
            out[table] = {"columns": cols, "rows": frame.height, "digests": digests}
        return out
    finally:
        con.close()


def test_the_sample_world_gives_the_same_warehouse_table_by_table(scored_warehouse):
    path, run = scored_warehouse
    data_dir = str(Path(run["data_dir"]))
    found = fingerprint(path, {data_dir: "<data>", run["code_version"]: "<code>"})
    if os.environ.get("TRANSSHIP_WRITE_FINGERPRINT") == "1":
        STORED.parent.mkdir(exist_ok=True)
        STORED.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    differences = []
    for table in sorted(stored.keys() | found.keys()):
        a, b = stored.get(table), found.get(table)
        if a is None or b is None:
            differences.append(f"{table}: {'new' if a is None else 'gone'}")
        elif a["columns"] != b["columns"]:
            differences.append(f"{table}: columns {a['columns']} -> {b['columns']}")
        elif a["rows"] != b["rows"]:
            differences.append(f"{table}: {a['rows']} rows -> {b['rows']}")
        else:
            moved = [c for c in a["columns"] if a["digests"][c] != b["digests"][c]]
            if moved:
                differences.append(f"{table}: values differ in {', '.join(moved)}")
    assert not differences, "the warehouse is not the one fingerprinted:\n" + "\n".join(differences)
    # The sample world scores 6,758 route-periods: its 109 routes with exports to the US (141 more are screened
    # out before the features).
    assert len(stored) >= 30 and stored["main.route_score_values"]["rows"] > 5_000
