"""features.route_features is written in whole DuckDB row groups (warehouse.feature_store.RowGroupWriter): the
same rows in the same order as a write per batch, every write but the last a whole number of row groups."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse import feature_store


def test_row_group_writer_writes_whole_row_groups_and_keeps_the_order(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_store, "ROW_GROUP_ROWS", 5)
    written: list[int] = []
    real_write = feature_store.write_features

    def counted(con, features, create=False):
        written.append(features.height)
        real_write(con, features, create=create)

    monkeypatch.setattr(feature_store, "write_features", counted)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA features")
    sizes = [3, 7, 0, 12, 4, 1]
    start = 0
    frames = []
    for n in sizes:
        frames.append(pl.DataFrame({"row": list(range(start, start + n)), "x": [float(i) / 3 for i in range(start, start + n)]},
                                   schema={"row": pl.Int64, "x": pl.Float64}))
        start += n
    sink = feature_store.RowGroupWriter(create=True)
    for frame in frames:
        sink.write(con, frame)
    sink.flush(con)

    # The first write makes the table (with no row: 3 rows are under a row group), every later one but the
    # flush is whole row groups, and nothing is held back at the end.
    assert written[0] == 0 and all(n % 5 == 0 and n > 0 for n in written[1:-1]) and written[-1] == sum(sizes) % 5
    assert sum(written) == sum(sizes) and sink.held is None
    got = con.sql("SELECT row, x FROM features.route_features").pl()  # insertion order
    assert got.equals(pl.concat(frames))


def test_row_group_writer_appends_to_a_table_that_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_store, "ROW_GROUP_ROWS", 4)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA features; CREATE TABLE features.route_features (row BIGINT, x DOUBLE)")
    con.execute("INSERT INTO features.route_features VALUES (-1, 0.5)")
    sink = feature_store.RowGroupWriter()
    for rows in ([0, 1, 2], [3, 4, 5, 6, 7, 8]):
        sink.write(con, pl.DataFrame({"row": rows, "x": [r * 1.5 for r in rows]}))
    sink.flush(con)
    assert con.execute("SELECT list(row) FROM features.route_features").fetchall()[0][0] == [-1, *range(9)]
