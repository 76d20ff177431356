"""The in-process store: one dict, for development, tests and single-process deployments.

Every operation runs without an `await` between reading and writing, so it is atomic under
asyncio concurrency. Time comes from an injected clock so tests can move it without
sleeping. Entries expire lazily when touched, and a full sweep every `sweep_every`
operations drops the expired ones nobody touches again (a stream of unique nonces), which
keeps memory bounded by the keys alive within their ttl plus one sweep period.
"""

import builtins
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.store.base import (
    StoreUnavailableError,
    StoreWrongTypeError,
    acquire_within,
    check_duration,
    check_wait,
)

DEFAULT_SWEEP_EVERY = 1024

_INTEGER = re.compile(rb"-?[0-9]+")


@dataclass(slots=True)
class _Entry:
    value: bytes | set[str]
    expires_at: float | None


class MemoryStore:
    """A `Store` held in this process; see the module docstring for its guarantees."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: int = DEFAULT_SWEEP_EVERY,
    ) -> None:
        if sweep_every < 1:
            raise ValueError(f"sweep_every must be at least 1, not {sweep_every}")
        self._clock = clock
        self._sweep_every = sweep_every
        self._entries: dict[str, _Entry] = {}
        self._ops_since_sweep = 0
        self._closed = False

    def __len__(self) -> int:
        """Keys held, counting expired ones not yet dropped: a gauge for memory use."""
        return len(self._entries)

    async def add_if_absent(self, key: str, value: bytes, ttl_s: float) -> bool:
        ttl_s = check_duration(ttl_s, "ttl_s")
        return self._add_if_absent(key, value, self._begin(), ttl_s)

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key, self._begin())
        return None if entry is None else _value(entry)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        ttl_s = None if ttl_s is None else check_duration(ttl_s, "ttl_s")
        now = self._begin()
        self._entries[key] = _Entry(value, None if ttl_s is None else now + ttl_s)

    async def delete(self, key: str) -> bool:
        entry = self._live(key, self._begin())
        if entry is None:
            return False
        del self._entries[key]
        return True

    async def take(self, key: str) -> bytes | None:
        entry = self._live(key, self._begin())
        if entry is None:
            return None
        value = _value(entry)
        del self._entries[key]
        return value

    async def incr_window(self, key: str, window_s: float) -> int:
        window_s = check_duration(window_s, "window_s")
        now = self._begin()
        entry = self._live(key, now)
        if entry is None:
            self._entries[key] = _Entry(b"1", now + window_s)
            return 1
        value = _value(entry)
        if _INTEGER.fullmatch(value) is None:
            raise StoreWrongTypeError(f"value at {key!r} is not an integer")
        count = int(value) + 1
        entry.value = str(count).encode("ascii")
        if entry.expires_at is None:
            entry.expires_at = now + window_s
        return count

    @asynccontextmanager
    async def lock(self, key: str, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        ttl_s = check_duration(ttl_s, "ttl_s")
        wait_s = check_wait(wait_s)
        token = secrets.token_hex(16).encode("ascii")

        async def try_acquire() -> bool:
            return self._add_if_absent(key, token, self._begin(), ttl_s)

        await acquire_within(try_acquire, wait_s)
        try:
            yield
        finally:
            entry = self._live(key, self._begin())
            if entry is not None and entry.value == token:
                del self._entries[key]

    async def add_to_set(self, key: str, member: str, ttl_s: float) -> None:
        ttl_s = check_duration(ttl_s, "ttl_s")
        now = self._begin()
        expires_at = now + ttl_s
        entry = self._live(key, now)
        if entry is None:
            self._entries[key] = _Entry({member}, expires_at)
            return
        _members(entry).add(member)
        if entry.expires_at is None or entry.expires_at < expires_at:
            entry.expires_at = expires_at

    async def set_members(self, key: str) -> builtins.set[str]:
        entry = self._live(key, self._begin())
        return builtins.set() if entry is None else builtins.set(_members(entry))

    async def remove_from_set(self, key: str, member: str) -> None:
        entry = self._live(key, self._begin())
        if entry is None:
            return
        members = _members(entry)
        members.discard(member)
        if not members:
            del self._entries[key]

    async def ping(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        self._closed = True
        self._entries.clear()

    def _begin(self) -> float:
        """Start an operation: refuse if closed, sweep now and then, and return the time."""
        if self._closed:
            raise StoreUnavailableError("the memory store is closed")
        now = self._clock()
        self._ops_since_sweep += 1
        if self._ops_since_sweep >= self._sweep_every:
            self._ops_since_sweep = 0
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        expired = [
            key
            for key, entry in self._entries.items()
            if entry.expires_at is not None and entry.expires_at <= now
        ]
        for key in expired:
            del self._entries[key]

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    def _add_if_absent(self, key: str, value: bytes, now: float, ttl_s: float) -> bool:
        if (entry := self._live(key, now)) is not None:
            return entry.value == value  # the caller's own earlier write, as Redis answers it
        self._entries[key] = _Entry(value, now + ttl_s)
        return True


def _value(entry: _Entry) -> bytes:
    if not isinstance(entry.value, bytes):
        raise StoreWrongTypeError("the key holds a set, not a value")
    return entry.value


def _members(entry: _Entry) -> set[str]:
    if not isinstance(entry.value, set):
        raise StoreWrongTypeError("the key holds a value, not a set")
    return entry.value
