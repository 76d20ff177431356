"""Queries: pagination, filters, lookups and nested history, as an operator reads them."""

from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from tenants.admin_models import TokenScope
from tenants.models import InstanceStatus, JobState
from tests.conftest import Marketplace
from tests.graphql.conftest import NOW, GraphQL, Tokens, codes, issue_token, seed_call, seed_instance, seed_job

pytestmark = pytest.mark.anyio

PAGE = """query($first: Int!, $after: String, $filter: InstanceFilter) {
  instances(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { instanceId } }
  }
}"""


def instance_ids(body: dict[str, Any], field: str = "instances", key: str = "instanceId") -> list[str]:
    assert "errors" not in body, body
    return [edge["node"][key] for edge in body["data"][field]["edges"]]


async def test_instances_are_paged_newest_first(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    for number in range(7):
        await seed_instance(app, "alpha", f"i-{number}")
    await seed_instance(app, "beta", "elsewhere")

    first = await gql(PAGE, {"first": 3}, token=tokens.alpha_read)
    assert instance_ids(first) == ["i-6", "i-5", "i-4"]
    info = first["data"]["instances"]["pageInfo"]
    assert (first["data"]["instances"]["totalCount"], info["hasNextPage"], info["hasPreviousPage"]) == (7, True, False)
    assert info["endCursor"] == first["data"]["instances"]["edges"][-1]["cursor"]

    second = await gql(PAGE, {"first": 3, "after": info["endCursor"]}, token=tokens.alpha_read)
    assert instance_ids(second) == ["i-3", "i-2", "i-1"]
    assert second["data"]["instances"]["pageInfo"]["hasPreviousPage"] is True

    last = await gql(
        PAGE, {"first": 3, "after": second["data"]["instances"]["pageInfo"]["endCursor"]}, token=tokens.alpha_read
    )
    assert instance_ids(last) == ["i-0"]
    assert last["data"]["instances"]["pageInfo"]["hasNextPage"] is False

    empty = await gql(PAGE, {"first": 0}, token=tokens.alpha_read)
    assert instance_ids(empty) == [] and empty["data"]["instances"]["totalCount"] == 7
    assert empty["data"]["instances"]["pageInfo"]["endCursor"] is None


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 101}, "first must be between 0 and 100"),
        ({"first": -1}, "first must be between 0 and 100"),
        ({"first": 5, "after": "not a cursor"}, "after is not a cursor of this list"),
        ({"first": 5, "after": "SW5zdGFuY2U6MQ=="}, "after is not a cursor of this list"),  # a global id
        ({"first": 5, "after": str(GlobalID("cursor", str(2**70)))}, "after is not a cursor of this list"),
        ({"first": 5, "filter": {"expiresAfter": "2030-01-01T00:00:00"}}, "expiresAfter needs a UTC offset"),
    ],
)
async def test_bad_paging_and_filter_input_is_the_clients_error(
    gql: GraphQL, tokens: Tokens, variables: dict[str, Any], message: str
) -> None:
    body = await gql(PAGE, variables, token=tokens.alpha_read)
    assert body["data"] is None
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"].startswith(message)


async def test_instance_filters(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    await seed_instance(app, "alpha", "live-1", expire_time=NOW + timedelta(days=10))
    await seed_instance(app, "alpha", "live-2", expire_time=NOW + timedelta(days=40))
    await seed_instance(app, "alpha", "frozen-1", status=InstanceStatus.FROZEN, expire_time=NOW - timedelta(days=1))
    await seed_instance(app, "alpha", "gone-1", status=InstanceStatus.RELEASED)
    await seed_instance(app, "alpha", "debug-1", is_test=True)
    both = await issue_token(app, "both", ["alpha", "beta"], TokenScope.READ)
    await seed_instance(app, "beta", "live-beta")

    async def ids(filter_: dict[str, Any], token: str = tokens.alpha_read) -> list[str]:
        return sorted(instance_ids(await gql(PAGE, {"first": 50, "filter": filter_}, token=token)))

    assert await ids({"statuses": ["FROZEN", "RELEASED"]}) == ["frozen-1", "gone-1"]
    assert await ids({"isTest": True}) == ["debug-1"]
    assert await ids({"isTest": False, "statuses": ["ACTIVE"]}) == ["live-1", "live-2"]
    assert await ids({"expiresAfter": "2030-01-15T12:00:00Z", "expiresBefore": "2030-02-15T00:00:00+00:00"}) == [
        "live-1"
    ]
    assert await ids({"expiresBefore": "2030-01-15T12:00:00Z"}) == ["frozen-1"]
    assert await ids({"search": "live"}) == ["live-1", "live-2"]
    assert await ids({"search": "CS-gone"}) == ["gone-1"]  # an order id prefix
    assert await ids({"search": "%"}) == []  # LIKE wildcards are matched literally
    assert await ids({"search": "live"}, both) == ["live-1", "live-2", "live-beta"]
    assert await ids({"search": "live", "products": ["beta"]}, both) == ["live-beta"]


async def test_one_instance_with_its_history(
    app: Starlette, gql: GraphQL, tokens: Tokens, marketplace: Marketplace
) -> None:
    # Given an instance bought, then frozen, through signed marketplace calls
    new: dict[str, object] = {
        "activity": "newInstance",
        "orderId": "CS1",
        "orderLineId": "CS1-000001",
        "businessId": "biz-1",
    }
    assert (await marketplace.answer("alpha", new))["resultCode"] == "000000"
    frozen = await marketplace.answer(
        "alpha", {"activity": "updateInstanceStatus", "instanceId": "biz-1", "status": "FREEZE"}
    )
    assert frozen["resultCode"] == "000000"

    body = await gql(
        """query { instance(product: "alpha", instanceId: "biz-1") {
             id product instanceId orderId orderLineId status isTest frontEndUrl
             history { activity fromStatus toStatus } } }""",
        token=tokens.alpha_read,
    )
    instance = body["data"]["instance"]
    assert {key: instance[key] for key in ("product", "instanceId", "orderId", "orderLineId", "status", "isTest")} == {
        "product": "alpha",
        "instanceId": "biz-1",
        "orderId": "CS1",
        "orderLineId": "CS1-000001",
        "status": "FROZEN",
        "isTest": False,
    }
    assert instance["frontEndUrl"] == "https://alpha.example.com/biz-1"
    assert [(e["activity"], e["fromStatus"], e["toStatus"]) for e in instance["history"]] == [
        ("newInstance", "provisioning", "provisioning"),
        ("provisioned", "provisioning", "active"),
        ("updateInstanceStatus", "active", "frozen"),
    ]

    # And the same instance by its global id
    by_node = await gql(
        "query($id: ID!) { node(id: $id) { ... on Instance { instanceId status } } }",
        {"id": instance["id"]},
        token=tokens.alpha_read,
    )
    assert by_node == {"data": {"node": {"instanceId": "biz-1", "status": "FROZEN"}}}
    for garbage in ("garbage", str(GlobalID("Instance", str(2**70))), str(GlobalID("Instance", "0"))):
        lookup = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": garbage}, token=tokens.alpha_read)
        assert lookup == {"data": {"node": None}}


CALLS = """query($filter: CallLogFilter, $first: Int! = 50) { callLog(first: $first, filter: $filter) {
  totalCount edges { node { activity resultCode kind product } } } }"""


async def test_call_log_filters(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    await seed_call(app, "alpha", activity="newInstance", at=NOW - timedelta(hours=2))
    await seed_call(app, "alpha", activity="refreshInstance", result_code="000003", at=NOW - timedelta(hours=1))
    await seed_call(app, "alpha", activity="tenantSync", kind="kit", at=NOW)
    await seed_call(app, "beta", activity="newInstance", at=NOW)

    async def activities(filter_: dict[str, Any]) -> list[str]:
        return instance_ids(await gql(CALLS, {"filter": filter_}, token=tokens.alpha_read), "callLog", "activity")

    assert await activities({}) == ["tenantSync", "refreshInstance", "newInstance"]
    assert await activities({"resultCodes": ["000003"]}) == ["refreshInstance"]
    assert await activities({"kinds": ["kit"]}) == ["tenantSync"]
    assert await activities({"activities": ["newInstance", "tenantSync"]}) == ["tenantSync", "newInstance"]
    window = {"since": "2030-01-15T10:30:00Z", "until": "2030-01-15T12:00:00Z"}
    assert await activities(window) == ["refreshInstance"]
    counted = await gql(CALLS, {"filter": {"since": "2030-01-15T10:30:00Z"}, "first": 1}, token=tokens.alpha_read)
    assert counted["data"]["callLog"]["totalCount"] == 2


JOBS = """query($filter: JobFilter) { jobs(filter: $filter) {
  totalCount edges { node { kind status attempts lastError instanceId instance { instanceId status } } } } }"""


async def test_jobs_by_status_with_their_instance(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    await seed_instance(app, "alpha", "a-1")
    await seed_job(app, "alpha", "a-1", kind="provision")
    await seed_job(app, "alpha", "a-1", kind="renew", attempts=2)
    await seed_job(app, "alpha", "a-1", kind="release", state=JobState.DEAD, attempts=25)
    await seed_job(app, "alpha", "a-1", kind="set_status", state=JobState.DONE, attempts=1)
    await seed_job(app, "alpha", "vanished", kind="upgrade")

    async def kinds(filter_: dict[str, Any]) -> list[str]:
        return instance_ids(await gql(JOBS, {"filter": filter_}, token=tokens.alpha_read), "jobs", "kind")

    assert await kinds({"statuses": ["FAILED"]}) == ["renew"]
    assert await kinds({"statuses": ["DEAD", "FAILED"]}) == ["release", "renew"]
    assert await kinds({"statuses": ["PENDING"]}) == ["upgrade", "provision"]
    assert await kinds({"statuses": ["DONE"]}) == ["set_status"]
    assert await kinds({"kinds": ["renew"]}) == ["renew"]

    body = await gql(JOBS, {"filter": {"statuses": ["DEAD"]}}, token=tokens.alpha_read)
    assert body["data"]["jobs"] == {
        "totalCount": 1,
        "edges": [
            {
                "node": {
                    "kind": "release",
                    "status": "DEAD",
                    "attempts": 25,
                    "lastError": "backend exploded",
                    "instanceId": "a-1",
                    "instance": {"instanceId": "a-1", "status": "ACTIVE"},
                }
            }
        ],
    }
    orphan = await gql(JOBS, {"filter": {"kinds": ["upgrade"]}}, token=tokens.alpha_read)
    assert orphan["data"]["jobs"]["edges"][0]["node"]["instance"] is None


async def test_viewer_and_products_show_what_the_token_reaches(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    both = await issue_token(app, "both", ["alpha", "beta"], TokenScope.READ)
    body = await gql("{ products { slug name adapter } viewer { kind canWrite products { slug } } }", token=both)
    assert body == {
        "data": {
            "products": [
                {"slug": "alpha", "name": "Alpha", "adapter": "recording"},
                {"slug": "beta", "name": "Beta", "adapter": "recording"},
            ],
            "viewer": {"kind": "OPERATOR", "canWrite": False, "products": [{"slug": "alpha"}, {"slug": "beta"}]},
        }
    }
