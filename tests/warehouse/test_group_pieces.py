"""Scoring reads a model group from features.route_features in pieces of whole products when it is large
(warehouse.feature_store.group_rows): the pieces together are exactly the frame one query gives, in key
order, as one chunk per column."""

from __future__ import annotations

import duckdb
from polars.testing import assert_frame_equal

from models.scoring import SCORING_INPUTS
from warehouse.feature_store import group_pieces, group_rows, model_groups


def test_a_group_read_in_pieces_is_the_group_read_at_once(scored_warehouse):
    path, _ = scored_warehouse
    con = duckdb.connect(str(path), read_only=True)
    try:
        frequency, mineral = model_groups(con)[0]
        columns = list(SCORING_INPUTS)
        whole = group_rows(con, frequency, mineral, columns, piece_rows=10**9)
        products = whole["hs_code"].n_unique()
        assert products >= 2 and whole.height > 100
        where = "frequency = ? AND mineral = ? AND has_history"
        pieces = group_pieces(con, where, [frequency, mineral], piece_rows=1)
        # One piece per product, in order, each its own range.
        assert [low for low, _ in pieces] == sorted(whole["hs_code"].unique().to_list())
        assert all(low == high for low, high in pieces)

        cut = group_rows(con, frequency, mineral, columns, piece_rows=whole.height // products)
        assert_frame_equal(cut, whole)
        assert set(cut.n_chunks("all")) == set(whole.n_chunks("all")) == {1}
        # The same with a period bound (an incremental run's read).
        after = whole["period"].sort()[whole.height // 2]
        assert_frame_equal(group_rows(con, frequency, mineral, columns, after=after, piece_rows=50),
                           group_rows(con, frequency, mineral, columns, after=after, piece_rows=10**9))
        assert group_rows(con, frequency, mineral, columns, after=after, piece_rows=50)["period"].min() > after
        assert_frame_equal(cut, cut.sort("hs_code", "hub_iso3", "period", maintain_order=True))
    finally:
        con.close()
