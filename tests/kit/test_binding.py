"""The marketplace's documented binding sequence, against two products and two tenants.

tenantSync, applicationSync, allOrgSync, then authSync, singleOrgSync changes, revocations
and unbinding: each answered 000000 and leaving exactly the expected rows, each product's
copy of a tenant independent of the other's, and the adapter told in order.
"""

from collections.abc import Mapping

import pytest
from starlette.applications import Starlette

from gateway.adapters.contract import DirectoryEventType
from tenants import directory
from tenants.secretbox import SecretBox
from tests.conftest import Marketplace
from tests.fakes import Behaviour
from tests.kit.helpers import (
    TENANT_A,
    TENANT_B,
    all_org_sync,
    application_sync,
    auth_sync,
    directory_counts,
    directory_rows,
    org,
    settle_events,
    single_org_sync,
    tenant_sync,
    user,
)

pytestmark = pytest.mark.anyio

DOMAIN_A = "https://a.tenantaccount.com"
DOMAIN_B = "https://b.tenantaccount.com"


async def ok(marketplace: Marketplace, slug: str, sync: str, fields: Mapping[str, object]) -> None:
    response = await marketplace.kit(slug, sync, dict(fields))
    assert response.status_code == 200, response.text
    assert response.json() == {"resultCode": "000000", "resultMsg": "success."}, (slug, sync, response.json())


async def bind(marketplace: Marketplace, slug: str, tenant_id: str, domain: str, secret: str) -> None:
    """What the marketplace sends when a buyer binds the product to an enterprise."""
    await ok(marketplace, slug, "tenantSync", tenant_sync(tenant_id, 1, code=f"code-{tenant_id[:6]}", domain=domain))
    await ok(
        marketplace, slug, "applicationSync", application_sync(tenant_id, 1, secret=secret, client_id=f"{slug}-client")
    )
    await ok(
        marketplace,
        slug,
        "allOrgSync",
        all_org_sync(
            tenant_id,
            [
                org("1", "Head office"),
                org("2", "Sales", "1"),
                org("3", "Sales East", "2"),
            ],
        ),
    )


async def test_binding_sequence_two_products_two_tenants(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    # Given both products bound to tenant A, and alpha also to tenant B
    await bind(marketplace, "alpha", TENANT_A, DOMAIN_A, "alpha-secret-A")
    await bind(marketplace, "beta", TENANT_A, DOMAIN_A, "beta-secret-A")
    await bind(marketplace, "alpha", TENANT_B, DOMAIN_B, "alpha-secret-B")

    # When members are authorized, departments change, authorizations change and are revoked
    users = [user("u1", org="1", role="admin"), user("u2", org="2"), user("u3", org="3", mobile="13800000000")]
    for slug in ("alpha", "beta"):
        await ok(marketplace, slug, "authSync", auth_sync(TENANT_A, 1, users))
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_B, 1, [user("u1", org="1")]))
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 1, "4", "Support", "1"))
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 2, "2", "Sales and Marketing", "1"))
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 2, "3", "Sales East", "1"))
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 0, "4"))
    # A department whose parent arrives later is accepted, and linked when the parent comes
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 1, "6", "Night shift", "5"))
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 1, "5", "Operations", "1"))
    await ok(
        marketplace, "alpha", "authSync", auth_sync(TENANT_A, 2, [user("u2", org="2", role="admin", enable="false")])
    )
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 3, [user("u3", org="3")]))
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 0, [{"userName": "u1"}]))
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, [user("u6", org="6")]))

    # Then alpha's copy of tenant A has exactly these rows, beta's is as bound
    rows = await directory_rows(app)
    assert rows["tenants"] == [
        ("alpha", TENANT_A, False, "code-68cbc8", "Huawei Test", DOMAIN_A, "inst-1", "CS1906666666ABCDE", False),
        ("alpha", TENANT_B, False, "code-tenant", "Huawei Test", DOMAIN_B, "inst-1", "CS1906666666ABCDE", False),
        ("beta", TENANT_A, False, "code-68cbc8", "Huawei Test", DOMAIN_A, "inst-1", "CS1906666666ABCDE", False),
    ]
    assert rows["apps"] == [
        ("alpha", TENANT_A, False, "app-001", "alpha-client", "sha256-mgf1-sha1"),
        ("alpha", TENANT_B, False, "app-001", "alpha-client", "sha256-mgf1-sha1"),
        ("beta", TENANT_A, False, "app-001", "beta-client", "sha256-mgf1-sha1"),
    ]
    bound_departments = [("1", "Head office", ""), ("2", "Sales", "1"), ("3", "Sales East", "2")]
    assert rows["departments"] == sorted(
        [
            ("alpha", TENANT_A, False, code, name, parent)
            for code, name, parent in [
                ("1", "Head office", ""),
                ("2", "Sales and Marketing", "1"),
                ("3", "Sales East", "1"),
                ("5", "Operations", "1"),
                ("6", "Night shift", "5"),
            ]
        ]
        + [("alpha", TENANT_B, False, *department) for department in bound_departments]
        + [("beta", TENANT_A, False, *department) for department in bound_departments]
    )
    assert rows["members"] == [
        ("alpha", TENANT_A, False, "u1", "U1", "1", True),
        ("alpha", TENANT_A, False, "u2", "U2", "2", False),
        ("alpha", TENANT_A, False, "u3", "U3", "3", False),
        ("alpha", TENANT_A, False, "u6", "U6", "6", False),
        ("alpha", TENANT_B, False, "u1", "U1", "1", False),
        ("beta", TENANT_A, False, "u1", "U1", "1", False),
        ("beta", TENANT_A, False, "u2", "U2", "2", False),
        ("beta", TENANT_A, False, "u3", "U3", "3", False),
    ]
    assert rows["authorizations"] == [
        ("alpha", TENANT_A, False, "app-001", "u1", "admin", True, False),
        ("alpha", TENANT_A, False, "app-001", "u2", "admin", False, True),
        ("alpha", TENANT_A, False, "app-001", "u3", "user", True, False),
        ("alpha", TENANT_A, False, "app-001", "u6", "user", True, True),
        ("alpha", TENANT_B, False, "app-001", "u1", "user", True, True),
        ("beta", TENANT_A, False, "app-001", "u1", "admin", True, True),
        ("beta", TENANT_A, False, "app-001", "u2", "user", True, True),
        ("beta", TENANT_A, False, "app-001", "u3", "user", True, True),
    ]
    alpha_a_history = [entry[2:] for entry in rows["history"] if entry[:2] == ("alpha", TENANT_A)]
    assert alpha_a_history == [
        ("u1", "granted", "admin", True, "authSync:1"),
        ("u2", "granted", "user", True, "authSync:1"),
        ("u3", "granted", "user", True, "authSync:1"),
        ("u2", "changed", "admin", False, "authSync:2"),
        ("u3", "revoked", "user", True, "authSync:3"),
        ("u1", "revoked", "admin", True, "authSync:0"),
        ("u6", "granted", "user", True, "authSync:1"),
    ]

    # And the sub-department tree links the late parent: 6 is under 5 is under 1
    async with app.state.database.reader() as session:
        under_one = await directory.list_department_codes_under(
            session, product="alpha", tenant_id=TENANT_A, is_test=False, org_code="1"
        )
        listed = await directory.list_members(session, product="alpha", tenant_id=TENANT_A, is_test=False, org_code="5")
        login = await directory.get_tenant_login(
            session, product="beta", tenant_id=TENANT_A, is_test=False, secret_box=SecretBox(app.state.settings.secret)
        )
        admitted = await directory.get_authorized_member(
            session, product="alpha", tenant_id=TENANT_A, is_test=False, user_name="u6"
        )
        refused = [
            await directory.get_authorized_member(
                session, product="alpha", tenant_id=TENANT_A, is_test=False, user_name=name
            )
            for name in ("u1", "u2", "u3", "nobody")
        ]
    assert under_one == ["1", "2", "3", "5", "6"]
    assert [(item.member.user_name, item.org_name) for item in listed] == [("u6", "Night shift")]
    assert login is not None
    assert (login.domain_name, login.client_id, login.client_secret) == (DOMAIN_A, "beta-client", "beta-secret-A")
    assert admitted is not None and admitted[1].role.value == "user"
    assert refused == [None, None, None, None]  # removed, disabled, revoked, unknown

    # When alpha's tenant A is unbound (twice: a repeated delete is a success too)
    before_beta = {key: [row for row in value if row[0] == "beta"] for key, value in rows.items()}
    for _ in range(2):
        await ok(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 0, domain=DOMAIN_A))

    # Then alpha's data about tenant A is gone (history kept), tenant B and beta's copy untouched
    after = await directory_rows(app)
    assert [row for row in after["tenants"] if row[:2] == ("alpha", TENANT_A)] == [
        ("alpha", TENANT_A, False, "code-68cbc8", "Huawei Test", DOMAIN_A, "inst-1", "CS1906666666ABCDE", True)
    ]
    for table in ("apps", "departments", "members", "authorizations"):
        assert [row for row in after[table] if row[:2] == ("alpha", TENANT_A)] == [], table
        assert [row for row in after[table] if row[0] == "beta"] == before_beta[table], table
        assert [row for row in after[table] if row[:2] == ("alpha", TENANT_B)] == [
            row for row in rows[table] if row[:2] == ("alpha", TENANT_B)
        ], table
    unbound_history = [entry[2:] for entry in after["history"] if entry[:2] == ("alpha", TENANT_A)]
    assert unbound_history[: len(alpha_a_history)] == alpha_a_history
    assert sorted(unbound_history[len(alpha_a_history) :]) == [
        ("u2", "revoked", "admin", False, "tenantSync:0"),  # live though disabled: revoked with the tenant
        ("u6", "revoked", "user", True, "tenantSync:0"),
    ]

    # And alpha's adapter heard of tenant A's changes in order, each once, with distinct ids
    await settle_events(app)
    alpha_a = [event for event in behaviours["alpha"].events if event.tenant_id == TENANT_A]
    assert [event.type for event in alpha_a] == [
        DirectoryEventType.TENANT_BOUND,
        DirectoryEventType.APP_CREDENTIALS_CHANGED,
        DirectoryEventType.DEPARTMENTS_CHANGED,
        DirectoryEventType.MEMBERS_AUTHORIZED,
        *[DirectoryEventType.DEPARTMENTS_CHANGED] * 6,
        DirectoryEventType.MEMBERS_CHANGED,
        DirectoryEventType.MEMBERS_REVOKED,
        DirectoryEventType.MEMBERS_REVOKED,
        DirectoryEventType.MEMBERS_AUTHORIZED,
        DirectoryEventType.TENANT_UNBOUND,
    ]
    assert len({event.event_id for event in alpha_a}) == len(alpha_a)
    assert alpha_a[1].data == {"app_id": "app-001", "client_id": "alpha-client", "deleted": False}
    assert "alpha-secret-A" not in repr([event.data for event in behaviours["alpha"].events])
    assert alpha_a[3].data["members"][2] == {
        "user_name": "u3",
        "name": "U3",
        "org_code": "3",
        "position": None,
        "employee_code": None,
        "employee_type": None,
        "mobile": "13800000000",
        "email": None,
        "work_place": None,
        "entry_date": None,
        "extension": None,
        "role": "user",
        "enabled": True,
    }
    assert alpha_a[-3].data == {"app_id": "app-001", "members": [{"user_name": "u1", "removed": True}]}
    assert [event.data["removed"] for event in alpha_a if event.type is DirectoryEventType.DEPARTMENTS_CHANGED] == [
        [],
        [],
        [],
        [],
        ["4"],
        [],
        [],
    ]
    assert {event.product for event in behaviours["beta"].events} == {"beta"}


async def test_repeated_syncs_change_nothing(app: Starlette, marketplace: Marketplace) -> None:
    calls = [
        ("tenantSync", tenant_sync(TENANT_A, 1)),
        ("applicationSync", application_sync(TENANT_A, 1)),
        ("allOrgSync", all_org_sync(TENANT_A, [org("1", "Head office"), org("2", "Sales", "1")])),
        ("singleOrgSync", single_org_sync(TENANT_A, 1, "3", "Support", "1")),
        ("authSync", auth_sync(TENANT_A, 1, [user("u1", role="admin"), user("u2")])),
        ("authSync", auth_sync(TENANT_A, 2, [user("u1", role="user", position="CTO")])),
        ("authSync", auth_sync(TENANT_A, 3, [user("u2")])),
        ("authSync", auth_sync(TENANT_A, 0, [user("u1")])),
        ("singleOrgSync", single_org_sync(TENANT_A, 0, "3")),
        ("applicationSync", application_sync(TENANT_A, 0)),
        ("tenantSync", tenant_sync(TENANT_A, 0)),
    ]
    for sync, fields in calls:
        # Given a call that was stored
        await ok(marketplace, "alpha", sync, fields)
        rows, counts = await directory_rows(app), await directory_counts(app)
        # When the marketplace sends it again (a new nonce, the same content; a new ciphertext too)
        again = application_sync(TENANT_A, fields["flag"]) if sync == "applicationSync" else fields  # type: ignore[arg-type]
        await ok(marketplace, "alpha", sync, again)
        # Then nothing changed: no row, no history line, no event
        assert await directory_rows(app) == rows, sync
        assert await directory_counts(app) == counts, sync


async def test_modify_keeps_tenant_code_and_a_late_sync_creates_an_unbound_tenant(
    app: Starlette, marketplace: Marketplace
) -> None:
    # Given an authSync that arrives before its tenant was bound
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_B, 1, [user("u1")]))
    rows = await directory_rows(app)
    assert rows["tenants"] == [("alpha", TENANT_B, False, None, None, None, "", "", False)]
    async with app.state.database.reader() as session:
        assert (
            await directory.get_authorized_member(
                session, product="alpha", tenant_id=TENANT_B, is_test=False, user_name="u1"
            )
            is None
        )  # no login for a tenant that is not bound
    # When the tenant is bound, then modified with another code, name and domain
    await ok(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_B, 1, code="first"))
    await ok(
        marketplace,
        "alpha",
        "tenantSync",
        tenant_sync(TENANT_B, 2, code="second", name="Renamed", domain="https://idp.tenantaccount.com/"),
    )
    # Then the code is the bound one; name and (normalised) domain changed
    assert (await directory_rows(app))["tenants"] == [
        (
            "alpha",
            TENANT_B,
            False,
            "first",
            "Renamed",
            "https://idp.tenantaccount.com",
            "inst-1",
            "CS1906666666ABCDE",
            False,
        )
    ]


async def test_deletions_of_unknown_things_succeed_and_create_nothing(app: Starlette, marketplace: Marketplace) -> None:
    for sync, fields in [
        ("tenantSync", tenant_sync(TENANT_A, 0)),
        ("applicationSync", {**application_sync(TENANT_A, 0), "clientSecret": None, "clientId": None}),
        ("authSync", auth_sync(TENANT_A, 0, [{"userName": "ghost"}])),
        ("authSync", auth_sync(TENANT_A, 3, [{"userName": "ghost"}])),
        ("singleOrgSync", {**single_org_sync(TENANT_A, 0, "9"), "orgName": None}),
    ]:
        await ok(marketplace, "alpha", sync, fields)
    assert set((await directory_counts(app)).values()) == {0}


async def test_all_org_sync_is_a_snapshot_and_members_keep_dangling_codes(
    app: Starlette, marketplace: Marketplace
) -> None:
    # Given departments 1 > 2 > 3 and a member in 3
    await ok(
        marketplace,
        "alpha",
        "allOrgSync",
        all_org_sync(TENANT_A, [org("1", "Head office"), org("2", "Sales", "1"), org("3", "Sales East", "2")]),
    )
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, [user("u3", org="3")]))
    # When a snapshot without 2 and 3 arrives (one code listed twice: the later entry counts)
    await ok(
        marketplace,
        "alpha",
        "allOrgSync",
        all_org_sync(TENANT_A, [org("1", "Old name"), org("7", "Legal", "1"), org("1", "Head office")]),
    )
    # Then only the snapshot's departments remain; the member stays, its department dangling
    rows = await directory_rows(app)
    assert rows["departments"] == [
        ("alpha", TENANT_A, False, "1", "Head office", ""),
        ("alpha", TENANT_A, False, "7", "Legal", "1"),
    ]
    async with app.state.database.reader() as session:
        listed = await directory.list_members(session, product="alpha", tenant_id=TENANT_A, is_test=False)
    assert [(item.member.user_name, item.member.org_code, item.org_name) for item in listed] == [("u3", "3", None)]


async def test_test_data_is_kept_apart_from_real_data(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    # Given a real binding, and the seller's credential test for the same tenant (testFlag 1, no instance)
    await ok(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 1))
    await ok(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 1, test=True, name="Test"))
    await ok(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, [user("tester")], test=True))
    # When the test tenant is unbound
    await ok(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 0, test=True))
    await settle_events(app)
    # Then the real tenant is untouched, the test data separate, and the adapter (which does not
    # take debug calls) heard only of the real binding
    rows = await directory_rows(app)
    assert rows["tenants"] == [
        (
            "alpha",
            TENANT_A,
            False,
            "huawei",
            "Huawei Test",
            "https://example.tenantaccount.com",
            "inst-1",
            "CS1906666666ABCDE",
            False,
        ),
        ("alpha", TENANT_A, True, "huawei", "Test", "https://example.tenantaccount.com", "", "", True),
    ]
    assert rows["members"] == []
    assert [(event.type, event.is_test) for event in behaviours["alpha"].events] == [
        (DirectoryEventType.TENANT_BOUND, False)
    ]


async def test_events_are_redelivered_with_the_same_id_and_in_order(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    # Given an adapter whose first delivery fails
    behaviours["alpha"].directory_errors = 1
    # When two changes of one tenant are stored
    await ok(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 1))
    await ok(marketplace, "alpha", "singleOrgSync", single_org_sync(TENANT_A, 1, "1", "Head office"))
    await settle_events(app, timeout_s=15)
    # Then the first is delivered again with the same id before the second is delivered at all
    events = behaviours["alpha"].events
    assert [event.type for event in events] == [
        DirectoryEventType.TENANT_BOUND,
        DirectoryEventType.TENANT_BOUND,
        DirectoryEventType.DEPARTMENTS_CHANGED,
    ]
    assert events[0].event_id == events[1].event_id != events[2].event_id
    assert events[0] == events[1]
