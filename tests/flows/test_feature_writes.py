"""A feature build writes batch i on a second connection while it computes batch i+1
(flows/stages/featurize._computed_and_written): the batches land in order, the warehouse is read only
while no write runs, and an error on either side stops the build with that error."""

from __future__ import annotations

import threading

import duckdb
import polars as pl
import pytest

from flows.stages.featurize import _computed_and_written


def quiet_countdown(i: int) -> None:
    pass


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE out (batch INTEGER, x INTEGER)")
    yield con
    con.close()


def frame(i: int) -> pl.DataFrame:
    return pl.DataFrame({"batch": [i] * 3, "x": [10 * i, 10 * i + 1, 10 * i + 2]})


def insert(writer: duckdb.DuckDBPyConnection, f: pl.DataFrame) -> None:
    writer.register("_f", f)
    writer.execute("INSERT INTO out SELECT * FROM _f")
    writer.unregister("_f")


def test_each_batch_is_written_while_the_next_is_computed_and_never_while_one_is_read(con):
    writing = threading.Event()
    computing_next = {i: threading.Event() for i in range(6)}
    reads_during_writes = []

    def read(i):
        reads_during_writes.append(writing.is_set())
        return con.sql(f"SELECT {i} AS i").fetchall()[0][0]  # DuckDB work on the build's connection

    def compute(i):
        computing_next[i].set()
        return frame(i)

    def write(writer, f, i):
        writing.set()
        try:
            # Batch i's write finishes only once batch i+1 is being computed: run one after the other, this
            # would wait out its timeout and fail.
            if i + 1 < 6:
                assert computing_next[i + 1].wait(timeout=10), f"batch {i + 1} was not computed during batch {i}'s write"
            insert(writer, f)
        finally:
            writing.clear()

    _computed_and_written(con, 6, read, compute, write, quiet_countdown)
    assert reads_during_writes == [False] * 6
    # In order, every row once.
    assert con.sql("SELECT batch, x FROM out ORDER BY rowid").fetchall() == [(i, 10 * i + k) for i in range(6) for k in range(3)]


def test_a_failed_write_stops_the_build_with_its_error(con):
    computed = []

    def compute(i):
        computed.append(i)
        return frame(i)

    def write(writer, f, i):
        if i == 1:
            writer.execute("INSERT INTO out VALUES ('not a number', 1)")  # DuckDB's own error
        insert(writer, f)

    with pytest.raises(duckdb.ConversionException, match="not a number"):
        _computed_and_written(con, 6, lambda i: i, compute, write, quiet_countdown)
    assert computed == [0, 1, 2]  # batch 2 was under way when batch 1's write failed; no later batch began
    assert con.sql("SELECT DISTINCT batch FROM out ORDER BY 1").fetchall() == [(0,)]


def test_a_failed_batch_waits_for_the_write_under_way_then_raises(con):
    done = []

    def compute(i):
        if i == 2:
            raise ValueError("batch 2 could not be computed")
        return frame(i)

    def write(writer, f, i):
        insert(writer, f)
        done.append(i)

    with pytest.raises(ValueError, match="batch 2"):
        _computed_and_written(con, 6, lambda i: i, compute, write, quiet_countdown)
    # Batch 1's write had started beside batch 2: it ended before the error went on (nothing is left
    # writing into the warehouse after the build has failed).
    assert done == [0, 1]
    assert con.sql("SELECT count(*) FROM out").fetchall() == [(6,)]


def test_no_batch_reads_and_writes_nothing(con):
    calls = []
    _computed_and_written(con, 0, calls.append, calls.append, lambda *a: calls.append(a), quiet_countdown)
    assert calls == []
