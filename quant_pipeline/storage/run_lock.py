"""One run at a time per warehouse, across processes: the run lock beside the warehouse file.

DuckDB's own lock is per connection, and steps keep connections short, so without more two runs
would take turns step by step and leave their tables interleaved. A *run* therefore holds an
exclusive ``fcntl.flock`` on ``<stem>.run.lock`` (beside ``<stem>.duckdb``) from before its first
step to after its last write (and, for ``quant-pipeline run``, its publish):

- ``quant-pipeline run`` takes it around the whole in-process materialization;
- a Dagster-launched run takes it when its ``warehouse`` resource is initialised, once per run
  under the in-process executor the project's ``Definitions`` use, and keeps it to the run's
  teardown (``defs/resources.py``);
- the published-copy sensor tries it without waiting and skips when a run holds it.

The holder writes who it is into the file (PID, host, program, run id, since when), so a waiter
says what it waits for. A waiter polls (50 ms, doubling to 1 s) up to a bounded timeout
(``QUANT_PIPELINE_RUN_LOCK_TIMEOUT``, default 3600 s; 0 fails at once) and then raises
:class:`WarehouseBusyError` naming the holder. The kernel drops a ``flock`` when its process
ends, however it ends (``kill -9`` included), so a crashed run never leaves a stale lock.

Within one process the lock is re-entrant for the thread that holds it (the CLI holds it and the
run it materializes in-process initialises the resource again); other threads wait for it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from quant_pipeline.storage.warehouse import WarehouseError, seconds_from_env

log = logging.getLogger(__name__)

DEFAULT_RUN_LOCK_TIMEOUT = 3600.0
RUN_LOCK_TIMEOUT_ENV = "QUANT_PIPELINE_RUN_LOCK_TIMEOUT"


class WarehouseBusyError(WarehouseError):
    """Another run held the warehouse for longer than the run lock timeout."""


def run_lock_timeout_seconds() -> float:
    """QUANT_PIPELINE_RUN_LOCK_TIMEOUT (seconds a run waits for another run to finish), default
    3600; 0 fails at once."""
    return seconds_from_env(RUN_LOCK_TIMEOUT_ENV, DEFAULT_RUN_LOCK_TIMEOUT)


def run_lock_path(warehouse: str | Path) -> Path:
    """The run lock of a warehouse file: ``<stem>.run.lock`` in the same folder."""
    path = Path(warehouse).resolve()  # one lock whatever link or relative path reaches the file
    return path.with_name(f"{path.stem}.run.lock")


@dataclass(frozen=True)
class Holder:
    """Who holds a run lock, as written into the lock file."""

    pid: int
    host: str
    program: str
    since: str  # ISO timestamp, UTC
    run_id: str | None = None

    def describe(self) -> str:
        """``run <id> (<program>, PID <n> on <host>, since <time>)``."""
        who = f"run {self.run_id}" if self.run_id else "a run"
        return f"{who} ({self.program}, PID {self.pid} on {self.host}, since {self.since})"


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in the lock file ``path`` (None: unreadable, empty or released)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Acquired:
    """What taking the lock cost: seconds waited and the holder waited for (None: free)."""

    waited: float
    waited_for: Holder | None


@dataclass
class _Held:
    """This process's hold on one lock file (re-entrant for the holding thread)."""

    thread_lock: threading.RLock = field(default_factory=threading.RLock)
    fd: int | None = None
    depth: int = 0
    holder: Holder | None = None


_REGISTRY_LOCK = threading.Lock()
_HELD: dict[str, _Held] = {}


def _entry(path: Path) -> _Held:
    with _REGISTRY_LOCK:
        return _HELD.setdefault(str(path.resolve()), _Held())


def _write_holder(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder.__dict__).encode(), 0)


def _busy_message(warehouse: Path, holder: Holder | None, waited: float, timeout: float) -> str:
    who = holder.describe() if holder else "another process (holder not recorded yet)"
    return (
        f"warehouse {warehouse} is in use by {who}; waited {waited:.1f} s "
        f"({RUN_LOCK_TIMEOUT_ENV}={timeout:g}). One run writes a warehouse at a time: let that "
        "run finish (or stop it) and retry, or raise the timeout."
    )


def _flock_waiting(
    warehouse: Path, timeout: float, on_wait: Callable[[str], None] | None
) -> tuple[int, Acquired]:
    """Open the run lock of ``warehouse`` and ``flock`` it exclusively, polling up to
    ``timeout`` seconds."""
    path = run_lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseError(f"cannot open the run lock {path}: {exc}") from exc
    started, delay, waited_for = time.monotonic(), 0.05, None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, Acquired(time.monotonic() - started, waited_for)
        except BlockingIOError:
            pass
        waited = time.monotonic() - started
        current = read_holder(path)
        if waited >= timeout:
            os.close(fd)
            raise WarehouseBusyError(
                _busy_message(warehouse, current or waited_for, waited, timeout)
            )
        if current is not None and current != waited_for:
            waited_for = current
            message = (
                f"waiting for the warehouse: {current.describe()} holds it; waiting up to "
                f"{timeout:g} s ({RUN_LOCK_TIMEOUT_ENV})"
            )
            if on_wait is not None:
                on_wait(message)
            else:
                log.warning(message)
        time.sleep(min(delay, max(timeout - waited, 0.0)))
        delay = min(delay * 2, 1.0)


@contextmanager
def hold_run_lock(
    warehouse: str | Path,
    program: str,
    run_id: str | None = None,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Acquired]:
    """Hold the run lock of ``warehouse`` for the ``with`` block, waiting for another run up to
    ``timeout`` seconds (default :func:`run_lock_timeout_seconds`); ``on_wait`` receives the
    one-line "waiting for ..." message each time the holder changes (without it, the message is
    logged as a warning). Raises
    :class:`WarehouseBusyError` naming the holder when the wait runs out.

    Re-entrant in the holding thread: an inner hold returns at once and, given a ``run_id``,
    records it as the holder's run."""
    warehouse = Path(warehouse)
    timeout = run_lock_timeout_seconds() if timeout is None else timeout
    entry = _entry(run_lock_path(warehouse))
    if not entry.thread_lock.acquire(timeout=timeout if timeout > 0 else 0.001):
        raise WarehouseBusyError(_busy_message(warehouse, entry.holder, timeout, timeout))
    try:
        if entry.depth == 0:
            fd, acquired = _flock_waiting(warehouse, timeout, on_wait)
            since = datetime.now(UTC).isoformat(timespec="seconds")
            entry.fd, entry.holder = fd, Holder(os.getpid(), socket.gethostname(), program, since)
        else:
            acquired = Acquired(0.0, None)
        try:
            if run_id is not None and entry.holder is not None and entry.holder.run_id != run_id:
                entry.holder = Holder(**{**entry.holder.__dict__, "run_id": run_id})
            if entry.depth == 0 or run_id is not None:
                _write_holder(entry.fd, entry.holder)  # type: ignore[arg-type]
        except BaseException:
            if entry.depth == 0:  # never keep a lock whose holder could not be recorded
                _release(entry)
            raise
        entry.depth += 1
        try:
            yield acquired
        finally:
            entry.depth -= 1
            if entry.depth == 0:
                _release(entry)
    finally:
        entry.thread_lock.release()


def _release(entry: _Held) -> None:
    fd, entry.fd, entry.holder = entry.fd, None, None
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)  # a waiter reading the file now sees no stale holder
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
