"""memberRolesGrant and memberRolesRevoke: effective roles, idempotency, limits with typed errors
(nothing applied), the audit log and the outbox event that tells the adapter whose roles changed."""

from typing import Any

import pytest
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from gateway.adapters.contract import DirectoryEventType
from gateway.kit_syncs import EVENT_JOB_KIND, sequence_key
from tenants import directory, roles
from tenants.admin_models import AuditEntry
from tenants.directory import MemberGrant, MemberRecord
from tenants.directory_models import MemberRole
from tenants.models import Job
from tenants.role_models import MemberRoleGrant
from tests.conftest import Marketplace
from tests.fakes import Behaviour
from tests.graphql.conftest import NOW, FakeMemberSessions, GraphQL, MemberLogin, Tokens, codes, rows
from tests.graphql.organizations import (
    ALPHA_A_DEPARTMENTS,
    TENANT_A,
    TENANT_B,
    Organizations,
    kit,
    seed_organizations,
)
from tests.kit.helpers import all_org_sync, auth_sync, org, settle_events, tenant_sync, user

pytestmark = pytest.mark.anyio

GRANT = """mutation($input: MemberRolesGrantInput!) { memberRolesGrant(input: $input) { __typename
  ... on MemberRolesGrantSuccess { changedGrants affectedMembers tenant { tenantId } }
  ... on UnknownRolesError { roles }
  ... on UnknownSubjectsError { members departments }
  ... on TooManySubjectsError { limit given }
  ... on Error { code message } } }"""
REVOKE = """mutation($input: MemberRolesRevokeInput!) { memberRolesRevoke(input: $input) { __typename
  ... on MemberRolesRevokeSuccess { changedGrants affectedMembers }
  ... on Error { code message } } }"""
ROLES = """query($t: String!) { tenant(product: "alpha", tenantId: $t) { members(first: 100) {
  edges { node { userName effectiveRoles } } } } }"""


@pytest.fixture
async def orgs(app: Starlette, marketplace: Marketplace) -> Organizations:
    return await seed_organizations(app, marketplace)


@pytest.fixture
def boss(sessions: FakeMemberSessions, orgs: Organizations) -> MemberLogin:
    return sessions.login("alpha", TENANT_A, "boss")


def tenant_id(orgs: Organizations, product: str = "alpha", tenant: str = TENANT_A) -> str:
    return str(GlobalID(type_name="Tenant", node_id=str(orgs.tenants[(product, tenant)])))


async def grant(gql: GraphQL, login: MemberLogin, orgs: Organizations, **input: Any) -> dict[str, Any]:
    body = await gql(GRANT, {"input": {"tenant": tenant_id(orgs), **input}}, headers=login.cookie_headers())
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["memberRolesGrant"]
    return result


async def revoke(gql: GraphQL, login: MemberLogin, orgs: Organizations, **input: Any) -> dict[str, Any]:
    body = await gql(REVOKE, {"input": {"tenant": tenant_id(orgs), **input}}, headers=login.cookie_headers())
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["memberRolesRevoke"]
    return result


async def effective(gql: GraphQL, login: MemberLogin) -> dict[str, list[str]]:
    body = await gql(ROLES, {"t": TENANT_A}, headers=login.cookie_headers())
    edges = body["data"]["tenant"]["members"]["edges"]
    return {
        edge["node"]["userName"]: edge["node"]["effectiveRoles"] for edge in edges if edge["node"]["effectiveRoles"]
    }


BEFORE = {
    "ann": ["viewer"],
    "bob": ["viewer"],
    "boss": ["viewer", "editor"],
    "cat": ["viewer"],
    "fay": ["viewer"],
}


async def role_events(app: Starlette, cause: str | None = None) -> list[dict[str, Any]]:
    """The payloads of the outbox's member_roles.changed events (of `cause`, or any), oldest first."""
    jobs = await rows(app, Job)
    return [
        job.payload
        for job in jobs
        if job.payload.get("type") == "member_roles.changed" and cause in (None, job.payload["data"]["cause"])
    ]


async def test_a_grant_to_members_and_departments(
    app: Starlette, gql: GraphQL, boss: MemberLogin, orgs: Organizations
) -> None:
    assert await effective(gql, boss) == BEFORE
    result = await grant(gql, boss, orgs, roles=["approver"], members=["cat", "eve"], departments=["2"])
    assert result == {
        "__typename": "MemberRolesGrantSuccess",
        "changedGrants": 3,
        "affectedMembers": 2,  # cat and ann; eve is not authorized (her grant waits), dan is disabled
        "tenant": {"tenantId": TENANT_A},
    }
    assert await effective(gql, boss) == {**BEFORE, "ann": ["viewer", "approver"], "cat": ["viewer", "approver"]}


async def test_department_grants_reach_sub_departments_only_when_they_say_so(
    gql: GraphQL, boss: MemberLogin, orgs: Organizations
) -> None:
    # Given approver on Sales (2), its own members only
    assert (await grant(gql, boss, orgs, roles=["approver"], departments=["2"]))["affectedMembers"] == 1
    assert (await effective(gql, boss))["bob"] == ["viewer"]  # bob is in Sales East (3), below Sales

    # When the same grant is made to include sub-departments, bob has it too
    result = await grant(gql, boss, orgs, roles=["approver"], departments=["2"], includeSubDepartments=True)
    assert (result["changedGrants"], result["affectedMembers"]) == (1, 1)
    assert (await effective(gql, boss))["bob"] == ["viewer", "approver"]

    # And an auditor grant on the top department with sub-departments reaches every department
    result = await grant(gql, boss, orgs, roles=["auditor"], departments=["1"], includeSubDepartments=True)
    assert result["affectedMembers"] == 4  # boss, ann, bob, cat; fay's department is unknown
    assert await effective(gql, boss) == {
        "ann": ["viewer", "approver", "auditor"],
        "bob": ["viewer", "approver", "auditor"],
        "boss": ["viewer", "editor", "auditor"],
        "cat": ["viewer", "auditor"],
        "fay": ["viewer"],
    }

    # And back to Sales only: bob loses approver
    result = await grant(gql, boss, orgs, roles=["approver"], departments=["2"], includeSubDepartments=False)
    assert (result["changedGrants"], result["affectedMembers"]) == (1, 1)
    assert (await effective(gql, boss))["bob"] == ["viewer", "auditor"]


async def test_grants_wait_for_members_the_marketplace_authorizes_later(
    gql: GraphQL, marketplace: Marketplace, boss: MemberLogin, orgs: Organizations
) -> None:
    await grant(gql, boss, orgs, roles=["auditor"], members=["eve", "dan"])
    await grant(gql, boss, orgs, roles=["approver"], departments=["4"])
    assert "eve" not in await effective(gql, boss) and "dan" not in await effective(gql, boss)

    # When the marketplace authorizes eve again, enables dan, and moves bob into Support (4)
    await kit(
        marketplace,
        "alpha",
        "authSync",
        auth_sync(TENANT_A, 1, [user("eve", org="2"), user("dan", org="3"), user("bob", org="4")]),
    )
    found = await effective(gql, boss)
    assert (found["eve"], found["dan"], found["bob"]) == (
        ["viewer", "auditor"],
        ["viewer", "auditor"],
        ["viewer", "approver"],
    )


async def test_granting_again_changes_nothing_and_revoking_takes_only_grants(
    app: Starlette, gql: GraphQL, boss: MemberLogin, orgs: Organizations
) -> None:
    await grant(gql, boss, orgs, roles=["viewer", "approver"], members=["ann"], departments=["3"])
    stored = [
        (row.subject_kind, row.subject_code, row.role, row.created_at) for row in await rows(app, MemberRoleGrant)
    ]
    jobs = len(await rows(app, Job))

    again = await grant(gql, boss, orgs, roles=["approver", "viewer"], members=["ann", "ann"], departments=["3"])
    assert (again["changedGrants"], again["affectedMembers"]) == (0, 0)
    assert [
        (row.subject_kind, row.subject_code, row.role, row.created_at) for row in await rows(app, MemberRoleGrant)
    ] == stored
    assert len(await rows(app, Job)) == jobs  # no event: nobody's roles changed

    # Revoking viewer takes the grants, not the default: ann keeps viewer
    result = await revoke(gql, boss, orgs, roles=["viewer"], members=["ann"], departments=["3"])
    assert result == {"__typename": "MemberRolesRevokeSuccess", "changedGrants": 2, "affectedMembers": 0}
    result = await revoke(gql, boss, orgs, roles=["approver"], members=["ann"], departments=["3"])
    assert result == {"__typename": "MemberRolesRevokeSuccess", "changedGrants": 2, "affectedMembers": 2}
    assert await effective(gql, boss) == BEFORE
    again = await revoke(gql, boss, orgs, roles=["approver"], members=["ann"], departments=["3"])
    assert (again["changedGrants"], again["affectedMembers"]) == (0, 0)
    assert await rows(app, MemberRoleGrant) == []


async def test_every_change_is_audited_in_its_transaction(
    app: Starlette, gql: GraphQL, boss: MemberLogin, orgs: Organizations
) -> None:
    body = await gql(
        GRANT,
        {"input": {"tenant": tenant_id(orgs), "roles": ["approver"], "members": ["ann"], "departments": ["4"]}},
        headers={**boss.cookie_headers(), "X-Request-Id": "grant-request-1"},
    )
    assert body["data"]["memberRolesGrant"]["__typename"] == "MemberRolesGrantSuccess"
    [entry] = await rows(app, AuditEntry)
    assert (
        entry.actor_kind,
        entry.actor,
        entry.action,
        entry.product,
        entry.tenant_id,
        entry.target,
        entry.client_address,
        entry.request_id,
    ) == (
        "tenant_admin",
        f"member:alpha:{TENANT_A}:boss",
        "memberRolesGrant",
        "alpha",
        TENANT_A,
        f"tenant:{TENANT_A}",
        "127.0.0.1",
        "grant-request-1",
    )
    assert entry.detail == {
        "is_test": False,
        "roles": ["approver"],
        "members": ["ann"],
        "departments": ["4"],
        "include_sub_departments": False,
        "changed_grants": 2,
        "affected_members": 2,
    }
    # The tenant admin reads it in the audit log of their tenant
    log = await gql(
        "{ auditLog { totalCount edges { node { actorKind action product target } } } }", headers=boss.cookie_headers()
    )
    assert log["data"]["auditLog"] == {
        "totalCount": 1,
        "edges": [
            {
                "node": {
                    "actorKind": "tenant_admin",
                    "action": "memberRolesGrant",
                    "product": "alpha",
                    "target": entry.target,
                }
            }
        ],
    }


async def test_the_adapter_is_told_whose_effective_roles_changed(
    app: Starlette, gql: GraphQL, boss: MemberLogin, orgs: Organizations, behaviours: dict[str, Behaviour]
) -> None:
    await grant(gql, boss, orgs, roles=["approver", "auditor"], departments=["2"], includeSubDepartments=True)
    [payload] = await role_events(app, "memberRolesGrant")
    assert payload == {
        "type": "member_roles.changed",
        "tenant_id": TENANT_A,
        "is_test": False,
        "data": {
            "cause": "memberRolesGrant",
            "members": [
                {"user_name": "ann", "roles": ["viewer", "approver", "auditor"]},
                {"user_name": "bob", "roles": ["viewer", "approver", "auditor"]},
            ],
        },
    }
    [job] = [job for job in await rows(app, Job) if job.payload == payload]
    assert (job.kind, job.sequence_key) == (EVENT_JOB_KIND, sequence_key("alpha", TENANT_A, is_test=False))

    await revoke(gql, boss, orgs, roles=["auditor"], departments=["2"])
    await settle_events(app)
    delivered = [
        event
        for event in behaviours["alpha"].events
        if event.type is DirectoryEventType.MEMBER_ROLES_CHANGED and event.data["cause"] != "authSync"
    ]
    assert [(event.tenant_id, dict(event.data)) for event in delivered] == [
        (TENANT_A, payload["data"]),
        (
            TENANT_A,
            {
                "cause": "memberRolesRevoke",
                "members": [
                    {"user_name": "ann", "roles": ["viewer", "approver"]},
                    {"user_name": "bob", "roles": ["viewer", "approver"]},
                ],
            },
        ),
    ]
    assert behaviours["beta"].events == [event for event in behaviours["beta"].events if event.product == "beta"]


async def _snapshot(app: Starlette) -> tuple[int, int, int]:
    return len(await rows(app, MemberRoleGrant)), len(await rows(app, AuditEntry)), len(await role_events(app))


@pytest.mark.parametrize(
    ("input", "expected"),
    [
        (
            {"roles": ["approver", "owner", "root"], "members": ["ann"]},
            {"__typename": "UnknownRolesError", "roles": ["owner", "root"], "code": "UNKNOWN_ROLES"},
        ),
        (
            {"roles": ["approver"], "members": ["ann", "nobody", "bravo-user"], "departments": ["2", "77"]},
            {
                "__typename": "UnknownSubjectsError",
                "members": ["bravo-user", "nobody"],  # another tenant's member is unknown here
                "departments": ["77"],
                "code": "UNKNOWN_SUBJECTS",
            },
        ),
        (
            {"roles": ["approver"], "members": [f"m{n}" for n in range(4999)], "departments": ["1", "2"]},
            {"__typename": "TooManySubjectsError", "limit": 5000, "given": 5001, "code": "TOO_MANY_SUBJECTS"},
        ),
    ],
)
async def test_refused_changes_apply_nothing(
    app: Starlette,
    gql: GraphQL,
    boss: MemberLogin,
    orgs: Organizations,
    input: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    before = await _snapshot(app)
    result = await grant(gql, boss, orgs, **input)
    assert {key: value for key, value in result.items() if key != "message"} == expected
    assert await _snapshot(app) == before


async def test_five_thousand_members_at_once_in_bulk_with_events_of_a_thousand(
    app: Starlette, gql: GraphQL, boss: MemberLogin, orgs: Organizations
) -> None:
    names = [f"bulk{n:04}" for n in range(5000)]
    async with app.state.database.transaction() as session:
        await directory.grant_members(
            session,
            product="alpha",
            tenant_id=TENANT_A,
            is_test=False,
            app_id="app-001",
            grants=[MemberGrant(MemberRecord(name, name, org_code="4"), MemberRole.USER, True) for name in names],
            cause="test",
            request_id=None,
            now=NOW,
        )
    result = await grant(gql, boss, orgs, roles=["auditor"], members=names)
    assert (result["changedGrants"], result["affectedMembers"]) == (5000, 5000)
    events = await role_events(app, "memberRolesGrant")
    assert [len(event["data"]["members"]) for event in events] == [1000] * 5
    assert events[0]["data"]["members"][0] == {"user_name": "bulk0000", "roles": ["viewer", "auditor"]}

    # A department grant reaches all of them and cat, in one change
    result = await grant(gql, boss, orgs, roles=["approver"], departments=["4"])
    assert (result["changedGrants"], result["affectedMembers"]) == (1, 5001)
    result = await revoke(gql, boss, orgs, roles=["auditor"], members=names)
    assert (result["changedGrants"], result["affectedMembers"]) == (5000, 5000)


async def test_operators_with_a_write_token_may_change_roles_of_their_products_only(
    app: Starlette, gql: GraphQL, tokens: Tokens, orgs: Organizations
) -> None:
    variables = {"input": {"tenant": tenant_id(orgs), "roles": ["approver"], "members": ["ann"]}}
    body = await gql(GRANT, variables, token=tokens.alpha_write)
    assert body["data"]["memberRolesGrant"]["changedGrants"] == 1
    [entry] = [entry for entry in await rows(app, AuditEntry) if entry.action == "memberRolesGrant"]
    assert (entry.actor_kind, entry.tenant_id) == ("operator", TENANT_A)

    before = await _snapshot(app)
    read = await gql(GRANT, variables, token=tokens.alpha_read)
    assert (read["data"], codes(read)) == (None, ["FORBIDDEN"])
    elsewhere = {"input": {**variables["input"], "tenant": tenant_id(orgs, "alpha", TENANT_B)}}
    beta = await gql(GRANT, elsewhere, token=tokens.beta_write)
    assert beta["data"]["memberRolesGrant"]["code"] == "NOT_FOUND"
    assert await _snapshot(app) == before


async def test_the_services_hold_callers_to_their_scope(app: Starlette, orgs: Organizations) -> None:
    from tenants.admin import AccessDeniedError, Caller, CallerKind, TenantScope

    scope = TenantScope("alpha", TENANT_A)
    catalog = roles.RoleCatalog.build(declared=["approver"], defaults={})
    async with app.state.database.transaction() as session:
        for caller, error in (
            (Caller.anonymous(), AccessDeniedError),
            (Caller.member_of(scope, user_name="ann", is_admin=False), AccessDeniedError),
            (
                Caller.member_of(TenantScope("alpha", TENANT_B), user_name="bravo-admin", is_admin=True),
                roles.TenantNotFoundError,
            ),
            (
                Caller.member_of(TenantScope("beta", TENANT_A), user_name="beta-admin", is_admin=True),
                roles.TenantNotFoundError,
            ),
            (
                Caller(kind=CallerKind.OPERATOR, actor="beta", products=frozenset({"beta"}), can_write=True),
                roles.TenantNotFoundError,
            ),
        ):
            with pytest.raises(error):
                await roles.grant_member_roles(
                    session, caller=caller, scope=scope, catalog=catalog, roles=["approver"], members=["ann"], now=NOW
                )
        ids = [orgs.members[("alpha", TENANT_A, name)] for name in ("ann", "bob")]
        ids += [orgs.members[("alpha", TENANT_B, "bravo-user")], orgs.members[("beta", TENANT_A, "beta-user")]]
        admin = Caller.member_of(scope, user_name="boss", is_admin=True)
        found = await roles.list_member_roles(session, caller=admin, member_ids=ids, catalogs={"alpha": catalog})
        assert sorted(found) == sorted(ids[:2])
        member = Caller.member_of(scope, user_name="ann", is_admin=False)
        assert list(await roles.list_member_roles(session, caller=member, member_ids=ids, catalogs={})) == [ids[0]]
        departments = list(orgs.departments.values())
        assert await roles.list_department_grants(session, caller=member, department_ids=departments) == {}
    assert await rows(app, MemberRoleGrant) == []


def test_the_event_is_the_kit_syncs_own_path() -> None:
    from tenants.admin import TenantScope

    assert roles.DIRECTORY_EVENT_JOB_KIND == EVENT_JOB_KIND
    assert DirectoryEventType(roles.MEMBER_ROLES_CHANGED) is DirectoryEventType.MEMBER_ROLES_CHANGED
    scope = TenantScope("alpha", TENANT_A, True)
    assert roles.directory_sequence_key(scope) == sequence_key("alpha", TENANT_A, is_test=True)


# -- the Kit syncs change effective roles too ---------------------------------------------------


async def tenant_events(app: Starlette, *, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    """(job id, type, data) of alpha/A's directory events (the Kit's and the roles'), oldest first."""
    return [
        (job.id, job.payload["type"], job.payload["data"])
        for job in await rows(app, Job)
        if job.kind == EVENT_JOB_KIND
        and job.id > after
        and (job.product, job.payload["tenant_id"], job.payload["is_test"]) == ("alpha", TENANT_A, False)
    ]


async def last_job_id(app: Starlette) -> int:
    return max((job.id for job in await rows(app, Job)), default=0)


async def test_authsync_tells_whose_effective_roles_it_changed(app: Starlette, orgs: Organizations) -> None:
    # The seeding authorized seven members of alpha/A (dan disabled), then revoked eve
    events = [(kind, data) for _, kind, data in await tenant_events(app)]
    assert [kind for kind, _ in events] == [
        "tenant.bound",
        "departments.changed",
        "members.authorized",
        "member_roles.changed",
        "members.revoked",
        "member_roles.changed",
    ]
    assert events[3][1] == {
        "cause": "authSync",
        "members": [
            {"user_name": "ann", "roles": ["viewer"]},
            {"user_name": "bob", "roles": ["viewer"]},
            {"user_name": "boss", "roles": ["viewer", "editor"]},
            {"user_name": "cat", "roles": ["viewer"]},
            {"user_name": "eve", "roles": ["viewer"]},
            {"user_name": "fay", "roles": ["viewer"]},
        ],  # not dan: disabled, no roles before or after
    }
    assert events[5][1] == {"cause": "authSync", "members": [{"user_name": "eve", "roles": []}]}


async def test_authsync_changes_of_members_with_grants_are_told_in_the_syncs_transaction(
    app: Starlette,
    gql: GraphQL,
    marketplace: Marketplace,
    boss: MemberLogin,
    orgs: Organizations,
    behaviours: dict[str, Behaviour],
) -> None:
    # Given grants: auditor on eve (revoked) and dan (disabled), waiting; approver on Support (4)
    await grant(gql, boss, orgs, roles=["auditor"], members=["eve", "dan"])
    await grant(gql, boss, orgs, roles=["approver"], departments=["4"])
    before = await last_job_id(app)

    # When one authSync authorizes eve again, enables dan, moves bob into Support, makes ann an
    # admin, sends cat unchanged and fay with a new position only
    sync = [
        user("eve", org="2"),
        user("dan", org="3"),
        user("bob", org="4"),
        user("ann", org="2", role="admin"),
        user("cat", org="4"),
        user("fay", org="9", position="Chief"),
    ]
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, sync))

    # Then, stored right after the sync's own events (its transaction), one event lists exactly the
    # members whose effective roles changed, with their roles now
    events = await tenant_events(app, after=before)
    assert [kind for _, kind, _ in events] == ["members.authorized", "members.changed", "member_roles.changed"]
    assert events[2][2] == {
        "cause": "authSync",
        "members": [
            {"user_name": "ann", "roles": ["viewer", "editor"]},
            {"user_name": "bob", "roles": ["viewer", "approver"]},
            {"user_name": "dan", "roles": ["viewer", "auditor"]},
            {"user_name": "eve", "roles": ["viewer", "auditor"]},
        ],
    }
    assert await effective(gql, boss) == {
        "ann": ["viewer", "editor"],
        "bob": ["viewer", "approver"],
        "boss": ["viewer", "editor"],
        "cat": ["viewer", "approver"],
        "dan": ["viewer", "auditor"],
        "eve": ["viewer", "auditor"],
        "fay": ["viewer"],
    }

    # And disabling bob (flag 2), revoking cat (3), deleting ann (0) each say so; their roles are gone
    for flag, users, gone in (
        (2, [user("bob", org="4", enable="false")], "bob"),
        (3, [user("cat")], "cat"),
        (0, [user("ann")], "ann"),
    ):
        mark = await last_job_id(app)
        await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, flag, users))
        [*_, (_, kind, data)] = await tenant_events(app, after=mark)
        assert (kind, data) == (
            "member_roles.changed",
            {"cause": "authSync", "members": [{"user_name": gone, "roles": []}]},
        )

    # And a sync that changes no one's roles says nothing of roles: a repeat, a revoked member revoked again
    mark = await last_job_id(app)
    await kit(
        marketplace,
        "alpha",
        "authSync",
        auth_sync(TENANT_A, 1, [user("dan", org="3"), user("fay", org="9", position="Chief")]),
    )
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 3, [user("cat")]))
    assert await tenant_events(app, after=mark) == []

    # And the adapter hears every one, in the order they were stored
    await settle_events(app)
    told = [
        (event.type.value, dict(event.data))
        for event in behaviours["alpha"].events
        if (event.tenant_id, event.is_test) == (TENANT_A, False)
    ]
    assert told == [(kind, data) for _, kind, data in await tenant_events(app)]


async def test_unbinding_a_tenant_forgets_its_grants_and_a_new_binding_starts_without_them(
    app: Starlette, gql: GraphQL, marketplace: Marketplace, boss: MemberLogin, tokens: Tokens, orgs: Organizations
) -> None:
    # Given grants on alpha/A's members and departments, and on another tenant of alpha and on beta/A
    await grant(
        gql, boss, orgs, roles=["approver"], members=["ann", "eve"], departments=["2"], includeSubDepartments=True
    )
    await grant(gql, boss, orgs, roles=["auditor"], departments=["4"])
    other = {"tenant": tenant_id(orgs, "alpha", TENANT_B), "roles": ["auditor"], "members": ["bravo-user"]}
    assert (await gql(GRANT, {"input": other}, token=tokens.alpha_write))["data"]["memberRolesGrant"][
        "changedGrants"
    ] == 1
    beta = {"tenant": tenant_id(orgs, "beta", TENANT_A), "roles": ["auditor"], "members": ["ann"]}
    assert (await gql(GRANT, {"input": beta}, token=tokens.beta_write))["data"]["memberRolesGrant"][
        "changedGrants"
    ] == 1

    # When the marketplace unbinds alpha/A
    await kit(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 0))

    # Then none of its grants is left; the other tenants' stay
    assert sorted((row.product, row.tenant_id, row.subject_code) for row in await rows(app, MemberRoleGrant)) == [
        ("alpha", TENANT_B, "bravo-user"),
        ("beta", TENANT_A, "ann"),
    ]

    # And when it is bound again with the same departments and members, no old grant applies
    await kit(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 1, code="alpha-buyer", name="Alpha Buyer"))
    await kit(marketplace, "alpha", "allOrgSync", all_org_sync(TENANT_A, [org(*item) for item in ALPHA_A_DEPARTMENTS]))
    await kit(
        marketplace,
        "alpha",
        "authSync",
        auth_sync(
            TENANT_A, 1, [user("ann", org="2"), user("bob", org="3"), user("cat", org="4"), user("eve", org="2")]
        ),
    )
    body = await gql(
        """query($t: String!) { tenant(product: "alpha", tenantId: $t) { members(first: 100) {
        edges { node { userName effectiveRoles grants { role } inheritedGrants { role } } } }
        departments { orgCode grants { role } } } }""",
        {"t": TENANT_A},
        token=tokens.alpha_read,
    )
    tenant = body["data"]["tenant"]
    assert {edge["node"]["userName"]: edge["node"]["effectiveRoles"] for edge in tenant["members"]["edges"]} == {
        name: ["viewer"] for name in ("ann", "bob", "cat", "eve")
    }
    assert all(
        not edge["node"]["grants"] and not edge["node"]["inheritedGrants"] for edge in tenant["members"]["edges"]
    )
    assert all(not department["grants"] for department in tenant["departments"])


async def test_a_grant_on_a_department_the_marketplace_deleted_can_still_be_revoked(
    app: Starlette, gql: GraphQL, marketplace: Marketplace, boss: MemberLogin, orgs: Organizations
) -> None:
    # Given a grant on department 4, which cat belongs to
    await grant(gql, boss, orgs, roles=["approver"], departments=["4"])
    assert (await effective(gql, boss))["cat"] == ["viewer", "approver"]
    # When the marketplace's next full snapshot no longer has department 4 (cat still names it)
    remaining = [org(*item) for item in ALPHA_A_DEPARTMENTS if item[0] != "4"]
    await kit(marketplace, "alpha", "allOrgSync", all_org_sync(TENANT_A, remaining))
    # Then a grant to it is refused, but the one in effect can be taken back
    refused = await grant(gql, boss, orgs, roles=["auditor"], departments=["4"])
    assert (refused["__typename"], refused["departments"]) == ("UnknownSubjectsError", ["4"])
    revoked = await revoke(gql, boss, orgs, roles=["approver"], departments=["4"])
    assert (revoked["__typename"], revoked["changedGrants"]) == ("MemberRolesRevokeSuccess", 1)
    assert (await effective(gql, boss))["cat"] == ["viewer"]
    # and a department that never existed is still refused
    unknown = await revoke(gql, boss, orgs, roles=["approver"], departments=["99"])
    assert unknown["code"] == "UNKNOWN_SUBJECTS"
