"""How a failure reaches the person who ran a command: one `error:` line that says what to do, and an exit
code a scheduler can act on (2: the input or the setup needs fixing; 1: a fault in transship itself).

A run marks the exception that ended it with whether it had published (`mark_run_outcome`), so the last
line says truthfully whether the warehouse changed. Tracebacks and library noise appear with --debug only.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

BAD_INPUT, INTERNAL, ABORTED = 2, 1, 130
_OUTCOME = "_transship_outcome"


def mark_run_outcome(exc: BaseException, *, published: bool, stage: str, run_id: str | None = None) -> None:
    """Note on `exc` whether the run that raised it had published its warehouse, in which stage it failed and
    the run's id (kept on the exception: it passes unchanged through Prefect's flow and task engines)."""
    if getattr(exc, _OUTCOME, None) is None:
        try:
            setattr(exc, _OUTCOME, (published, stage, run_id))
        except AttributeError:  # an exception type without a __dict__: the message says less, that is all
            pass


def run_outcome(exc: BaseException) -> tuple[bool, str, str | None] | None:
    return getattr(exc, _OUTCOME, None)


def bad_input_types() -> tuple[type[BaseException], ...]:
    """Failures that mean the input, the warehouse file or the setup needs the user's attention."""
    from warehouse.catalogue import CatalogueError
    from warehouse.connection import WarehouseError
    from warehouse.fetch import FetchError
    from warehouse.files import IngestError

    return (IngestError, WarehouseError, CatalogueError, FetchError, click.ClickException)


def outcome_line(exc: BaseException) -> str:
    outcome = run_outcome(exc)
    if outcome is None:
        return ""
    published, stage, run_id = outcome
    run = f"run {run_id}" if run_id else "the run"
    if published:
        return (f"The warehouse was published by {run}; it failed afterwards ({stage}). Its scores and flagged "
                "lists are in the warehouse: `transship sql` reads them.")
    return f"The warehouse was left as it was before this run ({run}, failed in {stage})."


def report(exc: BaseException, debug: bool) -> int:
    """Print the failure for a person (stderr) and return the exit code."""
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        click.echo("aborted", err=True)
        return ABORTED
    if isinstance(exc, click.UsageError):
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        click.secho(f"error: {exc.format_message()}", fg="red", err=True)
        return BAD_INPUT
    if isinstance(exc, click.ClickException):
        click.secho(f"error: {exc.format_message()}", fg="red", err=True)
        return BAD_INPUT
    if isinstance(exc, bad_input_types()):
        click.secho(f"error: {first_line(exc)}", fg="red", err=True)
        code = BAD_INPUT
    else:
        click.secho(f"error: internal fault: {type(exc).__name__}: {first_line(exc)}", fg="red", err=True)
        click.echo("This is a fault in transship or a library it uses, not in your input. Run the command again "
                   "with --debug (transship --debug ...) for the traceback, and report it with the run's id.",
                   err=True)
        code = INTERNAL
    line = outcome_line(exc)
    if line:
        click.echo(line, err=True)
    return code


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if "\n" not in text or isinstance(exc, bad_input_types()) else text.splitlines()[0]


def forget(exc: BaseException) -> None:
    """Let go of what the failure's tracebacks hold (DuckDB connections, frames), so that nothing of it is
    still alive when the interpreter exits (the DuckDB bindings list every object alive then)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
            current.__traceback__ = None
        current = current.__cause__ or current.__context__
    sys.last_type = sys.last_value = sys.last_traceback = None
    gc.collect()


def failed(exc: BaseException, stage: str, run_id: str | None = None) -> BaseException:
    """`exc`, marked as ending a run that did not publish."""
    mark_run_outcome(exc, published=False, stage=stage, run_id=run_id)
    return exc


def want_of_room(exc: BaseException, stage: str, live: Path) -> BaseException | None:
    """A run's failure for want of disk or memory, as advice; None for any other failure."""
    import duckdb

    from warehouse.connection import WarehouseError
    from warehouse.publish import out_of_space

    if out_of_space(exc):
        return WarehouseError(
            f"{live.parent}: the disk is full ({stage} could not write). A run needs room for a copy of "
            f"the warehouse plus what it adds; free space there or point --warehouse elsewhere. The "
            f"partial build was removed.")
    if isinstance(exc, duckdb.OutOfMemoryException):
        limit = os.environ.get("TRANSSHIP_DUCKDB_MEMORY_LIMIT")
        return WarehouseError(
            f"{stage}: DuckDB ran out of memory within "
            f"{'TRANSSHIP_DUCKDB_MEMORY_LIMIT=' + limit if limit else 'its default limit (80 % of RAM)'} "
            f"({str(exc).splitlines()[0]}). Raise the limit (or unset it), or run on a machine with more "
            f"memory: measured, 5 M input rows (488 MB of CSV) complete within 400 MB and 20 M rows "
            f"(2 GB) within 1.5 GB, spilling to <warehouse>.tmp. The partial build was removed.")
    return None


def record_failure(live: Path, run: dict[str, Any]) -> None:
    """Best effort: note the failed run in the live warehouse (its data stay untouched)."""
    from flows.progress import step
    from warehouse.connection import checkpoint, connect_read_write
    from warehouse.outputs import record_run
    from warehouse.schema import ensure_schema

    try:
        con = connect_read_write(live)
        try:
            ensure_schema(con)
            record_run(con, run)
            checkpoint(con)
        finally:
            con.close()
    except Exception as exc:  # the run's own error matters more than this note
        step(f"could not record the failed run in {live}: {exc}")
