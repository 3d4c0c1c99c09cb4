"""The pipeline: the `transship` command (flows/cli), its Prefect flows and their stages.

Imported before anything else of the command, this package sets how Polars' allocator gives memory back
(before Polars is first imported: jemalloc reads its options once, when it starts). Polars starts jemalloc
with `dirty_decay_ms:500,muzzy_decay_ms:1000`: memory it frees is kept for reuse (dirty), then only advised
free (muzzy, MADV_FREE, which the kernel takes back only under pressure), and until then both count in the
process's resident memory. The decay runs only when the allocator is next busy, so the pages of a frame let
go of before long work elsewhere (DuckDB's, scikit-learn's) stay resident through it. The command sets both
to 0: freed pages go straight back to the system. Measured on the 20 M scale world: scoring every section,
2.93 -> 2.56 GB resident with the muzzy pages alone, in the same time; reading its largest section (4.0 M
route-periods, a 1.0 GB frame, in 9 pieces joined column by column) peaked at 2.13 GB with that, 1.60 GB
with the dirty pages too (the pieces' columns, freed while the next is joined), and a whole 2 M run took the
same time (114.9 -> 115.7 s).

DuckDB's allocator (a jemalloc of its own, `DUCKDB_JE_MALLOC_CONF`) keeps its defaults: with the same two
settings the same read peaked 0.16 GB lower, but the 2 M run's build took 16.2 -> 27.1 s (DuckDB frees and
takes back buffers all the time). An operator's own `_RJEM_MALLOC_CONF` is kept and wins (jemalloc takes the
last value of an option, and Polars appends the variable to its own defaults)."""

import os as _os
import sys as _sys

POLARS_ALLOCATOR = "dirty_decay_ms:0,muzzy_decay_ms:0"

_given = _os.environ.get("_RJEM_MALLOC_CONF", "")
# Not once Polars has started its allocator, nor again in a child process (it inherits ours).
if "polars" not in _sys.modules and not _given.startswith(POLARS_ALLOCATOR):
    _os.environ["_RJEM_MALLOC_CONF"] = ",".join(part for part in (POLARS_ALLOCATOR, _given) if part)
