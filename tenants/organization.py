"""Buyer organizations as the admin API reads them: tenants, departments and members.

Every function takes the `Caller` and filters by it in SQL (`tenants_clause`,
`members_clause`): an operator reads the tenants of their products, a tenant admin their own
tenant, an ordinary member only their own member row. A row out of reach is indistinguishable
from a row that does not exist. The Kit syncs write this data (`tenants.directory`); nothing
here changes it.
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, func, literal, or_, tuple_
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.admin import (
    Caller,
    Page,
    PageRequest,
    TenantScope,
    count_rows,
    fetch_page,
    members_clause,
    tenants_clause,
)
from tenants.database import connection_of
from tenants.directory_models import (
    DirectoryAuthorization,
    DirectoryDepartment,
    DirectoryMember,
    DirectoryMemberCount,
    DirectoryTenant,
    MemberRole,
)
from tenants.roles import (
    RoleCatalog,
    RoleHolder,
    authorizations_of,
    enabled_roles_of,
    held_roles,
    holds_role_clause,
    probe,
)

DepartmentKey = tuple[str, str, bool, str]
"""(product, tenant_id, is_test, org_code): an orgCode is only meaningful within its tenant."""


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _in_scope(model: Any, scope: TenantScope) -> ColumnElement[bool]:
    # The table's columns, not the model's attributes: the same SQL, built several times faster.
    columns = _table(model).c
    return and_(
        columns.product == scope.product, columns.tenant_id == scope.tenant_id, columns.is_test == scope.is_test
    )


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    return func.lower(column).contains(text.lower(), autoescape=True)


# -- tenants -----------------------------------------------------------------------------------


def scope_of(tenant: DirectoryTenant) -> TenantScope:
    """The scope every row of a tenant's organization carries: (product, tenant_id, is_test)."""
    return TenantScope(tenant.product, tenant.tenant_id, tenant.is_test)


@dataclass(frozen=True, slots=True)
class TenantFilter:
    """Which tenants to list; None means any."""

    products: frozenset[str] | None = None
    is_test: bool | None = None
    bound: bool | None = None
    """Bound: tenantSync delivered the tenant and it is not unbound."""
    search: str | None = None
    """Part of the tenant id, code or name (any case)."""


def _tenant_clauses(caller: Caller, wanted: TenantFilter) -> list[ColumnElement[bool]]:
    tenants = _table(DirectoryTenant)
    clauses = [tenants_clause(caller, tenants.c)]
    if wanted.products is not None:
        clauses.append(col(DirectoryTenant.product).in_(sorted(wanted.products)))
    if wanted.is_test is not None:
        clauses.append(col(DirectoryTenant.is_test) == wanted.is_test)
    if wanted.bound is not None:
        bound = and_(col(DirectoryTenant.deleted).is_(False), col(DirectoryTenant.tenant_code).is_not(None))
        clauses.append(bound if wanted.bound else ~bound)
    if wanted.search:
        clauses.append(
            or_(
                _contains(DirectoryTenant.tenant_id, wanted.search),
                _contains(DirectoryTenant.tenant_code, wanted.search),
                _contains(DirectoryTenant.name, wanted.search),
            )
        )
    return clauses


async def list_tenants(
    session: AsyncSession, *, caller: Caller, wanted: TenantFilter, page: PageRequest
) -> Page[DirectoryTenant]:
    """The tenants the caller may read matching `wanted`, newest first."""
    return await fetch_page(session, DirectoryTenant, clauses=_tenant_clauses(caller, wanted), page=page)


async def count_tenants(session: AsyncSession, *, caller: Caller, wanted: TenantFilter) -> int:
    """How many tenants the caller may read match `wanted`."""
    return await count_rows(session, DirectoryTenant, clauses=_tenant_clauses(caller, wanted))


async def get_tenant(session: AsyncSession, *, caller: Caller, scope: TenantScope) -> DirectoryTenant | None:
    """One tenant by product, tenant id and test flag, if the caller may read it."""
    clauses = [*_tenant_clauses(caller, TenantFilter()), _in_scope(DirectoryTenant, scope)]
    return (await session.exec(select(DirectoryTenant).where(*clauses))).first()


async def get_tenant_by_row_id(session: AsyncSession, *, caller: Caller, row_id: int) -> DirectoryTenant | None:
    """One tenant by its row id, if the caller may read it."""
    clauses = [*_tenant_clauses(caller, TenantFilter()), col(DirectoryTenant.id) == row_id]
    return (await session.exec(select(DirectoryTenant).where(*clauses))).first()


# -- departments -------------------------------------------------------------------------------


def _department_reach(caller: Caller) -> ColumnElement[bool]:
    return tenants_clause(caller, _table(DirectoryDepartment).c)


async def list_departments(session: AsyncSession, *, caller: Caller, scope: TenantScope) -> list[DirectoryDepartment]:
    """Every department of a tenant (the whole tree, as parentCode links), by orgCode."""
    query = (
        select(DirectoryDepartment)
        .where(_department_reach(caller), _in_scope(DirectoryDepartment, scope))
        .order_by(col(DirectoryDepartment.org_code))
    )
    return list((await session.exec(query)).all())


async def list_departments_by_keys(
    session: AsyncSession, *, caller: Caller, keys: Sequence[DepartmentKey]
) -> dict[DepartmentKey, DirectoryDepartment]:
    """The departments among `keys` the caller may read, by key, in one statement."""
    if not keys:
        return {}
    query = select(DirectoryDepartment).where(
        _department_reach(caller),
        tuple_(
            col(DirectoryDepartment.product),
            col(DirectoryDepartment.tenant_id),
            col(DirectoryDepartment.is_test),
            col(DirectoryDepartment.org_code),
        ).in_(sorted(set(keys))),
    )
    rows = (await session.exec(query)).all()
    return {(row.product, row.tenant_id, row.is_test, row.org_code): row for row in rows}


async def get_department(
    session: AsyncSession, *, caller: Caller, scope: TenantScope, org_code: str
) -> DirectoryDepartment | None:
    """One department by orgCode, if the caller may read its tenant."""
    query = select(DirectoryDepartment).where(
        _department_reach(caller), _in_scope(DirectoryDepartment, scope), col(DirectoryDepartment.org_code) == org_code
    )
    return (await session.exec(query)).first()


async def get_department_by_row_id(session: AsyncSession, *, caller: Caller, row_id: int) -> DirectoryDepartment | None:
    """One department by its row id, if the caller may read its tenant."""
    query = select(DirectoryDepartment).where(_department_reach(caller), col(DirectoryDepartment.id) == row_id)
    return (await session.exec(query)).first()


# -- members -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """A member as the admin API shows them: who and where, not how to reach them (no mobile,
    email or Kit extension: granting roles does not need them)."""

    id: int
    product: str
    tenant_id: str
    is_test: bool
    user_name: str
    name: str
    org_code: str
    position: str | None
    employee_code: str | None
    removed: bool


_PROFILE_COLUMNS = tuple(item.name for item in fields(MemberProfile))


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A member with their department's name and their marketplace authorization for the product."""

    member: MemberProfile
    org_name: str | None
    """None when the member's orgCode names no department (removed, or not arrived yet)."""
    marketplace_role: MemberRole | None
    """Of their live authorization (an enabled one first, `admin` first); None if not authorized."""
    authorized: bool
    """A live authorization exists (for any app of the product)."""
    enabled: bool
    """A live authorization is enabled: only then does the member have effective roles."""
    marketplace_roles: frozenset[MemberRole] = frozenset()
    """The roles of their live, enabled authorizations (empty for a removed member)."""

    @property
    def holder(self) -> RoleHolder:
        """The member as `tenants.roles` reads their grants and effective roles."""
        return RoleHolder(self.member.user_name, self.member.org_code, self.marketplace_roles)


@dataclass(frozen=True, slots=True)
class MemberFilter:
    """Which members to list; None means any."""

    org_code: str | None = None
    include_sub_departments: bool = True
    marketplace_role: MemberRole | None = None
    product_role: str | None = None
    """Among the member's effective roles."""
    authorized: bool | None = None
    enabled: bool | None = None
    search: str | None = None
    """Part of the userName or name (any case)."""
    include_removed: bool = False

    @property
    def is_everyone(self) -> bool:
        """Whether it asks for every member still in the enterprise: its count is the tenant's
        tally (one row, see `count_members`), whatever the number of members. Derived from the
        defaults, so a filter added later narrows it without being listed here (sub-departments
        mean nothing without a department; an empty search matches everyone)."""
        return replace(self, include_sub_departments=True, search=self.search or None) == MemberFilter()


@dataclass(frozen=True, slots=True)
class MemberPageRequest:
    """A forward page of members in userName order: `first` after the userName `after`."""

    first: int = 50
    after: str | None = None


@dataclass(frozen=True, slots=True)
class MemberPage:
    items: list[MemberRow] = field(default_factory=list)
    has_next: bool = False


def _live_role(members: Any, *, enabled_only: bool) -> Any:
    """The smallest role ('admin' < 'user') of the member row's live (enabled) authorizations."""
    auth = _table(DirectoryAuthorization)
    return sa_select(func.min(auth.c.role)).where(*authorizations_of(members, enabled=enabled_only)).scalar_subquery()


def _has_authorization(
    scope: TenantScope, members: Any, *, enabled: bool, role: MemberRole | None = None
) -> ColumnElement[bool]:
    """The member row has a live (enabled) authorization (with `role`); the scope as constants, so the
    probe is an index lookup whatever the planner's statistics say."""
    auth = _table(DirectoryAuthorization)
    clauses = [
        auth.c.product == scope.product,
        auth.c.tenant_id == scope.tenant_id,
        auth.c.is_test == scope.is_test,
        auth.c.user_name == members.c.user_name,
        auth.c.revoked_at.is_(None),
    ]
    if enabled:
        clauses.append(auth.c.enabled.is_(True))
    if role is not None:
        clauses.append(auth.c.role == role)
    return probe(*clauses)


def _subtree(scope: TenantScope, org_code: str) -> Any:
    """`org_code` (known or not) and every department below it: a recursive CTE (UNION: cycles end)."""
    departments = _table(DirectoryDepartment)
    root = sa_select(literal(org_code, type_=departments.c.org_code.type).label("code")).cte("under", recursive=True)
    child = departments.alias("child")
    tree = root.union(
        sa_select(child.c.org_code)
        .select_from(root.join(child, child.c.parent_code == root.c.code))
        .where(child.c.product == scope.product, child.c.tenant_id == scope.tenant_id, child.c.is_test == scope.is_test)
    )
    return sa_select(tree.c.code)


def _member_clauses(
    caller: Caller, scope: TenantScope, wanted: MemberFilter, catalog: RoleCatalog
) -> list[ColumnElement[bool]]:
    members = _table(DirectoryMember)
    clauses = [members_clause(caller, members.c), _in_scope(DirectoryMember, scope)]
    if not wanted.include_removed:
        clauses.append(members.c.removed.is_(False))
    if wanted.org_code is not None:
        if wanted.include_sub_departments:
            clauses.append(members.c.org_code.in_(_subtree(scope, wanted.org_code)))
        else:
            clauses.append(members.c.org_code == wanted.org_code)
    if wanted.marketplace_role is not None:
        clauses.append(_has_authorization(scope, members, enabled=False, role=wanted.marketplace_role))
    if wanted.authorized is not None:
        live = _has_authorization(scope, members, enabled=False)
        clauses.append(live if wanted.authorized else ~live)
    if wanted.enabled is not None:
        enabled = _has_authorization(scope, members, enabled=True)
        clauses.append(enabled if wanted.enabled else ~enabled)
    if wanted.product_role is not None:
        clauses.append(holds_role_clause(scope, wanted.product_role, catalog, members))
    if wanted.search:
        clauses.append(or_(_contains(members.c.user_name, wanted.search), _contains(members.c.name, wanted.search)))
    return clauses


def _member_query(clauses: Sequence[ColumnElement[bool]]) -> Select[Any]:
    """Members with their department's name and marketplace roles, each a lookup per row (no join:
    a page stays an ordered index scan that stops after `first` rows). Plain rows, not ORM objects:
    a page reads a hundred, and building each as a model costs more than reading it."""
    return sa_select(*_member_columns()).where(*clauses)


@functools.cache
def _member_columns() -> tuple[Any, ...]:
    """The select list of `_member_query`, built once: its lookups depend on the member row alone,
    and building them again for every page costs more than the page's index scan."""
    members, departments = _table(DirectoryMember), _table(DirectoryDepartment)
    org_name = (
        sa_select(departments.c.org_name)
        .where(
            departments.c.product == members.c.product,
            departments.c.tenant_id == members.c.tenant_id,
            departments.c.is_test == members.c.is_test,
            departments.c.org_code == members.c.org_code,
        )
        .limit(1)
        .scalar_subquery()
    )
    return (
        *(members.c[name] for name in _PROFILE_COLUMNS),
        org_name.label("org_name"),
        enabled_roles_of(members).label("enabled_roles"),
        _live_role(members, enabled_only=False).label("live_role"),
    )


async def _member_rows(session: AsyncSession, query: Select[Any]) -> list[MemberRow]:
    connection = await connection_of(session)
    return [_member_row(row) for row in (await connection.execute(query)).all()]


_ROLES = {role.value: role for role in MemberRole}


def _member_row(row: Any) -> MemberRow:
    *profile, org_name, enabled_roles, live_role = row
    member = MemberProfile(*profile)
    held = held_roles(enabled_roles)
    role = held[0] if held else _ROLES.get(live_role) if live_role is not None else None
    return MemberRow(
        member=member,
        org_name=org_name,
        marketplace_role=role,
        authorized=live_role is not None,
        enabled=bool(held),
        marketplace_roles=frozenset(held) if not member.removed else frozenset(),
    )


async def list_members(
    session: AsyncSession,
    *,
    caller: Caller,
    scope: TenantScope,
    wanted: MemberFilter,
    catalog: RoleCatalog,
    page: MemberPageRequest,
) -> MemberPage:
    """Members of a tenant the caller may read matching `wanted`, in userName order (keyset)."""
    members = _table(DirectoryMember)
    clauses = _member_clauses(caller, scope, wanted, catalog)
    if page.after is not None:
        clauses.append(members.c.user_name > page.after)
    query = _member_query(clauses).order_by(members.c.user_name).limit(page.first + 1)
    rows = await _member_rows(session, query)
    return MemberPage(items=rows[: page.first], has_next=len(rows) > page.first)


async def count_members(
    session: AsyncSession, *, caller: Caller, scope: TenantScope, wanted: MemberFilter, catalog: RoleCatalog
) -> int:
    """How many members of a tenant the caller may read match `wanted`.

    Every member of a tenant whose members the caller reads all (an operator, the tenant's admin):
    the tally the Kit syncs keep (`DirectoryMemberCount`), one row. Any narrower question counts rows.
    """
    if wanted.is_everyone and caller.reaches_tenant(scope):
        counts = _table(DirectoryMemberCount)
        tally = sa_select(counts.c.present).where(
            tenants_clause(caller, counts.c), _in_scope(DirectoryMemberCount, scope)
        )
        connection = await connection_of(session)
        return int((await connection.execute(tally)).scalar() or 0)
    query = select(func.count()).select_from(DirectoryMember).where(*_member_clauses(caller, scope, wanted, catalog))
    return int((await session.exec(query)).one())


async def get_member(session: AsyncSession, *, caller: Caller, scope: TenantScope, user_name: str) -> MemberRow | None:
    """One member by userName (removed ones too), if the caller may read them."""
    members = _table(DirectoryMember)
    query = _member_query(
        [members_clause(caller, members.c), _in_scope(DirectoryMember, scope), members.c.user_name == user_name]
    )
    return next(iter(await _member_rows(session, query)), None)


async def get_member_by_row_id(session: AsyncSession, *, caller: Caller, row_id: int) -> MemberRow | None:
    """One member by row id, if the caller may read them."""
    members = _table(DirectoryMember)
    query = _member_query([members_clause(caller, members.c), members.c.id == row_id])
    return next(iter(await _member_rows(session, query)), None)


async def get_member_access(session: AsyncSession, *, scope: TenantScope, user_name: str) -> MemberRole | None:
    """The marketplace role a member logs in with now: of a live, enabled authorization (admin first).

    None when the tenant is not bound, the member is removed or has no live enabled
    authorization. It decides who a session's member is, so it takes no caller: it is how
    the caller is established, in one statement.
    """
    tenants, members = _table(DirectoryTenant), _table(DirectoryMember)
    bound = (
        sa_select(tenants.c.id)
        .where(
            _in_scope(DirectoryTenant, scope),
            tenants.c.deleted.is_(False),
            tenants.c.tenant_code.is_not(None),
        )
        .exists()
    )
    query = select(_live_role(members, enabled_only=True)).where(
        _in_scope(DirectoryMember, scope), members.c.user_name == user_name, members.c.removed.is_(False), bound
    )
    role = (await session.exec(query)).first()
    return MemberRole(role) if role is not None else None
