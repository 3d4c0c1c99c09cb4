"""What a killed run leaves beside the warehouse, and how the next run clears it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from warehouse import publish as pub


def test_a_killed_runs_log_and_spill_folder_are_not_runs_and_go_with_its_build(tmp_path: Path) -> None:
    live = tmp_path / "w.duckdb"
    live.write_bytes(b"live")
    dead = pub.build_path(live, "20261201T183626Z-7d6319")
    dead.write_bytes(b"half a build")
    wal = dead.with_name(dead.name + ".wal")
    wal.write_bytes(b"log")
    spill = dead.with_name(dead.name + ".tmp")  # DuckDB's temp_directory for the build, left by a kill
    spill.mkdir()
    (spill / "duckdb_temp_4187_1_owner").write_bytes(b"")
    (spill / "duckdb_temp_block-4187-0.block").write_bytes(b"spilled")

    found = pub.abandoned_builds(live)

    assert [(a["run_id"], a["started_at"], a["path"]) for a in found] == [
        ("20261201T183626Z-7d6319", datetime(2026, 12, 1, 18, 36, 26), dead)]
    pub.remove_abandoned(found)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]
    assert live.read_bytes() == b"live"
