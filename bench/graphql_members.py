"""Benchmark: the admin API's organization queries and role grants, on PostgreSQL, against a bare route.

In one run it

- (re)creates a PostgreSQL schema of its own (`marketgate_bench_graphql` by default; nothing
  else in the database is touched), migrates it, and bulk-loads one tenant directly through
  the tenants services: 100,000 members in 2,000 departments (a 10-ary tree; department
  D00001 alone has 5,000 members), every member authorized (2% as admin), some grants on
  departments and members, then VACUUM (ANALYZE) of its tables, as autovacuum (on by default;
  since PostgreSQL 13 it also vacuums tables that only grew) would have by the time anyone reads
  such a tenant: statistics for the planner, and the visibility map that lets a filtered count
  read the members' partial index alone (the unfiltered `totalCount` reads the tenant's member
  count, one row);
- starts, each in its own subprocess on a free loopback port (uvicorn): ONE MarketGate worker
  (a product with roles, an adapter that does nothing) and a bare Starlette route
  `POST /graphql` that parses the JSON body and answers a canned body of the same size as
  MarketGate's answer, checking and reading nothing;
- measures, one request at a time, with an operator's write token:
  1. a page of 100 members with their marketplace role, department, grants and effective
     roles, walking the pages with `after` cursors (without and with `totalCount`);
  2. the whole department tree (2,000 departments);
  3. `memberRolesGrant` of a role to the 5,000-member department (then `memberRolesRevoke`,
     so that every grant changes 5,000 members' effective roles and writes their events);
  and the bare route with bodies of the same sizes, for the ratios.

It prints p50 / p99 latencies, each against its target, and the ratio to the bare route.
It asserts nothing.

    .venv/bin/python -m bench.graphql_members          (or: .venv/bin/python bench/graphql_members.py)
"""

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._harness import ServerProcess, free_port, quantile, run_in_workdir, start_server, uvicorn_argv, verdict

SLUG = "bench"
SCHEMA = "marketgate_bench_graphql"
TENANT = "bench-tenant-000000000000000001"
BIG_DEPARTMENT = "D00001"
ROLES = ["viewer", "editor", "approver", "auditor", "reporter"]
TARGET_PAGE_P50_MS = 40.0
TARGET_TREE_MS = 200.0
TARGET_GRANT_MS = 1000.0

PAGE = """query($tenantId: String!, $after: String) { tenant(product: "bench", tenantId: $tenantId) {
  members(first: 100, after: $after) { pageInfo { hasNextPage endCursor }
    edges { node { userName name departmentName marketplaceRole effectiveRoles grants { role } } } } } }"""
PAGE_COUNTED = PAGE.replace("members(first: 100, after: $after) {", "members(first: 100, after: $after) { totalCount")
TREE = """query($tenantId: String!) { tenant(product: "bench", tenantId: $tenantId) {
  departments { orgCode orgName parentCode } } }"""
GRANT = """mutation($input: MemberRolesGrantInput!) { memberRolesGrant(input: $input) { __typename
  ... on MemberRolesGrantSuccess { changedGrants affectedMembers } ... on Error { code message } } }"""
REVOKE = """mutation($input: MemberRolesRevokeInput!) { memberRolesRevoke(input: $input) { __typename
  ... on MemberRolesRevokeSuccess { changedGrants affectedMembers } ... on Error { code message } } }"""


# -- the two servers (uvicorn factories, run in the subprocesses) --------------------------------


def worker_app() -> Any:
    """MarketGate as `marketgate serve` builds it, with an adapter that does nothing."""
    from bench.kit_syncs import NullAdapter
    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.settings import Settings

    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return create_app(settings, adapter_factories={"bench-null": NullAdapter})


def bare_app() -> Any:
    """The bare route: parse the JSON body, answer `X-Bench-Bytes` bytes of JSON; nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    canned: dict[int, bytes] = {}

    async def graphql(request: Request) -> Response:
        json.loads(await request.body())
        size = int(request.headers.get("x-bench-bytes", "64"))
        if size not in canned:
            canned[size] = b'{"data":{"padding":"' + b"x" * max(0, size - 24) + b'"}}'
        return Response(canned[size], media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/healthz", healthz), Route("/graphql", graphql, methods=["POST"])])


# -- loading the tenant -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.graphql_members",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=f"The schema --schema (default {SCHEMA}) of the database is DROPPED and recreated; nothing else "
        "in that database is touched (not `public`).",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MARKETGATE_BENCH_DATABASE_URL", "postgresql://127.0.0.1:5432/test"),
        help="PostgreSQL to bench on (default: $MARKETGATE_BENCH_DATABASE_URL or postgresql://127.0.0.1:5432/test)",
    )
    parser.add_argument("--schema", default=SCHEMA, help=f"schema to (re)create and use (default: {SCHEMA})")
    parser.add_argument("--members", type=int, default=100_000, help="members of the tenant (default: 100000)")
    parser.add_argument("--departments", type=int, default=2000, help="departments of the tenant (default: 2000)")
    parser.add_argument("--big-department", type=int, default=5000, help=f"members of {BIG_DEPARTMENT} (default: 5000)")
    parser.add_argument("--pages", type=int, default=300, help="member pages requested (default: 300)")
    parser.add_argument("--trees", type=int, default=40, help="department tree requests (default: 40)")
    parser.add_argument("--grants", type=int, default=10, help="grants (each followed by a revocation) (default: 10)")
    parser.add_argument("--bare-calls", type=int, default=300, help="calls to the bare route per phase (default: 300)")
    parser.add_argument("--warmup", type=int, default=10, help="requests left out of the percentiles (default: 10)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="MarketGate's log level (default: INFO, as in production; the log goes to a file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (config, logs)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// URL")
    if not args.schema.isidentifier() or args.schema == "public":
        parser.error("--schema must be a plain identifier other than public")
    if not 0 < args.big_department < args.members or args.departments < 2:
        parser.error("--big-department must be below --members, and --departments at least 2")
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


def department_code(index: int) -> str:
    return f"D{index:05d}"


async def load_tenant(url: str, args: argparse.Namespace) -> str:
    """The tenant, its departments, members and grants, straight through the tenants services; a write token."""
    from sqlalchemy import text

    from tenants import admin, directory, roles
    from tenants.admin import Caller, CallerKind, TenantScope
    from tenants.admin_models import TokenScope
    from tenants.database import Database
    from tenants.directory import DepartmentRecord, MemberGrant, MemberRecord, TenantIdentity
    from tenants.directory_models import MemberRole

    database = Database(url)
    now = datetime.now(UTC)
    scope: dict[str, Any] = {"product": SLUG, "tenant_id": TENANT, "is_test": False}
    departments = [
        DepartmentRecord(department_code(n), f"Department {n}", department_code((n - 1) // 10) if n else "")
        for n in range(args.departments)
    ]
    others = [department_code(n) for n in range(args.departments) if department_code(n) != BIG_DEPARTMENT]
    try:
        async with database.transaction() as session:
            tenant = await directory.lock_tenant(session, **scope, now=now)
            identity = TenantIdentity("bench", "Bench Co", "https://bench.tenantaccount.com", "bench-instance", "o-1")
            await directory.bind_tenant(session, tenant=tenant, identity=identity, keep_tenant_code=False, now=now)
            await directory.replace_departments(session, **scope, departments=departments, now=now)
        for start in range(0, args.members, 5000):
            grants = []
            for n in range(start, min(start + 5000, args.members)):
                org = BIG_DEPARTMENT if n < args.big_department else others[n % len(others)]
                member = MemberRecord(f"user{n:06d}", f"User {n}", org_code=org, position=f"P{n % 40}")
                grants.append(MemberGrant(member, MemberRole.ADMIN if n % 50 == 0 else MemberRole.USER, True))
            async with database.transaction() as session:
                await directory.grant_members(
                    session, **scope, app_id="bench-app", grants=grants, cause="bench", request_id=None, now=now
                )
        catalog = roles.RoleCatalog.build(declared=ROLES, defaults={"admin": ["editor", "viewer"], "user": ["viewer"]})
        seeder = Caller(kind=CallerKind.OPERATOR, actor="bench-seed", products=frozenset({SLUG}), can_write=True)
        tenant_scope = TenantScope(SLUG, TENANT)
        async with database.transaction() as session:
            await roles.grant_member_roles(
                session,
                caller=seeder,
                scope=tenant_scope,
                catalog=catalog,
                roles=["auditor"],
                departments=[department_code(n) for n in range(10, args.departments, 10)],
                include_sub_departments=True,
                now=now,
            )
            await roles.grant_member_roles(
                session,
                caller=seeder,
                scope=tenant_scope,
                catalog=catalog,
                roles=["reporter"],
                members=[f"user{n:06d}" for n in range(0, args.members, max(1, args.members // 4000))][:5000],
                now=now,
            )
        async with database.transaction() as session:
            issued = await admin.create_api_token(
                session, caller=Caller.system(), name="bench", products=[SLUG], scope=TokenScope.WRITE, now=now
            )
        async with database.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            # As autovacuum would (a server may run without it, as the test database here does);
            # this schema's tables only, not the rest of the database.
            listed = text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            found = await connection.execute(listed)
            tables = ", ".join(f'"{name}"' for (name,) in found)
            await connection.execute(text(f"VACUUM (ANALYZE) {tables}"))
        async with database.reader() as session:
            tenant_row = await directory.get_tenant(session, **scope)
            assert tenant_row is not None and tenant_row.id is not None
            from strawberry.relay import GlobalID

            tenant_id = str(GlobalID(type_name="Tenant", node_id=str(tenant_row.id)))
    finally:
        await database.dispose()
    return issued.secret + " " + tenant_id


def write_config(directory: Path) -> Path:
    config = directory / "products.toml"
    config.write_text(
        f'[products.{SLUG}]\nname = "Bench"\nadapter = "bench-null"\naccess_key = "{secrets.token_hex(24)}"\n'
        f"roles = {json.dumps(ROLES)}\n"
        'default_roles = { admin = ["editor", "viewer"], user = ["viewer"] }\n',
        encoding="utf-8",
    )
    return config


# -- the driver ---------------------------------------------------------------------------------


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], *, token: str, size: int | None = None
) -> tuple[float, dict[str, Any], int]:
    """One request; its round trip in ms, the parsed answer and its size. Errors stop the bench."""
    headers = {"Authorization": f"Bearer {token}"}
    if size is not None:
        headers["X-Bench-Bytes"] = str(size)
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    elapsed_ms = (time.perf_counter() - started) * 1000
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"request failed: {response.status_code} {response.text[:300]}")
    return elapsed_ms, body, len(response.content)




async def walk_pages(client: httpx.AsyncClient, query: str, count: int, *, token: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    after: str | None = None
    size = 0
    for _ in range(count):
        elapsed, body, size = await post(client, query, {"tenantId": TENANT, "after": after}, token=token)
        latencies.append(elapsed)
        members = body["data"]["tenant"]["members"]
        if len(members["edges"]) != 100:
            raise SystemExit(f"a page of {len(members['edges'])} members")
        after = members["pageInfo"]["endCursor"] if members["pageInfo"]["hasNextPage"] else None
    return latencies, size


async def run(args: argparse.Namespace, workdir: Path) -> int:
    url = schema_url(args.database_url, args.schema)
    reset_schema(args.database_url, args.schema)
    from tenants.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    started = time.perf_counter()
    token, tenant_gid = (await load_tenant(url, args)).split(" ")
    print(
        f"loaded {args.members} members in {args.departments} departments ({BIG_DEPARTMENT}: {args.big_department}) "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    config = write_config(workdir)
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
        uvicorn_argv("bench.graphql_members:worker_app", port=worker_port),
        port=worker_port,
        env={**env, **env_clear},
        log_dir=workdir,
    )
    bare = start_server(
        "bare", uvicorn_argv("bench.graphql_members:bare_app", port=bare_port), port=bare_port, env={}, log_dir=workdir
    )
    servers: list[ServerProcess] = [worker, bare]
    results: dict[str, tuple[list[float], int]] = {}
    changes: list[tuple[int, int]] = []
    try:
        worker.wait_ready("/readyz", timeout_s=60)
        bare.wait_ready("/healthz", timeout_s=30)
        print(
            f"MarketGate worker pid {worker.pid} on :{worker_port} (PostgreSQL schema {args.schema}); "
            f"bare route on :{bare_port}",
            flush=True,
        )
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=worker.base_url, timeout=60, limits=limits) as client:
            results["page"] = await walk_pages(client, PAGE, args.pages, token=token)
            results["page+count"] = await walk_pages(client, PAGE_COUNTED, args.pages, token=token)
            tree: list[float] = []
            for _ in range(args.trees):
                elapsed, body, size = await post(client, TREE, {"tenantId": TENANT}, token=token)
                if len(body["data"]["tenant"]["departments"]) != args.departments:
                    raise SystemExit("the tree is not whole")
                tree.append(elapsed)
            results["tree"] = (tree, size)
            grants: list[float] = []
            revokes: list[float] = []
            change = {"tenant": tenant_gid, "roles": ["approver"], "departments": [BIG_DEPARTMENT]}
            for _ in range(args.grants):
                elapsed, body, size = await post(client, GRANT, {"input": change}, token=token)
                outcome = body["data"]["memberRolesGrant"]
                changes.append((outcome.get("changedGrants", -1), outcome.get("affectedMembers", -1)))
                grants.append(elapsed)
                elapsed, body, revoke_size = await post(client, REVOKE, {"input": change}, token=token)
                revokes.append(elapsed)
            results["grant"] = (grants, size)
            results["revoke"] = (revokes, revoke_size)
        bare_results: dict[str, list[float]] = {}
        async with httpx.AsyncClient(base_url=bare.base_url, timeout=60, limits=limits) as client:
            for phase, query in (("page", PAGE), ("page+count", PAGE_COUNTED), ("tree", TREE), ("grant", GRANT)):
                size = results[phase][1]
                variables: dict[str, Any] = {"tenantId": TENANT} if phase != "grant" else {"input": change}
                bare_results[phase] = [
                    (await post(client, query, variables, token=token, size=size))[0] for _ in range(args.bare_calls)
                ]
    finally:
        for server in servers:
            server.stop()

    def line(label: str, values: list[float], bare_values: list[float] | None, target: float | None) -> None:
        measured = values[min(args.warmup, len(values) - 1) :] if len(values) > args.warmup * 2 else values[1:]
        p50, p99 = quantile(measured, 0.5), quantile(measured, 0.99)
        text = f"  {label:<34} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   mean {statistics.fmean(measured):8.1f} ms"
        text += f"   (n={len(measured)})"
        if bare_values is not None:
            bare_measured = bare_values[args.warmup :]
            bare_p50 = quantile(bare_measured, 0.5)
            text += f"\n  {'':<34} bare route p50 {bare_p50:6.2f} ms: MarketGate / bare = {p50 / bare_p50:.1f}x"
        if target is not None:
            text += f"   [{verdict(p50 < target)}: p50 < {target:.0f} ms]"
        print(text)

    print()
    print(f"one tenant of {args.members} members in {args.departments} departments, one request at a time:")
    line("page of 100 members, effective roles", results["page"][0], bare_results["page"], TARGET_PAGE_P50_MS)
    line("  the same with totalCount", results["page+count"][0], bare_results["page+count"], TARGET_PAGE_P50_MS)
    line(f"department tree ({args.departments})", results["tree"][0], bare_results["tree"], TARGET_TREE_MS)
    line(
        f"grant a role to {BIG_DEPARTMENT} ({args.big_department} members)",
        results["grant"][0],
        bare_results["grant"],
        TARGET_GRANT_MS,
    )
    line("  and revoke it again", results["revoke"][0], None, None)
    print(f"  grants: (changedGrants, affectedMembers) = {sorted(set(changes))}")
    print(
        f"  answer sizes: page {results['page'][1] / 1024:.0f} KiB, tree {results['tree'][1] / 1024:.0f} KiB; "
        f"worst grant {max(results['grant'][0]):.0f} ms"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), prefix="marketgate-bench-graphql-")


if __name__ == "__main__":
    sys.exit(main())
