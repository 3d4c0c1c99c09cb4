"""Analysts' decisions on routes: the review table, and how decisions reach the flagged list.

`review.decisions` is append-only: every decision ever recorded, with who, when, the note and the evidence
the analyst saw (the route's excess tonnes at the time). `review.current_decisions` is the latest decision
per route. A run copies the live warehouse when it starts and, when it publishes, carries over the live
file's decisions (so a decision recorded while a run was building is never lost); nothing in a rebuild
writes to the `review` schema.

Writing a decision copies the live file, appends to the copy and renames it over the live file, under the
same short publication lock a run's publication takes. Readers with the warehouse open (DuckDB's
command-line tool, `transship sql`) keep their snapshot and are never locked out.

How decisions act (in `warehouse.outputs`):
- dismissed: the route is held back from the flagged list (listed in `main.held_back_routes` with the
  reason) until its evidence, the largest excess over its prior run rate in a flagged period, grows by
  `dismissed_regrowth` (0.5 = 50 %) over what the analyst saw.
- confirmed and watching: the route is on `main.watch_list`, and its periods after the reviewed one are
  reported whether flagged or not.
- confirmed and dismissed are labels: `main.review_labels` says for each whether this run's model flags it,
  and the report shows the model's precision on them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

from warehouse import publish as pub
from warehouse.connection import WarehouseError, connect_read_write, execute_script, rows
from warehouse.contracts import relation_sql

DECISIONS = ("confirmed", "dismissed", "watching")


def ensure_review_schema(con: duckdb.DuckDBPyConnection) -> None:
    execute_script(con, relation_sql("ddl", "review"))


def carry_over_decisions(build_con: duckdb.DuckDBPyConnection, live: Path) -> int:
    """Replace the build's decisions with the live file's (the authority: decisions are written only there).
    Call with the publication lock held. Returns the number of decisions carried."""
    ensure_review_schema(build_con)
    if not live.exists():
        return 0
    build_con.execute(f"ATTACH '{_sql_str(live)}' AS live_wh (READ_ONLY)")
    try:
        has = rows(build_con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'live_wh' "
                              "AND schema_name = 'review' AND table_name = 'decisions'")[0][0]
        build_con.execute("DELETE FROM review.decisions")
        if has:
            build_con.execute("INSERT INTO review.decisions BY NAME SELECT * FROM live_wh.review.decisions")
        return rows(build_con, "SELECT count(*) FROM review.decisions")[0][0]
    finally:
        build_con.execute("DETACH live_wh")


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


@dataclass(frozen=True)
class RouteRef:
    """A route as an analyst names it: a rank in the latest flagged list, or HUB:HS (e.g. THA:282580)."""

    rank: int | None = None
    hub_iso3: str | None = None
    hs_code: str | None = None

    @classmethod
    def parse(cls, text: str) -> RouteRef:
        text = text.strip()
        if text.isdigit():
            return cls(rank=int(text))
        hub, sep, hs = text.replace("/", ":").partition(":")
        if not sep or len(hub) != 3 or not hub.isalpha() or not hs.isdigit() or len(hs) < 4:
            raise WarehouseError(
                f"route {text!r}: give a rank from the latest flagged list (e.g. 3) or HUB:HS with the hub's ISO3 "
                "code and the product code (e.g. THA:282580)")
        return cls(hub_iso3=hub.upper(), hs_code=hs)


def resolve_route(con: duckdb.DuckDBPyConnection, ref: RouteRef, frequency: str | None = None,
                  mineral: str | None = None) -> dict:
    """The route's identity and the evidence the analyst is looking at (from the latest run)."""
    if ref.rank is not None:
        found = con.execute("SELECT frequency, mineral, hs_code, hub_iso3 FROM main.flagged_routes WHERE rank = ?",
                            [ref.rank]).fetchall()
        if not found:
            n = rows(con, "SELECT count(*) FROM main.flagged_routes")[0][0]
            raise WarehouseError(f"rank {ref.rank}: the latest flagged list has {n} routes; "
                                 "see `transship review --list`, or name the route as HUB:HS")
    else:
        found = con.execute(
            """SELECT DISTINCT frequency, mineral, hs_code, hub_iso3 FROM main.route_scores
               WHERE hub_iso3 = ? AND hs_code = ? AND (? IS NULL OR frequency = ?) AND (? IS NULL OR mineral = ?)
               ORDER BY ALL""",
            [ref.hub_iso3, ref.hs_code, frequency, frequency, mineral, mineral]).fetchall()
        if not found:
            raise WarehouseError(
                f"{ref.hub_iso3}:{ref.hs_code}: no such route was scored in the latest run"
                + (f" (frequency {frequency})" if frequency else "") + (f" (mineral {mineral})" if mineral else "")
                + "; check the hub's ISO3 code and the HS6 code against `transship review --list`")
        if len(found) > 1:
            options = "; ".join(f"--frequency {f} --mineral {m}" for f, m, _, _ in found)
            raise WarehouseError(f"{ref.hub_iso3}:{ref.hs_code} names {len(found)} routes; add one of: {options}")
    frequency_, mineral_, hs_code, hub = found[0]
    evidence = con.execute(
        """SELECT max(route_excess_kg) FILTER (WHERE flagged) AS flagged_peak, max(route_excess_kg) AS any_peak,
                  arg_max(period, route_score) AS peak_period, max(route_score) AS peak_score
           FROM main.route_scores WHERE frequency = ? AND mineral = ? AND hs_code = ? AND hub_iso3 = ?""",
        [frequency_, mineral_, hs_code, hub]).fetchall()[0]
    flagged = con.execute(
        "SELECT rank, peak_period, peak_route_score, evidence_kg, run_id FROM main.flagged_routes "
        "WHERE frequency = ? AND mineral = ? AND hs_code = ? AND hub_iso3 = ?",
        [frequency_, mineral_, hs_code, hub]).fetchall()
    run_id = rows(con, "SELECT max(run_id) FROM main.runs WHERE status = 'succeeded'")[0][0]
    if flagged:
        rank, period, score, evidence_kg, run_id = flagged[0]
    else:
        rank, period, score = None, evidence[2], evidence[3]
        evidence_kg = evidence[0] if evidence[0] is not None else evidence[1]
    return {"frequency": frequency_, "mineral": mineral_, "hs_code": hs_code, "hub_iso3": hub, "run_id": run_id,
            "reviewed_period": period, "was_flagged": bool(flagged), "rank_seen": rank,
            "route_score_seen": score, "evidence_kg": evidence_kg}


def record_decision(live: Path, ref: RouteRef, decision: str, analyst: str, note: str,
                    frequency: str | None = None, mineral: str | None = None,
                    lock_timeout_s: float = 120.0) -> dict:
    """Append a decision to the live warehouse's review.decisions (copy, append, rename). Returns its row."""
    if decision not in DECISIONS:
        raise WarehouseError(f"decision {decision!r}: use one of {', '.join(DECISIONS)}")
    if not analyst.strip():
        raise WarehouseError("a decision needs the analyst's name (--by, or the TRANSSHIP_ANALYST variable)")
    if not note.strip():
        raise WarehouseError("a decision needs a note saying why (--note)")
    live = pub.real_path(live)

    def append(con: duckdb.DuckDBPyConnection) -> dict:
        row = resolve_route(con, ref, frequency, mineral)
        decision_id = rows(con, "SELECT coalesce(max(decision_id), 0) + 1 FROM review.decisions")[0][0]
        row.update(decision_id=decision_id, analyst=analyst.strip(), decision=decision, note=note.strip(),
                   decided_at=datetime.now(timezone.utc).replace(tzinfo=None))
        con.register("_decision", pl.DataFrame([row]))
        con.execute("INSERT INTO review.decisions BY NAME SELECT * FROM _decision")
        con.unregister("_decision")
        return row

    return change_live(live, append, lock_timeout_s)


T = TypeVar("T")


def change_live(live: Path, change: Callable[[duckdb.DuckDBPyConnection], T], lock_timeout_s: float = 120.0) -> T:
    """Apply `change` to the live warehouse the safe way: under the publication lock, once no other program
    writes it, on a copy that is checkpointed and renamed over it; then refresh the decisions' backup beside
    it. A full or read-only disk, or a folder this user cannot write, is an error that says so, and no copy is
    left behind."""
    pub.check_single_name(live)
    if not live.exists():
        raise WarehouseError(f"{live}: no warehouse here yet. Run `transship run --data DIR` (or `transship demo`) "
                             "first, or point --warehouse at an existing file.")
    tmp = live.with_name(f"{live.name}.review-{os.getpid()}")
    try:
        with pub.publication_lock(live, lock_timeout_s):
            pub.wait_for_writers(live, lock_timeout_s)
            pub.check_live(live)
            pub.remove_stale_copies(live)
            try:
                pub.copy_file(live, tmp)
                con = connect_read_write(tmp)
                try:
                    ensure_review_schema(con)
                    result = change(con)
                    con.execute("CHECKPOINT")
                finally:
                    con.close()
                pub.replace_live(tmp, live, lock_timeout_s)
            except BaseException:
                pub.discard_build(tmp)
                raise
    except OSError as exc:
        raise WarehouseError(_disk_advice(live, exc)) from None
    except duckdb.Error as exc:
        if pub.out_of_space(exc):
            raise WarehouseError(_disk_advice(live, OSError(errno.ENOSPC, str(exc)))) from None
        raise
    from warehouse.decisions_file import write_decisions_backup

    write_decisions_backup(live)
    return result


def _disk_advice(live: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"{live.parent}: the disk is full ({exc.strerror or exc}). Recording a decision writes a copy of the "
                f"warehouse ({live.stat().st_size / 1e6:,.0f} MB) beside it; free that much and try again. Nothing "
                "was recorded and the warehouse is as it was.")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"{live.parent}: this user cannot write there ({exc.strerror or exc}). A decision is written into "
                "the warehouse's folder; ask for write access, or work on a copy. Nothing was recorded.")
    return f"{live}: could not record the decision ({exc}). Nothing was recorded and the warehouse is as it was."


def review_queue(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The latest flagged list and the routes held back or watched, each with its last decision."""
    return con.sql(
        """
        SELECT 'flagged' AS list, f.rank, f.frequency, f.mineral, f.hs_code, f.hub_iso3, f.hub_name, f.peak_period,
               f.peak_route_score, f.evidence_kg, d.decision, d.analyst, d.decided_at, d.note
        FROM main.flagged_routes AS f
        LEFT JOIN review.current_decisions AS d USING (frequency, mineral, hs_code, hub_iso3)
        UNION ALL BY NAME
        SELECT 'held back' AS list, NULL AS rank, frequency, mineral, hs_code, hub_iso3, hub_name, peak_period,
               peak_route_score, evidence_kg, decision, analyst, decided_at, note
        FROM main.held_back_routes
        UNION ALL BY NAME
        SELECT 'watch list' AS list, NULL AS rank, frequency, mineral, hs_code, hub_iso3, hub_name,
               max(period) AS peak_period, max(route_score) AS peak_route_score, NULL AS evidence_kg,
               any_value(decision) AS decision, any_value(analyst) AS analyst, any_value(decided_at) AS decided_at,
               any_value(note) AS note
        FROM main.watch_list GROUP BY ALL
        ORDER BY list, rank NULLS LAST, hub_iso3, hs_code
        """).pl()


def decision_history(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql("SELECT * FROM review.decisions ORDER BY decided_at, decision_id").pl()


def analyst_labels(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The routes analysts confirmed (label true) or dismissed (false), by their latest decision."""
    return con.sql("SELECT frequency, mineral, hs_code, hub_iso3, decision = 'confirmed' AS label "
                   "FROM review.current_decisions WHERE decision IN ('confirmed', 'dismissed')").pl()
