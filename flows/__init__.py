"""The pipeline: the `transship` command (flows/cli), its Prefect flows and their stages.

Imported before anything else of the command, this package sets how Polars' allocator gives memory back
(before Polars is first imported: jemalloc reads its options once, when it starts). Polars starts jemalloc
with `dirty_decay_ms:500,muzzy_decay_ms:1000`: memory it frees is kept for reuse (dirty), then only advised
free (muzzy, MADV_FREE, which the kernel takes back only under pressure), and until then both count in the
process's resident memory. The command keeps freed pages for 100 ms and then gives them straight back (no
muzzy stage). Both at 0 (the command's setting until 2026-12-07) had lowered the peaks where a frame is let go
of before long work elsewhere (scoring every section of the 20 M world, 2.93 -> 2.56 GB with the muzzy pages
alone; reading its largest section, 2.13 -> 1.60 GB with the dirty pages too), but every buffer Polars freed
went back to the system at once and the next batch's were taken from it again: the 5 M world's features stage
alone took 73.6 s (143 CPU-s, peak 1.46 GB) at 0, 52.6 s (100 CPU-s, 1.67 GB) at 100 ms, 52.7 s (1.86 GB) at
Polars' defaults. In whole 20 M runs of one commit (tests/benchmarks/results/scale-20261207-*): the features
325.6 s at 0, 246.7 s at 100 ms; models and scores 91.9 and 94.3 s; the peak 2.44 and 2.45 GiB (set in ingest).

DuckDB's allocator (a jemalloc of its own, `DUCKDB_JE_MALLOC_CONF`) keeps its defaults: with both at 0 the same
read peaked 0.16 GB lower, but the 2 M run's build took 16.2 -> 27.1 s (DuckDB frees and
takes back buffers all the time). An operator's own `_RJEM_MALLOC_CONF` is kept and wins (jemalloc takes the
last value of an option, and Polars appends the variable to its own defaults)."""

import os as _os
import sys as _sys

POLARS_ALLOCATOR = "dirty_decay_ms:100,muzzy_decay_ms:0"

_given = _os.environ.get("_RJEM_MALLOC_CONF", "")
# Not once Polars has started its allocator, nor again in a child process (it inherits ours).
if "polars" not in _sys.modules and not _given.startswith(POLARS_ALLOCATOR):
    _os.environ["_RJEM_MALLOC_CONF"] = ",".join(part for part in (POLARS_ALLOCATOR, _given) if part)
