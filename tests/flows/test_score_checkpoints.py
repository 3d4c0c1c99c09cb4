"""A full build's score stage checkpoints the build file whenever it holds no product group, so that
DuckDB's own checkpoints (which take memory up to its limit) never fall inside a group's write beside
that group's frames (flows/stages/score.py). Seen from the file: each group is read with nothing left in
the write-ahead log."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import stages
from flows.settings import Settings
from warehouse import feature_store
from warehouse.connection import connect_read_write
from worlds.sample import write_sample_world


def test_every_group_is_read_with_the_log_written_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    paths = write_sample_world(tmp_path, seed=7)
    path = tmp_path / "w.duckdb"
    wal = Path(f"{path}.wal")
    con = connect_read_write(path)
    try:
        stages.load(con, paths["data_dir"], "run-1")
        stages.build(con)
        logged: list[tuple[str, int]] = []
        read = feature_store.group_rows

        def group_rows(c, frequency, mineral, columns, **kw):
            logged.append((mineral, wal.stat().st_size if wal.exists() else 0))
            return read(c, frequency, mineral, columns, **kw)

        monkeypatch.setattr(feature_store, "group_rows", group_rows)
        settings = Settings()
        stages.features_and_scores(con, settings.features, settings.scoring, "run-1", incremental=False)
        # The groups were scored and written.
        assert con.sql("SELECT count(*) FROM main.route_score_values").fetchall()[0][0] > 0
    finally:
        con.close()
    assert len(logged) >= 2, f"the sample world should have several model groups: {logged}"
    assert all(size == 0 for _, size in logged), f"a group was read with writes still in the log: {logged}"


def test_a_groups_scores_are_let_go_before_the_next_group_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The process holds one group at a time: when a group is read, no earlier group's scored frame is
    still alive (enumerate() kept the last one, 1.1 GB at 20 M, through the next group's read and scoring)."""
    import sys
    import weakref

    score_module = sys.modules["flows.stages.score"]
    paths = write_sample_world(tmp_path, seed=7)
    con = connect_read_write(tmp_path / "w.duckdb")
    try:
        stages.load(con, paths["data_dir"], "run-1")
        stages.build(con)
        scored: list[weakref.ref] = []
        alive_at_read: list[int] = []
        read, score_routes = feature_store.group_rows, score_module.score_routes

        def group_rows(*args, **kw):
            alive_at_read.append(sum(ref() is not None for ref in scored))
            return read(*args, **kw)

        def scoring(*args, **kw):
            scores, explanations, fitted = score_routes(*args, **kw)
            scored.append(weakref.ref(scores))
            return scores, explanations, fitted

        monkeypatch.setattr(feature_store, "group_rows", group_rows)
        monkeypatch.setattr(score_module, "score_routes", scoring)
        settings = Settings()
        stages.features_and_scores(con, settings.features, settings.scoring, "run-1", incremental=False)
    finally:
        con.close()
    assert len(scored) >= 2 and len(alive_at_read) == len(scored)
    assert alive_at_read == [0] * len(scored), f"earlier groups' scores alive at each read: {alive_at_read}"
