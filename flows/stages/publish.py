"""Publish: a finished private build put over the live warehouse, with the decisions analysts recorded
meanwhile carried into it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flows.progress import quiet
from warehouse import faults
from warehouse import publish as pub
from warehouse.connection import checkpoint, connect_read_write
from warehouse.decisions_file import write_decisions_backup
from warehouse.review import carry_over_decisions


def publish(build: Path, live: Path, progress: Callable[[str], None] = quiet) -> int:
    """Carry the live file's review decisions into the build (one recorded during this run is not lost),
    then rename the build over the live file, under the publication lock; then refresh the decisions file
    beside it. Returns the decisions carried."""
    with pub.publication_lock(live):
        pub.remove_stale_copies(live)
        for _ in range(3):
            # The live file as it is now: no other writer holding it, no foreign write-ahead log (set aside).
            pub.wait_for_writers(live, progress=progress)
            for note in pub.check_live(live):
                progress(note)
            seen = pub.live_signature(live)
            con = connect_read_write(build)
            try:
                carried = carry_over_decisions(con, live)
                checkpoint(con)
            finally:
                con.close()
            faults.at("publish")
            pub.wait_for_writers(live, progress=progress)
            if pub.live_signature(live) == seen:
                break
            # Another program (not transship review, which takes this lock) wrote to the live file meanwhile.
            progress("the warehouse changed while its decisions were carried over: carrying them over again")
        for note in pub.publish(build, live):
            progress(note)
    write_decisions_backup(live)
    return carried
