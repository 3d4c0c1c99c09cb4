"""features.route_features: every route's features (a full build), or those of the routes an incremental
build changed (warehouse/build.py leaves `build.dirty_routes`: per route, the first period whose legs
changed), each route from that period on, reading back just the history it needs. Both give the same table:
the features are summed exactly. Computed in batches of whole products to bound memory."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import duckdb
import polars as pl

from features.incremental import NEEDED, ROUTE_NO, baseline_reach, lookback

from features.params import FeatureParams

from features.route_features import build_route_features
from flows.progress import Countdown
from models.scoring import SCORING_INPUTS, in_key_order
from warehouse import feature_store as store
from warehouse.connection import release_memory

# Route-periods per batch of a feature build: bounds memory (features are ~120 columns wide), while each
# batch stays large enough for Polars to work on whole columns (tests/benchmarks/bench_scale.py).
FEATURE_BATCH_ROWS = 250_000
# An incremental build reads about half of its routes' mart rows (the lookback) and keeps a tenth of those
# past the features' first pass: larger batches, fewer of them (each has a fixed cost of queries and plans).
INCREMENTAL_BATCH_ROWS = 1_000_000


def _features_of(legs: pl.DataFrame, con: duckdb.DuckDBPyConnection, monthly: FeatureParams,
                 floors: pl.DataFrame | None = None) -> pl.DataFrame:
    """The features of `legs`, per frequency; `floors` (store.mineral_floors) read from the warehouse when not
    given (a batched build reads them once: a query per batch was 0.08 s of each 2 s batch)."""
    floors = store.mineral_floors(con) if floors is None else floors
    frequencies = legs["frequency"].unique(maintain_order=True).to_list()
    # One frequency (the rule in a batch): the frame as it is, not a copy made by group_by.
    groups = [(freq, legs if len(frequencies) == 1 else legs.filter(pl.col("frequency") == freq)) for freq in frequencies]
    # No legs at all (nothing loaded, or nothing that makes a route): an empty frame of the features' columns.
    groups = groups or [("M", legs)]
    frames = [build_route_features(group, FeatureParams.for_frequency(freq, monthly), floors) for freq, group in groups]
    return pl.concat([f.collect() for f in frames], how="diagonal_relaxed")


def route_features_from(con: duckdb.DuckDBPyConnection, monthly: FeatureParams, screen: bool = False) -> pl.DataFrame:
    """features.route_features as a frame: the mart's legs with every feature, per frequency; with `screen`,
    not for the routes update_features would screen out."""
    return _features_of(store.all_legs(con, screen), con, monthly)


def empty_route_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams) -> pl.DataFrame:
    """features.route_features' columns, no row (nothing to compute features for: an empty mart, or every
    route screened)."""
    return _features_of(store.no_legs(con), con, monthly)


def _changed_starts(con: duckdb.DuckDBPyConnection, monthly: FeatureParams, batches: str | None) -> None:
    """Temp table _changed_starts (warehouse.feature_store.make_changed_starts), with each frequency's
    lookback and baseline reach."""
    annual = FeatureParams.for_frequency("A", monthly)
    store.make_changed_starts(con, batches, (lookback(monthly), baseline_reach(monthly)),
                              (lookback(annual), baseline_reach(annual)))


def changed_route_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams,
                           batch: int | None = None) -> pl.DataFrame:
    """The features of the route-periods build.dirty_routes names (each route from its first changed period
    on), computed from the mart rows they need (see _changed_starts). With `batch`, only the products of that
    batch of the temp table _changed_starts, which update_features has made (and _grid_origin); without, all
    of them."""
    if batch is None:
        _changed_starts(con, monthly, None)
        store.make_grid_origin(con)
        try:
            with store.silent_routes(con, screen=False):  # on its own: no route screened
                return changed_route_features(con, monthly, 0)
        finally:
            store.drop_temp(con, "_changed_starts", "_grid_origin")
    return _changed_features(_changed_legs(con, batch), con, monthly)


def _changed_legs(con: duckdb.DuckDBPyConnection, batch: int) -> pl.DataFrame:
    """The mart rows batch `batch` of _changed_starts needs (changed_route_features)."""
    legs = store.changed_legs(con, batch, ROUTE_NO, NEEDED)
    # As a full build's batches: the blocks DuckDB cached reading them go back before Polars works on them
    # (the 20 M world's incremental month held 2.99 GiB to its end without this).
    release_memory(con)
    return legs


def _changed_features(legs: pl.DataFrame, con: duckdb.DuckDBPyConnection, monthly: FeatureParams,
                      floors: pl.DataFrame | None = None) -> pl.DataFrame:
    """changed_route_features of the rows _changed_legs read, in key order."""
    # _first_changed rides along through the features (they keep the frame's other columns).
    features = _features_of(legs, con, monthly, floors)
    return in_key_order(features.filter(pl.col("period") >= pl.col("_first_changed"))
                        .drop("_first_changed", NEEDED, strict=False))


def _computed_and_written(con: duckdb.DuckDBPyConnection, count: int, read: Callable[[int], Any],
                          compute: Callable[[Any], pl.DataFrame],
                          write: Callable[[duckdb.DuckDBPyConnection, pl.DataFrame, int], None],
                          countdown: Countdown) -> None:
    """Batches 0..count-1 of a feature build, each read from the warehouse (read(i), on `con`), computed in
    Polars (compute) and written (write(writer, frame, i), on a second connection to the same database), in
    order: batch i is written in a thread of its own while batch i+1 is computed. The write is DuckDB's work
    and the features Polars', about 1.1 and 1.5 of the 2 cores each. One after the other, the 5 M world's
    features took 78.1 s (1.65 cores busy); overlapped, 69.1 s (1.9 cores); the same table, row for row.

    DuckDB works on `con` only between writes: read() lowers its memory limit for a moment
    (release_memory), which a write running beside it could fail on. So batch i+1 is read after batch i-1
    is written and before batch i's write starts. At most two batches' features are held at once (one
    written, one computed): a batch of 250 k route-periods is ~0.3 GB. A failed write stops the build at
    the next batch, with its error; a failed batch lets the write under way end before its error goes on."""
    if count == 0:
        return
    writer = con.cursor()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transship-features-write")
    pending: Future | None = None
    try:
        data = read(0)
        for i in range(count):
            countdown(i)
            frame = compute(data)
            del data
            if pending is not None:
                pending.result()  # batch i-1 written (or its error raised here): `con` is free again
            data = read(i + 1) if i + 1 < count else None
            pending = pool.submit(write, writer, frame, i)
            del frame  # the write holds it until it is done
        pending.result()
    finally:
        pool.shutdown(wait=True)  # a write under way ends before an error goes on: none is left running
        writer.close()


def write_all_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams,
                       batch_rows: int = FEATURE_BATCH_ROWS) -> int:
    """features.route_features for the whole mart but the routes of the temp table _silent_routes (none
    when there is no such table), computed in batches of whole products, in key order, each written while
    the next is computed (_computed_and_written). Returns the row count."""
    with store.silent_routes(con, screen=False):  # on its own: no route screened
        batches = store.product_batches(con, "_feature_batches", batch_rows)
        if not batches:  # an empty mart, or every route screened: an empty table of the right shape
            store.write_features(con, empty_route_features(con, monthly), create=True)
        store.make_grid_origin(con)
        rows: list[int] = []
        sink = store.RowGroupWriter(create=True)

        def read(i: int) -> pl.DataFrame:
            legs = store.batch_legs(con, batches[i])
            release_memory(con)
            return legs

        def write(writer: duckdb.DuckDBPyConnection, features: pl.DataFrame, i: int) -> None:
            sink.write(writer, features)
            rows.append(features.height)

        # In key order (already, as a rule: then no copy), written as it is: sorting ~120 columns in DuckDB
        # would cost more than the write.
        floors = store.mineral_floors(con)
        _computed_and_written(con, len(batches), read,
                              lambda legs: in_key_order(_features_of(legs, con, monthly, floors)),
                              write, Countdown("  features: batch", len(batches)))
        sink.flush(con)  # every batch written: what is held back, on the build's connection
        store.drop_temp(con, "_feature_batches", "_grid_origin")
        return sum(rows)


def update_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams, incremental: bool,
                    screen: bool = False) -> tuple[pl.DataFrame | int, dict[str, int]]:
    """Write features.route_features: all of it (returns its row count; the rows stay in the warehouse), or
    the changed route-periods (returns them, with the columns scoring reads: SCORING_INPUTS); and what was
    screened out before the features.

    With `screen` (models.evidence.screens_silent_routes: the run's scoring parameters allow it), the routes
    with a leg that never carried the product (warehouse.feature_store.make_silent_routes: the hub never sent
    the US any, where no route score could reach min_evidence, or China never sent the hub any, where there
    were no Chinese goods to pass on) get no features, and so no scores. An incremental build drops
    the rows of a route that became silent, and computes a route that stopped being silent from its first
    period (rescope_flipped_routes), so that it ends with the same table as a full build.

    The changed features are computed in batches of whole products, as a full build's are: a new month
    changes every route, and each route's lookback (~4 years of months) is read back to recompute it, so one
    batch would hold most of the mart in memory."""
    with store.silent_routes(con, screen) as screened:
        if not incremental:
            return write_all_features(con, monthly), screened
        screened["routes_rescoped"] = store.rescope_flipped_routes(con)
        return _update_changed_features(con, monthly), screened


def _update_changed_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams) -> pl.DataFrame:
    """update_features for an incremental build."""
    from warehouse.outputs import delete_changed_ranges

    batches = store.product_batches(con, "_changed_batches", INCREMENTAL_BATCH_ROWS, only_routes="build.dirty_routes")
    # The spells are read from the rows just before the routes' first changed periods, which the deletion
    # leaves in place; read first all the same.
    _changed_starts(con, monthly, "_changed_batches")
    store.make_grid_origin(con)
    delete_changed_ranges(con, ("features.route_features",))
    changed: list[pl.DataFrame] = []
    last: list[pl.DataFrame] = []
    sink = store.RowGroupWriter()

    def write(writer: duckdb.DuckDBPyConnection, features: pl.DataFrame, i: int) -> None:
        last[:] = [features]
        if features.height:
            sink.write(writer, features)
            changed.append(features.select(SCORING_INPUTS))

    floors = store.mineral_floors(con)
    _computed_and_written(con, len(batches), lambda i: _changed_legs(con, batches[i]),
                          lambda legs: _changed_features(legs, con, monthly, floors), write,
                          Countdown("  features of the changed routes: batch", len(batches)))
    sink.flush(con)
    store.drop_temp(con, "_changed_batches", "_changed_starts", "_grid_origin")
    if changed:
        return pl.concat(changed, how="diagonal_relaxed")
    # Nothing changed: an empty frame, the last batch's (not all dirty routes again, unbatched), or one read
    # for no route when no dirty route has a row in the mart.
    return last[0] if last else changed_route_features(con, monthly)
