"""The Redis store, over `redis.asyncio`, shared by every gateway process.

Building a `RedisStore` opens nothing: the client connects on its first command. Every
Redis or socket failure leaves as `StoreUnavailableError` (a WRONGTYPE or not-an-integer
answer as `StoreWrongTypeError`), so callers answer "system error" without a traceback.
Retries are few and timeouts short: a caller waits seconds, not minutes, for a dead Redis.
"""

import builtins
import math
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, ResponseError

from gateway.store.base import (
    StoreUnavailableError,
    StoreWrongTypeError,
    acquire_within,
    check_duration,
    check_wait,
)

# Delete the lock only while it still holds our token: after its ttl it may be someone else's.
_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# The window starts at the first increment; a counter without expiry gets one, never lives on.
_INCR_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""

# Never shorten the set's life: it indexes entries that may outlive the newest one.
_ADD_TO_SET = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class RedisStore:
    """A `Store` in Redis; see the module docstring for connections and errors."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 1.0,
        command_timeout_s: float = 2.0,
        retries: int = 2,
        max_connections: int = 100,
    ) -> None:
        self._redis = redis.asyncio.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=command_timeout_s,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries),
            max_connections=max_connections,
        )
        self._release_if_owner = self._redis.register_script(_RELEASE_IF_OWNER)
        self._incr_window = self._redis.register_script(_INCR_WINDOW)
        self._add_to_set = self._redis.register_script(_ADD_TO_SET)
        self._closed = False

    async def add_if_absent(self, key: str, value: bytes, ttl_s: float) -> bool:
        ttl_ms = _milliseconds(ttl_s, "ttl_s")
        with self._errors():
            if await self._redis.set(key, value, nx=True, px=ttl_ms):
                return True
        # The client retries a command whose reply was lost; if the first attempt landed, the
        # key holds this caller's own value, and the write was this caller's after all.
        try:
            with self._errors():
                return bool(await self._redis.get(key) == value)
        except StoreWrongTypeError:
            return False  # the key holds a set: present, and not this caller's

    async def get(self, key: str) -> bytes | None:
        with self._errors():
            return _optional_bytes(await self._redis.get(key))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        ttl_ms = None if ttl_s is None else _milliseconds(ttl_s, "ttl_s")
        with self._errors():
            await self._redis.set(key, value, px=ttl_ms)

    async def delete(self, key: str) -> bool:
        with self._errors():
            return bool(await self._redis.delete(key))

    async def take(self, key: str) -> bytes | None:
        with self._errors():
            return _optional_bytes(await self._redis.getdel(key))

    async def incr_window(self, key: str, window_s: float) -> int:
        window_ms = _milliseconds(window_s, "window_s")
        with self._errors():
            return int(await self._incr_window(keys=[key], args=[window_ms]))

    @asynccontextmanager
    async def lock(self, key: str, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        ttl_ms = _milliseconds(ttl_s, "ttl_s")
        wait_s = check_wait(wait_s)
        token = secrets.token_hex(16).encode("ascii")

        async def try_acquire() -> bool:
            with self._errors():
                return bool(await self._redis.set(key, token, nx=True, px=ttl_ms))

        await acquire_within(try_acquire, wait_s)
        try:
            yield
        finally:
            with self._errors():
                await self._release_if_owner(keys=[key], args=[token])

    async def add_to_set(self, key: str, member: str, ttl_s: float) -> None:
        ttl_ms = _milliseconds(ttl_s, "ttl_s")
        with self._errors():
            await self._add_to_set(keys=[key], args=[member, ttl_ms])

    async def set_members(self, key: str) -> builtins.set[str]:
        with self._errors():
            members = await self._redis.smembers(key)
        return {_text(member) for member in members}

    async def remove_from_set(self, key: str, member: str) -> None:
        with self._errors():
            await self._redis.srem(key, member)

    async def ping(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Closing sockets to a Redis that is gone has nothing left to release.
        with suppress(RedisError, OSError):
            await self._redis.aclose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Refuse if closed, and translate Redis failures into store errors."""
        if self._closed:
            raise StoreUnavailableError("the redis store is closed")
        try:
            yield
        except ResponseError as exc:
            message = str(exc)
            if "WRONGTYPE" in message or "not an integer" in message:
                raise StoreWrongTypeError(message) from exc
            raise StoreUnavailableError(f"redis refused the command: {message}") from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"redis is unavailable: {exc}") from exc


def _milliseconds(seconds: float, name: str) -> int:
    # Round up, so that a short ttl is never cut to nothing (PX 0 is an error in Redis).
    return max(1, math.ceil(check_duration(seconds, name) * 1000))


def _optional_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
