"""Mutations: jobRetry and instanceReconcile, their typed errors, idempotency and audit entries."""

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from gateway.adapters.contract import AppInfo
from tenants.admin_models import AuditEntry
from tenants.models import Instance, InstanceStatus, Job, JobState
from tests.fakes import Behaviour
from tests.graphql.conftest import Described, GraphQL, Tokens, rows, seed_instance, seed_job

pytestmark = pytest.mark.anyio

RETRY = """mutation($id: ID!) { jobRetry(id: $id) { __typename
  ... on JobRetrySuccess { job { id status attempts runAt } }
  ... on Error { code message } } }"""
RECONCILE = """mutation($product: String!, $instanceId: String!) {
  instanceReconcile(product: $product, instanceId: $instanceId) { __typename
    ... on InstanceReconcileSuccess { changed instance { frontEndUrl adminUrl history { activity detail requestId } } }
    ... on Error { code message } } }"""
AUDIT = """{ auditLog { totalCount
  edges { node { actorKind actor action product target detail clientAddress requestId } } } }"""


def job_id(row_id: int) -> str:
    return str(GlobalID(type_name="Job", node_id=str(row_id)))


async def token_actor(app: Starlette, name: str) -> str:
    from tenants.admin_models import ApiToken

    [token] = [token for token in await rows(app, ApiToken) if token.name == name]
    return f"token:{token.id}:{name}"


async def test_a_dead_job_is_retried_once_per_call_and_audited(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    await seed_instance(app, "alpha", "a-1")
    dead = await seed_job(app, "alpha", "a-1", state=JobState.DEAD, attempts=25)
    started = datetime.now(UTC)

    # When an operator retries it, twice (a double click)
    first = await gql(
        RETRY, {"id": job_id(dead)}, token=tokens.alpha_write, headers={"X-Request-Id": "retry-request-1"}
    )
    second = await gql(
        RETRY, {"id": job_id(dead)}, token=tokens.alpha_write, headers={"X-Request-Id": "retry-request-2"}
    )

    # Then it is waiting to run now, both times
    for body in (first, second):
        job = body["data"]["jobRetry"]["job"]
        assert (body["data"]["jobRetry"]["__typename"], job["status"], job["attempts"]) == (
            "JobRetrySuccess",
            "FAILED",
            25,
        )
        assert datetime.fromisoformat(job["runAt"]) >= started
    [stored] = await rows(app, Job)
    assert (stored.state, stored.attempts) == (JobState.PENDING, 25)

    # And each call is in the audit log: who, what, where from, which request
    audit = await gql(AUDIT, token=tokens.alpha_read)
    actor = await token_actor(app, "alpha-writer")
    assert audit["data"]["auditLog"]["totalCount"] == 2
    assert [edge["node"] for edge in audit["data"]["auditLog"]["edges"]] == [
        {
            "actorKind": "operator",
            "actor": actor,
            "action": "jobRetry",
            "product": "alpha",
            "target": f"job:{dead}",
            "detail": detail,
            "clientAddress": "127.0.0.1",
            "requestId": request_id,
        }
        for detail, request_id in [
            ({"kind": "provision", "status": "failed", "attempts": 25}, "retry-request-2"),
            ({"kind": "provision", "status": "dead", "attempts": 25}, "retry-request-1"),
        ]
    ]


async def test_a_done_job_is_not_retried(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    done = await seed_job(app, "alpha", "a-1", state=JobState.DONE, attempts=1)
    body = await gql(RETRY, {"id": job_id(done)}, token=tokens.alpha_write)
    assert body["data"]["jobRetry"] == {
        "__typename": "JobFinishedError",
        "code": "JOB_FINISHED",
        "message": "the job is done",
    }
    [stored] = await rows(app, Job)
    assert stored.state is JobState.DONE
    assert [entry.action for entry in await rows(app, AuditEntry)] == ["apiTokenCreate"] * 3


@pytest.mark.parametrize(
    "bad_id",
    [
        "nonsense",
        str(GlobalID("Instance", "1")),
        str(GlobalID("Job", "999")),
        str(GlobalID("Job", "x")),
        str(GlobalID("Job", str(2**70))),
        str(GlobalID("Job", "-1")),
    ],
)
async def test_retrying_no_such_job_is_not_found(app: Starlette, gql: GraphQL, tokens: Tokens, bad_id: str) -> None:
    body = await gql(RETRY, {"id": bad_id}, token=tokens.alpha_write)
    assert body["data"]["jobRetry"] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "message": "job not found"}


async def _instance(app: Starlette, product: str, instance_id: str) -> Instance:
    [row] = [row for row in await rows(app, Instance) if (row.product, row.instance_id) == (product, instance_id)]
    assert isinstance(row, Instance)
    return row


async def test_reconcile_repairs_the_record_from_the_adapter(
    app: Starlette, gql: GraphQL, tokens: Tokens, described: Described, behaviours: dict[str, Behaviour]
) -> None:
    # Given a live instance whose adapter now reports another address and a new password
    await seed_instance(app, "alpha", "a-1", app_info={"frontEndUrl": "https://old.example.com/a-1"})
    described[("alpha", "a-1")] = AppInfo(
        front_end_url="https://new.example.com/a-1", admin_url="https://new.example.com/admin", password="fresh-Pa55"
    )
    variables = {"product": "alpha", "instanceId": "a-1"}

    # When an operator reconciles it
    body = await gql(RECONCILE, variables, token=tokens.alpha_write, headers={"X-Request-Id": "reconcile-0001"})

    # Then the record is repaired, the change is in its history, and the password is sealed at rest
    result = body["data"]["instanceReconcile"]
    assert (result["__typename"], result["changed"]) == ("InstanceReconcileSuccess", True)
    assert (result["instance"]["frontEndUrl"], result["instance"]["adminUrl"]) == (
        "https://new.example.com/a-1",
        "https://new.example.com/admin",
    )
    assert result["instance"]["history"][-1] == {
        "activity": "reconciled",
        "detail": {"fields": ["adminUrl", "frontEndUrl", "password"]},
        "requestId": "reconcile-0001",
    }
    stored = await _instance(app, "alpha", "a-1")
    assert stored.app_info is not None and stored.app_info["password"].startswith("v1.")
    assert "fresh-Pa55" not in str(stored.app_info)

    # And asking again changes nothing (idempotent), while both calls are audited
    again = await gql(RECONCILE, variables, token=tokens.alpha_write)
    assert again["data"]["instanceReconcile"]["changed"] is False
    assert len(again["data"]["instanceReconcile"]["instance"]["history"]) == len(result["instance"]["history"])
    assert behaviours["alpha"].calls["describe"] == 2
    audit = [entry for entry in await rows(app, AuditEntry) if entry.action == "instanceReconcile"]
    assert [(entry.product, entry.target, entry.detail, entry.request_id) for entry in audit] == [
        (
            "alpha",
            "instance:a-1",
            {"changed": True, "fields": ["adminUrl", "frontEndUrl", "password"]},
            "reconcile-0001",
        ),
        ("alpha", "instance:a-1", {"changed": False, "fields": []}, audit[1].request_id),
    ]


async def test_reconcile_when_the_adapter_has_nothing_newer(app: Starlette, gql: GraphQL, tokens: Tokens) -> None:
    await seed_instance(app, "alpha", "a-1")
    before = await _instance(app, "alpha", "a-1")
    body = await gql(RECONCILE, {"product": "alpha", "instanceId": "a-1"}, token=tokens.alpha_write)
    assert body["data"]["instanceReconcile"]["changed"] is False
    after = await _instance(app, "alpha", "a-1")
    assert (after.app_info, after.updated_at) == (before.app_info, before.updated_at)


async def test_reconcile_when_the_adapter_fails_changes_nothing(
    app: Starlette, gql: GraphQL, tokens: Tokens, described: Described
) -> None:
    await seed_instance(app, "alpha", "a-1")
    described[("alpha", "a-1")] = RuntimeError("backend at 10.0.0.7 exploded")
    before = await _instance(app, "alpha", "a-1")
    body = await gql(RECONCILE, {"product": "alpha", "instanceId": "a-1"}, token=tokens.alpha_write)
    assert body["data"]["instanceReconcile"] == {
        "__typename": "AdapterFailedError",
        "code": "ADAPTER_FAILED",
        "message": "the adapter did not describe the instance",
    }
    assert (await _instance(app, "alpha", "a-1")).app_info == before.app_info
    assert [entry.action for entry in await rows(app, AuditEntry)] == ["apiTokenCreate"] * 3


@pytest.mark.parametrize("status", [InstanceStatus.RELEASED, InstanceStatus.FAILED, InstanceStatus.PROVISIONING])
async def test_only_live_instances_are_reconciled(
    app: Starlette, gql: GraphQL, tokens: Tokens, behaviours: dict[str, Behaviour], status: InstanceStatus
) -> None:
    await seed_instance(app, "alpha", "a-1", status=status)
    body = await gql(RECONCILE, {"product": "alpha", "instanceId": "a-1"}, token=tokens.alpha_write)
    assert body["data"]["instanceReconcile"] == {
        "__typename": "InstanceNotReconcilableError",
        "code": "INSTANCE_NOT_RECONCILABLE",
        "message": f"the instance is {status.value}",
    }
    assert behaviours["alpha"].calls["describe"] == 0


async def test_debug_instances_are_not_asked_of_the_adapter(
    app: Starlette, gql: GraphQL, tokens: Tokens, behaviours: dict[str, Behaviour]
) -> None:
    await seed_instance(app, "alpha", "debug-1", is_test=True)
    body: dict[str, Any] = await gql(RECONCILE, {"product": "alpha", "instanceId": "debug-1"}, token=tokens.alpha_write)
    assert body["data"]["instanceReconcile"]["changed"] is False
    assert behaviours["alpha"].calls["describe"] == 0
