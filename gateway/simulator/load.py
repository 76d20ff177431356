"""A load driver: many concurrent signed calls, measured, within a hard time bound.

`drive(client, factory, concurrency=..., count=..., check=...)` keeps `concurrency` requests
in flight until `count` have been sent (or `duration_s` has passed), and returns a
`LoadResult`: throughput, latency percentiles, and a breakdown of what failed.

A factory builds request number `index` when the driver is about to send it, so every
request is signed at send time with a fresh nonce and a current timestamp. The factories
here make the basic calls; newInstance ones carry a unique order and businessId per index.

Latency is measured from just before `client.send` to the end of reading the response body;
building and signing the request is not part of it (paced, with `rate`: from when the request
was due, building included). Only requests that got a response count
in the percentiles; throughput counts the requests that passed `check`.
"""

import gc
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx

from gateway.clock import epoch_ms
from gateway.koogallery.signing import CallKind
from gateway.simulator.signer import marketplace_body, sign_call

__all__ = [
    "OVERALL_TIMEOUT",
    "LoadResult",
    "NewInstanceOrders",
    "RequestFactory",
    "SlotTransport",
    "answered",
    "basic_call_factory",
    "drive",
    "load_client",
    "new_instance_factory",
    "percentile",
    "query_instance_factory",
]

RequestFactory = Callable[[httpx.AsyncClient, int], httpx.Request]
"""Builds request number `index` (from 0) with the client's `build_request`, right before it is sent."""

ResponseCheck = Callable[[httpx.Response], bool]

OVERALL_TIMEOUT = "overall timeout"
"""The failure key of requests cut off in flight when the overall timeout struck."""

SUCCESS_CODE = "000000"


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `pct`% of `values` at or below it.

    `values` must be sorted ascending; an empty sequence gives NaN.
    """
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, not {pct}")
    if not values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return values[rank - 1]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one `drive` measured; latencies in milliseconds, sorted ascending."""

    requested: int
    sent: int
    ok: int
    elapsed_s: float
    latencies_ms: tuple[float, ...]
    failures: Mapping[str, int] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def errors(self) -> int:
        """Requests sent that did not pass the check: failed checks, transport errors, cut-offs."""
        return sum(self.failures.values())

    @property
    def not_sent(self) -> int:
        """Requests never sent, because the duration or the overall timeout ran out first."""
        return self.requested - self.sent

    @property
    def throughput(self) -> float:
        """Requests that passed the check, per second of wall time."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p90_ms(self) -> float:
        return percentile(self.latencies_ms, 90)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def max_ms(self) -> float:
        return self.latencies_ms[-1] if self.latencies_ms else math.nan

    def summary(self) -> str:
        """One line for people: throughput, percentiles, errors and their kinds."""
        line = (
            f"{self.ok}/{self.requested} ok in {self.elapsed_s:.2f}s: {self.throughput:.1f} req/s, "
            f"p50 {self.p50_ms:.1f} ms, p90 {self.p90_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms"
        )
        if self.failures:
            kinds = ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.failures.items(), key=lambda item: -item[1]))
            line += f"; {self.errors} errors ({kinds})"
        if self.not_sent:
            line += f"; {self.not_sent} not sent"
        return line


def describe_failure(response: httpx.Response) -> str:
    """A short failure key for a response that did not pass its check: the HTTP status or resultCode."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        code = response.json().get("resultCode")
    except (ValueError, AttributeError):
        return "not a JSON object"
    return f"resultCode {code}" if isinstance(code, str) else "check failed"


def answered(*codes: str) -> ResponseCheck:
    """A check: HTTP 200 with one of `codes` as `resultCode` (default: success, 000000)."""
    wanted = frozenset(codes or (SUCCESS_CODE,))

    def check(response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("resultCode") in wanted

    return check


@dataclass
class _Tally:
    ok: int = 0
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    first_sent: float | None = None
    last_done: float | None = None


@contextmanager
def _collector_held_off() -> Iterator[None]:
    """No garbage collection until the block ends (see `drive`). Reference counting still frees
    what the requests leave behind; only cycles wait for the next collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def drive(
    client: httpx.AsyncClient,
    factory: RequestFactory,
    *,
    concurrency: int,
    count: int,
    check: ResponseCheck,
    duration_s: float | None = None,
    timeout_s: float = 60.0,
    first_index: int = 0,
    rate: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Send `count` requests from `factory`, `concurrency` at a time, and measure them.

    Indices run from `first_index` to `first_index + count - 1`. No new request starts once
    `duration_s` (if given) has passed. With `rate` (requests per second) the requests are
    paced: request n is due `n / rate` seconds after the start, and its latency counts from
    when it was due, so a server that falls behind is charged for the wait as well (no
    coordinated omission); without it each request starts as soon as a slot is free. After
    `timeout_s` every request still in flight is cancelled and counted under `OVERALL_TIMEOUT`,
    and the result says `timed_out`. Transport
    errors (`httpx.HTTPError`) are counted by their class name; a failed check by
    `describe_failure`. Give the client a pool of at least `concurrency` connections
    (`load_client` does). `clock` (seconds) times the requests and the duration.

    The garbage collector of this process is run before the clock starts and held off while
    the requests run (`_collector_held_off`): a full collection of the load generator's heap
    took up to 20 ms, during which no request was sent and no answer read, and every request
    then in flight was charged the pause as the server's latency.
    """
    if concurrency < 1 or count < 0:
        raise ValueError("concurrency must be at least 1 and count not negative")
    if rate is not None and not rate > 0:
        raise ValueError("rate must be positive")
    tally = _Tally()
    next_index = first_index
    end_index = first_index + count
    gc.collect()  # before the clock starts: a collection of a large heap takes its time
    started = clock()
    stop_starting_at = started + duration_s if duration_s is not None else math.inf

    async def worker() -> None:
        nonlocal next_index
        while next_index < end_index and clock() < stop_starting_at:
            index, next_index = next_index, next_index + 1
            due = started + (index - first_index) / rate if rate is not None else None
            if due is not None and due >= stop_starting_at:
                return  # due after the duration: never sent
            if due is not None and due > clock():
                await anyio.sleep(due - clock())
            request = factory(client, index)
            tally.sent += 1
            tally.in_flight += 1
            sent_at = due if due is not None else clock()
            if tally.first_sent is None:
                tally.first_sent = sent_at
            try:
                response = await client.send(request)
            except httpx.HTTPError as exc:
                tally.in_flight -= 1
                tally.last_done = clock()
                tally.failures[type(exc).__name__] += 1
                continue
            done_at = clock()
            tally.in_flight -= 1
            tally.last_done = done_at
            tally.latencies_ms.append((done_at - sent_at) * 1000)
            if check(response):
                tally.ok += 1
            else:
                tally.failures[describe_failure(response)] += 1

    with _collector_held_off(), anyio.move_on_after(timeout_s) as scope:
        async with anyio.create_task_group() as group:
            for _ in range(min(concurrency, count)):
                group.start_soon(worker)
    if scope.cancelled_caught and tally.in_flight:
        tally.failures[OVERALL_TIMEOUT] += tally.in_flight
    first = tally.first_sent if tally.first_sent is not None else started
    last = tally.last_done if tally.last_done is not None and not scope.cancelled_caught else clock()
    return LoadResult(
        requested=count,
        sent=tally.sent,
        ok=tally.ok,
        elapsed_s=max(0.0, last - first),
        latencies_ms=tuple(sorted(tally.latencies_ms)),
        failures=dict(tally.failures),
        timed_out=scope.cancelled_caught,
    )


class SlotTransport(httpx.AsyncBaseTransport):
    """`slots` keep-alive connections, each used by one request at a time, for load generation.

    httpx's shared pool scans every connection on each request, which costs the load
    generator more CPU than a bare endpoint spends answering. Here a request takes a free
    slot (one single-connection pool) and gives it back once the response is read, so the
    cost per request does not grow with the concurrency. Responses come back fully read.
    """

    def __init__(self, slots: int, *, verify: bool = True) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._slots = [httpx.AsyncHTTPTransport(limits=limits, verify=verify) for _ in range(slots)]
        self._free = list(self._slots)
        self._available = anyio.Semaphore(slots)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._available:
            slot = self._free.pop()
            try:
                response = await slot.handle_async_request(request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
            finally:
                self._free.append(slot)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")},
        )

    async def aclose(self) -> None:
        for slot in self._slots:
            await slot.aclose()


def load_client(concurrency: int, *, timeout_s: float = 30.0, **options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for `drive`: one connection per request in flight (`SlotTransport`)."""
    return httpx.AsyncClient(transport=SlotTransport(concurrency), timeout=httpx.Timeout(timeout_s), **options)


def _now_ms() -> int:
    return epoch_ms(datetime.now(UTC))


def basic_call_factory(
    url: str,
    key: bytes,
    fields_for_index: Callable[[int], Mapping[str, Any]],
    *,
    now_ms: Callable[[], int] = _now_ms,
) -> RequestFactory:
    """Basic calls to `url`, signed with `key` at build time; the body of call `index` is `fields_for_index(index)`."""

    def build(client: httpx.AsyncClient, index: int) -> httpx.Request:
        body = marketplace_body(dict(fields_for_index(index)))
        call = sign_call(CallKind.BASIC, body, key=key, now_ms=now_ms())
        return client.build_request("POST", url, params=call.query, content=body, headers=call.headers)

    return build


@dataclass(frozen=True, slots=True)
class NewInstanceOrders:
    """Unique orders for newInstance: order `index` has its own orderId, orderLineId and businessId.

    The `prefix` (random by default) keeps orders of different runs apart in one database.
    """

    prefix: str = field(default_factory=lambda: secrets.token_hex(4).upper())
    test_flag: str = "0"

    def order_id(self, index: int) -> str:
        return f"BENCH{self.prefix}{index:08d}"

    def business_id(self, index: int) -> str:
        return f"bench-{self.prefix.lower()}-{index:08d}"

    def fields(self, index: int) -> dict[str, str]:
        order_id = self.order_id(index)
        return {
            "activity": "newInstance",
            "orderId": order_id,
            "orderLineId": f"{order_id}-000001",
            "businessId": self.business_id(index),
            "testFlag": self.test_flag,
        }

    def business_ids(self, indices: Iterable[int]) -> list[str]:
        """The instance ids that the orders `indices` ask for."""
        return [self.business_id(index) for index in indices]


def new_instance_factory(
    url: str, key: bytes, orders: NewInstanceOrders | None = None, *, now_ms: Callable[[], int] = _now_ms
) -> RequestFactory:
    """newInstance calls, each for its own order (see `NewInstanceOrders`)."""
    return basic_call_factory(url, key, (orders or NewInstanceOrders()).fields, now_ms=now_ms)


def query_instance_factory(
    url: str,
    key: bytes,
    instance_ids: Sequence[str],
    *,
    ids_per_call: int = 10,
    test_flag: str = "0",
    now_ms: Callable[[], int] = _now_ms,
) -> RequestFactory:
    """queryInstance calls for `ids_per_call` of `instance_ids` each, moving through them in a ring."""
    if not instance_ids or not 1 <= ids_per_call <= 100:
        raise ValueError("give at least one instance id and 1..100 ids per call")
    ids = list(instance_ids)

    def fields(index: int) -> dict[str, str]:
        start = index * ids_per_call
        window = [ids[(start + offset) % len(ids)] for offset in range(min(ids_per_call, len(ids)))]
        return {"activity": "queryInstance", "instanceId": ",".join(window), "testFlag": test_flag}

    return basic_call_factory(url, key, fields, now_ms=now_ms)
