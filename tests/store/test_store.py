"""One suite for every `Store`: the in-memory store and Redis must behave the same.

The memory store runs on a fake clock that the tests move; Redis keeps real time, so its
ttls are short and the tests sleep past them. Redis at `REDIS_URL` must be up: the suite
fails rather than skips when it is not.
"""

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st

from gateway.store import (
    MemoryStore,
    RedisStore,
    Store,
    StoreError,
    StoreLockTimeout,
    StoreUnavailableError,
    StoreWrongTypeError,
    open_store,
    store_key,
)

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/15"
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"

# Short enough to keep the Redis run fast, long enough to outlast scheduling jitter.
TTL_S = 0.2
PAST_TTL_S = 0.3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    """A store under test and the way to let time pass for it."""

    store: Store
    elapse: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        memory = MemoryStore(clock=clock)
        yield Harness(store=memory, elapse=advance)
        await memory.aclose()
        return

    admin = redis.asyncio.from_url(REDIS_URL)
    try:
        await admin.flushdb()
    finally:
        await admin.aclose()
    store = RedisStore(REDIS_URL)
    yield Harness(store=store, elapse=asyncio.sleep)
    await store.aclose()


@pytest.fixture
def store(harness: Harness) -> Store:
    return harness.store


# -- nonces: add_if_absent ------------------------------------------------------------


async def test_add_if_absent_accepts_a_nonce_once_until_it_expires(harness: Harness) -> None:
    store = harness.store
    key = store_key("nonce", "demo", "abc")

    assert await store.add_if_absent(key, b"first", TTL_S) is True
    assert await store.add_if_absent(key, b"second", TTL_S) is False
    assert await store.get(key) == b"first"

    await harness.elapse(PAST_TTL_S)

    assert await store.get(key) is None
    assert await store.add_if_absent(key, b"third", TTL_S) is True
    assert await store.get(key) == b"third"


async def test_add_if_absent_under_concurrency_admits_exactly_one(store: Store) -> None:
    key = store_key("nonce", "demo", "race")

    # Each caller brings its own value, as the interface asks.
    results = await asyncio.gather(*(store.add_if_absent(key, f"v{n}".encode(), 5.0) for n in range(50)))

    assert sorted(results) == [False] * 49 + [True]


async def test_add_if_absent_recognises_its_own_landed_write(store: Store) -> None:
    # A retried write whose first attempt landed (its reply lost) is still the caller's own.
    key = store_key("nonce", "demo", "retried")
    assert await store.add_if_absent(key, b"mine", 5.0)
    assert await store.add_if_absent(key, b"mine", 5.0)
    assert not await store.add_if_absent(key, b"theirs", 5.0)


# -- get, set, delete ----------------------------------------------------------------


async def test_set_get_delete(store: Store) -> None:
    key = store_key("value", "k")

    assert await store.get(key) is None
    await store.set(key, b"\x00\xffbytes")
    assert await store.get(key) == b"\x00\xffbytes"
    await store.set(key, b"replaced")
    assert await store.get(key) == b"replaced"

    assert await store.delete(key) is True
    assert await store.delete(key) is False
    assert await store.get(key) is None


async def test_set_with_ttl_expires(harness: Harness) -> None:
    store = harness.store
    key = store_key("value", "short")
    await store.set(key, b"v", ttl_s=TTL_S)
    assert await store.get(key) == b"v"

    await harness.elapse(PAST_TTL_S)

    assert await store.get(key) is None
    assert await store.delete(key) is False


async def test_set_without_ttl_clears_an_earlier_ttl(harness: Harness) -> None:
    store = harness.store
    key = store_key("value", "kept")
    await store.set(key, b"old", ttl_s=TTL_S)
    await store.set(key, b"new")

    await harness.elapse(PAST_TTL_S)

    assert await store.get(key) == b"new"


@pytest.mark.parametrize("ttl_s", [0.0, -1.0, math.nan, math.inf])
async def test_bad_durations_are_refused_and_store_nothing(store: Store, ttl_s: float) -> None:
    key = store_key("value", "bad-ttl")

    with pytest.raises(ValueError):
        await store.set(key, b"v", ttl_s=ttl_s)
    with pytest.raises(ValueError):
        await store.add_if_absent(key, b"v", ttl_s)
    with pytest.raises(ValueError):
        await store.incr_window(key, ttl_s)
    with pytest.raises(ValueError):
        await store.add_to_set(key, "m", ttl_s)
    with pytest.raises(ValueError):
        async with store.lock(key, ttl_s=ttl_s, wait_s=0):
            pass

    assert await store.get(key) is None


# -- take ----------------------------------------------------------------------------


async def test_take_returns_the_value_once(store: Store) -> None:
    key = store_key("oauth-state", "demo", "s1")
    await store.set(key, b"state", ttl_s=60)

    assert await store.take(key) == b"state"
    assert await store.take(key) is None
    assert await store.get(key) is None


async def test_take_of_an_expired_key_returns_nothing(harness: Harness) -> None:
    store = harness.store
    key = store_key("login-token", "demo", "t1")
    await store.set(key, b"token", ttl_s=TTL_S)

    await harness.elapse(PAST_TTL_S)

    assert await store.take(key) is None


async def test_take_under_50_concurrent_takers_gives_the_value_to_exactly_one(
    store: Store,
) -> None:
    key = store_key("login-token", "demo", "contended")
    await store.set(key, b"token", ttl_s=60)

    results = await asyncio.gather(*(store.take(key) for _ in range(50)))

    assert [r for r in results if r is not None] == [b"token"]
    assert results.count(None) == 49
    assert await store.get(key) is None


# -- incr_window ---------------------------------------------------------------------


async def test_incr_window_counts_within_the_window_and_resets_after(harness: Harness) -> None:
    store = harness.store
    key = store_key("rate", "demo", "client-1")

    assert [await store.incr_window(key, TTL_S) for _ in range(3)] == [1, 2, 3]

    await harness.elapse(PAST_TTL_S)

    assert await store.incr_window(key, TTL_S) == 1
    assert await store.incr_window(key, TTL_S) == 2


async def test_incr_window_is_fixed_from_the_first_increment(harness: Harness) -> None:
    store = harness.store
    key = store_key("rate", "demo", "client-2")
    window_s = 0.4

    assert await store.incr_window(key, window_s) == 1
    await harness.elapse(0.25)
    assert await store.incr_window(key, window_s) == 2  # later hits do not extend the window
    await harness.elapse(0.25)

    assert await store.incr_window(key, window_s) == 1


async def test_incr_window_under_concurrency_loses_no_count(store: Store) -> None:
    key = store_key("rate", "demo", "burst")

    counts = await asyncio.gather(*(store.incr_window(key, 60) for _ in range(50)))

    assert sorted(counts) == list(range(1, 51))
    assert await store.get(key) == b"50"


# -- lock ----------------------------------------------------------------------------


async def test_lock_excludes_concurrent_holders(store: Store) -> None:
    lock_key = store_key("lock", "demo", "instance-1")
    counter_key = store_key("counter", "demo", "instance-1")
    holders = 0
    most_holders = 0

    async def increment() -> None:
        nonlocal holders, most_holders
        async with store.lock(lock_key, ttl_s=5, wait_s=5):
            holders += 1
            most_holders = max(most_holders, holders)
            current = int(await store.get(counter_key) or b"0")
            await asyncio.sleep(0.001)  # invite a lost update if exclusion were broken
            await store.set(counter_key, str(current + 1).encode())
            holders -= 1

    await asyncio.gather(*(increment() for _ in range(10)))

    assert await store.get(counter_key) == b"10"
    assert most_holders == 1
    assert await store.get(lock_key) is None


@pytest.mark.parametrize("wait_s", [0.0, 0.1])
async def test_lock_raises_lock_timeout_while_held(store: Store, wait_s: float) -> None:
    key = store_key("lock", "demo", "busy")
    async with store.lock(key, ttl_s=5, wait_s=0):
        with pytest.raises(StoreLockTimeout) as raised:
            async with store.lock(key, ttl_s=5, wait_s=wait_s):
                pytest.fail("entered a lock that was held")

    assert isinstance(raised.value, StoreError)
    assert raised.value.code == "store_lock_timeout"


async def test_lock_is_released_on_exit_even_after_an_error(store: Store) -> None:
    key = store_key("lock", "demo", "released")

    with pytest.raises(RuntimeError):
        async with store.lock(key, ttl_s=5, wait_s=0):
            raise RuntimeError("body failed")

    async with store.lock(key, ttl_s=5, wait_s=0):
        pass
    assert await store.get(key) is None


async def test_lock_waits_for_the_holder_to_release(store: Store) -> None:
    key = store_key("lock", "demo", "handover")
    order: list[str] = []

    async def first() -> None:
        async with store.lock(key, ttl_s=5, wait_s=0):
            order.append("first in")
            await asyncio.sleep(0.05)
            order.append("first out")

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with store.lock(key, ttl_s=5, wait_s=2):
            order.append("second in")

    await asyncio.gather(first(), second())

    assert order == ["first in", "first out", "second in"]


async def test_an_expired_holder_does_not_release_the_next_owner(harness: Harness) -> None:
    store = harness.store
    key = store_key("lock", "demo", "expired")
    async with AsyncExitStack() as first, AsyncExitStack() as second:
        await first.enter_async_context(store.lock(key, ttl_s=TTL_S, wait_s=0))
        await harness.elapse(PAST_TTL_S)  # the first holder overran its ttl

        await second.enter_async_context(store.lock(key, ttl_s=5, wait_s=0))
        await first.aclose()  # the first holder leaves late

        assert await store.get(key) is not None
        with pytest.raises(StoreLockTimeout):
            async with store.lock(key, ttl_s=5, wait_s=0):
                pytest.fail("the late holder released someone else's lock")

    assert await store.get(key) is None


# -- sets ----------------------------------------------------------------------------


async def test_set_members_add_and_remove(store: Store) -> None:
    key = store_key("sessions", "demo", "member-1")
    assert await store.set_members(key) == set()

    await store.add_to_set(key, "session:a", 60)
    await store.add_to_set(key, "séance-b", 60)
    await store.add_to_set(key, "session:a", 60)
    assert await store.set_members(key) == {"session:a", "séance-b"}

    await store.remove_from_set(key, "session:a")
    await store.remove_from_set(key, "absent")
    assert await store.set_members(key) == {"séance-b"}

    await store.remove_from_set(key, "séance-b")
    assert await store.set_members(key) == set()
    assert await store.delete(key) is False  # the key went with its last member

    await store.remove_from_set(key, "séance-b")  # removing from a missing set is fine


async def test_a_set_expires_after_its_ttl(harness: Harness) -> None:
    store = harness.store
    key = store_key("sessions", "demo", "member-2")
    await store.add_to_set(key, "s1", TTL_S)

    await harness.elapse(PAST_TTL_S)

    assert await store.set_members(key) == set()


async def test_adding_to_a_set_never_shortens_its_life(harness: Harness) -> None:
    store = harness.store
    key = store_key("sessions", "demo", "member-3")
    await store.add_to_set(key, "long", 5.0)
    await store.add_to_set(key, "short", TTL_S)

    await harness.elapse(PAST_TTL_S)

    assert await store.set_members(key) == {"long", "short"}


async def test_adding_to_a_set_extends_its_life(harness: Harness) -> None:
    store = harness.store
    key = store_key("sessions", "demo", "member-4")
    await store.add_to_set(key, "early", TTL_S)
    await store.add_to_set(key, "late", 5.0)

    await harness.elapse(PAST_TTL_S)

    assert await store.set_members(key) == {"early", "late"}


async def test_using_a_key_as_the_other_kind_is_a_wrong_type_error(store: Store) -> None:
    value_key = store_key("kind", "value")
    set_key = store_key("kind", "set")
    await store.set(value_key, b"v")
    await store.add_to_set(set_key, "m", 60)

    with pytest.raises(StoreWrongTypeError) as raised:
        await store.add_to_set(value_key, "m", 60)
    assert raised.value.code == "store_wrong_type"
    with pytest.raises(StoreWrongTypeError):
        await store.set_members(value_key)
    with pytest.raises(StoreWrongTypeError):
        await store.remove_from_set(value_key, "m")
    with pytest.raises(StoreWrongTypeError):
        await store.get(set_key)
    with pytest.raises(StoreWrongTypeError):
        await store.take(set_key)
    with pytest.raises(StoreWrongTypeError):
        await store.incr_window(set_key, 60)

    # Nothing changed, and a set key still answers as a present key.
    assert await store.get(value_key) == b"v"
    assert await store.set_members(set_key) == {"m"}
    assert await store.add_if_absent(set_key, b"v", 60) is False


async def test_incr_window_counts_on_from_a_numeric_value_only(store: Store) -> None:
    number_key = store_key("counter", "number")
    text_key = store_key("counter", "text")
    await store.set(number_key, b"41")
    await store.set(text_key, b"forty-one")

    assert await store.incr_window(number_key, 60) == 42
    with pytest.raises(StoreWrongTypeError):
        await store.incr_window(text_key, 60)
    assert await store.get(text_key) == b"forty-one"


# -- lifecycle -----------------------------------------------------------------------


async def test_ping_and_close(store: Store) -> None:
    assert isinstance(store, Store)
    assert await store.ping() is True

    await store.aclose()
    await store.aclose()  # idempotent

    assert await store.ping() is False
    with pytest.raises(StoreUnavailableError):
        await store.get(store_key("after", "close"))


def test_open_store_picks_the_implementation_without_connecting() -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(UNREACHABLE_REDIS_URL), RedisStore)


async def test_open_store_passes_the_clock_to_the_memory_store() -> None:
    clock = FakeClock()
    store = open_store(None, clock=clock)
    await store.set(store_key("clocked"), b"v", ttl_s=10)

    clock.advance(10)

    assert await store.get(store_key("clocked")) is None


# -- memory store: bounded under unique nonces ---------------------------------------


async def test_memory_store_sweeps_expired_keys_nobody_touches_again() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock, sweep_every=100)

    for i in range(10_000):
        assert await store.add_if_absent(store_key("nonce", "demo", str(i)), b"1", 1.0)
        clock.advance(0.01)  # about 100 nonces alive at any time

    assert len(store) <= 100 + 100 + 1


# -- unreachable Redis ---------------------------------------------------------------


async def _enter_lock(store: Store) -> None:
    async with store.lock(store_key("lock", "x"), ttl_s=1, wait_s=1):
        pytest.fail("locked on an unreachable redis")


UNREACHABLE_CALLS: dict[str, Callable[[Store], Awaitable[object]]] = {
    "add_if_absent": lambda s: s.add_if_absent("k", b"v", 1),
    "get": lambda s: s.get("k"),
    "set": lambda s: s.set("k", b"v", ttl_s=1),
    "delete": lambda s: s.delete("k"),
    "take": lambda s: s.take("k"),
    "incr_window": lambda s: s.incr_window("k", 1),
    "lock": _enter_lock,
    "add_to_set": lambda s: s.add_to_set("k", "m", 1),
    "set_members": lambda s: s.set_members("k"),
    "remove_from_set": lambda s: s.remove_from_set("k", "m"),
}


async def test_ping_is_false_on_unreachable_redis() -> None:
    store = RedisStore(UNREACHABLE_REDIS_URL)
    try:
        assert await store.ping() is False
    finally:
        await store.aclose()


@pytest.mark.parametrize("call", UNREACHABLE_CALLS.values(), ids=UNREACHABLE_CALLS.keys())
async def test_operations_on_unreachable_redis_raise_store_unavailable(
    call: Callable[[Store], Awaitable[object]],
) -> None:
    store = RedisStore(UNREACHABLE_REDIS_URL)
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            await call(store)
    finally:
        await store.aclose()

    assert raised.value.code == "store_unavailable"
    assert isinstance(raised.value, StoreError)


# -- store_key -----------------------------------------------------------------------


def test_store_key_joins_parts_under_the_prefix() -> None:
    assert store_key("nonce", "demo", "abc") == "mg:nonce:demo:abc"
    assert store_key("session", "a:b") == "mg:session:a%3Ab"
    assert store_key("session", "100%") == "mg:session:100%25"
    assert store_key("session", "%3A") == "mg:session:%253A"
    assert store_key("x", "") == "mg:x:"


def test_store_key_parts_cannot_pass_for_separators() -> None:
    assert store_key("a:b", "c") != store_key("a", "b:c")
    assert store_key("tenant-1:nonce", "x") != store_key("tenant-1", "nonce:x")
    assert store_key("a%3Ab") != store_key("a:b")


def test_store_key_needs_a_part() -> None:
    with pytest.raises(ValueError):
        store_key()


_PARTS = st.lists(st.text(alphabet=st.sampled_from("ab:%3A"), max_size=6), min_size=1, max_size=4)


@given(_PARTS, _PARTS)
def test_store_key_is_injective(left: list[str], right: list[str]) -> None:
    assert (store_key(*left) == store_key(*right)) == (left == right)


@given(_PARTS)
def test_store_key_tells_apart_parts_regrouped_around_colons(parts: list[str]) -> None:
    regrouped = ":".join(parts).split(":")

    assert (store_key(*parts) == store_key(*regrouped)) == (parts == regrouped)


@given(_PARTS)
def test_store_key_round_trips(parts: list[str]) -> None:
    prefix, *escaped = store_key(*parts).split(":")

    assert prefix == "mg"
    assert [p.replace("%3A", ":").replace("%25", "%") for p in escaped] == parts
