"""The interactive SQL prompt, driven through a prompt_toolkit pipe on a real DuckDB file."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.table import Table
from rich.text import Text

from flows.sql_prompt import completion_words, interactive
from warehouse.analyst_sql import connect_analyst


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE route_scores AS SELECT 'THA' AS hub_iso3, 0.82 AS route_score")
    con.execute("COMMENT ON TABLE route_scores IS 'one row per route-period'")
    con.close()
    ro = connect_analyst(path)
    yield ro, tmp_path
    ro.close()


def drive(con, text: str) -> tuple[int, list]:
    shown: list = []
    with create_pipe_input() as pipe:
        pipe.send_text(text)
        session = PromptSession(input=pipe, output=DummyOutput())
        ran = interactive(con, session=session, show=shown.append)
    return ran, shown


def test_statements_run_across_lines_and_writes_are_refused(warehouse):
    con, tmp = warehouse
    ran, shown = drive(con, f"select hub_iso3,\n route_score from route_scores;\ndrop table route_scores;\n"
                            f"attach '{tmp / 'x.duckdb'}' as x (READ_WRITE);\nselec 1;\n.tables\n.quit\n")
    assert ran == 2  # the select and .tables
    texts = [str(s) for s in shown if isinstance(s, str | Text)]
    tables = [s for s in shown if isinstance(s, Table)]
    assert any("DROP would write" in t for t in texts)
    assert any("ATTACH opens another file" in t for t in texts)
    assert any("query failed" in t for t in texts)
    assert "1 row(s)" in texts
    assert [str(c.header) for c in tables[0].columns] == ["hub_iso3", "route_score"]
    assert [str(c.header) for c in tables[1].columns] == ["table_name", "comment"]
    assert not (tmp / "x.duckdb").exists()
    assert con.sql("SELECT count(*) FROM route_scores").fetchall() == [(1,)]


def test_end_of_input_leaves_and_completion_knows_the_warehouse(warehouse):
    con, _ = warehouse
    ran, _ = drive(con, "select 1;\n\x04")  # then Ctrl-D on an empty line: end of input
    assert ran == 1
    words = completion_words(con)
    assert {"route_scores", "main.route_scores", "route_score", "hub_iso3", "select"} <= set(words)


def test_frames_print_as_tables(warehouse):
    from flows.sql_prompt import frame_table

    table = frame_table(pl.DataFrame({"a": [1.23456, None], "b": ["x", "y"]}), max_rows=1)
    assert table.row_count == 1 and table.columns[0].justify == "right"
