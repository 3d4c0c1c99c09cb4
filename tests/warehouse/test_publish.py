"""What a killed run leaves beside the warehouse, and how the next run clears it."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("size", [0, 1, 4095, 4 * 65536 + 3])
@pytest.mark.parametrize("threads", [1, 4])
def test_copy_file_copies_every_byte_and_the_times_in_parts(tmp_path: Path, size: int, threads: int) -> None:
    # A run's private copy of the warehouse is made in parts at once: every part must land where it belongs,
    # whatever the size (empty, smaller than the parts, not a multiple of them).
    src, dst = tmp_path / "live.duckdb", tmp_path / "build.duckdb"
    src.write_bytes(os.urandom(size))
    os.utime(src, (1_700_000_000, 1_700_000_000))
    dst.write_bytes(b"x" * (size + 10))  # a longer stale file is replaced, not overwritten in place
    pub.copy_file(src, dst, threads=threads)
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_mtime == src.stat().st_mtime


def test_copy_file_from_another_filesystem(tmp_path: Path) -> None:
    # copy_file_range refuses to cross some filesystems (EXDEV): the copy is then made as shutil.copy2 does.
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm (a tmpfs) on this machine to copy from")
    src = shm / f"transship-test-{os.getpid()}.duckdb"
    try:
        src.write_bytes(os.urandom(300_001))
        pub.copy_file(src, tmp_path / "build.duckdb")
        assert (tmp_path / "build.duckdb").read_bytes() == src.read_bytes()
    finally:
        src.unlink(missing_ok=True)
