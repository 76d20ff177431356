"""The store interface, its errors, and `store_key`, the one helper that builds every key.

Keys are `str`, values `bytes`, durations seconds as `float`. A key holds either a value
(bytes; `incr_window` counters are decimal bytes) or a set of `str` members, as in Redis;
using a key as the other kind raises `StoreWrongTypeError`.
"""

import asyncio
import builtins
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

KEY_PREFIX = "mg"


class StoreError(Exception):
    """Root of the store errors; `code` is stable and safe to log or map to a result code."""

    code = "store_error"


class StoreUnavailableError(StoreError):
    """The backing service cannot be reached or failed; the call may not have happened."""

    code = "store_unavailable"


class StoreWrongTypeError(StoreError):
    """A key was used as the other kind (value versus set), or a counter is not a number."""

    code = "store_wrong_type"


class StoreLockTimeout(  # noqa: N818 - public name kept; StoreLockTimeoutError aliases it
    StoreError):
    """The lock was still held by someone else when the wait ran out."""

    code = "store_lock_timeout"


# The house habit is an `Error` suffix; both names are the same class.
StoreLockTimeoutError = StoreLockTimeout


def store_key(*parts: str) -> str:
    """Build a store key: `"mg"` and each part, joined by `":"`.

    Each part has `"%"` and `":"` percent-encoded first, so a part can never pass for a
    separator: distinct part tuples always give distinct keys, whatever tenants put in ids.

    >>> store_key("nonce", "demo", "abc")
    'mg:nonce:demo:abc'
    >>> store_key("session", "a:b")
    'mg:session:a%3Ab'
    """
    if not parts:
        raise ValueError("store_key needs at least one part")
    return ":".join((KEY_PREFIX, *(_escape(part) for part in parts)))


def _escape(part: str) -> str:
    if not isinstance(part, str):
        raise TypeError(f"store key parts must be str, not {type(part).__name__}")
    return part.replace("%", "%25").replace(":", "%3A")


@runtime_checkable
class Store(Protocol):
    """A small shared key-value store: nonces, single-use tokens, counters, locks, indexes.

    Every method may raise `StoreUnavailableError` (except `ping`, which answers False) and
    `StoreWrongTypeError`. Durations must be positive and finite, else `ValueError`.
    """

    async def add_if_absent(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Set `key` only if it is missing or expired; True if this call set it.

        Give a `value` unique to the caller: a retried write whose first attempt landed is then
        recognised as the caller's own and still answered True.
        """
        ...

    async def get(self, key: str) -> bytes | None:
        """The value of `key`, or None if it is missing or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Set `key` (replacing a value or set), expiring after `ttl_s`, or never if None."""
        ...

    async def delete(self, key: str) -> bool:
        """Delete `key` of either kind; True if it existed."""
        ...

    async def take(self, key: str) -> bytes | None:
        """Get and delete `key` atomically: of concurrent takers, only one gets the value."""
        ...

    async def incr_window(self, key: str, window_s: float) -> int:
        """Count one more hit in a fixed window and return the count in it.

        The counter expires `window_s` after its first increment; the next call starts a new
        window at 1.
        """
        ...

    def lock(self, key: str, ttl_s: float, wait_s: float) -> AbstractAsyncContextManager[None]:
        """A mutex on `key`, held at most `ttl_s`, across every process sharing the store.

        Entering waits up to `wait_s` (0: one attempt) and raises `StoreLockTimeout` if the
        lock stays taken. Leaving releases it only if still ours: after `ttl_s` the lock may
        have passed to someone else, whose hold is left alone.
        """
        ...

    async def add_to_set(self, key: str, member: str, ttl_s: float) -> None:
        """Add `member` to the set at `key`.

        The set expires `ttl_s` from now, or later if an earlier add asked for longer.
        """
        ...

    async def set_members(self, key: str) -> builtins.set[str]:
        """The members of the set at `key`; empty if it is missing or expired."""
        ...

    async def remove_from_set(self, key: str, member: str) -> None:
        """Remove `member` if present; the key disappears with its last member."""
        ...

    async def ping(self) -> bool:
        """True if the store answers; False rather than an error when it does not."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent. A closed store raises `StoreUnavailableError`."""
        ...


def check_duration(seconds: float, name: str) -> float:
    """Refuse a duration that is not a positive finite number of seconds."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, not {seconds!r}")
    return float(seconds)


def check_wait(seconds: float) -> float:
    """Refuse a lock wait that is negative or not finite; 0 means a single attempt."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"wait_s must be a non-negative finite number of seconds, not {seconds!r}")
    return float(seconds)


_FIRST_RETRY_S = 0.002
_MAX_RETRY_S = 0.05


async def acquire_within(try_acquire: Callable[[], Awaitable[bool]], wait_s: float) -> None:
    """Call `try_acquire` until it succeeds, backing off, for at most `wait_s` real seconds.

    The wait uses the real monotonic clock, not a store's injected one: a test that freezes
    the store clock must still see a lock wait run out.
    """
    deadline = time.monotonic() + wait_s
    delay = _FIRST_RETRY_S
    while not await try_acquire():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StoreLockTimeout(f"lock still held after waiting {wait_s:g} s")
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_RETRY_S)
