"""A full disk and a folder the run cannot write in: a clear error, nothing half-written, the last complete
warehouse untouched. Uses small tmpfs mounts (skipped, saying so, where this user cannot mount)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from flows.pipeline import transship_pipeline
from flows.settings import Settings
from warehouse.connection import WarehouseError

pytestmark = pytest.mark.slow


@pytest.fixture
def mount(tmp_path):
    mounted: list[Path] = []

    def make(name: str, size_bytes: int, read_only: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size_bytes}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({done.stderr.strip() or 'mount failed'}); "
                        "run the suite as root in a container that allows mounts")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_folder_the_run_cannot_write_in_is_refused_with_advice(prefect_harness, scored_warehouse, mount, tmp_path):
    read_only = mount("ro", 1 << 20, read_only=True)
    settings = Settings(warehouse=read_only / "w.duckdb", reports_dir=tmp_path / "reports")
    with pytest.raises(WarehouseError, match=r"cannot write in this folder \(Read-only file system\)"):
        transship_pipeline(Path(scored_warehouse[1]["data_dir"]), settings)


@pytest.mark.parametrize("room", ["none for the copy", "the copy but not the build"])
def test_a_full_disk_stops_the_run_cleanly_and_keeps_the_last_warehouse(prefect_harness, scored_warehouse, mount,
                                                                        tmp_path, room):
    path, run = scored_warehouse
    size = path.stat().st_size
    disk = mount("disk", int(size * 1.5) if room == "none for the copy" else 2 * size + (512 << 10))
    live = disk / "w.duckdb"
    shutil.copy2(path, live)
    before = sha(live)
    settings = Settings(warehouse=live, reports_dir=tmp_path / "reports")
    with pytest.raises(WarehouseError, match="the disk is full") as caught:
        transship_pipeline(Path(run["data_dir"]), settings)
    assert "free space there or point --warehouse elsewhere" in str(caught.value)
    stages = ["copying the warehouse"] if room == "none for the copy" else ["ingest", "build", "score", "publish"]
    assert any(f"the disk is full ({stage} could not write)" in str(caught.value) for stage in stages)
    assert sha(live) == before  # the last complete warehouse, byte for byte
    assert not list(disk.glob("w.duckdb.building-*"))  # the partial build was removed


def test_duckdb_out_of_memory_fails_the_run_with_advice(prefect_harness, tmp_path, monkeypatch):
    """An operator's DuckDB memory cap too small for the run: it fails naming the limit and what to do, and
    leaves no partial build."""
    from worlds.sample import write_sample_world

    paths = write_sample_world(tmp_path / "world", seed=7)
    monkeypatch.setenv("TRANSSHIP_DUCKDB_MEMORY_LIMIT", "2MB")
    settings = Settings(warehouse=tmp_path / "w" / "w.duckdb", reports_dir=tmp_path / "reports")
    with pytest.raises(WarehouseError, match=r"DuckDB ran out of memory within TRANSSHIP_DUCKDB_MEMORY_LIMIT=2MB .*"
                                             r"Raise the limit"):
        transship_pipeline(paths["data_dir"], settings)
    assert not list(settings.warehouse.parent.glob("*.building-*"))


def test_a_decision_on_a_full_disk_says_so_and_leaves_no_copy(scored_warehouse, mount, tmp_path):
    from warehouse.review import RouteRef, record_decision

    path, _ = scored_warehouse
    disk = mount("full", int(path.stat().st_size * 1.4))
    live = disk / "w.duckdb"
    shutil.copy2(path, live)
    before = sha(live)
    with pytest.raises(WarehouseError, match=r"the disk is full .*free that much and try again\. Nothing was recorded"):
        record_decision(live, RouteRef(rank=1), "confirmed", "A. Analyst", "checked")
    assert sha(live) == before
    assert not list(disk.glob("w.duckdb.review-*"))  # no half-written copy for the next run to trip over


def test_a_decision_on_a_read_only_disk_says_so(scored_warehouse, mount, tmp_path):
    from warehouse.review import RouteRef, record_decision

    path, _ = scored_warehouse
    disk = mount("ro-later", 4 * path.stat().st_size)
    live = disk / "w.duckdb"
    shutil.copy2(path, live)
    done = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only here ({done.stderr.strip()})")
    with pytest.raises(WarehouseError, match=r"this user cannot write there \(Read-only file system\)"):
        record_decision(live, RouteRef(rank=1), "confirmed", "A. Analyst", "checked")
