"""Buyer organizations for the admin API tests, delivered as the marketplace does: signed Kit syncs.

alpha/A is the organization the tests work in. alpha/B ("Bravo") is another tenant of the
same product, alpha/A's debug data (testFlag 1) another copy of it, and beta/A the same tenant
in another product: every value of theirs contains "bravo" or "beta" (but beta's member "ann",
who shares her userName with alpha's), so an answer that leaks them is easy to spot.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette

from tenants.directory_models import DirectoryDepartment, DirectoryMember, DirectoryTenant
from tests.conftest import Marketplace
from tests.graphql.conftest import rows
from tests.kit.helpers import TENANT_A, TENANT_B, all_org_sync, auth_sync, org, tenant_sync, user

__all__ = ["ALPHA_A_DEPARTMENTS", "TENANT_A", "TENANT_B", "Organizations", "kit", "seed_organizations"]

ALPHA_A_DEPARTMENTS = [("1", "Head office", ""), ("2", "Sales", "1"), ("3", "Sales East", "2"), ("4", "Support", "1")]
ALPHA_A_USERS = [
    user("boss", org="1", role="admin"),
    user("ann", org="2"),
    user("bob", org="3"),
    user("cat", org="4"),
    user("dan", org="3", enable="false"),
    user("eve", org="2"),
    user("fay", org="9"),
]


async def kit(marketplace: Marketplace, slug: str, sync: str, fields: Mapping[str, object]) -> None:
    response = await marketplace.kit(slug, sync, dict(fields))
    assert response.status_code == 200, response.text
    assert response.json()["resultCode"] == "000000", (slug, sync, response.json())


async def bind(
    marketplace: Marketplace,
    slug: str,
    tenant_id: str,
    *,
    name: str,
    departments: Sequence[tuple[str, str, str]],
    users: Sequence[dict[str, object]],
) -> None:
    await kit(
        marketplace, slug, "tenantSync", tenant_sync(tenant_id, 1, code=name.lower().replace(" ", "-"), name=name)
    )
    await kit(
        marketplace, slug, "allOrgSync", all_org_sync(tenant_id, [org(*department) for department in departments])
    )
    await kit(marketplace, slug, "authSync", auth_sync(tenant_id, 1, list(users)))


@dataclass(frozen=True)
class Organizations:
    """Row ids of what the tests look up by global id."""

    tenants: dict[tuple[str, str], int]
    departments: dict[tuple[str, str, str], int]
    members: dict[tuple[str, str, str], int]


async def seed_organizations(app: Starlette, marketplace: Marketplace) -> Organizations:
    await bind(marketplace, "alpha", TENANT_A, name="Alpha Buyer", departments=ALPHA_A_DEPARTMENTS, users=ALPHA_A_USERS)
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 3, [user("eve", org="2")]))  # eve: revoked
    await bind(
        marketplace,
        "alpha",
        TENANT_B,
        name="Bravo Corp",
        departments=[("1", "Bravo HQ", ""), ("2", "Bravo Sales", "1")],
        users=[user("bravo-admin", org="1", role="admin"), user("bravo-user", org="2")],
    )
    await bind(
        marketplace,
        "beta",
        TENANT_A,
        name="Beta Buyer",
        departments=[("1", "Beta HQ", ""), ("2", "Beta Sales", "1")],
        users=[user("beta-admin", org="1", role="admin"), user("beta-user", org="2"), user("ann", org="2")],
    )
    # alpha's copy of the marketplace's debug data (testFlag 1) of tenant A: kept apart
    await kit(
        marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 1, code="bravo-debug", name="Bravo Debug", test=True)
    )
    await kit(marketplace, "alpha", "allOrgSync", all_org_sync(TENANT_A, [org("1", "Bravo Debug HQ")], test=True))
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, [user("bravo-debug", org="1")], test=True))
    tenants = {(row.product, row.tenant_id): row.id for row in await rows(app, DirectoryTenant) if not row.is_test}
    departments = {
        (row.product, row.tenant_id, row.org_code): row.id
        for row in await rows(app, DirectoryDepartment)
        if not row.is_test
    }
    members = {
        (row.product, row.tenant_id, row.user_name): row.id
        for row in await rows(app, DirectoryMember)
        if not row.is_test
    }
    return Organizations(tenants=tenants, departments=departments, members=members)
