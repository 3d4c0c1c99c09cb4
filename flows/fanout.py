"""Reading trade files, and fitting and scoring product groups, on a Dask cluster, through Prefect's Dask
task runner.

Ingest: each new file is read and turned into its loader's frame (warehouse/ingest.py: prepare_file, the
CPU-bound half of loading: parsing, decoding, the partner lookup) on a worker, a few files in flight at a
time, and written to the warehouse here, in the run's file order. Workers must see the data folder at the
same path (a shared mount); each checks that its copy of a file has the SHA-256 the run planned.

A full build's score step reads one product group at a time from the warehouse (features.route_features),
and each group's model is fitted and its rows scored and explained independently of the others
(models.scoring.score_routes). With `--dask-address` those per-group calls run as Prefect tasks on the Dask
cluster's workers, a few groups in flight at a time, while this process keeps reading the next groups and
writing the finished ones: the warehouse stays one DuckDB file written by one process, and the workers never
open it. Each group's model is seeded, so the scores are the same as in a single-process run.

Workers must run the same scoring code on the same library versions (`pip install` this project, at the
same commit, into the workers' environment): every task checks, and a mismatch stops the run with a message
naming the worker's versions instead of writing scores that a single-process run would not give.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.stages.score import FanOut, GroupResult
from models.scoring import score_routes
from warehouse.build import loading_code_fingerprint, scoring_code_fingerprint
from warehouse.ingest import FileToLoad, PrepareMap, prepare_file
from warehouse.raw_load import Prepared

DEFAULT_IN_FLIGHT = 4  # groups sent ahead of the one being written: keeps two or more workers busy


class FanOutError(RuntimeError):
    pass


@task(name="fit and score a product group", cache_policy=NO_CACHE, persist_result=False)
def score_group_task(rows: Any, params: Any, reuse: Any, expected_code: str) -> GroupResult:
    _same_code(scoring_code_fingerprint(), expected_code, "scoring")
    return score_routes(rows, params, reuse)


def _same_code(here: str, expected: str, what: str) -> None:
    if here != expected:
        import socket

        raise FanOutError(
            f"the Dask worker on {socket.gethostname()} runs different {what} code or libraries than this run: "
            f"worker {here}, run {expected}. Install this project at the same commit, with the same "
            f"requirements.lock, into the workers' environment and restart them.")


@task(name="read a file", cache_policy=NO_CACHE, persist_result=False)
def prepare_file_task(item: FileToLoad, countries: Any, expected_code: str) -> Prepared:
    _same_code(loading_code_fingerprint(), expected_code, "loading")
    return prepare_file(item, countries, check_digest=True)


def dask_prepare(in_flight: int = DEFAULT_IN_FLIGHT) -> PrepareMap:
    """A PrepareMap that reads each file on the flow's task runner (a DaskTaskRunner) and yields the results
    in order, with at most `in_flight` files read and not yet written (a read file is held in memory until
    it is written: a 150 MB Comtrade CSV is about 0.5 GB as a frame). Call it inside a flow run."""
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    expected = loading_code_fingerprint()

    def prepare(files: list[FileToLoad], countries: Any) -> Iterator[Prepared]:
        pending: deque[Any] = deque()
        for item in files:
            pending.append(prepare_file_task.with_options(task_run_name=f"read {item.path.name}").submit(
                item, countries, expected))
            while len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return prepare


def dask_fan_out(in_flight: int = DEFAULT_IN_FLIGHT) -> FanOut:
    """A FanOut that submits each group to the flow's task runner (a DaskTaskRunner) and yields the results
    in order, with at most `in_flight` groups submitted and not yet written. Call it inside a flow run."""
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    expected = scoring_code_fingerprint()

    def fan_out(groups: Iterable[tuple[Any, ...]]) -> Iterator[GroupResult]:
        pending: deque[Any] = deque()
        for rows, params, reuse in groups:
            name = (f"score {rows['frequency'][0]} {rows['mineral'][0]}" if rows.height else "score an empty group")
            pending.append(score_group_task.with_options(task_run_name=name).submit(rows, params, reuse, expected))
            while len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return fan_out


def dask_task_runner(address: str) -> Any:
    """Prefect's Dask task runner on an existing cluster (its scheduler's address, e.g. tcp://host:8786)."""
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=address)


def check_scheduler(address: str, timeout_s: float = 5.0) -> None:
    """Fail early, with advice, when the dask extra is not installed or nothing answers at the Dask
    scheduler's address."""
    import importlib.util
    import socket
    from urllib.parse import urlsplit

    if importlib.util.find_spec("prefect_dask") is None:
        raise FanOutError("--dask-address needs the dask extra, which this environment does not have: install it "
                          "with `.venv/bin/uv pip install --python .venv/bin/python -e '.[dask]'` (prefect-dask, "
                          "dask and distributed), or leave out --dask-address to run everything in this process.")

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
        raise FanOutError(f"--dask-address {address!r} is not a Dask scheduler address; give it as "
                          f"tcp://HOST:PORT (a scheduler listens on port 8786 by default)")
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout_s).close()
    except OSError as exc:
        raise FanOutError(
            f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc}). Start one (`dask scheduler`, "
            f"then `dask worker {address}` on each machine), check the address and the firewall, or leave out "
            f"--dask-address to run everything in this process.") from None


@contextmanager
def prefect_api_for_workers() -> Iterator[None]:
    """Make this run's Prefect server one the Dask workers can report to.

    With no PREFECT_API_URL, Prefect gives a run a temporary server whose address only this process knows;
    each worker would then start a temporary server of its own and record the group's task run there, where
    nobody sees it. So start the temporary server here, explicitly, and run with PREFECT_API_URL pointing at
    it: the task runner hands that setting to the workers with each task. It listens on 127.0.0.1, which
    workers on this machine reach; for workers elsewhere set PREFECT_API_URL to a server they can reach."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        server.stop()
