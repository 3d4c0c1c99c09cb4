"""Build into a private copy, publish atomically, and keep two runs from writing at once.

Readers never see a half-built warehouse: a run copies the live file, writes the copy, checkpoints and
closes it, then renames it over the live file (os.replace is atomic on one filesystem). Readers that
have the old file open keep their snapshot. A run that fails leaves the live file as it was.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from warehouse.connection import WarehouseError


@contextmanager
def exclusive_run(live: Path) -> Iterator[None]:
    """Hold the warehouse's run lock; a second run fails at once with a clear message."""
    lock_path = live.with_name(live.name + ".lock")
    try:
        live.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "w")
    except OSError as exc:
        raise WarehouseError(
            f"{live.parent}: cannot write in this folder ({exc.strerror}). Point --warehouse (or "
            "TRANSSHIP_WAREHOUSE) at a folder this user can write to; nothing was changed.") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseError(
                f"{live}: another transship run is writing this warehouse (lock {lock_path}). "
                "Wait for it to finish; the last complete warehouse stays readable meanwhile."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def publication_lock(live: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """The short lock held while the live file is replaced (a run's publication, a recorded decision).
    Waits up to timeout_s, then fails with a clear message."""
    live.parent.mkdir(parents=True, exist_ok=True)
    lock_path = live.with_name(live.name + ".publish.lock")
    deadline = time.monotonic() + timeout_s
    with open(lock_path, "w") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"{live}: another process has been replacing the warehouse for {timeout_s:.0f} s "
                        f"(lock {lock_path}); try again in a moment.") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def abandoned_builds(live: Path) -> list[dict]:
    """Build files left by runs whose process died (call with the run lock held, so none is in use): their
    run ids, start times and files. `remove_abandoned` deletes them once the run noting them has published,
    so that the note is not lost with a run that fails too."""
    found = []
    for path in sorted(live.parent.glob(f"{live.name}.building-*")):
        run_id = path.name.split(".building-", 1)[1]
        # A build's companions are not runs: its write-ahead log (<build>.wal) and DuckDB's spill folder
        # (<build>.tmp, left behind when a run that spilled is killed). discard_build removes them with it.
        if "." in run_id or not path.is_file():
            continue
        try:  # run ids start with their UTC start time (see flows.pipeline.new_run_id)
            started = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ")
        except ValueError:
            started = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)
        found.append({"run_id": run_id, "started_at": started, "path": path})
    return found


def remove_abandoned(abandoned: list[dict]) -> None:
    for a in abandoned:
        discard_build(a["path"])


def build_path(live: Path, run_id: str) -> Path:
    return live.with_name(f"{live.name}.building-{run_id}")


def start_build(live: Path, run_id: str) -> Path:
    """A private copy of the live warehouse (or no file, for a first run) to build into."""
    build = build_path(live, run_id)
    for stale in (build, build.with_name(build.name + ".wal")):
        stale.unlink(missing_ok=True)
    if live.exists():
        copy_file(live, build)
    return build


COPY_THREADS = 4
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


def copy_file(src: Path, dst: Path, threads: int = COPY_THREADS) -> None:
    """Copy src to dst (contents, then permissions and times, as shutil.copy2): in `threads` parts at once
    with copy_file_range, which the kernel does without bringing the bytes into this process and which a
    filesystem with reflinks (XFS, Btrfs) does at once, sharing the blocks. On ext4, a 16 GB warehouse: 15.7 s
    against shutil.copy2's 19.7 s. Where the call is not supported (another filesystem, an old kernel), it is
    shutil.copy2."""
    size = src.stat().st_size
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            os.truncate(fout.fileno(), size)
            part = -(-size // max(1, threads))

            def copy_part(start: int) -> None:
                offset, end = start, min(size, start + part)
                while offset < end:
                    done = os.copy_file_range(fin.fileno(), fout.fileno(), min(end - offset, 1 << 30), offset, offset)
                    if done == 0:
                        raise OSError(errno.EIO, f"{src} ended at byte {offset} while being copied (size {size})")
                    offset += done

            with ThreadPoolExecutor(max(1, threads)) as pool:
                list(pool.map(copy_part, range(0, size, part or 1)))
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
        shutil.copy2(src, dst)
        return
    shutil.copystat(src, dst)


def publish(build: Path, live: Path) -> None:
    """Replace the live warehouse with the finished build (the build must be closed and checkpointed)."""
    if build.with_name(build.name + ".wal").exists():
        raise WarehouseError(f"{build}: write-ahead log still present; the build was not checkpointed")
    os.replace(build, live)


def discard_build(build: Path) -> None:
    """Remove a build file, its write-ahead log and DuckDB's spill folder (<build>.tmp)."""
    for path in (build, build.with_name(build.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(build.with_name(build.name + ".tmp"), ignore_errors=True)


def out_of_space(exc: BaseException) -> bool:
    """Whether exc (or what caused it) is a full disk or quota, from the OS or from DuckDB."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if "No space left on device" in str(seen) or "File too large" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
