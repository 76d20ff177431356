"""Writes the call log in small batches, off the answer's path.

The call log is a record of what was asked and answered, not state: the state a call
changes is committed in its own transaction before the answer. Batching keeps the log from
costing every call a commit; the buffer is flushed at least every `interval_s` and at shutdown.
"""

import asyncio
import contextlib

import structlog

from tenants.call_log import NewCallLogEntry, add_call_log_entries
from tenants.database import Database
from tenants.errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)

MAX_BUFFERED = 10_000


class CallLogWriter:
    def __init__(self, database: Database, *, interval_s: float = 0.1, batch: int = 500) -> None:
        self._database = database
        self._interval_s = interval_s
        self._batch = batch
        self._buffer: list[NewCallLogEntry] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._flushing = asyncio.Lock()

    def record(self, entry: NewCallLogEntry) -> None:
        if len(self._buffer) >= MAX_BUFFERED:
            log.error("call_log_overflow", dropped_request_id=entry["request_id"])
            return
        self._buffer.append(entry)
        if len(self._buffer) >= self._batch:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="marketgate-call-log")

    async def stop(self) -> None:
        """Flush what is buffered and end the writer (never cancelled inside a transaction)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def flush(self) -> None:
        """Write everything buffered; returns once it is committed (or the database is down)."""
        async with self._flushing:
            await self._flush_buffer()

    async def _flush_buffer(self) -> None:
        while self._buffer:
            entries, self._buffer = self._buffer[: self._batch], self._buffer[self._batch :]
            try:
                await self._write(entries)
            except DatabaseUnavailableError as exc:
                self._buffer[:0] = entries
                log.warning("call_log_flush_failed", error=str(exc), buffered=len(self._buffer))
                return
            except Exception:  # a row the database refuses must not lose the batch or stop the writer
                log.exception("call_log_batch_refused", entries=len(entries))
                for entry in entries:
                    await self._write_alone(entry)

    async def _write(self, entries: list[NewCallLogEntry]) -> None:
        async with self._database.transaction() as session:
            await add_call_log_entries(session, entries=entries)

    async def _write_alone(self, entry: NewCallLogEntry) -> None:
        try:
            await self._write([entry])
        except Exception:  # this one row cannot be stored; the others were
            log.error("call_log_entry_dropped", request_id=entry["request_id"], product=entry["product"])

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
            self._wake.clear()
            await self.flush()
