"""The pipeline: the `transship` command (flows/cli), its Prefect flows and their stages.

Imported before anything else of the command, this package sets how Polars' allocator gives memory back
(before Polars is first imported: jemalloc reads its options once, when it starts). Polars starts jemalloc
with `muzzy_decay_ms:1000`: memory it frees is first only advised free (MADV_FREE), which the kernel takes
back only under pressure, and until then it counts in the process's resident memory, so a run holds the
pages of every large frame it has let go of. With `muzzy_decay_ms:0` freed pages go straight back to the
system: on the 20 M scale world, scoring every section peaked at 2.93 GB resident, 2.56 GB with this, in
the same time. An operator's own `_RJEM_MALLOC_CONF` is kept and wins (jemalloc takes the last value of an
option, and Polars appends the variable to its own defaults)."""

import os as _os
import sys as _sys

MUZZY_DECAY = "muzzy_decay_ms:0"

_given = _os.environ.get("_RJEM_MALLOC_CONF", "")
if "polars" not in _sys.modules and MUZZY_DECAY not in _given.split(","):  # not again in a child process
    _os.environ["_RJEM_MALLOC_CONF"] = ",".join(part for part in (MUZZY_DECAY, _given) if part)
