"""The shared store: one `Store` interface, in memory or in Redis.

Build every key with `store_key`. Open the store in the application lifespan with
`open_store(settings.redis_url)` and close it with `await store.aclose()`.
"""

import time
from collections.abc import Callable

from gateway.store.base import (
    Store,
    StoreError,
    StoreLockTimeout,
    StoreLockTimeoutError,
    StoreUnavailableError,
    StoreWrongTypeError,
    store_key,
)
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

__all__ = [
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreError",
    "StoreLockTimeout",
    "StoreLockTimeoutError",
    "StoreUnavailableError",
    "StoreWrongTypeError",
    "open_store",
    "store_key",
]


def open_store(redis_url: str | None, *, clock: Callable[[], float] = time.monotonic) -> Store:
    """A `RedisStore` when a URL is given, else a `MemoryStore` on `clock`.

    Nothing connects here: Redis is reached on the first command. `clock` only drives the
    memory store; Redis keeps time on its server.
    """
    if redis_url:
        return RedisStore(redis_url)
    return MemoryStore(clock=clock)
