"""Benchmark: SSO callback-to-redirect latency, on top of the identity domain's own time.

In one run:

- MarketGate in a subprocess on a free loopback port (uvicorn, as `marketgate serve` builds it),
  one product `bench` on the demo adapter; a fresh SQLite file and the in-memory store, or the
  PostgreSQL (`--database-url`, in its own schema, dropped and migrated afresh) and Redis
  (`--redis-url`) given. Development settings, with `MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES`
  pointing the tenant's identity domain at:
- the authlib identity server (`gateway.simulator.identity`) in this process, served by uvicorn
  in a thread on another loopback port; it records the seconds it spends per path.

The tenant is bound, its app credentials synced (RSA-OAEP with a fresh 3072-bit key) and one
member authorized through signed Kit calls. Then, one login at a time: `GET /sso/bench/login?tenant=`
(MarketGate's state), the identity domain's authorize (already signed in there), and the measured
request: `GET /sso/bench/callback?code&state&tenant` until MarketGate answers its 303 into the
product. For each login, the identity server's own time on that callback's token and userinfo
requests (its request statistics) is subtracted: what remains is MarketGate's extra time (its
work, the database and store, and the HTTP client's side of the two calls). A `GET /healthz` on
the same MarketGate gives the floor of one loopback request.

    .venv/bin/python -m bench.sso_login
    .venv/bin/python -m bench.sso_login --database-url postgresql://127.0.0.1:5432/marketgate_bench \\
        --redis-url redis://127.0.0.1:6379/13

It prints p50/p90/p99 of the callback, of the identity server's time and of the extra, and the
target (extra p50 < 30 ms). It asserts nothing.
"""

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._harness import free_port, quantile, run_in_workdir, start_server, uvicorn_argv

SLUG = "bench"
TENANT = "bench-tenant-000000000000000001"
IDENTITY_DOMAIN = "https://idp.bench.example"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789"
USER = "alice"
TIME = "20240101000000000"
SCHEMA = "marketgate_bench_sso"
TARGET_EXTRA_P50_MS = 30.0


def marketgate_app() -> Any:
    """MarketGate as `marketgate serve` builds it (settings from the environment)."""
    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.settings import Settings

    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return create_app(settings)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.sso_login", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="logins measured (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="logins before measuring (default 30)")
    parser.add_argument("--database-url", help="postgresql:// URL (its schema bench_sso is dropped); default SQLite")
    parser.add_argument("--redis-url", help="Redis for the shared store; default the in-memory store")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (keys, logs)")
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// URL")
    return args



def write_config(directory: Path) -> tuple[Path, str, Any]:
    from cryptography.hazmat.primitives import serialization

    from gateway.koogallery.client_secret import new_key_pair

    pair = new_key_pair(3072)
    private_file = directory / "rsa-private.pem"
    private_file.write_bytes(pair.private_pem)
    private_file.chmod(0o600)
    access_key = secrets.token_hex(24)
    config = directory / "products.toml"
    config.write_text(
        f'[products.{SLUG}]\nname = "Bench"\nadapter = "demo"\naccess_key = "{access_key}"\n'
        f'rsa_private_key_file = "{private_file.name}"\n',
        encoding="utf-8",
    )
    return config, access_key, serialization.load_pem_public_key(pair.public_pem)


async def kit(client: httpx.AsyncClient, sync: str, fields: dict[str, object], key: str) -> None:
    from datetime import UTC, datetime

    from gateway.clock import epoch_ms
    from gateway.koogallery.signing import CallKind
    from gateway.simulator.signer import marketplace_body, sign_call

    body = marketplace_body(
        {"instanceId": "bench-instance", "tenantId": TENANT, "testFlag": 0, "timeStamp": TIME, **fields}
    )
    call = sign_call(CallKind.KIT, body, key=key.encode(), now_ms=epoch_ms(datetime.now(UTC)))
    response = await client.post(f"/koogallery/{SLUG}/produceAPI/v2/{sync}", content=body, headers=call.headers)
    if response.status_code != 200 or response.json().get("resultCode") != "000000":
        raise SystemExit(f"{sync} failed: {response.status_code} {response.text[:300]}")


async def bind_tenant(client: httpx.AsyncClient, key: str, public_key: Any) -> None:
    from bench.kit_syncs import encrypt

    await kit(
        client,
        "tenantSync",
        {"orderId": "bench-order", "tenantCode": "bench", "name": "Bench Co", "domainName": IDENTITY_DOMAIN, "flag": 1},
        key,
    )
    secret = encrypt(public_key, CLIENT_SECRET)
    await kit(
        client, "applicationSync", {"appId": "bench-app", "clientId": CLIENT_ID, "clientSecret": secret, "flag": 1}, key
    )
    member = {"userName": USER, "name": "Alice", "orgCode": "10000", "role": "admin", "enable": "true"}
    await kit(client, "authSync", {"appId": "bench-app", "flag": 1, "currentSyncTime": TIME, "userList": [member]}, key)


async def run(args: argparse.Namespace, workdir: Path) -> int:
    from gateway.simulator.identity import (
        SESSION_COOKIE,
        TOKEN_PATH,
        USERINFO_PATH,
        IdentityDirectory,
        create_identity_app,
        serve_identity,
    )

    config, access_key, public_key = write_config(workdir)
    port = free_port()
    marketgate_url = f"http://127.0.0.1:{port}"
    directory = IdentityDirectory(password_iterations=1_000)
    directory.add_tenant(TENANT, "Bench Co")
    directory.register_client(
        TENANT,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[f"{marketgate_url}/sso/{SLUG}/callback"],
    )
    directory.add_user(TENANT, USER, name="Alice", role="admin")
    with serve_identity(create_identity_app(directory, issuer="http://127.0.0.1")) as identity_url:
        database_url = f"sqlite:///{workdir / 'marketgate.db'}"
        if args.database_url:
            from bench.kit_syncs import reset_schema, schema_url

            reset_schema(args.database_url, SCHEMA)
            database_url = schema_url(args.database_url, SCHEMA)
        env = {
            "MARKETGATE_ENVIRONMENT": "development",
            "MARKETGATE_DATABASE_URL": database_url,
            "MARKETGATE_REDIS_URL": args.redis_url or "",
            "MARKETGATE_CONFIG": str(config),
            "MARKETGATE_DATA_DIR": str(workdir),
            "MARKETGATE_PUBLIC_URL": marketgate_url,
            "MARKETGATE_LOG_LEVEL": args.log_level,
            "MARKETGATE_SSO_CALLBACK_RATE_LIMIT": "100000",
            "MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES": json.dumps({IDENTITY_DOMAIN: identity_url}),
        }
        server = start_server(
            "marketgate", uvicorn_argv("bench.sso_login:marketgate_app", port=port), port=port, env=env, log_dir=workdir
        )
        try:
            server.wait_ready("/readyz", timeout_s=60)
            print(f"MarketGate pid {server.pid} on {marketgate_url}; identity server on {identity_url}", flush=True)
            limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
            async with httpx.AsyncClient(base_url=marketgate_url, timeout=30, limits=limits) as client:
                await bind_tenant(client, access_key, public_key)
                floor = []
                for _ in range(args.warmup + args.count):
                    started = time.perf_counter()
                    (await client.get("/healthz")).raise_for_status()
                    floor.append((time.perf_counter() - started) * 1000)
            totals, identity_times = [], []
            async with httpx.AsyncClient(timeout=30, limits=limits) as browser:
                browser.cookies.set(SESSION_COOKIE, directory.log_in(TENANT, USER))
                for index in range(args.warmup + args.count):
                    browser.cookies.delete("mg_session")
                    started_login = await browser.get(f"{marketgate_url}/sso/{SLUG}/login", params={"tenant": TENANT})
                    authorized = await browser.get(started_login.headers["location"])
                    callback = authorized.headers["location"]
                    before = (directory.stats.count(TOKEN_PATH), directory.stats.count(USERINFO_PATH))
                    seconds_before = directory.stats.seconds(TOKEN_PATH) + directory.stats.seconds(USERINFO_PATH)
                    started = time.perf_counter()
                    landed = await browser.get(callback)
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if landed.status_code != 303:
                        raise SystemExit(f"callback answered {landed.status_code}: {landed.text[:300]}")
                    # The identity server records a request when it has finished sending it: wait for both.
                    deadline = time.monotonic() + 2
                    while (directory.stats.count(TOKEN_PATH), directory.stats.count(USERINFO_PATH)) != (
                        before[0] + 1,
                        before[1] + 1,
                    ):
                        if time.monotonic() > deadline:
                            raise SystemExit("the identity server did not record the token and userinfo requests")
                        await asyncio.sleep(0.0005)
                    identity_ms = (
                        directory.stats.seconds(TOKEN_PATH) + directory.stats.seconds(USERINFO_PATH) - seconds_before
                    ) * 1000
                    if index >= args.warmup:
                        totals.append(elapsed_ms)
                        identity_times.append(identity_ms)
        finally:
            server.stop()

    extras = [total - identity for total, identity in zip(totals, identity_times, strict=True)]
    floor = floor[args.warmup :]
    backend = "PostgreSQL" if args.database_url else "SQLite"
    store = "Redis" if args.redis_url else "in-memory store"
    print()
    print(f"SSO callback to redirect, {len(totals)} logins measured one at a time ({backend}, {store}):")
    for label, values in (
        ("callback (total)", totals),
        ("identity server", identity_times),
        ("MarketGate extra", extras),
        ("GET /healthz", floor),
    ):
        print(
            f"  {label:<17} p50 {quantile(values, 0.5):7.2f} ms   p90 {quantile(values, 0.9):7.2f} ms"
            f"   p99 {quantile(values, 0.99):7.2f} ms   mean {statistics.fmean(values):7.2f} ms"
        )
    p50 = quantile(extras, 0.5)
    verdict = "PASS" if p50 < TARGET_EXTRA_P50_MS else "FAIL"
    print(f"  extra p50 {p50:.2f} ms   [{verdict}: < {TARGET_EXTRA_P50_MS:.0f} ms on top of the identity server]")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), prefix="marketgate-bench-sso-")


if __name__ == "__main__":
    sys.exit(main())
