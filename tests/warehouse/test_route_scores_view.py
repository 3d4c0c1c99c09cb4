"""main.route_scores is a view: the stored scores (main.route_score_values) joined to the features. A
warehouse written when it was a table of every column is converted in place, rows and columns unchanged."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from warehouse.outputs import ensure_route_scores_view


@pytest.fixture
def con(scored_warehouse, tmp_path):
    """A read-write connection to a copy of the scored sample warehouse."""
    path, _ = scored_warehouse
    copy = tmp_path / "copy.duckdb"
    shutil.copy(path, copy)
    connection = duckdb.connect(str(copy))
    yield connection
    connection.close()


def test_a_warehouse_with_the_old_route_scores_table_is_converted(con):
    before = con.sql("SELECT * FROM main.route_scores ORDER BY frequency, mineral, hs_code, hub_iso3, period").pl()
    assert before.height > 5_000 and len(before.columns) > 100
    # What a warehouse from before the split holds: route_scores as a table, no route_score_values.
    con.execute("CREATE TABLE _old AS SELECT * FROM main.route_scores")
    con.execute("DROP VIEW main.route_scores")
    con.execute("DROP TABLE main.route_score_values")
    con.execute("ALTER TABLE _old RENAME TO route_scores")

    ensure_route_scores_view(con)
    kinds = con.sql("""SELECT table_name, table_type FROM information_schema.tables
                       WHERE table_name IN ('route_scores', 'route_score_values') ORDER BY 1""").fetchall()
    assert kinds == [("route_score_values", "BASE TABLE"), ("route_scores", "VIEW")]
    after = con.sql("SELECT * FROM main.route_scores ORDER BY frequency, mineral, hs_code, hub_iso3, period").pl()
    assert after.columns == before.columns and after.equals(before)
    stored = con.sql("SELECT * FROM main.route_score_values LIMIT 0").pl().columns
    assert len(stored) < 22


def test_a_group_written_in_slices_is_stored_whole_and_in_order(con, monkeypatch):
    # A large group's scores go to DuckDB a slice at a time (its memory handed back between slices): the
    # table must hold every row once, in the order given, as one statement would have written it.
    from warehouse import outputs

    scores = con.sql("SELECT * FROM main.route_score_values").pl()
    explanations = con.sql("SELECT * EXCLUDE (run_id) FROM main.route_explanations").pl()
    assert scores.height > 5_000
    monkeypatch.setattr(outputs, "SCORE_WRITE_ROWS", 1_000)
    outputs.write_group_scores(con, scores, explanations, "sliced-run", create=True)
    assert con.sql("SELECT * FROM main.route_score_values").pl().equals(scores)
    assert con.sql("SELECT count(*) FROM main.route_scores").fetchall()[0][0] == scores.height
