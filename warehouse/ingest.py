"""Discover the files under a data folder, recognise each by its header, and load the new ones.

A file whose content (SHA-256) is already in `raw.loads` is not loaded again. Files of no recognised
format are listed as skipped, never silently ignored.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from warehouse import baci, census, comtrade, faults, fx, gacc, user_table
from warehouse.connection import release_memory, rows
from warehouse.files import IngestError, InputLimits, file_sha256, head_text, limits_in_force
from warehouse.raw_load import Prepared

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


# Each format's first half of loading: the file -> its loader's frame (a Prepared, which knows how to write
# itself). Needs only the file (and the country table, for BACI), so it can run on a Dask worker.
PREPARERS: dict[str, Callable[..., Prepared]] = {
    comtrade.FORMAT: comtrade.prepare_comtrade_file,
    baci.FORMAT: baci.prepare_baci_file,
    census.API_FORMAT: census.prepare_census_api,
    census.CSV_FORMAT: census.prepare_usa_trade_online,
    gacc.FORMAT: gacc.prepare_gacc_file,
    fx.FORMAT: fx.prepare_fx_file,
    user_table.FORMAT: user_table.prepare_user_table,
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


@dataclass(frozen=True)
class FileToLoad:
    path: Path
    file_format: str
    file_sha256: str
    limits: InputLimits = InputLimits()  # what reading it may cost (travels with it to a Dask worker)


def prepare_file(item: FileToLoad, countries: pl.DataFrame, check_digest: bool = False) -> Prepared:
    """The first half of loading one file (warehouse/raw_load.py: Prepared). `check_digest`: first make sure
    the file read here is the one the run planned (a Dask worker may see another copy of the folder)."""
    if check_digest:
        if not item.path.is_file():
            raise IngestError(f"{item.path}: not found on this machine; a Dask worker must see the data folder "
                              f"at the same path as the run (a shared mount), or run without --dask-address")
        here = file_sha256(item.path)
        if here != item.file_sha256:
            raise IngestError(f"{item.path}: this machine's copy differs from the run's (SHA-256 {here[:12]} "
                              f"against {item.file_sha256[:12]}); workers must see the same data folder")
    with limits_in_force(item.limits):
        if item.file_format == baci.FORMAT:
            return baci.prepare_baci_file(item.path, countries)
        return PREPARERS[item.file_format](item.path)


# How ingest_folder gets the Prepared files: given the files to load and the country table, yield each
# file's Prepared in the same order. In this process by default (one file at a time, as it is written);
# flows/fanout.py prepares them on a Dask cluster.
PrepareMap = Callable[[list[FileToLoad], pl.DataFrame], Iterator[Prepared]]


def prepare_here(files: list[FileToLoad], countries: pl.DataFrame) -> Iterator[Prepared]:
    for item in files:
        yield prepare_file(item, countries)


def plan(con: duckdb.DuckDBPyConnection, data_dir: Path,
         limits: InputLimits = InputLimits()) -> list[FileOutcome | FileToLoad]:
    """What ingest_folder will do with each file under data_dir, in load order: a FileOutcome for the files
    it will not load (skipped, companion, already loaded: in an earlier run or earlier in this one) and a
    FileToLoad for the others."""
    found = [(path, sniff_format(path)) for path in discover(Path(data_dir))]
    found.sort(key=lambda pf: (pf[1] not in FIRST, str(pf[0])))
    planned: list[FileOutcome | FileToLoad] = []
    this_run: dict[str, str] = {}
    for path, fmt in found:
        digest = file_sha256(path)
        if fmt is None:
            planned.append(FileOutcome(str(path), digest, None, "skipped", notes="not a recognised trade file format"))
            continue
        if fmt in COMPANIONS:
            planned.append(FileOutcome(str(path), digest, fmt, "companion", notes=COMPANIONS[fmt]))
            continue
        previous = next(iter(rows(con, "SELECT batch_id, source_file FROM raw.loads WHERE file_sha256 = ?", [digest])), None)
        if previous:
            planned.append(FileOutcome(str(path), digest, fmt, "already loaded",
                                       notes=f"same content loaded in batch {previous[0]} from {previous[1]}"))
        elif digest in this_run:
            planned.append(FileOutcome(str(path), digest, fmt, "already loaded",
                                       notes=f"same content as {this_run[digest]}, loaded in this run"))
        else:
            this_run[digest] = str(path)
            planned.append(FileToLoad(path, fmt, digest, limits))
    return planned


def ingest_folder(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    *,
    batch_id: str,
    progress: Callable[[str], None] | None = None,
    prepare: PrepareMap = prepare_here,
    limits: InputLimits = InputLimits(),
) -> list[FileOutcome]:
    """Load every new recognised file under data_dir into the raw layer. Raises IngestError on a bad file.
    Files are read through `prepare` (here, or on a Dask cluster) and written here, one at a time, in order."""
    planned = plan(con, Path(data_dir), limits)
    to_load = [p for p in planned if isinstance(p, FileToLoad)]
    countries = con.sql("SELECT m49_code, iso3 FROM ref.countries").pl()
    prepared = prepare(to_load, countries)
    outcomes: list[FileOutcome] = []
    for item in planned:
        if isinstance(item, FileOutcome):
            outcomes.append(item)
            continue
        if progress:
            progress(f"loading {item.path.name} ({item.file_format})")
        ready = next(prepared)
        loaded_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        result = ready.write(con, ready, batch_id=batch_id, file_sha256=item.file_sha256, loaded_at=loaded_at)
        con.execute(
            "INSERT INTO raw.loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMP)",
            [batch_id, result.source_file, item.file_sha256, result.file_format, result.rows_read,
             result.rows_loaded, result.rows_rejected, result.notes, loaded_at],
        )
        outcomes.append(FileOutcome(status="loaded", **asdict(result)))
        # The file's frame is let go before the next one is read, and so is what DuckDB kept of writing
        # it: one large file at a time is in memory (at 20 M input rows a file is 1.5 M rows).
        del ready
        release_memory(con)
        faults.at("ingest")
    return outcomes
