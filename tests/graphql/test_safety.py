"""Safety and speed: no N+1, size limits with codes, masked errors, introspection and GraphiQL
only when allowed, CORS from settings, and no secret in any answer."""

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import Store
from tenants import jobs, operations
from tenants.admin_models import ApiToken, TokenScope
from tenants.models import Instance, InstanceStatus, JobState
from tests.conftest import ALPHA_KEY, BETA_KEY, Marketplace
from tests.fakes import Behaviour, recording_factory
from tests.graphql.conftest import (
    NOW,
    GraphQL,
    StatementCounter,
    Tokens,
    codes,
    issue_token,
    rows,
    seed_call,
    seed_instance,
    seed_job,
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


@asynccontextmanager
async def serving(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour], **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(
        settings.model_copy(update=overrides),
        adapter_factories={"recording": recording_factory(behaviours)},
        store=store,
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://mg.test") as client:
            client.app = application  # type: ignore[attr-defined]
            yield client


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


@pytest.mark.parametrize(
    ("document", "code"),
    [("{ viewer { actor ", "GRAPHQL_PARSE_FAILED"), ("{ viewer { password } }", "GRAPHQL_VALIDATION_FAILED")],
)
async def test_malformed_documents_get_a_code(gql: GraphQL, tokens: Tokens, document: str, code: str) -> None:
    assert codes(await gql(document, token=tokens.alpha_read)) == [code]


async def test_unexpected_errors_are_masked(gql: GraphQL, tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection to 10.1.2.3 failed: password=hunter2")

    monkeypatch.setattr(operations, "list_instances", broken)
    body = await gql("{ instances { totalCount } }", token=tokens.alpha_read)
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
