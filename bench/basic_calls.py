"""Benchmark: basic production calls through one MarketGate worker against a bare Starlette route.

In one run it starts, each in its own subprocess on loopback:

- one MarketGate worker (`marketgate serve`, uvicorn) with one product on the `demo` adapter,
  a fresh SQLite file in a temporary directory (or the PostgreSQL database given), and the
  in-memory store (or the Redis given);
- the local stand-in of the marketplace's order-query open API, which that product's
  newInstance provisioning queries (leave it out with --no-order-query);
- a bare Starlette app whose POST route reads the body and answers the same JSON.

Then it drives both with the same load driver (`gateway.simulator.load`), every request
signed at send time: newInstance (a new order each) and queryInstance (ids created by the
newInstance phases, several per call). For each activity: the capacity of the bare route and
of MarketGate (requests back to back, after a warm-up), then MarketGate's latency at the
target load (paced at the activity's ratio target times the bare route's capacity), each
phase bounded by a count and a duration. It prints throughput and latency for each, and
MarketGate's share of the bare route's throughput. It asserts nothing: it prints.

    .venv/bin/python -m bench.basic_calls
"""

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._harness import (
    ServerProcess,
    cpu_seconds,
    free_port,
    marketgate_argv,
    rss_mib,
    start_server,
    uvicorn_argv,
)
from gateway.simulator.load import (
    LoadResult,
    NewInstanceOrders,
    RequestFactory,
    answered,
    drive,
    load_client,
    new_instance_factory,
    query_instance_factory,
)

SLUG = "bench"
ORDER_QUERY_PATH = "/api/mkp-openapi-public/global/v1/order/query"


@dataclass(frozen=True)
class Target:
    min_ratio: float
    max_p99_ms: float = 50.0


TARGETS = {"newInstance": Target(0.15), "queryInstance": Target(0.35)}


@dataclass
class Phase:
    """One measured phase against one server, with what the server used meanwhile."""

    activity: str
    server: str
    rate: float | None
    """None: requests back to back (capacity); else paced at this many requests per second."""
    result: LoadResult
    server_cpu_s: float
    client_cpu_s: float
    rss_mib: float
    warmup_sent: int
    """Requests the warm-up before the phase sent."""

    @property
    def load(self) -> str:
        return "capacity" if self.rate is None else f"at {self.rate:.0f}/s"

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.result.elapsed_s if self.result.elapsed_s else math.nan

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.result.elapsed_s if self.result.elapsed_s else math.nan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.basic_calls",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(
            "WARNING: with --database-url postgresql://..., the schema `public` of that database is DROPPED "
            "and created afresh before the run. Never point it at a database whose data you want to keep. "
            "With --redis-url, nonces are written to that Redis (nothing is flushed)."
        ),
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default: 32)")
    parser.add_argument("--count", type=int, default=3000, help="requests per measured phase at most (default: 3000)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured phase at most (default: 15)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests before each phase (default: 300)")
    parser.add_argument("--ids-per-call", type=int, default=10, help="instance ids per queryInstance (default: 10)")
    parser.add_argument(
        "--rate",
        type=float,
        help="pace the latency phases at this many requests per second (default: each activity's target load, "
        "its ratio target times the bare route's capacity measured in the same run)",
    )
    parser.add_argument(
        "--database-url",
        help="bench on this PostgreSQL (its schema `public` is dropped first!) instead of a fresh SQLite file",
    )
    parser.add_argument("--redis-url", help="MarketGate's store on this Redis instead of in memory")
    parser.add_argument(
        "--no-order-query",
        action="store_true",
        help="no open-API keys on the product: newInstance provisions without querying the order",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="MarketGate's log level (default: INFO, as in production; the log goes to a file)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the MarketGate worker with py-spy during its measured phases (raw stacks into "
        "DIR/<activity>-capacity.txt and DIR/<activity>-at-load.txt)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave every process free to run on any CPU (default: the servers under test on the first CPU, "
        "the load generator and the open-API stand-in on the others)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, logs)")
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// URL (SQLite is the default)")
    if args.rate is not None and not args.rate > 0:
        parser.error("--rate must be positive")
    return args


def run_on_postgres(url: str, *statements: str) -> None:
    """Run `statements` in one transaction (outside any MarketGate process)."""
    from sqlalchemy import create_engine, text

    from tenants.database import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def reset_postgres_schema(url: str) -> None:
    """Drop and recreate schema `public`: MarketGate migrates it from scratch at start-up."""
    run_on_postgres(url, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")


def products_file(directory: Path, *, key: str, open_api_port: int | None) -> Path:
    from gateway.simulator.open_api import DEMO_ACCESS_KEY, DEMO_SECRET_KEY

    order_query = (
        f'open_api_endpoint = "http://127.0.0.1:{open_api_port}"\n'
        f'open_api_ak = "{DEMO_ACCESS_KEY}"\nopen_api_sk = "{DEMO_SECRET_KEY}"\n'
        if open_api_port is not None
        else ""
    )
    path = directory / "products.toml"
    path.write_text(
        f'[products.{SLUG}]\nname = "Bench Workspace"\nadapter = "demo"\naccess_key = "{key}"\n{order_query}',
        encoding="utf-8",
    )
    return path


def marketgate_env(
    directory: Path,
    *,
    key: str,
    port: int,
    open_api_port: int | None,
    log_level: str,
    database_url: str | None = None,
    redis_url: str | None = None,
) -> dict[str, str]:
    """The environment of a MarketGate worker serving product `bench` (access key `key`) on
    `port`, on `database_url` (default: a fresh SQLite file in `directory`) and the in-memory
    store (or `redis_url`), its order queries going to `open_api_port` (None: no order query)."""
    env = {
        "MARKETGATE_ENVIRONMENT": "development",
        "MARKETGATE_DATABASE_URL": database_url or f"sqlite:///{directory / 'marketgate.db'}",
        "MARKETGATE_CONFIG": str(products_file(directory, key=key, open_api_port=open_api_port)),
        "MARKETGATE_DATA_DIR": str(directory),
        "MARKETGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MARKETGATE_LOG_LEVEL": log_level,
    }
    if redis_url:
        env["MARKETGATE_REDIS_URL"] = redis_url
    return env


def start_open_api(port: int, directory: Path) -> ServerProcess:
    """The local stand-in of the marketplace's order-query open API, on `port`, logging into `directory`."""
    return start_server(
        "open-api",
        uvicorn_argv("gateway.simulator.open_api:create_demo_open_api_app", port=port),
        port=port,
        env={},
        log_dir=directory,
    )


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """Sample `pid` with py-spy while the block runs (nothing if `output` is None)."""
    if output is None:
        yield
        return
    spy = Path(sys.executable).parent / "py-spy"
    recorder = subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--gil",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # let it attach
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()


async def measure(
    client: httpx.AsyncClient,
    server: ServerProcess,
    activity: str,
    factory: RequestFactory,
    args: argparse.Namespace,
    *,
    check: Callable[[httpx.Response], bool],
    first_index: int,
    rate: float | None = None,
    profile: Path | None = None,
) -> Phase:
    """`--warmup` requests, then one measured phase, both paced at `rate` (or back to back), reading
    the server's CPU time around the measured phase."""
    warmed = await drive(
        client,
        factory,
        concurrency=args.concurrency,
        count=args.warmup,
        check=check,
        first_index=first_index,
        timeout_s=60 + (args.warmup / rate if rate else 0),
        rate=rate,
    )
    with py_spy(server.pid, profile):
        cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
        result = await drive(
            client,
            factory,
            concurrency=args.concurrency,
            count=args.count,
            check=check,
            duration_s=args.duration,
            timeout_s=args.duration + 30,
            first_index=first_index + warmed.sent,
            rate=rate,
        )
        server_cpu, client_cpu = cpu_seconds(server.pid) - cpu_before, time.process_time() - client_before
    phase = Phase(activity, server.name, rate, result, server_cpu, client_cpu, rss_mib(server.pid), warmed.sent)
    print(
        f"  {server.name:<10} {activity:<14} {phase.load:<11} {result.summary()}; "
        f"server {phase.server_cores:.2f} cores, client {phase.client_cores:.2f} cores",
        flush=True,
    )
    return phase


def query_check(ids_per_call: int) -> Callable[[httpx.Response], bool]:
    """Success, and every id asked for answered (so the instances really exist and are active)."""
    success = answered()

    def check(response: httpx.Response) -> bool:
        return success(response) and len(response.json().get("info", [])) == ids_per_call

    return check


async def activity_phases(
    client: httpx.AsyncClient,
    args: argparse.Namespace,
    activity: str,
    servers: tuple[ServerProcess, ServerProcess],
    factory_for: Callable[[ServerProcess], RequestFactory],
    check: Callable[[httpx.Response], bool],
) -> list[Phase]:
    """Capacity on the bare route, then on MarketGate; then MarketGate's latency at the target
    load (`--rate`, or the activity's ratio target times the bare route's capacity).

    Each phase has its warm-up, at its own pace: the latency phase's warm-up at the target load
    lets the backlog a capacity phase leaves (its last answers' background work, a log to
    checkpoint) drain before the measured requests, which are to show the steady state at
    that load. The bare route stores nothing, so both capacity phases take request indices
    from 0; the latency phase takes the indices after MarketGate's capacity phase, so each
    newInstance it sends is a new order."""
    bare, marketgate = servers

    def phase(
        server: ServerProcess, *, first_index: int = 0, rate: float | None = None, profile: Path | None = None
    ) -> Coroutine[Any, Any, Phase]:
        return measure(
            client,
            server,
            activity,
            factory_for(server),
            args,
            check=check,
            first_index=first_index,
            rate=rate,
            profile=profile,
        )

    def profile(name: str) -> Path | None:
        return args.profile / f"{activity}-{name}.txt" if args.profile else None

    bare_capacity = await phase(bare)
    capacity = await phase(marketgate, profile=profile("capacity"))
    target_load = args.rate or TARGETS[activity].min_ratio * bare_capacity.result.throughput
    at_load = await phase(
        marketgate,
        first_index=capacity.warmup_sent + capacity.result.sent,
        rate=target_load,
        profile=profile("at-load"),
    )
    return [bare_capacity, capacity, at_load]


async def run_phases(
    args: argparse.Namespace, marketgate: ServerProcess, bare: ServerProcess, key: bytes
) -> list[Phase]:
    servers = (bare, marketgate)
    async with load_client(args.concurrency) as client:
        orders = NewInstanceOrders()
        new_instances = await activity_phases(
            client,
            args,
            "newInstance",
            servers,
            lambda server: new_instance_factory(f"{server.base_url}/koogallery/{SLUG}", key, orders),
            answered(),
        )
        # The ids MarketGate's newInstance phases created (warm-up, capacity and latency).
        _, capacity, at_load = new_instances
        sent = capacity.warmup_sent + capacity.result.sent + at_load.warmup_sent + at_load.result.sent
        created = orders.business_ids(range(sent))
        if args.database_url:
            # Statistics for the table that just grew from nothing, as autovacuum would have them
            # on a production server (the local one runs without it). Without any, PostgreSQL
            # reads every instance of the product per queryInstance instead of using the key.
            await asyncio.to_thread(run_on_postgres, args.database_url, "ANALYZE instances")
        queries = await activity_phases(
            client,
            args,
            "queryInstance",
            servers,
            lambda server: query_instance_factory(
                f"{server.base_url}/koogallery/{SLUG}", key, created, ids_per_call=args.ids_per_call
            ),
            query_check(args.ids_per_call),
        )
    return new_instances + queries


def report(phases: list[Phase], args: argparse.Namespace, setup: str) -> None:
    by_key = {(phase.activity, phase.server, phase.rate is None): phase for phase in phases}
    load = os.getloadavg()[0]
    print(
        f"\n{setup}; {args.concurrency} connections, one MarketGate worker, "
        f"{os.cpu_count()} cores (load average {load:.1f})\n"
        f"capacity: requests back to back, {args.concurrency} always in flight (latency there is "
        f"{args.concurrency} / throughput); at load: paced at "
        f"{'--rate' if args.rate else 'the target load (ratio target x bare capacity)'}, "
        "latency counted from when each request was due\n"
    )
    header = (
        f"{'activity':<14} │ {'capacity':>8} {'p99 ms':>7} │ {'bare':>8} {'p99 ms':>7} │ "
        f"{'ratio':>6} {'target':>6} {'':>4} │ {'at load':>7} {'done':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'p99<50':>6}"
    )
    print(header)
    print("─" * len(header))
    for activity, target in TARGETS.items():
        ours = by_key[(activity, "marketgate", True)].result
        bare = by_key[(activity, "bare", True)].result
        at_load = by_key[(activity, "marketgate", False)]
        ratio = ours.throughput / bare.throughput if bare.throughput else math.nan
        ratio_ok = "ok" if ratio >= target.min_ratio else "MISS"
        p99_ok = "ok" if at_load.result.p99_ms < target.max_p99_ms and not at_load.result.errors else "MISS"
        print(
            f"{activity:<14} │ {ours.throughput:>8.1f} {ours.p99_ms:>7.1f} │ {bare.throughput:>8.1f} "
            f"{bare.p99_ms:>7.1f} │ {ratio:>6.1%} {'≥' + format(target.min_ratio, '.0%'):>6} {ratio_ok:>4} │ "
            f"{at_load.rate or math.nan:>7.1f} {at_load.result.throughput:>7.1f} {at_load.result.p50_ms:>7.1f} "
            f"{at_load.result.p99_ms:>7.1f} {at_load.result.errors:>6} {p99_ok:>6}"
        )
    print("(req/s: capacity, bare, at load = offered, done = answered ok per second)\n")
    for phase in phases:
        per_call = phase.server_cpu_s * 1000 / phase.result.ok if phase.result.ok else math.nan
        print(
            f"{phase.server:<10} {phase.activity:<14} {phase.load:<11} server {phase.server_cores:.2f} cores "
            f"({per_call:.2f} ms CPU per ok call), load generator {phase.client_cores:.2f} cores"
        )
    worker = [phase for phase in phases if phase.server == "marketgate"]
    print(f"MarketGate worker RSS {max(phase.rss_mib for phase in worker):.0f} MiB")


def pin_cpus(*, under_test: Sequence[ServerProcess], others: Sequence[ServerProcess]) -> str:
    """The servers under test on one CPU; this process (the load generator) and `others` (the
    open-API stand-in, which plays the marketplace) on the rest, so that neither side takes CPU
    time or cache from the other. Returns what was done, for the report."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    for server in under_test:
        _pin_process(server.pid, {cpus[0]})
    for pid in [os.getpid(), *(server.pid for server in others)]:
        _pin_process(pid, set(cpus[1:]))
    return f"servers under test pinned to CPU {cpus[0]}, load generator and open-API stand-in to the rest"


def _pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (affinity is per thread; threads started later inherit it)."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(int(thread.name), cpus)


def run(args: argparse.Namespace, directory: Path) -> tuple[list[Phase], str]:
    """Start the servers in `directory`, run every phase, stop the servers."""
    key = secrets.token_hex(16)
    if args.database_url:
        reset_postgres_schema(args.database_url)
    open_api_port = None if args.no_order_query else free_port()
    marketgate_port, bare_port = free_port(), free_port()
    env = marketgate_env(
        directory,
        key=key,
        port=marketgate_port,
        open_api_port=open_api_port,
        log_level=args.log_level,
        database_url=args.database_url,
        redis_url=args.redis_url,
    )
    setup = (
        f"MarketGate on {'PostgreSQL' if args.database_url else 'SQLite'} + "
        f"{'Redis' if args.redis_url else 'in-memory store'}, adapter demo, "
        f"order query {'off' if open_api_port is None else 'to the local open-API stand-in'}, "
        f"log level {args.log_level}"
    )
    servers: list[ServerProcess] = []
    try:
        if open_api_port is not None:
            open_api = start_open_api(open_api_port, directory)
            servers.append(open_api)
        marketgate = start_server(
            "marketgate", marketgate_argv(port=marketgate_port), port=marketgate_port, env=env, log_dir=directory
        )
        servers.append(marketgate)
        bare = start_server(
            "bare",
            uvicorn_argv("bench._harness:create_bare_app", port=bare_port),
            port=bare_port,
            env={},
            log_dir=directory,
        )
        servers.append(bare)
        if open_api_port is not None:
            open_api.wait_ready(ORDER_QUERY_PATH, timeout_s=30, ready_statuses=(401,))
        bare.wait_ready("/healthz", timeout_s=30)
        marketgate.wait_ready("/readyz", timeout_s=60)
        if not args.no_pin:
            others = [server for server in servers if server not in (marketgate, bare)]
            setup += "; " + pin_cpus(under_test=[marketgate, bare], others=others)
        print(f"{setup}: warm-up {args.warmup}, then up to {args.count} requests or {args.duration:.0f}s per phase")
        phases = asyncio.run(run_phases(args, marketgate, bare, key.encode("ascii")))
    finally:
        for server in reversed(servers):
            server.stop()
    return phases, setup


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="marketgate-bench-"))
    try:
        phases, setup = run(args, directory)
    finally:
        if args.keep:
            print(f"\nkept {directory} (database, server logs)")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    report(phases, args, setup)
    print(f"\nbench run took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
