"""Safety and speed: no N+1, size limits with codes, masked errors, introspection and GraphiQL
only when allowed, CORS from settings, and no secret in any answer."""

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from gateway.settings import Settings
from gateway.store import Store
from tenants import directory, jobs, operations, organization, roles
from tenants.admin import Caller, CallerKind, TenantScope
from tenants.admin_models import ApiToken, TokenScope
from tenants.directory_models import MemberRole
from tenants.models import Instance, InstanceStatus, JobState
from tests.conftest import ALPHA_KEY, BETA_KEY, Marketplace
from tests.fakes import Behaviour
from tests.graphql.conftest import (
    NOW,
    FakeMemberSessions,
    GraphQL,
    StatementCounter,
    Tokens,
    codes,
    issue_token,
    rows,
    seed_call,
    seed_instance,
    seed_job,
    serving,
)

pytestmark = pytest.mark.anyio

PAGE_WITH_HISTORY = """query($first: Int!) { instances(first: $first) { totalCount
  edges { node { instanceId history { activity toStatus } } } } }"""
JOBS_WITH_INSTANCES = """{ jobs(first: 50) { edges { node { kind
  instance { instanceId history { activity } } } } } }"""


async def test_a_page_of_fifty_instances_with_history_takes_four_statements(
    app: Starlette, gql: GraphQL, tokens: Tokens
) -> None:
    for number in range(60):
        await seed_instance(app, "alpha", f"i-{number:02}", status=InstanceStatus.FROZEN)
    await gql(PAGE_WITH_HISTORY, {"first": 1}, token=tokens.alpha_read)  # connections made, dialect set up

    for first in (5, 50):
        with StatementCounter(app) as counter:
            body = await gql(PAGE_WITH_HISTORY, {"first": first}, token=tokens.alpha_read)
        edges = body["data"]["instances"]["edges"]
        assert len(edges) == first and all(len(edge["node"]["history"]) == 2 for edge in edges)
        # the token, the page, the total count, every history at once: whatever the page size
        assert len(counter.statements) == 4, counter.statements


async def test_jobs_with_their_instances_and_histories_take_four_statements(
    app: Starlette, gql: GraphQL, tokens: Tokens
) -> None:
    for number in range(50):
        await seed_instance(app, "alpha", f"i-{number:02}")
        await seed_job(app, "alpha", f"i-{number:02}", state=JobState.DEAD, attempts=3)
    await gql(JOBS_WITH_INSTANCES, token=tokens.alpha_read)
    with StatementCounter(app) as counter:
        body = await gql(JOBS_WITH_INSTANCES, token=tokens.alpha_read)
    assert len(body["data"]["jobs"]["edges"]) == 50
    assert len(counter.statements) == 4, counter.statements  # token, jobs, their instances, their histories


MEMBER_PAGE = """query($tenantId: String!, $first: Int!) { tenant(product: "alpha", tenantId: $tenantId) {
  members(first: $first) { totalCount edges { node { userName marketplaceRole effectiveRoles
    grants { role } inheritedGrants { role subject }
    department { orgName grants { role } } } } } } }"""


async def _big_tenant(app: Starlette, *, members: int) -> None:
    """A tenant of `members` members in 10 departments (a chain), with grants on members and departments."""
    now = datetime.now(UTC)
    scope = TenantScope("alpha", "big-tenant")
    async with app.state.database.transaction() as session:
        tenant = await directory.lock_tenant(session, product="alpha", tenant_id="big-tenant", is_test=False, now=now)
        identity = directory.TenantIdentity("big", "Big Co", "https://big.tenantaccount.com", "", "")
        await directory.bind_tenant(session, tenant=tenant, identity=identity, keep_tenant_code=False, now=now)
        departments = [directory.DepartmentRecord(f"d{n}", f"Dept {n}", f"d{n - 1}" if n else "") for n in range(10)]
        await directory.upsert_departments(
            session, product="alpha", tenant_id="big-tenant", is_test=False, departments=departments, now=now
        )
        grants = [
            directory.MemberGrant(
                directory.MemberRecord(f"m{n:04}", f"Member {n}", org_code=f"d{n % 10}"),
                MemberRole.ADMIN if n % 7 == 0 else MemberRole.USER,
                True,
            )
            for n in range(members)
        ]
        await directory.grant_members(
            session,
            product="alpha",
            tenant_id="big-tenant",
            is_test=False,
            app_id="app",
            grants=grants,
            cause="test",
            request_id=None,
            now=now,
        )
        catalog = roles.RoleCatalog.build(declared=["approver", "auditor"], defaults={})
        writer = Caller(kind=CallerKind.OPERATOR, actor="seed", products=frozenset({"alpha"}), can_write=True)
        await roles.grant_member_roles(
            session,
            caller=writer,
            scope=scope,
            catalog=catalog,
            roles=["approver"],
            departments=["d2"],
            include_sub_departments=True,
            now=now,
        )
        await roles.grant_member_roles(
            session,
            caller=writer,
            scope=scope,
            catalog=catalog,
            roles=["auditor"],
            members=[f"m{n:04}" for n in range(0, members, 3)],
            now=now,
        )


async def test_a_page_of_a_hundred_members_with_roles_takes_seven_statements(
    app: Starlette, gql: GraphQL, sessions: FakeMemberSessions
) -> None:
    await _big_tenant(app, members=150)
    admin = sessions.login("alpha", "big-tenant", "m0000")
    await gql(MEMBER_PAGE, {"tenantId": "big-tenant", "first": 1}, headers=admin.cookie_headers())
    counted = []
    for first in (5, 100):
        with StatementCounter(app) as counter:
            body = await gql(MEMBER_PAGE, {"tenantId": "big-tenant", "first": first}, headers=admin.cookie_headers())
        edges = body["data"]["tenant"]["members"]["edges"]
        assert len(edges) == first and body["data"]["tenant"]["members"]["totalCount"] == 150
        counted.append(len(counter.statements))
    by_member = {edge["node"]["userName"]: edge["node"] for edge in edges}
    assert by_member["m0003"]["effectiveRoles"] == ["viewer", "approver", "auditor"]  # d3 is below d2
    assert by_member["m0001"]["effectiveRoles"] == ["viewer"]  # d1 is above d2
    assert by_member["m0007"]["effectiveRoles"] == ["viewer", "editor", "approver"]  # an admin in d7
    # the member check, the tenant, the page (with the members' marketplace roles), the total count,
    # every grant that applies to them, their departments, the departments' grants: whatever the
    # page size
    assert counted == [7, 7], counter.statements
    # The whole tenant's total is its member count, one row: no statement reads the members to count them
    counts = [statement for statement in counter.statements if "count(" in statement.lower()]
    assert counts == [], counts
    assert any("directory_member_counts" in statement for statement in counter.statements)


async def test_the_total_count_is_counted_while_the_page_is_read_and_stopped_when_the_page_fails(
    app: Starlette, gql: GraphQL, sessions: FakeMemberSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _big_tenant(app, members=12)
    admin = sessions.login("alpha", "big-tenant", "m0000")
    # Asked for in a fragment, or inline: counted all the same, the whole tenant (its member count)
    # as a filtered list (its rows)
    for document in (
        """query { tenant(product: "alpha", tenantId: "big-tenant") { members(first: 2) { ...counted
          edges { node { userName } } } } } fragment counted on MemberConnection { totalCount }""",
        """query { tenant(product: "alpha", tenantId: "big-tenant") { members(first: 2) {
          ... on MemberConnection { totalCount } edges { node { userName } } } } }""",
    ):
        for narrowed in (document, document.replace("(first: 2)", '(first: 2, filter: {search: "M00"})')):
            body = await gql(narrowed, headers=admin.cookie_headers())
            assert "errors" not in body, body
            assert body["data"]["tenant"]["members"] == {
                "totalCount": 12,
                "edges": [{"node": {"userName": "m0000"}}, {"node": {"userName": "m0001"}}],
            }

    # A filtered count runs on a connection of its own while the page is read: when the page fails
    # meanwhile, the count is stopped, not left behind
    counting, stopped = asyncio.Event(), asyncio.Event()

    async def slow_count(*args: object, **kwargs: object) -> int:
        counting.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return 0

    async def failing_page(*args: object, **kwargs: object) -> None:
        await counting.wait()
        raise RuntimeError("the page failed")

    monkeypatch.setattr(organization, "count_members", slow_count)
    monkeypatch.setattr(organization, "list_members", failing_page)
    filtered = MEMBER_PAGE.replace("members(first: $first)", 'members(first: $first, filter: {search: "m"})')
    body = await asyncio.wait_for(
        gql(filtered, {"tenantId": "big-tenant", "first": 5}, headers=admin.cookie_headers()), timeout=10
    )
    assert codes(body) == ["INTERNAL_SERVER_ERROR"]
    await asyncio.wait_for(stopped.wait(), timeout=5)


async def test_a_valid_document_is_parsed_and_validated_once(
    gql: GraphQL, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    import graphql as graphql_core
    import strawberry.schema.schema as strawberry_schema

    validated: list[str] = []
    validate = strawberry_schema.validate_document

    def counting(schema: graphql_core.GraphQLSchema, document: graphql_core.DocumentNode, rules: Any) -> Any:
        validated.append(graphql_core.print_ast(document))
        return validate(schema, document, rules)

    monkeypatch.setattr(strawberry_schema, "validate_document", counting)
    for _ in range(3):
        assert (await gql("{ viewer { kind } }", token=tokens.alpha_read))["data"] == {"viewer": {"kind": "OPERATOR"}}
    assert len(validated) == 1
    # A refused document is checked again every time (only valid ones are remembered)
    for _ in range(2):
        assert set(codes(await gql("{ __schema { queryType { name } } }", token=tokens.alpha_read))) == {
            "INTROSPECTION_DISABLED"
        }
    assert len(validated) == 3


async def test_depth_beyond_the_limit_is_refused_with_a_code(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour]
) -> None:
    async with serving(settings, store, behaviours, graphql_max_depth=4) as client:
        token = await issue_token(client.app, "ops", ["alpha"], TokenScope.READ)  # type: ignore[attr-defined]
        body = await GraphQL(client)(JOBS_WITH_INSTANCES, token=token)
        assert body["data"] is None
        assert codes(body) == ["QUERY_TOO_DEEP"]
        shallow = await GraphQL(client)("{ jobs { edges { node { kind } } } }", token=token)
        assert shallow == {"data": {"jobs": {"edges": []}}}


async def test_aliases_beyond_the_limit_are_refused_with_a_code(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    within = "{ " + " ".join(f"a{n}: viewer {{ actor }}" for n in range(30)) + " }"
    beyond = "{ " + " ".join(f"a{n}: viewer {{ actor }}" for n in range(31)) + " }"
    assert len((await gql(within, token=tokens.alpha_read))["data"]) == 30
    body = await gql(beyond, token=tokens.alpha_read)
    assert body["data"] is None
    assert codes(body) == ["TOO_MANY_ALIASES"]
    assert body["errors"][0]["message"] == "31 aliases found. Allowed: 30"


async def test_documents_beyond_the_token_limit_are_refused_with_a_code(
    app: Starlette, gql: GraphQL, tokens: Tokens
) -> None:
    with StatementCounter(app) as counter:
        body = await gql("{ viewer { " + "actor " * 2000 + "} }", token=tokens.alpha_read)
    assert body["data"] is None
    assert codes(body) == ["QUERY_TOO_LARGE"]
    assert "2000 tokens" in body["errors"][0]["message"]
    assert counter.statements == [statement for statement in counter.statements if "api_tokens" in statement]


async def test_a_body_over_the_cap_is_refused_before_anything_else(
    app: Starlette, gql: GraphQL, tokens: Tokens, client: httpx.AsyncClient
) -> None:
    """Query and variables together: the token limit bounds only the query text. Refused whoever
    sends it (no sign-in looked at), by its Content-Length or, without one, as it arrives."""
    cap = app.state.settings.graphql_max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ viewer { actor } }", "variables": {"padding": "'
        yield b"x" * cap
        yield b'"}}'

    with StatementCounter(app) as counter:
        padded = await gql.post("{ viewer { actor } }", {"padding": "x" * cap})
        streamed = await client.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    for refused in (padded, streamed):
        assert refused.status_code == 413
        assert codes(refused.json()) == ["REQUEST_TOO_LARGE"]
    assert "content-length" not in streamed.request.headers
    assert counter.statements == []
    fits = await gql.post("{ viewer { actor } }", {"padding": "x" * (cap // 2)}, token=tokens.alpha_read)
    assert fits.status_code == 200 and fits.json()["data"]["viewer"]["actor"]


@pytest.mark.parametrize(
    ("document", "code"),
    [("{ viewer { actor ", "GRAPHQL_PARSE_FAILED"), ("{ viewer { password } }", "GRAPHQL_VALIDATION_FAILED")],
)
async def test_malformed_documents_get_a_code(gql: GraphQL, tokens: Tokens, document: str, code: str) -> None:
    assert codes(await gql(document, token=tokens.alpha_read)) == [code]


async def test_unexpected_errors_are_masked(
    gql: GraphQL, tokens: Tokens, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection to 10.1.2.3 failed: password=hunter2")

    monkeypatch.setattr(operations, "list_instances", broken)
    with structlog.testing.capture_logs() as logged:
        body = await gql("{ instances { totalCount } }", token=tokens.alpha_read)
        # expected refusals are answered, not logged: an anonymous client cannot flood the log
        assert codes(await gql("{ viewer { actor } }")) == ["UNAUTHENTICATED"]
        assert codes(await gql("{ viewer { actor ", token=tokens.alpha_read)) == ["GRAPHQL_PARSE_FAILED"]
    assert [entry["event"] for entry in logged if entry["log_level"] == "error"] == ["graphql_unexpected_error"]
    assert not [record for record in caplog.records if record.name.startswith("strawberry")]
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "Unexpected error.",
                "locations": [{"line": 1, "column": 3}],
                "path": ["instances"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ],
    }


async def test_introspection_and_graphiql_are_off_by_default(
    client: httpx.AsyncClient, gql: GraphQL, tokens: Tokens
) -> None:
    body = await gql("{ __schema { queryType { name } } }", token=tokens.alpha_read)
    assert body["data"] is None
    assert set(codes(body)) == {"INTROSPECTION_DISABLED"}
    assert (await gql('{ __type(name: "Query") { name } }', token=tokens.alpha_read))["data"] is None
    assert (await gql("{ viewer { __typename } }", token=tokens.alpha_read))["data"] == {
        "viewer": {"__typename": "Viewer"}
    }
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "graphiql" not in page.text.lower()


async def test_introspection_and_graphiql_when_settings_allow(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour]
) -> None:
    async with serving(settings, store, behaviours, graphql_introspection=True, graphiql=True) as client:
        body = await GraphQL(client)("{ __schema { queryType { name } } }")
        assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()


async def test_queries_over_get_are_refused(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ viewer { actor } }"}, headers={"Authorization": f"Bearer {tokens.alpha_read}"}
    )
    assert response.status_code == 400
    assert response.text == "queries are not allowed when using GET"


async def test_cors_allows_only_configured_origins(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour]
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with serving(settings, store, behaviours, cors_origins=["https://admin.example.com"]) as client:
        allowed = await client.options("/graphql", headers={"Origin": "https://admin.example.com", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://admin.example.com"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = await client.options("/graphql", headers={"Origin": "https://evil.example.com", **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
    async with serving(settings, store, behaviours) as client:
        default = await client.options("/graphql", headers={"Origin": "https://admin.example.com", **preflight})
        assert "access-control-allow-origin" not in default.headers


EVERYTHING = """{
  viewer { kind actor canWrite products { slug name adapter } }
  products { slug name adapter }
  instances { edges { node { id product instanceId orderId orderLineId status isTest expireTime skuCode productId
    linearValue chargingMode frontEndUrl adminUrl failureCode failureReason createdAt updatedAt
    history { activity fromStatus toStatus orderId detail requestId at } } } }
  callLog { edges { node { id product kind activity resultCode reason httpStatus latencyMs requestId instanceId isTest
    body at } } }
  jobs { edges { node { id product kind status attempts runAt lastError instanceId tenantId createdAt updatedAt
    instance { id } } } }
  auditLog { edges { node { id actorKind actor action product target detail clientAddress requestId at } } }
}"""


async def test_no_secret_is_in_any_answer(
    app: Starlette, gql: GraphQL, tokens: Tokens, marketplace: Marketplace
) -> None:
    # Given an instance bought through a signed call: its adapter returned an initial password
    new: dict[str, object] = {
        "activity": "newInstance",
        "orderId": "CS1",
        "orderLineId": "CS1-000001",
        "businessId": "biz-1",
        "email": "buyer@example.com",
        "mobilePhone": "13800000000",
    }
    assert (await marketplace.answer("alpha", new))["resultCode"] == "000000"
    await app.state.edge.call_log.flush()
    await seed_call(app, "alpha", activity="refreshInstance")
    await seed_job(app, "alpha", "biz-1", state=JobState.DEAD, attempts=2)
    async with app.state.database.transaction() as session:  # a directory event: members' personal data
        member = {"user_name": "m1", "email": "member@example.com", "mobile": "13900000000"}
        payload = {"type": "members.authorized", "tenant_id": "tenant-1", "data": {"members": [member]}}
        await jobs.create_job(session, product="alpha", kind="directory_event", payload=payload, now=NOW)
    reconcile = """mutation { instanceReconcile(product: "alpha", instanceId: "biz-1") { __typename } }"""
    assert (await gql(reconcile, token=tokens.alpha_write))["data"]["instanceReconcile"]["__typename"] == (
        "InstanceReconcileSuccess"
    )
    [instance] = [row for row in await rows(app, Instance) if row.instance_id == "biz-1"]
    assert instance.app_info is not None and "password" in instance.app_info

    # When every field of every query is read, with a write token covering both products
    everything = await issue_token(app, "everything", ["alpha", "beta"], TokenScope.WRITE)
    body = await gql(EVERYTHING, token=everything)
    assert "errors" not in body, body
    text = json.dumps(body)
    assert body["data"]["instances"]["edges"] and body["data"]["callLog"]["edges"] and body["data"]["auditLog"]["edges"]

    # Then no key, password, token or token hash is in it
    secrets = [
        ALPHA_KEY,
        BETA_KEY,
        "initial-Pa55",
        instance.app_info["password"],
        "buyer@example.com",
        "13800000000",
        "member@example.com",
        "13900000000",
        tokens.alpha_read,
        tokens.alpha_write,
        tokens.beta_write,
        everything,
    ]
    secrets += [token.token_hash for token in await rows(app, ApiToken)]
    secrets += [hashlib.sha256(secret.encode()).hexdigest() for secret in secrets]
    leaked = [secret for secret in secrets if secret in text]
    assert leaked == []
    assert "password" not in text.lower()
    assert [edge["node"]["tenantId"] for edge in body["data"]["jobs"]["edges"]] == ["tenant-1", None, None]
