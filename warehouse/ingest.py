"""Discover the files under a data folder, recognise each by its header, and load the new ones.

A file whose content (SHA-256) is already in `raw.loads` is not loaded again. Files of no recognised
format are listed as skipped, never silently ignored.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from warehouse import baci, census, comtrade, faults, fx, gacc, user_table
from warehouse.connection import rows
from warehouse.files import IngestError, file_sha256, head_text

DATA_SUFFIXES = (".csv", ".json", ".txt", ".csv.gz", ".json.gz", ".txt.gz", ".gz")


@dataclass(frozen=True)
class FileOutcome:
    source_file: str
    file_sha256: str
    file_format: str | None
    status: str  # loaded | already loaded | skipped
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    notes: str = ""


LOADERS: dict[str, Callable[..., object]] = {
    comtrade.FORMAT: comtrade.load_comtrade_file,
    baci.FORMAT: baci.load_baci_file,
    census.API_FORMAT: census.load_census_api,
    census.CSV_FORMAT: census.load_usa_trade_online,
    gacc.FORMAT: gacc.load_gacc_file,
    fx.FORMAT: fx.load_fx_file,
    user_table.FORMAT: user_table.load_user_table,
}
# Loaded first: later files of the same run depend on them (rates convert yuan in staging).
FIRST = (fx.FORMAT,)
# Read by the loaders of other files, not loaded themselves.
COMPANIONS = {baci.CODES_FORMAT: "BACI country codes, read by the BACI loader",
              "mapping": "mapping file, read with the table it describes",
              "fetch_manifest": "what `transship fetch` asked for and got (kept for lineage)"}


def sniff_format(path: Path) -> str | None:
    """The format of a file by its header (never its name), or None if no loader knows it.

    The one exception is a user table, which is recognised by the mapping file beside it."""
    if user_table.is_mapping_file(path):
        return "mapping"
    if path.name == "manifest.json":
        return "fetch_manifest"
    if user_table.mapping_for(path) is not None:
        return user_table.FORMAT
    head = head_text(path).lstrip()
    if not head:
        return None
    if head.startswith("[["):
        first = re.match(r"\[\s*\[([^\]]*)\]", head)
        names = re.findall(r'"([^"]*)"', first.group(1)) if first else []
        return census.API_FORMAT if census.looks_like_census_api(names) else None
    if head.startswith(("{", "[")):
        # The field names in the first few kilobytes are enough to recognise a JSON record format.
        keys = re.findall(r'"([A-Za-z0-9_ ]+)"\s*:', head)
        return comtrade.FORMAT if comtrade.looks_like_comtrade(keys) else None
    first_line = head.splitlines()[0]
    header = next(csv.reader(io.StringIO(first_line)), [])
    if baci.looks_like_baci(header):
        return baci.FORMAT
    if baci.looks_like_country_codes(header):
        return baci.CODES_FORMAT
    if fx.looks_like_fx(header):
        return fx.FORMAT
    if comtrade.looks_like_comtrade(header):
        return comtrade.FORMAT
    if gacc.looks_like_gacc(head):
        return gacc.FORMAT
    if census.looks_like_usa_trade_online(head):
        return census.CSV_FORMAT
    return None


def discover(data_dir: Path) -> list[Path]:
    """Every file under data_dir (recursively), in a stable order; hidden files and folders left out."""
    if not data_dir.is_dir():
        raise IngestError(f"{data_dir}: no such folder. Pass the folder that holds your trade files with --data.")
    return sorted(
        p
        for p in data_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(data_dir).parts)
    )


def ingest_folder(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    *,
    batch_id: str,
    progress: Callable[[str], None] | None = None,
) -> list[FileOutcome]:
    """Load every new recognised file under data_dir into the raw layer. Raises IngestError on a bad file."""
    outcomes: list[FileOutcome] = []
    found = [(path, sniff_format(path)) for path in discover(Path(data_dir))]
    found.sort(key=lambda pf: (pf[1] not in FIRST, str(pf[0])))
    for path, fmt in found:
        digest = file_sha256(path)
        if fmt is None:
            outcomes.append(FileOutcome(str(path), digest, None, "skipped", notes="not a recognised trade file format"))
            continue
        if fmt in COMPANIONS:
            outcomes.append(FileOutcome(str(path), digest, fmt, "companion", notes=COMPANIONS[fmt]))
            continue
        previous = next(iter(rows(con, "SELECT batch_id, source_file FROM raw.loads WHERE file_sha256 = ?", [digest])), None)
        if previous:
            outcomes.append(
                FileOutcome(str(path), digest, fmt, "already loaded", notes=f"same content loaded in batch {previous[0]} from {previous[1]}")
            )
            continue
        if progress:
            progress(f"loading {path.name} ({fmt})")
        loaded_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        result = LOADERS[fmt](con, path, batch_id=batch_id, file_sha256=digest, loaded_at=loaded_at)
        con.execute(
            "INSERT INTO raw.loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMP)",
            [batch_id, result.source_file, digest, result.file_format, result.rows_read,
             result.rows_loaded, result.rows_rejected, result.notes, loaded_at],
        )
        outcomes.append(FileOutcome(status="loaded", **asdict(result)))
        faults.at("ingest")
    return outcomes
