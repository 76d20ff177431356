"""The authorization matrix: every query field and mutation, for every kind of caller.

Anonymous and revoked callers get nothing; a token of product alpha sees nothing of beta,
through lists, filters, node lookups and nested fields alike; a read token cannot change
anything; a write token can, within its products. A refusal leaves no trace.
"""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from graphql_api.schema import build_schema
from tenants.admin_models import AuditEntry
from tenants.models import InstanceStatus, Job, JobState
from tests.fakes import Behaviour
from tests.graphql.conftest import GraphQL, Tokens, codes, rows, seed_call, seed_instance, seed_job

pytestmark = pytest.mark.anyio

QUERIES: dict[str, str] = {
    "viewer": "{ viewer { kind actor canWrite products { slug name adapter } } }",
    "products": "{ products { slug name adapter } }",
    "node": """query($id: ID!) { node(id: $id) { id
        ... on Instance { product instanceId history { activity detail } }
        ... on Job { product tenantId instance { product instanceId } }
        ... on CallLogEntry { product body }
        ... on AuditEntry { auditProduct: product target detail } } }""",
    "instances": """query($filter: InstanceFilter) { instances(filter: $filter) { totalCount
        edges { node { id product instanceId orderId frontEndUrl history { activity detail } } } } }""",
    "instance": """query($product: String!, $instanceId: String!) {
        instance(product: $product, instanceId: $instanceId) { product instanceId history { detail } } }""",
    "callLog": "{ callLog { totalCount edges { node { product activity body instanceId } } } }",
    "jobs": """{ jobs { totalCount edges { node { product tenantId instanceId
        instance { product instanceId history { detail } } } } } }""",
    "auditLog": "{ auditLog { totalCount edges { node { product actor target detail } } } }",
}
MUTATIONS: dict[str, str] = {
    "jobRetry": """mutation($id: ID!) { jobRetry(id: $id) { __typename
        ... on JobRetrySuccess { job { product status } } ... on Error { code message } } }""",
    "instanceReconcile": """mutation($product: String!, $instanceId: String!) {
        instanceReconcile(product: $product, instanceId: $instanceId) { __typename
        ... on InstanceReconcileSuccess { changed instance { product instanceId } }
        ... on Error { code message } } }""",
}


@dataclass(frozen=True)
class World:
    """Alpha's and beta's data; every beta value contains "beta", no alpha value does."""

    alpha_job: int
    beta_job: int
    beta_ids: dict[str, str]


def global_id(type_name: str, row_id: int | None) -> str:
    return str(GlobalID(type_name=type_name, node_id=str(row_id)))


@pytest.fixture
async def world(app: Starlette, gql: GraphQL, tokens: Tokens) -> World:
    await seed_instance(app, "alpha", "a-1")
    await seed_instance(app, "beta", "beta-1")
    # One instance id in both products: each side must see only its own record and history
    await seed_instance(app, "alpha", "same-id")
    await seed_instance(app, "beta", "same-id", app_info={"frontEndUrl": "https://beta.example.com/same-id"})
    await seed_instance(app, "beta", "only-there")
    await seed_call(app, "alpha", instance_id="a-1")
    await seed_call(app, "beta", activity="betaActivity", instance_id="beta-1")
    alpha_job = await seed_job(app, "alpha", "a-1", state=JobState.DEAD, attempts=25)
    # An alpha job naming an instance only beta has: its nested instance must stay hidden
    await seed_job(app, "alpha", "only-there", state=JobState.DEAD, attempts=25)
    beta_job = await seed_job(app, "beta", "beta-1", state=JobState.DEAD, attempts=25)
    beta_retry = await gql(MUTATIONS["jobRetry"], {"id": global_id("Job", beta_job)}, token=tokens.beta_write)
    assert beta_retry["data"]["jobRetry"]["__typename"] == "JobRetrySuccess"
    [beta_audit] = [entry for entry in await rows(app, AuditEntry) if entry.action == "jobRetry"]
    instances = {(row.product, row.instance_id): row for row in await _instances(app)}
    calls = await gql("{ callLog { edges { node { id product } } } }", token=tokens.beta_write)
    [beta_call] = [edge["node"]["id"] for edge in calls["data"]["callLog"]["edges"]]
    return World(
        alpha_job=alpha_job,
        beta_job=beta_job,
        beta_ids={
            "Instance": global_id("Instance", instances[("beta", "beta-1")].id),
            "Job": global_id("Job", beta_job),
            "CallLogEntry": beta_call,
            "AuditEntry": global_id("AuditEntry", beta_audit.id),
        },
    )


async def _instances(app: Starlette) -> list[Any]:
    from tenants.models import Instance

    return await rows(app, Instance)


async def _snapshot(app: Starlette) -> tuple[Any, ...]:
    """What a refused mutation must leave as it was."""
    jobs = [(job.id, job.state, job.run_at, job.attempts) for job in await rows(app, Job)]
    instances = [(row.id, row.app_info, row.updated_at) for row in await _instances(app)]
    return jobs, instances, len(await rows(app, AuditEntry))


def _arguments(world: World, field: str) -> dict[str, Any]:
    arguments: dict[str, dict[str, Any]] = {
        "node": {"id": world.beta_ids["Instance"]},
        "instances": {"filter": None},
        "instance": {"product": "beta", "instanceId": "beta-1"},
        "jobRetry": {"id": world.beta_ids["Job"]},
        "instanceReconcile": {"product": "beta", "instanceId": "beta-1"},
    }
    return arguments.get(field, {})


def _document(field: str) -> str:
    return QUERIES.get(field) or MUTATIONS[field]


EVERY_FIELD = [*QUERIES, *MUTATIONS]


def test_the_matrix_covers_every_field_of_the_schema() -> None:
    schema = build_schema()._schema
    assert schema.query_type is not None and schema.mutation_type is not None
    assert set(QUERIES) == set(schema.query_type.fields)
    assert set(MUTATIONS) == set(schema.mutation_type.fields)


@pytest.mark.parametrize("field", EVERY_FIELD)
async def test_anonymous_callers_get_nothing(
    app: Starlette, gql: GraphQL, world: World, behaviours: dict[str, Behaviour], field: str
) -> None:
    before = await _snapshot(app)
    body = await gql(_document(field), _arguments(world, field))
    assert body["data"] in (None, {field: None})  # null bubbles up from non-null fields
    assert codes(body) == ["UNAUTHENTICATED"]
    assert await _snapshot(app) == before
    assert behaviours["beta"].calls["describe"] == 0


@pytest.mark.parametrize("field", EVERY_FIELD)
async def test_a_revoked_token_gets_nothing(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, field: str
) -> None:
    from tenants import admin

    async with app.state.database.transaction() as session:
        for token in await admin.list_api_tokens(session, caller=admin.Caller.system()):
            if token.name == "beta-writer":
                await admin.revoke_api_token(
                    session, caller=admin.Caller.system(), token_id=token.id or 0, now=token.created_at
                )
    before = await _snapshot(app)
    body = await gql(_document(field), _arguments(world, field), token=tokens.beta_write)
    assert body["data"] in (None, {field: None})
    assert codes(body) == ["UNAUTHENTICATED"]
    assert await _snapshot(app) == before


@pytest.mark.parametrize("field", list(QUERIES))
async def test_an_alpha_token_sees_nothing_of_beta(gql: GraphQL, world: World, tokens: Tokens, field: str) -> None:
    body = await gql(_document(field), _arguments(world, field), token=tokens.alpha_read)
    assert "errors" not in body, body
    assert "beta" not in json.dumps(body).lower(), body
    expected_empty = {"node": None, "instance": None}
    if field in expected_empty:
        assert body["data"][field] is None


@pytest.mark.parametrize("type_name", ["Instance", "Job", "CallLogEntry", "AuditEntry"])
async def test_node_lookup_of_beta_objects_finds_nothing_for_alpha(
    gql: GraphQL, world: World, tokens: Tokens, type_name: str
) -> None:
    body = await gql(QUERIES["node"], {"id": world.beta_ids[type_name]}, token=tokens.alpha_read)
    assert body == {"data": {"node": None}}
    # The same lookup by beta's own token finds it: the id is right, the scope is what hides it
    found = await gql(QUERIES["node"], {"id": world.beta_ids[type_name]}, token=tokens.beta_write)
    assert found["data"]["node"]["id"] == world.beta_ids[type_name]


async def test_filtering_for_beta_with_an_alpha_token_matches_nothing(
    gql: GraphQL, world: World, tokens: Tokens
) -> None:
    body = await gql(QUERIES["instances"], {"filter": {"products": ["beta"]}}, token=tokens.alpha_read)
    assert body == {"data": {"instances": {"totalCount": 0, "edges": []}}}


async def test_nested_fields_stay_within_the_product(gql: GraphQL, world: World, tokens: Tokens) -> None:
    body = await gql(QUERIES["jobs"], token=tokens.alpha_read)
    nodes = [edge["node"] for edge in body["data"]["jobs"]["edges"]]
    by_instance = {node["instanceId"]: node["instance"] for node in nodes}
    assert by_instance["only-there"] is None  # an alpha job naming an instance id only beta has
    assert by_instance["a-1"] == {"product": "alpha", "instanceId": "a-1", "history": [{"detail": {"by": "alpha"}}]}
    same = await gql(QUERIES["instance"], {"product": "alpha", "instanceId": "same-id"}, token=tokens.alpha_read)
    assert same["data"]["instance"]["history"] == [{"detail": {"by": "alpha"}}]


@pytest.mark.parametrize("field", list(MUTATIONS))
async def test_a_read_token_cannot_change_anything(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, behaviours: dict[str, Behaviour], field: str
) -> None:
    arguments = {
        "jobRetry": {"id": global_id("Job", world.alpha_job)},
        "instanceReconcile": {"product": "alpha", "instanceId": "a-1"},
    }[field]
    before = await _snapshot(app)
    body = await gql(MUTATIONS[field], arguments, token=tokens.alpha_read)
    assert body["data"] is None
    assert codes(body) == ["FORBIDDEN"]
    assert await _snapshot(app) == before
    assert behaviours["alpha"].calls["describe"] == 0


@pytest.mark.parametrize("field", list(MUTATIONS))
async def test_an_alpha_write_token_cannot_reach_beta(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, behaviours: dict[str, Behaviour], field: str
) -> None:
    before = await _snapshot(app)
    body = await gql(MUTATIONS[field], _arguments(world, field), token=tokens.alpha_write)
    assert body["data"][field] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": body["data"][field]["message"],
    }
    assert await _snapshot(app) == before
    assert behaviours["beta"].calls["describe"] == 0


@pytest.mark.parametrize("field", list(MUTATIONS))
async def test_a_write_token_may_act_on_its_products(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, field: str
) -> None:
    arguments = {
        "jobRetry": {"id": global_id("Job", world.alpha_job)},
        "instanceReconcile": {"product": "alpha", "instanceId": "a-1"},
    }[field]
    body = await gql(MUTATIONS[field], arguments, token=tokens.alpha_write)
    assert body["data"][field]["__typename"] in {"JobRetrySuccess", "InstanceReconcileSuccess"}, body
    audit = await rows(app, AuditEntry)
    assert [(entry.action, entry.product) for entry in audit][-1] == (field, "alpha")


async def test_instances_in_scope_are_all_listed(gql: GraphQL, world: World, tokens: Tokens) -> None:
    body = await gql(QUERIES["instances"], token=tokens.alpha_read)
    listed = sorted(edge["node"]["instanceId"] for edge in body["data"]["instances"]["edges"])
    assert (listed, body["data"]["instances"]["totalCount"]) == (["a-1", "same-id"], 2)
    assert InstanceStatus.ACTIVE  # the seeded instances are live
