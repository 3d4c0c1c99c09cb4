"""Load and build: files into the raw layer, then staging, intermediate and marts from raw."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from flows.progress import quiet
from warehouse.build import BuildPlan, build_models
from warehouse.catalogue import load_catalogue
from warehouse.ingest import FileOutcome, InputLimits, PrepareMap, ingest_folder, prepare_here
from warehouse.schema import SourceParams, ensure_schema, write_reference_tables


def load(con: duckdb.DuckDBPyConnection, data_dir: Path, batch_id: str, *, catalogue: Path | None = None,
         sources: SourceParams | None = None, progress: Callable[[str], None] = quiet,
         prepare: PrepareMap = prepare_here, limits: InputLimits | None = None) -> list[FileOutcome]:
    """The raw layer and the reference tables in place (the catalogue's minerals and codes, the sources'
    settings), then every new recognised file under data_dir loaded, stamped with batch_id."""
    ensure_schema(con)
    write_reference_tables(con, load_catalogue(catalogue), sources or SourceParams())
    return ingest_folder(con, Path(data_dir), batch_id=batch_id, progress=progress, prepare=prepare,
                         limits=limits or InputLimits())


def build(con: duckdb.DuckDBPyConnection, plan: BuildPlan | None = None,
          progress: Callable[[str], None] = quiet) -> dict[str, int]:
    """Staging, intermediate and marts from raw, in full or as `plan` says; the rows each relation holds."""
    return build_models(con, plan, progress)
