"""How a failed run ends for the person who started it: one `error:` line with advice, exit code 2 for bad
input or a damaged warehouse, 1 for a fault in transship; no traceback and no library noise unless --debug;
and a damaged warehouse is never written to, not even with the failed run's record."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.pipeline import transship_pipeline
from flows.settings import Settings
from tests.helpers import ROOT, cli
from warehouse.connection import WarehouseDamaged

pytestmark = pytest.mark.slow


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_process(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """`transship ARGS` in its own process (what a scheduler sees), on the test session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "TRANSSHIP_QUIET": "1", "PREFECT_API_URL": PREFECT_API_URL.value()}
    env.pop("TRANSSHIP_FAULT", None)
    for name in ("TRANSSHIP_DEBUG", "PREFECT_LOGGING_LEVEL"):  # as an operator's shell has them: unset
        env.pop(name, None)
    if fault:
        env["TRANSSHIP_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_a_fault_in_transship_is_one_line_and_exit_1_and_the_traceback_only_with_debug(prefect_harness,
                                                                                     scored_warehouse, tmp_path,
                                                                                     monkeypatch):
    live = tmp_path / "w.duckdb"
    shutil.copy(scored_warehouse[0], live)
    args = ("run", "--data", scored_warehouse[1]["data_dir"], "--warehouse", str(live), "--reports", str(tmp_path))
    quiet = run_process(*args, fault="build:raise")
    assert quiet.returncode == 1, quiet.stderr
    lines = quiet.stderr.strip().splitlines()
    assert lines[0] == "error: internal fault: RuntimeError: injected fault at build (TRANSSHIP_FAULT)"
    assert "run the command again with --debug" in lines[1].lower()
    # The run's id, which the advice asks to report, is on the last line (and the run is noted in `runs`).
    ran = re.fullmatch(r"The warehouse was left as it was before this run \(run (\S+), failed in build\)\.", lines[2])
    assert ran, lines[2]
    assert len(lines) == 3  # no traceback, no Prefect log, no leaked-object report from the DuckDB bindings
    monkeypatch.setenv("TRANSSHIP_FAULT", "build:raise")
    monkeypatch.setenv("TRANSSHIP_DEBUG", "")  # --debug sets it; monkeypatch puts it back as it was
    debug = cli("--debug", *args)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("The warehouse was left as it was")
    # The live file is sound: the failed run is noted in it under that id (its data untouched).
    noted = subprocess.run(
        [sys.executable, "-c", f"import duckdb; print(duckdb.connect({str(live)!r}, read_only=True).sql("
                               "\"SELECT run_id, error FROM main.runs WHERE status = 'failed'\").fetchall())"],
        capture_output=True, text=True).stdout
    assert ran.group(1) in noted and "injected fault" in noted


def test_bad_input_is_exit_2_with_the_file_named(prefect_harness, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "c.csv").write_text("reporterCode,partnerCode,cmdCode\n156,764,282580\n")
    done = cli("run", "--data", str(data), "--warehouse", str(tmp_path / "w.duckdb"), "--reports", str(tmp_path))
    assert done.returncode == 2
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("error: ") and "c.csv" in first and "flow_code" in first


@pytest.mark.parametrize("damage", ["cut short", "a damaged block", "not a warehouse"])
def test_a_run_on_a_damaged_warehouse_stops_and_writes_nothing_into_it(prefect_harness, scored_warehouse, tmp_path,
                                                                       damage):
    live = tmp_path / "w.duckdb"
    shutil.copy(scored_warehouse[0], live)
    size = live.stat().st_size
    con = duckdb.connect(str(live), read_only=True)
    ((block,),) = con.sql("SELECT min(block_id) FROM pragma_storage_info('raw.loads') WHERE block_id >= 0").fetchall()
    con.close()
    with open(live, "r+b") as fh:
        if damage == "cut short":
            fh.truncate(size - 1000)
        elif damage == "a damaged block":  # the block of the loads' log, which a run reads to plan its ingest
            fh.seek(3 * 4096 + block * 262144 + 64)
            fh.write(os.urandom(2048))
        else:
            fh.write(b"id,name\n1,x\n")
            fh.truncate(12)
    before = sha(live)
    settings = Settings(warehouse=live, reports_dir=tmp_path / "reports")
    with pytest.raises(WarehouseDamaged, match="damaged or cut short"):
        transship_pipeline(Path(scored_warehouse[1]["data_dir"]), settings)
    assert sha(live) == before  # not even the failed run's record
    assert not list(tmp_path.glob("w.duckdb.building-*"))
