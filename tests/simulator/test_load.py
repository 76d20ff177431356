"""The load driver: counts, percentiles, failures, time bounds, and the signed calls it makes."""

import functools
import gc
import json
import math
import random
import socket
from collections import Counter
from collections.abc import Callable

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.koogallery.payload import canonical_payload, parse_object
from gateway.koogallery.signing import CallKind, verify
from gateway.simulator.load import (
    OVERALL_TIMEOUT,
    NewInstanceOrders,
    RequestFactory,
    answered,
    basic_call_factory,
    drive,
    load_client,
    new_instance_factory,
    percentile,
    query_instance_factory,
)

pytestmark = pytest.mark.anyio

KEY = b"load-test-access-key-0123456789"
URL = "http://mg.test/koogallery/alpha"


class FakeClock:
    """Seconds that move only when a handler says so: latencies become exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def app_answering(answer: Callable[[int], Response | None], seen: list[int]) -> Starlette:
    """POST /n/{index}: records the index, then answers `answer(index)` (None: success)."""

    async def call(request: Request) -> Response:
        index = int(request.path_params["index"])
        seen.append(index)
        return answer(index) or JSONResponse({"resultCode": "000000"})

    return Starlette(routes=[Route("/n/{index}", call, methods=["POST"])])


def indexed(client: httpx.AsyncClient, index: int) -> httpx.Request:
    return client.build_request("POST", f"/n/{index}")


def asgi_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mg.test")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]

    assert [percentile(values, p) for p in (0, 10, 50, 90, 99, 100)] == [1.0, 1.0, 5.0, 9.0, 10.0, 10.0]
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile(values, 101)


async def test_sends_each_index_once_and_counts_them() -> None:
    seen: list[int] = []
    async with asgi_client(app_answering(lambda _: None, seen)) as client:
        result = await drive(client, indexed, concurrency=8, count=50, check=answered(), first_index=100)

    assert sorted(seen) == list(range(100, 150))
    assert (result.requested, result.sent, result.ok, result.errors, result.not_sent) == (50, 50, 50, 0, 0)
    assert len(result.latencies_ms) == 50
    assert result.failures == {}
    assert not result.timed_out


async def test_the_load_generators_collector_is_held_off_while_requests_run() -> None:
    """Its pauses would be charged to the server as latency; it runs again afterwards."""
    enabled_while_sending: list[bool] = []

    def factory(client: httpx.AsyncClient, index: int) -> httpx.Request:
        enabled_while_sending.append(gc.isenabled())
        return indexed(client, index)

    assert gc.isenabled()
    async with asgi_client(app_answering(lambda _: None, [])) as client:
        await drive(client, factory, concurrency=4, count=20, check=answered())
    assert enabled_while_sending == [False] * 20
    assert gc.isenabled()


async def test_the_collection_before_a_run_does_not_eat_into_its_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection of a large heap can take longer than a short run: the run's clock starts after it."""
    clock = FakeClock()
    monkeypatch.setattr(gc, "collect", lambda: clock.advance(1.0))
    async with asgi_client(app_answering(lambda _: None, [])) as client:
        result = await drive(client, indexed, concurrency=1, count=5, check=answered(), duration_s=0.5, clock=clock)
    assert result.sent == 5


async def test_percentiles_and_throughput_of_a_known_latency_distribution() -> None:
    clock = FakeClock()
    delays_ms = list(range(1, 101))  # request i takes delays_ms[i]
    random.Random(7).shuffle(delays_ms)

    def answer(index: int) -> None:
        clock.advance(delays_ms[index] / 1000)

    async with asgi_client(app_answering(answer, [])) as client:
        result = await drive(client, indexed, concurrency=1, count=100, check=answered(), clock=clock)

    assert result.latencies_ms == pytest.approx([float(ms) for ms in range(1, 101)])
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == pytest.approx((50.0, 90.0, 99.0, 100.0))
    assert result.elapsed_s == pytest.approx(sum(range(1, 101)) / 1000)
    assert result.throughput == pytest.approx(100 / 5.05)


async def test_counts_failed_checks_and_transport_errors_by_kind() -> None:
    def answer(index: int) -> Response | None:
        if index % 5 == 0:
            return Response("boom", status_code=500)
        if index % 5 == 1:
            return JSONResponse({"resultCode": "000005"})
        if index % 5 == 2:
            return Response("not json")
        return None

    class FailingTransport(httpx.AsyncBaseTransport):
        """Index 3 mod 5 never reaches the app: the connection is refused."""

        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if int(request.url.path.rsplit("/", 1)[1]) % 5 == 3:
                raise httpx.ConnectError("refused", request=request)
            return await self.inner.handle_async_request(request)

    seen: list[int] = []
    transport = FailingTransport(httpx.ASGITransport(app=app_answering(answer, seen)))
    async with httpx.AsyncClient(transport=transport, base_url="http://mg.test") as client:
        result = await drive(client, indexed, concurrency=4, count=50, check=answered())

    assert result.failures == {"HTTP 500": 10, "resultCode 000005": 10, "not a JSON object": 10, "ConnectError": 10}
    assert (result.sent, result.ok, result.errors) == (50, 10, 40)
    assert len(result.latencies_ms) == 40  # every answered request, passed or not
    assert len(seen) == 40
    assert "40 errors" in result.summary()


async def test_overall_timeout_cuts_off_requests_in_flight() -> None:
    async def hang_from_ten(request: Request) -> Response:
        if int(request.path_params["index"]) >= 10:
            await anyio.sleep_forever()
        return JSONResponse({"resultCode": "000000"})

    app = Starlette(routes=[Route("/n/{index}", hang_from_ten, methods=["POST"])])
    async with asgi_client(app) as client:
        with anyio.fail_after(5):  # the driver must return on its own well before this
            result = await drive(client, indexed, concurrency=4, count=100, check=answered(), timeout_s=0.2)

    assert result.timed_out
    assert result.ok == 10
    assert result.failures == {OVERALL_TIMEOUT: 4}
    assert (result.sent, result.not_sent) == (14, 86)
    assert result.elapsed_s >= 0.2


async def test_duration_stops_starting_new_requests() -> None:
    clock = FakeClock()
    async with asgi_client(app_answering(lambda _: clock.advance(1.0), [])) as client:
        result = await drive(client, indexed, concurrency=1, count=100, check=answered(), duration_s=5, clock=clock)

    assert (result.sent, result.ok, result.not_sent) == (5, 5, 95)
    assert not result.timed_out
    assert "95 not sent" in result.summary()


async def test_paced_requests_start_when_due_not_as_soon_as_possible() -> None:
    seen: list[int] = []
    async with asgi_client(app_answering(lambda _: None, seen)) as client:
        result = await drive(client, indexed, concurrency=4, count=21, check=answered(), rate=100)

    assert sorted(seen) == list(range(21))
    # the 21st request was due 0.2 s after the first: an unpaced run takes milliseconds
    assert result.elapsed_s >= 0.2
    assert result.throughput <= 21 / 0.2


async def test_paced_latency_counts_from_when_a_request_was_due() -> None:
    clock = FakeClock()
    # one connection, a request due every 0.1 s, each answered in 0.25 s: the server falls behind
    async with asgi_client(app_answering(lambda _: clock.advance(0.25), [])) as client:
        result = await drive(client, indexed, concurrency=1, count=5, check=answered(), rate=10, clock=clock)

    # request n starts at 0.25 n but was due at 0.1 n: its wait counts
    assert result.latencies_ms == pytest.approx([250 + 150 * n for n in range(5)])


async def test_paced_requests_due_after_the_duration_are_never_sent() -> None:
    seen: list[int] = []
    async with asgi_client(app_answering(lambda _: None, seen)) as client:
        result = await drive(client, indexed, concurrency=4, count=100, check=answered(), rate=10, duration_s=0.25)

    # due at 0, 0.1 and 0.2 s; the fourth would be due at 0.3 s, after the duration
    assert sorted(seen) == [0, 1, 2]
    assert (result.sent, result.not_sent) == (3, 97)


async def test_a_rate_must_be_positive() -> None:
    async with asgi_client(app_answering(lambda _: None, [])) as client:
        with pytest.raises(ValueError, match="rate must be positive"):
            await drive(client, indexed, concurrency=1, count=1, check=answered(), rate=0)


async def sent_calls(factory: RequestFactory, count: int) -> list[tuple[httpx.QueryParams, dict[str, str]]]:
    """The signature query and the body of the first `count` requests of `factory`."""
    async with httpx.AsyncClient() as client:
        requests = [factory(client, index) for index in range(count)]
    return [(request.url.params, json.loads(request.content)) for request in requests]


def assert_signed(params: httpx.QueryParams, body: dict[str, str]) -> None:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    canonical = canonical_payload(parse_object(raw)) or raw
    verify(
        CallKind.BASIC,
        keys=[KEY],
        signature=params["signature"],
        nonce=params["nonce"],
        timestamp=params["timestamp"],
        payloads=[canonical],
    )


async def test_new_instance_calls_are_signed_each_with_its_own_nonce_and_order() -> None:
    orders = NewInstanceOrders(prefix="T1")
    calls = await sent_calls(new_instance_factory(URL, KEY, orders, now_ms=lambda: 1_700_000_000_000), 20)

    for params, body in calls:
        assert_signed(params, body)
        assert params["timestamp"] == "1700000000000"
        assert body["activity"] == "newInstance"
        assert body["orderLineId"] == body["orderId"] + "-000001"
    assert len({params["nonce"] for params, _ in calls}) == 20
    assert len({body["orderId"] for _, body in calls}) == 20
    assert [body["businessId"] for _, body in calls] == orders.business_ids(range(20))
    assert all(len(business_id) <= 64 for business_id in orders.business_ids([10**9]))


async def test_query_instance_calls_walk_the_ids_in_a_ring() -> None:
    ids = [f"i{n}" for n in range(25)]
    calls = await sent_calls(query_instance_factory(URL, KEY, ids, ids_per_call=10), 3)

    for params, body in calls:
        assert_signed(params, body)
    assert [body["instanceId"].split(",") for _, body in calls] == [ids[:10], ids[10:20], ids[20:] + ids[:5]]
    with pytest.raises(ValueError, match=r"1\.\.100 ids"):
        query_instance_factory(URL, KEY, ids, ids_per_call=101)


async def test_basic_call_factory_signs_at_build_time() -> None:
    stamps = iter([1000, 2000])
    factory = basic_call_factory(
        URL, KEY, lambda index: {"activity": "queryInstance", "instanceId": str(index)}, now_ms=lambda: next(stamps)
    )
    calls = await sent_calls(factory, 2)

    assert [params["timestamp"] for params, _ in calls] == ["1000", "2000"]
    assert [body["instanceId"] for _, body in calls] == ["0", "1"]


async def test_load_client_keeps_one_connection_per_request_in_flight() -> None:
    peers: Counter[tuple[str, int]] = Counter()

    async def call(request: Request) -> Response:
        assert request.client is not None
        peers[(request.client.host, request.client.port)] += 1
        await anyio.sleep(0.001)
        return JSONResponse({"resultCode": "000000"})

    app = Starlette(routes=[Route("/n/{index}", call, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    with socket.create_server(("127.0.0.1", 0)) as listening:  # bound first: connections wait in its backlog
        port = listening.getsockname()[1]
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(server.serve, sockets=[listening]))
            async with load_client(4, base_url=f"http://127.0.0.1:{port}") as client:
                result = await drive(client, indexed, concurrency=4, count=200, check=answered())
            server.should_exit = True

    assert (result.ok, result.errors) == (200, 0)
    assert sum(peers.values()) == 200
    assert len(peers) <= 4
