"""Every state the live warehouse file can be in, each with its own message, on real DuckDB files: another
name for it, another writer holding it, a write-ahead log of another version of it, damage; and the analysts'
decisions kept beside it, exported and imported back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from warehouse import publish as pub
from warehouse.connection import (ForeignWal, WarehouseDamaged, WarehouseError, WarehouseLocked, connect_read_only,
                                  decisions_backup, wal_path)
from warehouse.decisions_file import export_decisions, import_decisions
from warehouse.review import RouteRef, record_decision


@pytest.fixture
def live(scored_warehouse, tmp_path) -> Path:
    """A copy of the scored sample warehouse, with one decision recorded (so its backup exists beside it)."""
    path = tmp_path / "w.duckdb"
    shutil.copy(scored_warehouse[0], path)
    record_decision(path, RouteRef(rank=1), "confirmed", "A. Analyst", "matches the bills of lading")
    return path


def decisions(path: Path) -> list[tuple]:
    con = connect_read_only(path)
    try:
        return con.sql("SELECT decision_id, analyst, decision, note FROM review.decisions ORDER BY ALL").fetchall()
    finally:
        con.close()


def hold_for_writing(path: Path, seconds: float) -> subprocess.Popen:
    """Another program with the warehouse open read-write (as a DuckDB shell without -readonly)."""
    code = f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('open', flush=True); time.sleep({seconds})"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


def stale_wal_for(path: Path) -> None:
    """A write-ahead log written against an earlier version of `path` by a writer that was killed."""
    old = path.with_name("earlier.duckdb")
    shutil.copy(path.with_name("before-decision.duckdb"), old)
    code = (f"import duckdb, os; c = duckdb.connect({str(old)!r}, config={{'checkpoint_threshold': '1TB'}}); "
            "c.execute(\"INSERT INTO review.decisions BY NAME SELECT 77 AS decision_id, now()::TIMESTAMP AS decided_at, "
            "'ghost' AS analyst, 'M' AS frequency, 'antimony' AS mineral, '282580' AS hs_code, 'THA' AS hub_iso3, "
            "'watching' AS decision, 'ghost' AS note\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True)
    os.replace(wal_path(old), wal_path(path))


def test_two_names_for_one_warehouse_share_its_lock_and_a_decision_keeps_the_link(live, tmp_path):
    link = tmp_path / "link.duckdb"
    link.symlink_to(live)
    with pub.exclusive_run(pub.real_path(live)):
        with pytest.raises(WarehouseError, match="another transship run is writing this warehouse"):
            with pub.exclusive_run(pub.real_path(link)):
                pass
    record_decision(link, RouteRef(rank=2), "dismissed", "B. Analyst", "the hub's own smelter")
    assert link.is_symlink() and link.resolve() == live  # the link still names the warehouse
    assert [d[1] for d in decisions(live)] == ["A. Analyst", "B. Analyst"]


def test_a_warehouse_with_another_hard_link_is_refused(live, tmp_path):
    (tmp_path / "other-name.duckdb").hardlink_to(live)
    with pytest.raises(WarehouseError, match="the file has 2 hard links"):
        record_decision(live, RouteRef(rank=2), "dismissed", "B", "x")
    assert [d[1] for d in decisions(live)] == ["A. Analyst"]


def test_another_writer_is_named_waited_for_and_then_let_go(live):
    holder = hold_for_writing(live, 1.5)
    try:
        with pytest.raises(WarehouseLocked, match=rf"another program has it open for writing \(.*process {holder.pid}\)"):
            connect_read_only(live)
        with pytest.raises(WarehouseLocked):
            pub.wait_for_writers(live, timeout_s=0.3)
        started = time.monotonic()
        pub.wait_for_writers(live, timeout_s=30)  # returns once the holder exits
        assert holder.poll() is not None and time.monotonic() - started < 25
    finally:
        holder.kill()


def test_a_write_ahead_log_of_another_version_is_named_and_set_aside_by_a_run(live, scored_warehouse):
    shutil.copy(scored_warehouse[0], live.with_name("before-decision.duckdb"))
    stale_wal_for(live)
    with pytest.raises(ForeignWal, match=r"w\.duckdb\.wal belongs to another version of the file.*"
                                         r"`transship run` sets it aside by itself"):
        connect_read_only(live)
    notes = pub.check_live(live)
    assert len(notes) == 1 and "set aside as w.duckdb.wal.set-aside-" in notes[0]
    assert not wal_path(live).exists() and len(list(live.parent.glob("w.duckdb.wal.set-aside-*"))) == 1
    assert [d[1] for d in decisions(live)] == ["A. Analyst"]  # the ghost write never applied


def test_a_log_left_beside_a_replaced_file_is_set_aside(live, tmp_path):
    new = tmp_path / "new.duckdb"
    shutil.copy(live, new)
    wal_path(live).write_bytes(b"a log a killed writer left against the file being replaced")
    notes = pub.replace_live(new, live)
    assert "set aside as w.duckdb.wal.set-aside-" in notes[0] and not wal_path(live).exists()
    assert decisions(live)  # opens: the log did not break it


@pytest.mark.parametrize("damage", ["cut short", "random bytes", "empty", "a CSV file"])
def test_a_damaged_warehouse_is_named_and_the_decisions_backup_pointed_to(live, damage):
    size = live.stat().st_size
    if damage == "cut short":
        os.truncate(live, size // 2)
    else:
        live.write_bytes({"random bytes": os.urandom(300_000), "empty": b"", "a CSV file": b"a,b\n1,2\n"}[damage])
    before = live.read_bytes()
    with pytest.raises(WarehouseDamaged, match=r"damaged or cut short.*review --import .*w\.duckdb\.decisions\.json"):
        pub.check_live(live)
    with pytest.raises(WarehouseDamaged):
        connect_read_only(live)
    assert live.read_bytes() == before  # nothing was written into it


def test_decisions_survive_a_damaged_warehouse_through_their_backup(live, scored_warehouse, tmp_path):
    backup = decisions_backup(live)
    kept = json.loads(backup.read_text())
    assert kept["format"] == "transship decisions 1" and kept["decisions"][0]["analyst"] == "A. Analyst"
    live.write_bytes(b"")  # the warehouse is lost
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(scored_warehouse[0], rebuilt)
    assert import_decisions(rebuilt, backup) == (1, 0)
    assert import_decisions(rebuilt, backup) == (0, 1)  # not twice
    assert decisions(rebuilt) == [(1, "A. Analyst", "confirmed", "matches the bills of lading")]
    con = connect_read_only(rebuilt)
    try:
        assert export_decisions(con, rebuilt, tmp_path / "out.json") == 1
    finally:
        con.close()
    again = json.loads((tmp_path / "out.json").read_text())["decisions"]
    assert again[0]["decided_at"] == kept["decisions"][0]["decided_at"]  # the time the analyst decided, kept


@pytest.mark.parametrize(("content", "message"), [
    (b"not json", r"not valid JSON"),
    (b'{"format": "something else", "decisions": []}', r"not a transship decisions file"),
    (b'{"format": "transship decisions 1", "decisions": [{"decided_at": "2025-01-01T00:00:00", "analyst": "A", '
     b'"frequency": "M", "mineral": "antimony", "hs_code": "282580", "hub_iso3": "THA", "decision": "maybe", '
     b'"note": "x"}]}', r"decision 1, field 'decision': 'maybe' is not valid"),
    (b'{"format": "transship decisions 1", "decisions": [{"decided_at": "2025-01-01T00:00:00", "analyst": "A", '
     b'"frequency": "M", "mineral": "antimony", "hs_code": "282580", "hub_iso3": "TH", "decision": "confirmed", '
     b'"note": "x"}]}', r"decision 1, field 'hub_iso3': 'TH' is not valid"),
    (b'{"format": "transship decisions 1", "decisions": [{"decided_at": "yesterday", "analyst": "A"}]}',
     r"decision 1, field 'decided_at': 'yesterday' is not valid"),
    (b'{"format": "transship decisions 1", "decisions": [{"note": {"nested": [1]}}]}',
     r"decision 1, field 'note': .* is not a plain value"),
    (b'{"format": "transship decisions 1", "decisions": [' + b"[" * 500 + b"]" * 500 + b"]}",
     r"JSON nested 502 levels deep"),
], ids=["not JSON", "another format", "a decision that is not one", "a hub that is not ISO3", "a date that is not one",
        "a nested value", "nested deep"])
def test_a_hostile_decisions_file_is_refused_naming_record_and_field_and_nothing_is_written(live, tmp_path, content,
                                                                                             message):
    hostile = tmp_path / "hostile.json"
    hostile.write_bytes(content)
    before = live.read_bytes()
    with pytest.raises(WarehouseError, match=message):
        import_decisions(live, hostile)
    assert live.read_bytes() == before


def test_a_decision_written_by_another_program_during_publication_is_carried_over(live, scored_warehouse, tmp_path,
                                                                                monkeypatch):
    from flows.pipeline import publish_build

    build = tmp_path / "w.duckdb.building-test"
    shutil.copy(scored_warehouse[0], build)  # a finished build, without the live file's decisions
    gate = tmp_path / "gate"
    monkeypatch.setenv("TRANSSHIP_FAULT", f"publish:wait={gate}")  # hold the publication after the carry-over
    monkeypatch.setenv("TRANSSHIP_QUIET", "1")
    done: list = []
    publishing = threading.Thread(target=lambda: done.append(publish_build.fn(build, live)))
    publishing.start()
    # Until the carry-over is in the build and the build closed: the publication then waits at the gate.
    reached, deadline = tmp_path / "gate.reached", time.monotonic() + 120
    while not reached.exists() and not done and publishing.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reached.exists(), "the publication never reached the gate"
    # A DuckDB shell (not transship review) writes a decision into the live file meanwhile, and exits.
    code = (f"import duckdb; c = duckdb.connect({str(live)!r}); c.execute(\"INSERT INTO review.decisions "
            "SELECT 99, now()::TIMESTAMP, 'Shell user', frequency, mineral, hs_code, hub_iso3, 'watching', 'by hand', "
            "run_id, reviewed_period, was_flagged, rank_seen, route_score_seen, evidence_kg FROM review.decisions\"); "
            "c.close()")
    subprocess.run([sys.executable, "-c", code], check=True)
    gate.touch()
    publishing.join(120)
    assert done == [2]  # carried over again: both decisions reach the published warehouse
    assert [d[1] for d in decisions(live)] == ["A. Analyst", "Shell user"]
    assert not wal_path(live).exists()
