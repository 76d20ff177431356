"""Benchmark: Kit syncs through one MarketGate worker on PostgreSQL, against a bare Starlette route.

In one run it starts, each in its own subprocess on a free loopback port (uvicorn):

- one MarketGate worker on PostgreSQL (in its own schema, `marketgate_bench_kit` by default,
  dropped and migrated afresh; nothing else in the database is touched), the in-memory
  store, one product whose adapter does nothing (the outbox still delivers every event);
- a bare Starlette route `POST /koogallery/{slug}/produceAPI/v2/{sync}` that reads and parses
  the body and answers the same JSON, checking and storing nothing.

Then, one signed call at a time (a fresh nonce and timestamp each, signed at send time):

1. tenantSync and applicationSync (the secret RSA-OAEP encrypted with a fresh 3072-bit key);
2. allOrgSync of 20,000 departments (a 10-ary tree): the first snapshot (all new), the same
   again (nothing changes), and one with 10% renamed, 5% removed and 5% added;
3. 1,000 authSync calls of 500 users each, from a pool of 5,000: the first ten authorize new
   members, every later one changes all 500 members' position and role (500 member rows,
   500 authorization rows and 500 history lines written, and a 500-member event). The
   worker's RSS (/proc/<pid>/status VmRSS) is read after the 100th and the 1,000th call;
4. the bare route with the same authSync bodies, for the ratio.

It prints latencies, the ratio of MarketGate's authSync p50 to the bare route's, the
allOrgSync times and both RSS readings, each against its target. It asserts nothing.

    .venv/bin/python -m bench.kit_syncs          (or: .venv/bin/python bench/kit_syncs.py)
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._harness import (
    ServerProcess,
    free_port,
    quantile,
    rss_mib,
    run_in_workdir,
    start_server,
    uvicorn_argv,
    verdict,
)
from gateway.adapters.contract import (
    AdapterContext,
    AdapterError,
    AppInfo,
    ChangeCheckRequest,
    ChangeDecision,
    DirectoryEvent,
    InstanceRef,
    LoginRequest,
    ProvisionRequest,
    RenewRequest,
    SessionEnd,
    StatusRequest,
    UpgradeRequest,
)

SLUG = "bench"
SCHEMA = "marketgate_bench_kit"
TENANT = "bench-tenant-000000000000000001"
TIME = "20240101000000000"
TARGET_AUTH_P50_MS = 150.0
TARGET_ALL_ORG_S = 2.0
TARGET_RSS_GROWTH = 1.10


# -- the two servers (uvicorn factories, run in the subprocesses) --------------------------------


class NullAdapter:
    """An adapter that accepts everything at once: the bench measures MarketGate, not a product."""

    contract_version: ClassVar[int] = 2

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        self.events = 0

    @property
    def handles_test_calls(self) -> bool:
        return True

    async def provision(self, request: ProvisionRequest) -> AppInfo:
        return AppInfo(front_end_url="https://bench.example.com/")

    async def renew(self, request: RenewRequest) -> None: ...

    async def set_status(self, request: StatusRequest) -> None: ...

    async def release(self, instance: InstanceRef) -> None: ...

    async def upgrade(self, request: UpgradeRequest) -> None: ...

    async def check_change(self, request: ChangeCheckRequest) -> ChangeDecision:
        return ChangeDecision(True)

    async def describe(self, instance: InstanceRef) -> None:
        return None

    async def on_directory_event(self, event: DirectoryEvent) -> None:
        self.events += 1

    async def on_login(self, request: LoginRequest) -> str:
        raise AdapterError("the bench's product has no SSO")

    async def on_session_end(self, end: SessionEnd) -> None: ...

    async def aclose(self) -> None: ...


def worker_app() -> Any:
    """MarketGate as `marketgate serve` builds it, with the null adapter (settings from the environment)."""
    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.settings import Settings

    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return create_app(settings, adapter_factories={"bench-null": NullAdapter})


def bare_app() -> Any:
    """The bare route: parse the body, answer like MarketGate, check and store nothing."""
    import json

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    answer = b'{"resultCode":"000000","resultMsg":"success."}'

    async def sync(request: Request) -> Response:
        json.loads(await request.body())
        return Response(answer, media_type="application/json;charset=UTF-8")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/koogallery/{slug}/produceAPI/v2/{sync}", sync, methods=["POST"])]
    )


# -- the driver ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kit_syncs",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=f"The schema --schema (default {SCHEMA}) of the database is DROPPED and recreated; nothing else "
        "in that database is touched.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MARKETGATE_BENCH_DATABASE_URL", "postgresql://127.0.0.1:5432/test"),
        help="PostgreSQL to bench on (default: $MARKETGATE_BENCH_DATABASE_URL or postgresql://127.0.0.1:5432/test)",
    )
    parser.add_argument("--schema", default=SCHEMA, help=f"schema to (re)create and use (default: {SCHEMA})")
    parser.add_argument("--users", type=int, default=500, help="users per authSync call (default: 500)")
    parser.add_argument("--pool", type=int, default=5000, help="distinct users the calls draw from (default: 5000)")
    parser.add_argument("--auth-calls", type=int, default=1000, help="authSync calls (default: 1000)")
    parser.add_argument("--rss-early", type=int, default=100, help="read RSS after this many calls (default: 100)")
    parser.add_argument("--departments", type=int, default=20_000, help="allOrgSync size (default: 20000)")
    parser.add_argument("--bare-calls", type=int, default=300, help="calls to the bare route (default: 300)")
    parser.add_argument("--warmup", type=int, default=20, help="calls left out of the percentiles (default: 20)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="MarketGate's log level (default: INFO, as in production; the log goes to a file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (keys, logs)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// URL")
    if not args.schema.isidentifier():
        parser.error("--schema must be a plain identifier")
    return args


def schema_url(url: str, schema: str) -> str:
    """The URL with every connection's search_path set to `schema` (libpq `options`)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


def reset_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    from tenants.database import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()


@dataclass
class Keys:
    access_key: str
    private_key_file: Path
    public_key: Any


def write_config(directory: Path) -> tuple[Path, Keys]:
    from cryptography.hazmat.primitives import serialization

    from gateway.koogallery.client_secret import new_key_pair

    pair = new_key_pair(3072)
    private_file = directory / "rsa-private.pem"
    private_file.write_bytes(pair.private_pem)
    private_file.chmod(0o600)
    access_key = secrets.token_hex(24)
    config = directory / "products.toml"
    config.write_text(
        f'[products.{SLUG}]\nname = "Bench"\nadapter = "bench-null"\naccess_key = "{access_key}"\n'
        f'rsa_private_key_file = "{private_file.name}"\n',
        encoding="utf-8",
    )
    public = serialization.load_pem_public_key(pair.public_pem)
    return config, Keys(access_key, private_file, public)


def encrypt(public_key: Any, secret: str) -> str:
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    scheme = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
    return base64.b64encode(public_key.encrypt(secret.encode(), scheme)).decode()


def common() -> dict[str, object]:
    return {"instanceId": "bench-instance", "tenantId": TENANT, "testFlag": 0, "timeStamp": TIME}


def departments(count: int, *, renamed: int = 0, removed: int = 0, added: int = 0) -> list[dict[str, str]]:
    """A 10-ary tree of `count` departments; optionally some renamed, the last ones removed, new ones added."""
    items = []
    for index in range(count - removed):
        name = f"Department {index}" + (" (renamed)" if index < renamed else "")
        parent = "" if index == 0 else f"D{(index - 1) // 10:06d}"
        items.append({"orgCode": f"D{index:06d}", "orgName": name, "parentCode": parent})
    for index in range(count, count + added):
        items.append({"orgCode": f"D{index:06d}", "orgName": f"Department {index}", "parentCode": "D000000"})
    return items


def auth_body(call: int, *, users: int, pool: int) -> bytes:
    from gateway.simulator.signer import marketplace_body

    blocks = max(1, pool // users)
    block, round_ = call % blocks, call // blocks
    role = "admin" if round_ % 2 else "user"
    members = [
        {
            "userName": f"user{(block * users + n) % pool:06d}",
            "name": f"User {n}",
            "orgCode": f"D{n % 2000:06d}",
            "position": f"P{call}",
            "role": role,
            "enable": "true",
            "email": f"u{n}@bench.example.com",
        }
        for n in range(users)
    ]
    return marketplace_body({**common(), "appId": "bench-app", "flag": 1, "currentSyncTime": TIME, "userList": members})


async def post(client: httpx.AsyncClient, sync: str, body: bytes, key: str) -> float:
    """Send one signed call; returns its round trip in ms. Anything but 000000 stops the bench."""
    from datetime import UTC, datetime

    from gateway.clock import epoch_ms
    from gateway.koogallery.signing import CallKind
    from gateway.simulator.signer import sign_call

    call = sign_call(CallKind.KIT, body, key=key.encode(), now_ms=epoch_ms(datetime.now(UTC)))
    started = time.perf_counter()
    response = await client.post(f"/koogallery/{SLUG}/produceAPI/v2/{sync}", content=body, headers=call.headers)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or response.json().get("resultCode") != "000000":
        raise SystemExit(f"{sync} failed: {response.status_code} {response.text[:300]}")
    return elapsed_ms




async def run(args: argparse.Namespace, workdir: Path) -> int:
    from gateway.simulator.signer import marketplace_body

    url = schema_url(args.database_url, args.schema)
    reset_schema(args.database_url, args.schema)
    config, keys = write_config(workdir)
    worker_port, bare_port = free_port(), free_port()
    env = {
        "MARKETGATE_ENVIRONMENT": "production",
        "MARKETGATE_SECRET_KEY": secrets.token_urlsafe(48),
        "MARKETGATE_DATABASE_URL": url,
        "MARKETGATE_CONFIG": str(config),
        "MARKETGATE_LOG_LEVEL": args.log_level,
        "MARKETGATE_DATA_DIR": str(workdir),
    }
    env_clear = {name: "" for name in ("MARKETGATE_REDIS_URL",) if name in os.environ}
    worker = start_server(
        "marketgate",
        uvicorn_argv("bench.kit_syncs:worker_app", port=worker_port),
        port=worker_port,
        env={**env, **env_clear},
        log_dir=workdir,
    )
    bare = start_server(
        "bare", uvicorn_argv("bench.kit_syncs:bare_app", port=bare_port), port=bare_port, env={}, log_dir=workdir
    )
    servers: list[ServerProcess] = [worker, bare]
    try:
        worker.wait_ready("/readyz", timeout_s=60)
        bare.wait_ready("/healthz", timeout_s=30)
        print(
            f"MarketGate worker pid {worker.pid} on :{worker_port} (PostgreSQL schema {args.schema}); "
            f"bare route on :{bare_port}",
            flush=True,
        )
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=worker.base_url, timeout=30, limits=limits) as client:
            tenant = {
                **common(),
                "orderId": "bench-order",
                "tenantCode": "bench",
                "name": "Bench Co",
                "domainName": "https://bench.tenantaccount.com",
                "flag": 1,
            }
            await post(client, "tenantSync", marketplace_body(tenant), keys.access_key)
            application = {
                **common(),
                "appId": "bench-app",
                "clientId": "bench-client",
                "clientSecret": encrypt(keys.public_key, "bench-secret"),
                "flag": 1,
            }
            await post(client, "applicationSync", marketplace_body(application), keys.access_key)

            count = args.departments
            org_timings = []
            for label, items in (
                ("first snapshot, all new", departments(count)),
                ("same snapshot again", departments(count)),
                (
                    "10% renamed, 5% removed, 5% added",
                    departments(count, renamed=count // 10, removed=count // 20, added=count // 20),
                ),
            ):
                body = marketplace_body({**common(), "orgInfoList": items, "flag": 1})
                elapsed = await post(client, "allOrgSync", body, keys.access_key) / 1000
                org_timings.append(elapsed)
                print(
                    f"  allOrgSync {len(items):>6} departments ({label}, {len(body) / 1e6:.1f} MB): {elapsed:.3f} s",
                    flush=True,
                )

            bodies = [auth_body(call, users=args.users, pool=args.pool) for call in range(args.auth_calls)]
            latencies: list[float] = []
            rss_early = rss_late = float("nan")
            for call, body in enumerate(bodies, start=1):
                latencies.append(await post(client, "authSync", body, keys.access_key))
                if call == args.rss_early:
                    rss_early = rss_mib(worker.pid)
                if call % 200 == 0:
                    print(f"  ... {call} authSync calls, last {latencies[-1]:.1f} ms", flush=True)
            rss_late = rss_mib(worker.pid)
        async with httpx.AsyncClient(base_url=bare.base_url, timeout=30, limits=limits) as client:
            bare_latencies = [
                await post(client, "authSync", body, keys.access_key) for body in bodies[: args.bare_calls]
            ]
    finally:
        for server in servers:
            server.stop()

    measured = latencies[args.warmup :]
    bare_measured = bare_latencies[min(args.warmup, len(bare_latencies) - 1) :]
    p50, p99 = quantile(measured, 0.5), quantile(measured, 0.99)
    bare_p50, bare_p99 = quantile(bare_measured, 0.5), quantile(bare_measured, 0.99)
    growth = rss_late / rss_early
    print()
    print(
        f"authSync, {args.users} users per call, {len(measured)} calls measured (of {len(latencies)}), one at a time:"
    )
    print(
        f"  MarketGate  p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   mean {statistics.fmean(measured):7.1f} ms"
        f"   [{verdict(p50 < TARGET_AUTH_P50_MS)}: p50 < {TARGET_AUTH_P50_MS:.0f} ms]"
    )
    print(f"  bare route  p50 {bare_p50:7.1f} ms   p99 {bare_p99:7.1f} ms")
    print(f"  ratio p50 MarketGate / bare: {p50 / bare_p50:.1f}x   (bare / MarketGate: {bare_p50 / p50:.3f})")
    print(
        f"allOrgSync, {args.departments} departments: first {org_timings[0]:.3f} s, repeat {org_timings[1]:.3f} s, "
        f"changed {org_timings[2]:.3f} s   [{verdict(max(org_timings) < TARGET_ALL_ORG_S)}: "
        f"< {TARGET_ALL_ORG_S:.0f} s]"
    )
    print(
        f"worker RSS: after {args.rss_early} authSync calls {rss_early:.1f} MiB, after {len(latencies)} "
        f"{rss_late:.1f} MiB, x{growth:.3f}   [{verdict(growth <= TARGET_RSS_GROWTH)}: <= {TARGET_RSS_GROWTH:.2f}]"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), prefix="marketgate-bench-kit-")


if __name__ == "__main__":
    sys.exit(main())
