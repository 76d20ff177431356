"""Product roles: each product's catalog, grants to members and departments, effective roles.

The marketplace knows two roles (`admin`, `user`); a product declares its own, finer roles
(the products file, and its adapter may add some). A tenant admin grants them to members or
whole departments. The effective roles of a member are

    the defaults of their marketplace role(s)
    + the grants on the member
    + the grants on their department
    + the grants on the departments above it that say `include_sub_departments`,

limited to the roles the product declares. Only a member with a live, enabled authorization
who is not removed has effective roles: a grant on anyone else waits, and applies as soon
as the marketplace authorizes them (nothing is stored per member: it is computed when read).

Changes take the caller (who must be allowed to change the tenant), hold the tenant's row
lock (so they apply one after the other with the Kit syncs of that tenant), write the audit
log, and tell the product's adapter through the outbox whose effective roles changed: the
affected members are computed in SQL, in bulk, before and after the change.
"""

import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy import column as sa_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants import directory, jobs
from tenants.admin import AccessDeniedError, Caller, TenantScope, create_audit_entry, members_clause, tenants_clause
from tenants.database import connection_of
from tenants.directory_models import DirectoryAuthorization, DirectoryDepartment, DirectoryMember, MemberRole
from tenants.errors import TenantsError
from tenants.role_models import GrantSubject, MemberRoleGrant

MAX_SUBJECTS = 5000
"""Most members and departments one grant or revocation may name (as the marketplace console)."""
EVENT_CHUNK = 1000
"""Most members one `member_roles.changed` event lists; a larger change is told in several."""
DIRECTORY_EVENT_JOB_KIND = "directory_event"
"""The outbox job kind of directory events: the Kit syncs' delivery path to the adapter."""
MEMBER_ROLES_CHANGED = "member_roles.changed"
"""The directory event type telling the adapter whose effective roles changed."""


def directory_sequence_key(scope: TenantScope) -> str:
    """Directory events of one tenant of one product are delivered one at a time, in order."""
    return f"directory:{scope.product}:{int(scope.is_test)}:{scope.tenant_id}"


# -- errors ------------------------------------------------------------------------------------


class InvalidRoleCatalogError(TenantsError):
    """A product's roles are unusable (a default that is not declared, a malformed name)."""

    code = "invalid_role_catalog"


class TenantNotFoundError(TenantsError):
    """No such (bound) tenant among those the caller may reach."""

    code = "tenant_not_found"


class UnknownRolesError(TenantsError):
    """Roles the product does not declare; nothing was changed."""

    code = "unknown_roles"

    def __init__(self, roles: Sequence[str]) -> None:
        super().__init__(f"roles not declared by the product: {', '.join(roles)}")
        self.roles = list(roles)


class TooManySubjectsError(TenantsError):
    """More than `MAX_SUBJECTS` members and departments at once; nothing was changed."""

    code = "too_many_subjects"

    def __init__(self, given: int) -> None:
        super().__init__(f"{given} members and departments given, at most {MAX_SUBJECTS} allowed")
        self.given = given
        self.limit = MAX_SUBJECTS


class UnknownSubjectsError(TenantsError):
    """Members or departments the tenant's directory does not have; nothing was changed."""

    code = "unknown_subjects"

    def __init__(self, members: Sequence[str], departments: Sequence[str]) -> None:
        super().__init__(f"{len(members)} unknown members and {len(departments)} unknown departments")
        self.members = list(members)
        self.departments = list(departments)


# -- the catalog -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleCatalog:
    """The product roles one product declares, and the defaults of the marketplace roles."""

    roles: tuple[str, ...] = ()
    """In declaration order: the products file's first, then those the adapter contributes."""
    defaults: Mapping[MemberRole, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, *, declared: Iterable[str], contributed: Iterable[str] = (), defaults: Mapping[str, Iterable[str]]
    ) -> "RoleCatalog":
        """A catalog from the products file and the adapter; raises `InvalidRoleCatalogError`."""
        roles = tuple(dict.fromkeys([*declared, *contributed]))
        for role in roles:
            if not isinstance(role, str) or not 1 <= len(role) <= 64 or role != role.strip():
                raise InvalidRoleCatalogError(f"not a role name: {role!r}")
        mapped: dict[MemberRole, tuple[str, ...]] = {}
        for marketplace_role, names in defaults.items():
            try:
                key = MemberRole(marketplace_role)
            except ValueError:
                raise InvalidRoleCatalogError(f"default_roles: {marketplace_role!r} is not admin or user") from None
            wanted = tuple(dict.fromkeys(names))
            if unknown := [name for name in wanted if name not in roles]:
                raise InvalidRoleCatalogError(f"default_roles.{key.value}: not declared in roles: {', '.join(unknown)}")
            mapped[key] = wanted
        return cls(roles=roles, defaults=mapped)

    def default_for(self, role: MemberRole) -> tuple[str, ...]:
        return self.defaults.get(role, ())

    def unknown(self, roles: Iterable[str]) -> list[str]:
        """Those of `roles` the product does not declare."""
        return [role for role in roles if role not in self.roles]


# -- what is read ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant, as read."""

    id: int
    subject_kind: GrantSubject
    subject_code: str
    role: str
    include_sub_departments: bool
    granted_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRoles:
    """A member's grants and effective roles."""

    direct: list[Grant]
    """Grants on the member."""
    inherited: list[Grant]
    """Grants on the member's department, and on those above it that include sub-departments."""
    effective: list[str]
    """In the catalog's order; empty unless the member is authorized, enabled and not removed."""


@dataclass(frozen=True, slots=True)
class RolesChange:
    """What a grant or revocation did."""

    changed_grants: int
    """Grants created, changed (include_sub_departments) or deleted."""
    affected_members: list[str]
    """userNames of the members whose effective roles changed (the adapter is told of each)."""


# -- SQL helpers -------------------------------------------------------------------------------


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_GRANTS = _table(MemberRoleGrant)
_MEMBERS = _table(DirectoryMember)
_DEPARTMENTS = _table(DirectoryDepartment)
_AUTHORIZATIONS = _table(DirectoryAuthorization)
_GRANT_COLUMNS = (
    "id",
    "subject_kind",
    "subject_code",
    "role",
    "include_sub_departments",
    "granted_by",
    "created_at",
    "updated_at",
)


def _in_scope(table: Any, scope: TenantScope) -> ColumnElement[bool]:
    return and_(
        table.c.product == scope.product, table.c.tenant_id == scope.tenant_id, table.c.is_test == scope.is_test
    )


def _same_scope(left: Any, right: Any) -> ColumnElement[bool]:
    return and_(
        left.c.product == right.c.product, left.c.tenant_id == right.c.tenant_id, left.c.is_test == right.c.is_test
    )


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def one_of(column: Any, values: Sequence[str], *, dialect: str) -> ColumnElement[bool]:
    """`column IN values` as ONE bound parameter, whatever the number of values (thousands).

    `IN (SELECT unnest(:array))` on PostgreSQL, `IN (SELECT value FROM json_each(:json))` on
    SQLite: a semi-join the planner can hash or probe an index with. (`= ANY(:array)` is
    searched element by element for every row once the statement is prepared: psycopg
    prepares repeated statements, and a generic plan cannot hash a parameter's array.)
    """
    if not values:
        return false()
    listed = _values(values, dialect=dialect)
    return column.in_(select(listed.c.value))  # type: ignore[no-any-return]


def _values(values: Sequence[str], *, dialect: str) -> Any:
    """`values` as a one-column table (`value`), ONE bound parameter: unnest / json_each."""
    if dialect == "postgresql":
        array = bindparam(None, list(values), type_=ARRAY(String()))
        return func.unnest(array).table_valued("value").render_derived(name="listed")
    return func.json_each(bindparam(None, json.dumps(list(values)), type_=Text)).table_valued("value")


def _ids_in(column: Any, ids: Sequence[int], *, dialect: str) -> ColumnElement[bool]:
    """`column IN ids`, on PostgreSQL as `= ANY(:ids)`: the same statement text for every page (psycopg
    prepares it once), an index scan of the primary key."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer())))  # type: ignore[no-any-return]
    return column.in_(ids)  # type: ignore[no-any-return]


def probe(*clauses: ColumnElement[bool]) -> ColumnElement[bool]:
    """A row matching `clauses` exists, checked by a lookup per outer row.

    Written as `(SELECT 1 .. LIMIT 1) IS NOT NULL`, a scalar subquery PostgreSQL runs as a
    sub-plan: an index probe per outer row, never a join the planner picks from statistics,
    which a tenant loaded a moment ago does not have yet (then a join compares every member
    with every authorization of the tenant).
    """
    return select(literal(1)).where(*clauses).limit(1).scalar_subquery().is_not(None)


def _live_authorization(
    scope: TenantScope, user_name: Any, *, enabled: bool, roles: Sequence[MemberRole] | None = None
) -> ColumnElement[bool]:
    """A live (and, if asked, enabled) authorization of the member `user_name` (a column) exists."""
    auth = _AUTHORIZATIONS
    clauses = [_in_scope(auth, scope), auth.c.user_name == user_name, auth.c.revoked_at.is_(None)]
    if enabled:
        clauses.append(auth.c.enabled.is_(True))
    if roles is not None:
        clauses.append(auth.c.role.in_(roles))
    return probe(*clauses)


def _grant_from_row(row: Any) -> Grant:
    mapping = row._mapping
    return Grant(
        id=mapping["id"],
        subject_kind=GrantSubject(mapping["subject_kind"]),
        subject_code=mapping["subject_code"],
        role=mapping["role"],
        include_sub_departments=bool(mapping["include_sub_departments"]),
        granted_by=mapping["granted_by"],
        created_at=mapping["created_at"],
        updated_at=mapping["updated_at"],
    )


def _list_parameter(name: str, *, dialect: str) -> Any:
    """A one-column table (`value`) of the list bound as `name`: unnest / json_each (see `list_value`)."""
    if dialect == "postgresql":
        return func.unnest(bindparam(name, type_=ARRAY(String()))).table_valued("value").render_derived(name=name)
    return func.json_each(bindparam(name, type_=Text)).table_valued("value")


def list_value(values: Sequence[str], *, dialect: str) -> Any:
    """What to bind to a `_list_parameter`: the list itself (PostgreSQL) or its JSON (SQLite)."""
    return list(values) if dialect == "postgresql" else json.dumps(list(values))


def _scope_parameters(table: Any) -> ColumnElement[bool]:
    return and_(
        table.c.product == bindparam("product"),
        table.c.tenant_id == bindparam("tenant_id"),
        table.c.is_test == bindparam("is_test"),
    )


@functools.cache
def _applicable_grants_statement(dialect: str) -> CompoundSelect[Any]:
    """Every grant of a tenant that applies to the members `user_names` or the departments `org_codes`.

    Each row is a grant's columns, `applies_to` (the userName of a member grant; the orgCode
    a department grant reaches) and `via` (member, department or ancestor). The departments
    above each orgCode are walked up by parentCode in a recursive CTE (UNION: a cycle ends).
    Built once per dialect, bound at each use (see `_applicable_grants`): a page of members
    reads its roles often.
    """
    departments, grants = _DEPARTMENTS.alias("up"), _GRANTS
    listed = _list_parameter("org_codes", dialect=dialect)
    members = _list_parameter("user_names", dialect=dialect)
    seed = select(listed.c.value.label("start_code"), listed.c.value.label("code"))
    chain = seed.cte("chain", recursive=True)
    step = (
        select(chain.c.start_code, departments.c.parent_code)
        .select_from(chain.join(departments, departments.c.org_code == chain.c.code))
        .where(_scope_parameters(departments), departments.c.parent_code != "")
    )
    chain = chain.union(step)
    columns = [grants.c[name] for name in _GRANT_COLUMNS]
    by_member = select(
        *columns, grants.c.subject_code.label("applies_to"), literal("member", type_=String(16)).label("via")
    ).where(
        _scope_parameters(grants),
        grants.c.subject_kind == GrantSubject.MEMBER.value,
        grants.c.subject_code.in_(select(members.c.value)),
    )
    own = chain.c.code == chain.c.start_code
    by_department = (
        select(
            *columns,
            chain.c.start_code.label("applies_to"),
            case((own, literal("department", type_=String(16))), else_=literal("ancestor", type_=String(16))).label(
                "via"
            ),
        )
        .select_from(chain.join(grants, grants.c.subject_code == chain.c.code))
        .where(
            _scope_parameters(grants),
            grants.c.subject_kind == GrantSubject.DEPARTMENT.value,
            or_(own, grants.c.include_sub_departments.is_(True)),
        )
    )
    return union_all(by_member, by_department)


async def _applicable_grants(
    session: AsyncSession, scope: TenantScope, *, user_names: Sequence[str], org_codes: Sequence[str]
) -> Sequence[Any]:
    """The rows of `_applicable_grants_statement` for these members and departments of `scope`."""
    dialect = _dialect(session)
    parameters = {
        "product": scope.product,
        "tenant_id": scope.tenant_id,
        "is_test": scope.is_test,
        "user_names": list_value(user_names, dialect=dialect),
        "org_codes": list_value(org_codes, dialect=dialect),
    }
    connection = await connection_of(session)
    rows: Sequence[Any] = (await connection.execute(_applicable_grants_statement(dialect), parameters)).all()
    return rows


async def _rows(session: AsyncSession, query: Select[Any] | CompoundSelect[Any]) -> Sequence[Any]:
    connection = await connection_of(session)
    rows: Sequence[Any] = (await connection.execute(query)).all()
    return rows


def _effective(catalog: RoleCatalog, marketplace_roles: Iterable[MemberRole], granted: Iterable[str]) -> list[str]:
    held = {role for marketplace_role in marketplace_roles for role in catalog.default_for(marketplace_role)}
    held.update(granted)
    return [role for role in catalog.roles if role in held]


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleHolder:
    """A member as effective roles see them: where they sit, and the marketplace roles they hold."""

    user_name: str
    org_code: str
    marketplace_roles: frozenset[MemberRole]
    """Of their live, enabled authorizations; empty for a member removed from the enterprise."""


def authorizations_of(members: Any, *, enabled: bool) -> list[ColumnElement[bool]]:
    """Where clauses of directory_authorizations: the live (and, if asked, enabled) authorizations of
    the member row `members`, by the columns of the authorizations' member index (correlated)."""
    auth = _AUTHORIZATIONS
    clauses = [
        auth.c.product == members.c.product,
        auth.c.tenant_id == members.c.tenant_id,
        auth.c.is_test == members.c.is_test,
        auth.c.user_name == members.c.user_name,
        auth.c.revoked_at.is_(None),
    ]
    if enabled:
        clauses.append(auth.c.enabled.is_(True))
    return clauses


def enabled_roles_of(members: Any) -> Any:
    """For the select list of a members query: the smallest and the largest role of the member
    row's live, enabled authorizations, as "admin,user" (null: none), in one lookup per row. With
    two marketplace roles that names every one the member holds; `held_roles` reads it."""
    auth = _AUTHORIZATIONS
    lowest, highest = cast(func.min(auth.c.role), String), cast(func.max(auth.c.role), String)
    return select(lowest + "," + highest).where(*authorizations_of(members, enabled=True)).scalar_subquery()


_HELD: dict[str | None, tuple[MemberRole, ...]] = {
    f"{low.value},{high.value}": tuple(sorted({low, high})) for low in MemberRole for high in MemberRole
}


def held_roles(enabled_roles: str | None) -> tuple[MemberRole, ...]:
    """The marketplace roles an `enabled_roles_of` value names, admin first (a lookup: pages read many)."""
    return _HELD.get(enabled_roles, ())


async def list_member_roles(
    session: AsyncSession, *, caller: Caller, member_ids: Sequence[int], catalogs: Mapping[str, RoleCatalog]
) -> dict[int, MemberRoles]:
    """Grants and effective roles of the members among `member_ids` the caller may read, by row id.

    Two statements, whatever the number of members: the members with the marketplace roles
    of their live, enabled authorizations, then every grant that applies to them (per tenant,
    usually one).
    """
    if not member_ids:
        return {}
    members = _MEMBERS
    query = select(
        members.c.id,
        members.c.product,
        members.c.tenant_id,
        members.c.is_test,
        members.c.user_name,
        members.c.org_code,
        members.c.removed,
        enabled_roles_of(members).label("enabled_roles"),
    ).where(
        _ids_in(members.c.id, sorted(set(member_ids)), dialect=_dialect(session)), members_clause(caller, members.c)
    )
    by_scope: dict[TenantScope, dict[int, RoleHolder]] = defaultdict(dict)
    for row in await _rows(session, query):
        held = frozenset(held_roles(row.enabled_roles)) if not row.removed else frozenset()
        by_scope[TenantScope(row.product, row.tenant_id, row.is_test)][row.id] = RoleHolder(
            row.user_name, row.org_code, held
        )
    result: dict[int, MemberRoles] = {}
    for scope, holders in by_scope.items():
        found = await _member_roles(session, scope, catalogs.get(scope.product, RoleCatalog()), holders.values())
        result.update({row_id: found[holder.user_name] for row_id, holder in holders.items()})
    return result


async def list_roles_of_members(
    session: AsyncSession, *, caller: Caller, scope: TenantScope, catalog: RoleCatalog, members: Sequence[RoleHolder]
) -> dict[str, MemberRoles]:
    """Grants and effective roles of members of `scope` the caller has read already (a page of a
    member list, with the marketplace roles they hold), by userName: one statement.

    Only the members the caller may read count: a tenant's admin or operator, any of them; an
    ordinary member, only themselves.
    """
    readable = [member for member in members if caller.reaches_member(scope, member.user_name)]
    return await _member_roles(session, scope, catalog, readable)


async def _member_roles(
    session: AsyncSession, scope: TenantScope, catalog: RoleCatalog, holders: Iterable[RoleHolder]
) -> dict[str, MemberRoles]:
    """The grants on `holders` (members of `scope`), their departments and the departments above
    them, and their effective roles, by userName: one statement."""
    holders = list(holders)
    if not holders:
        return {}
    direct: dict[str, list[Grant]] = defaultdict(list)
    inherited: dict[str, list[Grant]] = defaultdict(list)
    applicable = await _applicable_grants(
        session,
        scope,
        user_names=sorted({holder.user_name for holder in holders}),
        org_codes=sorted({holder.org_code for holder in holders}),
    )
    for row in applicable:
        target = direct if row.via == "member" else inherited
        target[row.applies_to].append(_grant_from_row(row))
    result: dict[str, MemberRoles] = {}
    for holder in holders:
        mine, above = _sorted(direct[holder.user_name]), _sorted(inherited[holder.org_code])
        held = holder.marketplace_roles
        effective = _effective(catalog, held, (grant.role for grant in (*mine, *above))) if held else []
        result[holder.user_name] = MemberRoles(direct=mine, inherited=above, effective=effective)
    return result


def _sorted(grants: list[Grant]) -> list[Grant]:
    return sorted({grant.id: grant for grant in grants}.values(), key=lambda grant: (grant.role, grant.id))


async def list_department_grants(
    session: AsyncSession, *, caller: Caller, department_ids: Sequence[int]
) -> dict[int, list[Grant]]:
    """The grants on each department among `department_ids` the caller may read, in one statement."""
    if not department_ids:
        return {}
    departments, grants = _DEPARTMENTS, _GRANTS
    query = (
        select(departments.c.id.label("department_id"), *(grants.c[name] for name in _GRANT_COLUMNS))
        .select_from(
            departments.join(
                grants,
                and_(
                    _same_scope(grants, departments),
                    grants.c.subject_kind == GrantSubject.DEPARTMENT.value,
                    grants.c.subject_code == departments.c.org_code,
                ),
            )
        )
        .where(departments.c.id.in_(sorted(set(department_ids))), tenants_clause(caller, departments.c))
        .order_by(grants.c.role, grants.c.id)
    )
    found: dict[int, list[Grant]] = defaultdict(list)
    for row in await _rows(session, query):
        found[row.department_id].append(_grant_from_row(row))
    return dict(found)


def covered_departments(scope: TenantScope, role: str) -> Select[Any]:
    """The orgCodes whose members a department grant of `role` reaches (a recursive CTE, downward)."""
    grants, departments = _GRANTS, _DEPARTMENTS.alias("below")
    seed = select(grants.c.subject_code.label("code"), grants.c.include_sub_departments.label("deep")).where(
        _in_scope(grants, scope), grants.c.subject_kind == GrantSubject.DEPARTMENT.value, grants.c.role == role
    )
    covered = seed.cte("covered", recursive=True)
    step = (
        select(departments.c.org_code, literal(True).label("deep"))
        .select_from(covered.join(departments, departments.c.parent_code == covered.c.code))
        .where(_in_scope(departments, scope), covered.c.deep.is_(True))
    )
    covered = covered.union(step)
    return select(covered.c.code)


def holds_role_clause(scope: TenantScope, role: str, catalog: RoleCatalog, members: Any) -> ColumnElement[bool]:
    """The member row `members` (a table or alias of directory_members) has `role` among its effective roles."""
    if role not in catalog.roles:
        return false()
    defaulting = [marketplace_role for marketplace_role in MemberRole if role in catalog.default_for(marketplace_role)]
    grants = _GRANTS
    by_default = (
        _live_authorization(scope, members.c.user_name, enabled=True, roles=defaulting) if defaulting else false()
    )
    by_grant = or_(
        probe(
            _in_scope(grants, scope),
            grants.c.subject_kind == GrantSubject.MEMBER.value,
            grants.c.subject_code == members.c.user_name,
            grants.c.role == role,
        ),
        members.c.org_code.in_(covered_departments(scope, role)),
    )
    return and_(
        members.c.removed.is_(False),
        or_(by_default, and_(_live_authorization(scope, members.c.user_name, enabled=True), by_grant)),
    )


# -- changing ----------------------------------------------------------------------------------


def _require_change(caller: Caller, scope: TenantScope) -> None:
    caller.require_write()
    if not caller.reaches_tenant(scope):
        raise TenantNotFoundError("no such tenant")


@dataclass(frozen=True, slots=True)
class _Request:
    scope: TenantScope
    roles: list[str]
    members: list[str]
    departments: list[str]


def _request(
    catalog: RoleCatalog | None,
    scope: TenantScope,
    roles: Sequence[str],
    members: Sequence[str],
    departments: Sequence[str],
) -> _Request:
    """The request, its lists without repeats; `catalog` None lets any role through (revocations)."""
    wanted = _Request(scope, sorted(set(roles)), sorted(set(members)), sorted(set(departments)))
    if catalog is not None and (unknown := catalog.unknown(wanted.roles)):
        raise UnknownRolesError(unknown)
    if len(wanted.members) + len(wanted.departments) > MAX_SUBJECTS:
        raise TooManySubjectsError(len(wanted.members) + len(wanted.departments))
    return wanted


async def _lock(session: AsyncSession, scope: TenantScope) -> None:
    tenant = await directory.lock_existing_tenant(
        session, product=scope.product, tenant_id=scope.tenant_id, is_test=scope.is_test
    )
    if tenant is None or not directory.is_bound(tenant):
        raise TenantNotFoundError("no such tenant")


async def _check_subjects(session: AsyncSession, wanted: _Request, *, granted_are_known: bool = False) -> None:
    """Refuse members and departments the tenant does not have. With `granted_are_known`, a
    department that holds a grant counts as known even once the marketplace has deleted it: a
    role in effect can always be taken back."""
    dialect = _dialect(session)
    known_members = {
        row[0]
        for row in await _rows(
            session,
            select(_MEMBERS.c.user_name).where(
                _in_scope(_MEMBERS, wanted.scope), one_of(_MEMBERS.c.user_name, wanted.members, dialect=dialect)
            ),
        )
    }
    known_departments = {
        row[0]
        for row in await _rows(
            session,
            select(_DEPARTMENTS.c.org_code).where(
                _in_scope(_DEPARTMENTS, wanted.scope),
                one_of(_DEPARTMENTS.c.org_code, wanted.departments, dialect=dialect),
            ),
        )
    }
    members = [name for name in wanted.members if name not in known_members]
    departments = [code for code in wanted.departments if code not in known_departments]
    if granted_are_known and departments:  # only for the few the directory no longer has
        granted = {
            row[0]
            for row in await _rows(
                session,
                select(_GRANTS.c.subject_code).where(
                    _in_scope(_GRANTS, wanted.scope),
                    _GRANTS.c.subject_kind == GrantSubject.DEPARTMENT.value,
                    one_of(_GRANTS.c.subject_code, departments, dialect=dialect),
                ),
            )
        }
        departments = [code for code in departments if code not in granted]
    if members or departments:
        raise UnknownSubjectsError(members, departments)


def _subject_grants(wanted: _Request, dialect: str) -> ColumnElement[bool]:
    grants = _GRANTS
    return and_(
        _in_scope(grants, wanted.scope),
        grants.c.role.in_(wanted.roles),
        or_(
            and_(
                grants.c.subject_kind == GrantSubject.MEMBER.value,
                one_of(grants.c.subject_code, wanted.members, dialect=dialect),
            ),
            and_(
                grants.c.subject_kind == GrantSubject.DEPARTMENT.value,
                one_of(grants.c.subject_code, wanted.departments, dialect=dialect),
            ),
        ),
    )


def _subtree(scope: TenantScope, roots: Sequence[str], dialect: str) -> Select[Any]:
    """The orgCodes of `roots` and of every department below them."""
    departments, below = _DEPARTMENTS.alias("root"), _DEPARTMENTS.alias("child")
    seed = select(departments.c.org_code.label("code")).where(
        _in_scope(departments, scope), one_of(departments.c.org_code, roots, dialect=dialect)
    )
    tree = seed.cte("subtree", recursive=True)
    tree = tree.union(
        select(below.c.org_code)
        .select_from(tree.join(below, below.c.parent_code == tree.c.code))
        .where(_in_scope(below, scope))
    )
    return select(tree.c.code)


def _candidates(wanted: _Request, deep_roots: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """The members whose effective roles the change may touch (a predicate on directory_members)."""
    members = _MEMBERS
    clauses = [
        one_of(members.c.user_name, wanted.members, dialect=dialect),
        one_of(members.c.org_code, wanted.departments, dialect=dialect),
    ]
    if deep_roots:
        clauses.append(members.c.org_code.in_(_subtree(wanted.scope, deep_roots, dialect)))
    return or_(*clauses)


async def _marketplace_roles(session: AsyncSession, scope: TenantScope) -> dict[MemberRole, frozenset[str]]:
    """Who holds each marketplace role through a live, enabled authorization: one pass over the tenant.

    One pass costs the same whatever the planner believes; a lookup per member may not:
    without statistics (a tenant loaded a moment ago) it can pick the unique key, whose appId
    comes before userName, and scan the whole tenant for each member. The names come back
    aggregated, one row per role (an array, or a JSON list on SQLite).
    """
    auth = _AUTHORIZATIONS
    postgresql = _dialect(session) == "postgresql"
    names = func.array_agg(auth.c.user_name) if postgresql else func.json_group_array(auth.c.user_name)
    query = (
        select(cast(auth.c.role, String(8)), names)
        .where(_in_scope(auth, scope), auth.c.revoked_at.is_(None), auth.c.enabled.is_(True))
        .group_by(auth.c.role)
    )
    return {
        MemberRole(role): frozenset(listed if postgresql else json.loads(listed))
        for role, listed in await _rows(session, query)
    }


async def _effective_roles(
    session: AsyncSession,
    scope: TenantScope,
    catalog: RoleCatalog,
    where: ColumnElement[bool],
    marketplace_roles: Mapping[MemberRole, frozenset[str]],
) -> dict[str, tuple[str, ...]]:
    """Effective roles of the members of `scope` matching `where` that have any: two statements."""
    members = _MEMBERS
    query = select(members.c.user_name, members.c.org_code).where(
        _in_scope(members, scope), members.c.removed.is_(False), where
    )
    found = [
        (user_name, org_code, {role for role, holders in marketplace_roles.items() if user_name in holders})
        for user_name, org_code in await _rows(session, query)
    ]
    return await _roles_of(session, scope, catalog, found)


async def _roles_of(
    session: AsyncSession,
    scope: TenantScope,
    catalog: RoleCatalog,
    members: Iterable[tuple[str, str, set[MemberRole]]],
) -> dict[str, tuple[str, ...]]:
    """Effective roles of `members` (userName, orgCode, marketplace roles held) that have any: one
    statement reads every grant that applies to them."""
    found = {user_name: (org_code, held) for user_name, org_code, held in members if held}
    if not found:
        return {}
    by_member: dict[str, set[str]] = defaultdict(set)
    by_department: dict[str, set[str]] = defaultdict(set)
    applicable = await _applicable_grants(
        session, scope, user_names=sorted(found), org_codes=sorted({org_code for org_code, _ in found.values()})
    )
    for row in applicable:
        (by_member if row.via == "member" else by_department)[row.applies_to].add(row.role)
    return {
        user_name: tuple(_effective(catalog, roles, by_member[user_name] | by_department[org_code]))
        for user_name, (org_code, roles) in found.items()
    }


async def _write_grants(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT .. ON CONFLICT DO UPDATE the grants: few statements for thousands of rows."""
    if not rows:
        return
    connection = await connection_of(session)
    keys = ["product", "tenant_id", "is_test", "subject_kind", "subject_code", "role"]
    changed = ("include_sub_departments", "granted_by", "updated_at")
    if connection.dialect.name != "postgresql":
        lite_insert = sqlite_insert(_GRANTS)
        lite_statement = lite_insert.on_conflict_do_update(
            index_elements=keys, set_={name: lite_insert.excluded[name] for name in changed}
        )
        for start in range(0, len(rows), directory.CHUNK):
            await connection.execute(lite_statement, list(rows[start : start + directory.CHUNK]))
        return
    columns = list(rows[0])
    record = func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON)).table_valued(
        *(_record_column(name) for name in columns)
    )
    derived = record.render_derived(name="incoming", with_types=True)
    pg_insert = postgresql_insert(_GRANTS).from_select(columns, select(*(derived.c[name] for name in columns)))
    statement = pg_insert.on_conflict_do_update(
        index_elements=keys, set_={name: pg_insert.excluded[name] for name in changed}
    )
    for start in range(0, len(rows), directory.JSON_BATCH):
        chunk = rows[start : start + directory.JSON_BATCH]
        await connection.execute(statement, {"rows": json.dumps(chunk, default=_json_value)})


def _record_column(name: str) -> Any:
    """The column as json_to_recordset reads it (the enum column is plain text)."""
    return sa_column(name, String(16) if name == "subject_kind" else _GRANTS.c[name].type)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def changed_roles_events(
    *, cause: str, before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """The `data` of the `member_roles.changed` events telling whose effective roles differ between
    `before` and `after` (userName to roles; absent: none), by userName, `EVENT_CHUNK` members an event."""
    changed = sorted(
        name for name in before.keys() | after.keys() if tuple(before.get(name, ())) != tuple(after.get(name, ()))
    )
    return [
        {
            "cause": cause,
            "members": [
                {"user_name": name, "roles": list(after.get(name, ()))} for name in changed[start : start + EVENT_CHUNK]
            ],
        }
        for start in range(0, len(changed), EVENT_CHUNK)
    ]


async def _announce(
    session: AsyncSession,
    *,
    scope: TenantScope,
    action: str,
    before: Mapping[str, tuple[str, ...]],
    after: Mapping[str, tuple[str, ...]],
    now: datetime,
) -> list[str]:
    """Outbox events (`member_roles.changed`) for the members whose effective roles differ."""
    changed: list[str] = []
    for data in changed_roles_events(cause=action, before=before, after=after):
        changed += [member["user_name"] for member in data["members"]]
        await jobs.create_job(
            session,
            product=scope.product,
            kind=DIRECTORY_EVENT_JOB_KIND,
            payload={
                "type": MEMBER_ROLES_CHANGED,
                "tenant_id": scope.tenant_id,
                "is_test": scope.is_test,
                "data": data,
            },
            now=now,
            sequence_key=directory_sequence_key(scope),
        )
    return changed


async def _audit(
    session: AsyncSession, *, caller: Caller, action: str, wanted: _Request, detail: dict[str, Any], now: datetime
) -> None:
    await create_audit_entry(
        session,
        caller=caller,
        action=action,
        product=wanted.scope.product,
        tenant_id=wanted.scope.tenant_id,
        target=f"tenant:{wanted.scope.tenant_id}{':test' if wanted.scope.is_test else ''}",
        is_test=wanted.scope.is_test,
        detail={
            "is_test": wanted.scope.is_test,
            "roles": wanted.roles,
            "members": wanted.members,
            "departments": wanted.departments,
            **detail,
        },
        now=now,
    )


async def grant_member_roles(
    session: AsyncSession,
    *,
    caller: Caller,
    scope: TenantScope,
    catalog: RoleCatalog,
    roles: Sequence[str],
    members: Sequence[str] = (),
    departments: Sequence[str] = (),
    include_sub_departments: bool = False,
    now: datetime,
) -> RolesChange:
    """Give `roles` to members (userNames) and departments (orgCodes) of a tenant. Idempotent.

    Granting again what is granted changes nothing (a department grant's
    `include_sub_departments` is set to the value given). Raises, with nothing changed:
    `AccessDeniedError` (the caller may not write), `TenantNotFoundError` (out of reach or not
    bound), `UnknownRolesError`, `TooManySubjectsError`, `UnknownSubjectsError`. The audit log
    records the action and an outbox event lists whose effective roles changed.
    """
    _require_change(caller, scope)
    wanted = _request(catalog, scope, roles, members, departments)
    await _lock(session, scope)
    await _check_subjects(session, wanted)
    dialect = _dialect(session)
    existing = {
        (row.subject_kind, row.subject_code, row.role): bool(row.include_sub_departments)
        for row in await _rows(
            session,
            select(
                _GRANTS.c.subject_kind, _GRANTS.c.subject_code, _GRANTS.c.role, _GRANTS.c.include_sub_departments
            ).where(_subject_grants(wanted, dialect)),
        )
    }
    rows: list[dict[str, Any]] = []
    deep_roots: set[str] = set()
    for kind, codes, deep in (
        (GrantSubject.MEMBER, wanted.members, False),
        (GrantSubject.DEPARTMENT, wanted.departments, include_sub_departments),
    ):
        for code in codes:
            for role in wanted.roles:
                stored = existing.get((kind.value, code, role))
                if stored is not None and stored == deep:
                    continue
                if kind is GrantSubject.DEPARTMENT and (deep or stored):
                    deep_roots.add(code)
                rows.append(
                    {
                        "product": scope.product,
                        "tenant_id": scope.tenant_id,
                        "is_test": scope.is_test,
                        "subject_kind": kind.value,
                        "subject_code": code,
                        "role": role,
                        "include_sub_departments": deep,
                        "granted_by": caller.actor[:128],
                        "created_at": now,
                        "updated_at": now,
                    }
                )
    affected: list[str] = []
    if rows:
        touched = _Request(
            scope,
            wanted.roles,
            sorted({row["subject_code"] for row in rows if row["subject_kind"] == GrantSubject.MEMBER.value}),
            sorted({row["subject_code"] for row in rows if row["subject_kind"] == GrantSubject.DEPARTMENT.value}),
        )
        where = _candidates(touched, sorted(deep_roots), dialect)
        held = await _marketplace_roles(session, scope)
        before = await _effective_roles(session, scope, catalog, where, held)
        await _write_grants(session, rows)
        after = await _effective_roles(session, scope, catalog, where, held)
        affected = await _announce(session, scope=scope, action="memberRolesGrant", before=before, after=after, now=now)
    detail = {
        "include_sub_departments": include_sub_departments,
        "changed_grants": len(rows),
        "affected_members": len(affected),
    }
    await _audit(session, caller=caller, action="memberRolesGrant", wanted=wanted, detail=detail, now=now)
    return RolesChange(changed_grants=len(rows), affected_members=affected)


async def revoke_member_roles(
    session: AsyncSession,
    *,
    caller: Caller,
    scope: TenantScope,
    catalog: RoleCatalog,
    roles: Sequence[str],
    members: Sequence[str] = (),
    departments: Sequence[str] = (),
    now: datetime,
) -> RolesChange:
    """Take `roles` back from members and departments of a tenant: delete those grants. Idempotent.

    Only grants go: a role a member holds by default (their marketplace role) or through
    another grant stays. Raises as `grant_member_roles`, with nothing changed; roles the
    product no longer declares may be revoked.
    """
    _require_change(caller, scope)
    wanted = _request(None, scope, roles, members, departments)
    await _lock(session, scope)
    await _check_subjects(session, wanted, granted_are_known=True)
    dialect = _dialect(session)
    existing = [
        (row.subject_kind, row.subject_code, bool(row.include_sub_departments))
        for row in await _rows(
            session,
            select(_GRANTS.c.subject_kind, _GRANTS.c.subject_code, _GRANTS.c.include_sub_departments).where(
                _subject_grants(wanted, dialect)
            ),
        )
    ]
    affected: list[str] = []
    if existing:
        touched = _Request(
            scope,
            wanted.roles,
            sorted({code for kind, code, _ in existing if kind == GrantSubject.MEMBER.value}),
            sorted({code for kind, code, _ in existing if kind == GrantSubject.DEPARTMENT.value}),
        )
        deep_roots = sorted({code for kind, code, deep in existing if kind == GrantSubject.DEPARTMENT.value and deep})
        where = _candidates(touched, deep_roots, dialect)
        held = await _marketplace_roles(session, scope)
        before = await _effective_roles(session, scope, catalog, where, held)
        await session.exec(delete(MemberRoleGrant).where(_subject_grants(wanted, dialect)))
        after = await _effective_roles(session, scope, catalog, where, held)
        affected = await _announce(
            session, scope=scope, action="memberRolesRevoke", before=before, after=after, now=now
        )
    detail = {"changed_grants": len(existing), "affected_members": len(affected)}
    await _audit(session, caller=caller, action="memberRolesRevoke", wanted=wanted, detail=detail, now=now)
    return RolesChange(changed_grants=len(existing), affected_members=affected)


async def list_effective_roles(
    session: AsyncSession, *, scope: TenantScope, catalog: RoleCatalog, user_names: Sequence[str]
) -> dict[str, list[str]]:
    """Effective roles of the members of `scope` among `user_names` that have any, for the gateway,
    which tells adapters whose roles a Kit sync changed: no caller, no scope check.

    Two statements, whatever the size of the tenant: the members, each with the marketplace
    roles of their live, enabled authorizations (an index lookup per member), then every grant
    that applies to them. Nothing is read when the product declares no roles.
    """
    if not user_names or not catalog.roles:
        return {}
    members = _MEMBERS
    query = select(members.c.user_name, members.c.org_code, enabled_roles_of(members).label("enabled_roles")).where(
        _in_scope(members, scope),
        members.c.removed.is_(False),
        one_of(members.c.user_name, sorted(set(user_names)), dialect=_dialect(session)),
    )
    found = [(row.user_name, row.org_code, set(held_roles(row.enabled_roles))) for row in await _rows(session, query)]
    effective = await _roles_of(session, scope, catalog, found)
    return {name: list(roles) for name, roles in effective.items()}


async def delete_tenant_grants(session: AsyncSession, *, scope: TenantScope) -> int:
    """Forget every grant of a tenant (it is unbound: a later binding starts without them); how many.

    Called by the gateway in the transaction that unbinds the tenant: no caller, no audit.
    """
    result = await session.exec(delete(MemberRoleGrant).where(_in_scope(_GRANTS, scope)))
    return int(result.rowcount or 0)


__all__ = [
    "DIRECTORY_EVENT_JOB_KIND",
    "MAX_SUBJECTS",
    "MEMBER_ROLES_CHANGED",
    "AccessDeniedError",
    "Grant",
    "InvalidRoleCatalogError",
    "MemberRoles",
    "RoleCatalog",
    "RoleHolder",
    "RolesChange",
    "TenantNotFoundError",
    "TooManySubjectsError",
    "UnknownRolesError",
    "UnknownSubjectsError",
    "authorizations_of",
    "changed_roles_events",
    "covered_departments",
    "delete_tenant_grants",
    "directory_sequence_key",
    "enabled_roles_of",
    "grant_member_roles",
    "held_roles",
    "holds_role_clause",
    "list_department_grants",
    "list_effective_roles",
    "list_member_roles",
    "list_roles_of_members",
    "one_of",
    "revoke_member_roles",
]
