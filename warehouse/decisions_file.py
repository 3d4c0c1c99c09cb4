"""The analysts' decisions as a file: kept beside the warehouse (<warehouse>.decisions.json, refreshed after
every run and decision, so the decisions outlive a damaged warehouse file), exported on demand, and imported
back (`transship review --export FILE` / `--import FILE`).

The file is plain JSON. An import reads it as hostile: capped in size and nesting, every record checked field
by field, and a WarehouseError names the file, the record and the field that is wrong; nothing is written
before the whole file has passed. Decisions already in the warehouse (same time, analyst, route, decision and
note) are not added twice.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from warehouse import publish as pub
from warehouse.connection import WarehouseError, rows
from warehouse.review import DECISIONS, change_live

BACKUP_FORMAT = "transship decisions 1"
MAX_IMPORT_BYTES = 64 << 20
DECISION_SCHEMA = {
    "decision_id": pl.Int64, "decided_at": pl.Datetime("us"), "analyst": pl.String, "frequency": pl.String,
    "mineral": pl.String, "hs_code": pl.String, "hub_iso3": pl.String, "decision": pl.String, "note": pl.String,
    "run_id": pl.String, "reviewed_period": pl.Date, "was_flagged": pl.Boolean, "rank_seen": pl.Int64,
    "route_score_seen": pl.Float64, "evidence_kg": pl.Float64,
}


def decisions_document(con: duckdb.DuckDBPyConnection, warehouse: Path) -> str:
    """Every decision as a JSON document (plain values; a person can read it, and `import_decisions` checks
    it before anything is written)."""
    frame = con.sql("SELECT * FROM review.decisions ORDER BY decision_id").pl()
    records = frame.select(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.f"),
                           pl.col(pl.Date).dt.strftime("%Y-%m-%d"),
                           pl.all().exclude(pl.Datetime, pl.Date)).select(frame.columns).to_dicts()
    return json.dumps({"format": BACKUP_FORMAT, "warehouse": str(warehouse),
                       "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "decisions": records}, indent=1, ensure_ascii=False)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_decisions_backup(live: Path) -> str | None:
    """Refresh <warehouse>.decisions.json beside the warehouse: the decisions outlive a damaged warehouse
    file. Best effort (the decisions are in the warehouse either way): returns a warning, or None."""
    from warehouse.connection import connect_read_only, decisions_backup

    try:
        con = connect_read_only(live)
        try:
            has = rows(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'review' AND table_name = 'decisions'")
            if not has[0][0]:
                return None
            text = decisions_document(con, live)
        finally:
            con.close()
        _write_atomically(decisions_backup(live), text)
    except (OSError, WarehouseError, duckdb.Error) as exc:
        return f"could not refresh the decisions' backup beside {live.name}: {exc}"
    return None


def export_decisions(con: duckdb.DuckDBPyConnection, warehouse: Path, out: Path) -> int:
    """Write every decision to `out` (JSON); returns how many."""
    text = decisions_document(con, warehouse)
    _write_atomically(out, text)
    return rows(con, "SELECT count(*) FROM review.decisions")[0][0]


def read_decisions_file(path: Path) -> pl.DataFrame:
    """The decisions of an export or a backup, checked field by field (a file from elsewhere is hostile until
    read): a WarehouseError names the file, the record and the field that is wrong."""
    from warehouse.files import IngestError, parse_json

    if not path.is_file():
        raise WarehouseError(f"{path}: no such file")
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise WarehouseError(f"{path}: {path.stat().st_size:,} bytes; a decisions file is far smaller "
                             f"(at most {MAX_IMPORT_BYTES:,})")
    try:
        doc = parse_json(path, path.read_bytes())
    except IngestError as exc:
        raise WarehouseError(str(exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != BACKUP_FORMAT or not isinstance(doc.get("decisions"), list):
        raise WarehouseError(f"{path}: not a transship decisions file (written by `transship review --export`, or "
                             "the <warehouse>.decisions.json kept beside a warehouse)")
    records = doc["decisions"]
    for i, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise WarehouseError(f"{path}: decision {i} is not an object")
        for name, value in record.items():
            if name in DECISION_SCHEMA and value is not None and not isinstance(value, str | int | float | bool):
                raise WarehouseError(f"{path}: decision {i}, field {name!r}: {str(value)[:40]!r} is not a plain value")
    text = pl.DataFrame([{k: (None if r.get(k) is None else str(r.get(k))) for k in DECISION_SCHEMA} for r in records],
                        schema={k: pl.String for k in DECISION_SCHEMA})
    typed = text.select(
        pl.col("decision_id").cast(pl.Int64, strict=False),
        pl.col("decided_at").str.to_datetime(strict=False, time_unit="us"),
        *[pl.col(c) for c in ("analyst", "frequency", "mineral", "hs_code", "hub_iso3", "decision", "note", "run_id")],
        pl.col("reviewed_period").str.to_date(strict=False),
        pl.col("was_flagged").replace_strict({"True": True, "False": False, "true": True, "false": False},
                                             default=None, return_dtype=pl.Boolean),
        pl.col("rank_seen").cast(pl.Int64, strict=False),
        pl.col("route_score_seen").cast(pl.Float64, strict=False),
        pl.col("evidence_kg").cast(pl.Float64, strict=False),
    )
    checks = {
        "decided_at": pl.col("decided_at").is_null(),
        "analyst": pl.col("analyst").is_null() | (pl.col("analyst").str.strip_chars() == ""),
        "frequency": ~pl.col("frequency").is_in(["M", "A"]).fill_null(False),
        "mineral": pl.col("mineral").is_null() | (pl.col("mineral").str.strip_chars() == ""),
        "hs_code": ~pl.col("hs_code").str.contains(r"^[0-9]{4,10}$").fill_null(False),
        "hub_iso3": ~pl.col("hub_iso3").str.contains(r"^[A-Z]{3}$").fill_null(False),
        "decision": ~pl.col("decision").is_in(list(DECISIONS)).fill_null(False),
        "note": pl.col("note").is_null(),
        "route_score_seen": pl.col("route_score_seen").is_not_null() & ~pl.col("route_score_seen").is_finite(),
        "evidence_kg": pl.col("evidence_kg").is_not_null() & ~pl.col("evidence_kg").is_finite(),
    }
    for name, bad in checks.items():
        wrong = typed.with_row_index("i", offset=1).filter(bad)
        if wrong.height:
            i = wrong["i"][0]
            raise WarehouseError(f"{path}: decision {i}, field {name!r}: {text[name][i - 1]!r} is not valid "
                                 f"(and {wrong.height - 1} more like it)" if wrong.height > 1 else
                                 f"{path}: decision {i}, field {name!r}: {text[name][i - 1]!r} is not valid")
    return typed


CONTENT = ("decided_at", "analyst", "frequency", "mineral", "hs_code", "hub_iso3", "decision", "note")


def import_decisions(live: Path, path: Path) -> tuple[int, int]:
    """Add the decisions of a file (an export, or a backup kept beside a warehouse) that the live warehouse
    does not have yet (the same time, analyst, route, decision and note), with new ids after its own.
    Returns (added, already there)."""
    incoming = read_decisions_file(path)
    live = pub.real_path(live)

    def merge(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        con.register("_incoming", incoming)
        try:
            new = con.sql(f"""
                SELECT * EXCLUDE (decision_id) FROM _incoming
                WHERE NOT EXISTS (SELECT 1 FROM review.decisions AS d
                                  WHERE {' AND '.join(f'd.{c} IS NOT DISTINCT FROM _incoming.{c}' for c in CONTENT)})
                QUALIFY row_number() OVER (PARTITION BY {', '.join(CONTENT)} ORDER BY decision_id NULLS LAST) = 1
                ORDER BY decided_at, decision_id NULLS LAST""").pl()
            start = rows(con, "SELECT coalesce(max(decision_id), 0) FROM review.decisions")[0][0]
            con.register("_new", new.with_row_index("decision_id", offset=start + 1).with_columns(
                pl.col("decision_id").cast(pl.Int64)))
            con.execute("INSERT INTO review.decisions BY NAME SELECT * FROM _new")
            con.unregister("_new")
        finally:
            con.unregister("_incoming")
        return new.height, incoming.height - new.height

    return change_live(live, merge)
