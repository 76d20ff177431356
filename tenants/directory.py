"""The buyer directories: tenants, app credentials, departments, members and authorizations.

Services take the session first and the scope explicitly: (product, tenant_id, is_test).
Writers compare what arrives with what is stored and write only the difference, in bulk
(one INSERT .. ON CONFLICT DO UPDATE executed over many rows), and return the difference so
the caller can tell the product about it. A sync that changes nothing writes nothing.

Writers of one tenant must run after `lock_tenant` in the same transaction: on PostgreSQL it
holds the tenant's row lock until commit, so concurrent syncs of one tenant apply one after
the other (SQLite has a single writer anyway).
"""

import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    Enum,
    Row,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    true,
    update,
)
from sqlalchemy import column as sa_column
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.database import connection_of
from tenants.directory_models import (
    AuthorizationAction,
    DirectoryApp,
    DirectoryAuthorization,
    DirectoryAuthorizationChange,
    DirectoryDepartment,
    DirectoryMember,
    DirectoryMemberCount,
    DirectoryTenant,
    MemberRole,
)
from tenants.secretbox import SecretBox

CHUNK = 1000
"""Rows per statement and ids per IN list: well inside both databases' parameter limits."""

_T = TypeVar("_T")


class _Scope(TypedDict):
    product: str
    tenant_id: str
    is_test: bool


class TenantChange(enum.StrEnum):
    BOUND = "bound"
    """The tenant was not bound before (new, or unbound earlier, or known only from other syncs)."""
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class TenantIdentity:
    tenant_code: str
    name: str
    domain_name: str
    instance_id: str
    order_id: str


@dataclass(frozen=True, slots=True)
class DepartmentRecord:
    org_code: str
    org_name: str
    parent_code: str = ""


@dataclass(frozen=True, slots=True)
class DepartmentChanges:
    upserted: list[DepartmentRecord] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserted or self.removed)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    user_name: str
    name: str
    org_code: str = ""
    position: str | None = None
    employee_code: str | None = None
    employee_type: int | None = None
    mobile: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    work_place: str | None = None
    entry_date: str | None = None
    extension: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MemberGrant:
    """A member as authSync (flag 1 or 2) sends them, with their authorization for the app."""

    member: MemberRecord
    role: MemberRole
    enabled: bool


@dataclass(frozen=True, slots=True)
class GrantChanges:
    authorized: list[MemberGrant] = field(default_factory=list)
    """Newly authorized, or authorized again after a revocation."""
    changed: list[MemberGrant] = field(default_factory=list)
    """Already authorized; their role, enabled flag or member data changed."""


@dataclass(frozen=True, slots=True)
class Revocation:
    user_name: str
    revoked: bool
    """The authorization for the app was live and is now revoked."""
    removed: bool
    """The member is now marked removed from the enterprise (authSync flag 0)."""


@dataclass(frozen=True, slots=True)
class TenantLogin:
    """What SSO needs to log a tenant's users in: the identity domain and the OAuth client."""

    tenant_id: str
    is_test: bool
    tenant_code: str | None
    domain_name: str
    app_id: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MemberListing:
    member: DirectoryMember
    org_name: str | None
    """None when the member's orgCode names no department (removed, or not arrived yet)."""


# -- helpers ---------------------------------------------------------------------------------


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _scoped(model: Any, *, product: str, tenant_id: str, is_test: bool) -> ColumnElement[bool]:
    return and_(col(model.product) == product, col(model.tenant_id) == tenant_id, col(model.is_test) == is_test)


async def _rows(session: AsyncSession, query: Select[*tuple[Any, ...]]) -> Sequence[Row[*tuple[Any, ...]]]:
    """Run a plain (Core) select in the session's transaction."""
    connection = await connection_of(session)
    return (await connection.execute(query)).all()


async def _upsert(
    session: AsyncSession,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    keep: Sequence[str] = ("id", "created_at"),
) -> None:
    """INSERT .. ON CONFLICT (keys) DO UPDATE every other column but `keep`, over many rows."""
    await _bulk_insert(session, model, rows, conflict=(keys, keep))


async def _insert(session: AsyncSession, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    """A plain INSERT of many rows."""
    await _bulk_insert(session, model, rows, conflict=None)


async def _bulk_insert(
    session: AsyncSession,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: tuple[Sequence[str], Sequence[str]] | None,
) -> None:
    """Write many rows (all with the same keys) in a few statements.

    SQLite: one prepared statement executed over all rows (`executemany`, a loop in C).
    PostgreSQL: `INSERT .. SELECT .. FROM json_to_recordset(:rows)`, the rows as one JSON
    parameter, so a batch of `JSON_BATCH` rows is one constant (prepared) statement. There,
    executemany costs one statement per row, and a multi-row VALUES list is slow for the
    driver to parse.
    """
    if not rows:
        return
    table = _table(model)
    connection = await connection_of(session)
    columns = list(rows[0])
    if connection.dialect.name != "postgresql":
        insert = sqlite_insert(table)
        statement = insert if conflict is None else _on_conflict(insert, columns, conflict)
        for chunk in _chunks(rows):
            await connection.execute(statement, list(chunk))
        return
    record = func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON)).table_valued(
        *(sa_column(name, _record_type(table.c[name])) for name in columns)
    )
    derived = record.render_derived(name="incoming", with_types=True)
    source = sa_select(*(derived.c[name] for name in columns))
    pg_insert = postgresql_insert(table).from_select(columns, source)
    statement = pg_insert if conflict is None else _on_conflict(pg_insert, columns, conflict)
    for chunk in _chunks(rows, JSON_BATCH):
        await connection.execute(statement, {"rows": json.dumps(chunk, default=_json_value, ensure_ascii=False)})


JSON_BATCH = 10_000


def _record_type(column: Any) -> Any:
    """The column's type as json_to_recordset reads it (the enum columns are plain text)."""
    return String(column.type.length) if isinstance(column.type, Enum) else column.type


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _on_conflict(insert: Any, columns: Sequence[str], conflict: tuple[Sequence[str], Sequence[str]]) -> Any:
    keys, keep = conflict
    updated = {name: insert.excluded[name] for name in columns if name not in (*keys, *keep)}
    return insert.on_conflict_do_update(index_elements=list(keys), set_=updated)


async def _count_members(session: AsyncSession, scope: _Scope, *, added: int) -> None:
    """Move the tenant's count of members still in the enterprise by `added` (negative: removed).

    The callers compare what they write with what is stored, under the tenant's lock, so the
    count moves exactly as the rows do.
    """
    if not added:
        return
    table = _table(DirectoryMemberCount)
    connection = await connection_of(session)
    insert = (postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert)(table)
    statement = insert.values(**scope, present=added).on_conflict_do_update(
        index_elements=["product", "tenant_id", "is_test"], set_={"present": table.c.present + insert.excluded.present}
    )
    await connection.execute(statement)


def client_secret_purpose(*, product: str, tenant_id: str, is_test: bool, app_id: str) -> str:
    """The SecretBox purpose of one client secret: a seal cannot be moved to another row."""
    return "kit-client-secret:" + json.dumps([product, tenant_id, is_test, app_id])


# -- tenants ---------------------------------------------------------------------------------


async def lock_tenant(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, now: datetime
) -> DirectoryTenant:
    """The tenant's row, created (unbound) if missing, locked until the transaction ends."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    table = _table(DirectoryTenant)
    insert = postgresql_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    values = {
        "product": product,
        "tenant_id": tenant_id,
        "is_test": is_test,
        "instance_id": "",
        "order_id": "",
        "deleted": False,
        "created_at": now,
        "updated_at": now,
    }
    await session.exec(insert.values(**values).on_conflict_do_nothing())
    query = (
        select(DirectoryTenant)
        .where(_scoped(DirectoryTenant, product=product, tenant_id=tenant_id, is_test=is_test))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.exec(query)).one()


async def lock_existing_tenant(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool
) -> DirectoryTenant | None:
    """The tenant's row locked until the transaction ends, or None (nothing is created)."""
    query = (
        select(DirectoryTenant)
        .where(_scoped(DirectoryTenant, product=product, tenant_id=tenant_id, is_test=is_test))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.exec(query)).first()


async def get_tenant(session: AsyncSession, *, product: str, tenant_id: str, is_test: bool) -> DirectoryTenant | None:
    query = select(DirectoryTenant).where(
        _scoped(DirectoryTenant, product=product, tenant_id=tenant_id, is_test=is_test)
    )
    return (await session.exec(query)).first()


def is_bound(tenant: DirectoryTenant) -> bool:
    return not tenant.deleted and tenant.tenant_code is not None


async def bind_tenant(
    session: AsyncSession,
    *,
    tenant: DirectoryTenant,
    identity: TenantIdentity,
    keep_tenant_code: bool,
    now: datetime,
) -> TenantChange:
    """Store a locked tenant's identity (tenantSync flag 1, or 2 with `keep_tenant_code`).

    A modification changes only the name, the domain and, when sent, the instance and order;
    the tenant code stays as first bound.
    """
    was_bound = is_bound(tenant)
    before = (tenant.tenant_code, tenant.name, tenant.domain_name, tenant.instance_id, tenant.order_id)
    if not (keep_tenant_code and was_bound):
        tenant.tenant_code = identity.tenant_code
    tenant.name = identity.name
    tenant.domain_name = identity.domain_name
    if identity.instance_id or not was_bound:
        tenant.instance_id = identity.instance_id
    if identity.order_id or not was_bound:
        tenant.order_id = identity.order_id
    after = (tenant.tenant_code, tenant.name, tenant.domain_name, tenant.instance_id, tenant.order_id)
    if was_bound and before == after:
        return TenantChange.UNCHANGED
    tenant.deleted, tenant.deleted_at, tenant.updated_at = False, None, now
    session.add(tenant)
    await session.flush()
    return TenantChange.CHANGED if was_bound else TenantChange.BOUND


async def unbind_tenant(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    cause: str,
    request_id: str | None,
    now: datetime,
) -> bool:
    """Remove everything this product knows of the tenant (tenantSync flag 0); False if nothing was bound.

    Live authorizations are written to the history as revoked first; the history and the
    tenant's row (marked deleted) stay. Other products' copies of the tenant are untouched.
    """
    tenant = await lock_existing_tenant(session, product=product, tenant_id=tenant_id, is_test=is_test)
    if tenant is None or tenant.deleted:
        return False
    scope: _Scope = {"product": product, "tenant_id": tenant_id, "is_test": is_test}
    authorizations = _table(DirectoryAuthorization)
    live = sa_select(
        authorizations.c.product,
        authorizations.c.tenant_id,
        authorizations.c.is_test,
        authorizations.c.app_id,
        authorizations.c.user_name,
        literal(AuthorizationAction.REVOKED.value, type_=String(8)),
        authorizations.c.role,
        authorizations.c.enabled,
        literal(cause, type_=String(32)),
        literal(request_id, type_=String(64)),
        literal(now, type_=authorizations.c.updated_at.type),
    ).where(_scoped(DirectoryAuthorization, **scope), col(DirectoryAuthorization.revoked_at).is_(None))
    history_columns = [
        "product",
        "tenant_id",
        "is_test",
        "app_id",
        "user_name",
        "action",
        "role",
        "enabled",
        "cause",
        "request_id",
        "created_at",
    ]
    await session.exec(_table(DirectoryAuthorizationChange).insert().from_select(history_columns, live))
    for model in (DirectoryAuthorization, DirectoryMember, DirectoryMemberCount, DirectoryDepartment, DirectoryApp):
        await session.exec(delete(model).where(_scoped(model, **scope)))
    tenant.deleted, tenant.deleted_at, tenant.updated_at = True, now, now
    session.add(tenant)
    await session.flush()
    return True


# -- app credentials ---------------------------------------------------------------------------


async def upsert_app_credentials(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    app_id: str,
    client_id: str,
    client_secret: str,
    oaep_variant: str,
    secret_box: SecretBox,
    now: datetime,
) -> bool:
    """Store an app's OAuth client (the secret sealed); False if it was stored already as is."""
    scope = _scoped(DirectoryApp, product=product, tenant_id=tenant_id, is_test=is_test)
    existing = (await session.exec(select(DirectoryApp).where(scope, DirectoryApp.app_id == app_id))).first()
    purpose = client_secret_purpose(product=product, tenant_id=tenant_id, is_test=is_test, app_id=app_id)
    if (
        existing is not None
        and (existing.client_id, existing.oaep_variant) == (client_id, oaep_variant)
        and secret_box.open(existing.client_secret_sealed, purpose=purpose) == client_secret
    ):
        return False
    row = {
        "product": product,
        "tenant_id": tenant_id,
        "is_test": is_test,
        "app_id": app_id,
        "client_id": client_id,
        "client_secret_sealed": secret_box.seal(client_secret, purpose=purpose),
        "oaep_variant": oaep_variant,
        "created_at": now,
        "updated_at": now,
    }
    await _upsert(session, DirectoryApp, [row], keys=("product", "tenant_id", "is_test", "app_id"))
    return True


async def delete_app_credentials(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, app_id: str
) -> bool:
    """Forget an app's OAuth client (applicationSync flag 0); False if there was none."""
    scope = _scoped(DirectoryApp, product=product, tenant_id=tenant_id, is_test=is_test)
    result = await session.exec(delete(DirectoryApp).where(scope, col(DirectoryApp.app_id) == app_id))
    return bool(result.rowcount)


async def get_tenant_login(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    secret_box: SecretBox,
    app_id: str | None = None,
) -> TenantLogin | None:
    """The identity domain and OAuth client of a bound tenant, secret opened; None if not usable.

    Without `app_id`, the app whose credentials arrived last.
    """
    tenant = await get_tenant(session, product=product, tenant_id=tenant_id, is_test=is_test)
    if tenant is None or not is_bound(tenant) or not tenant.domain_name:
        return None
    query = select(DirectoryApp).where(_scoped(DirectoryApp, product=product, tenant_id=tenant_id, is_test=is_test))
    if app_id is not None:
        query = query.where(DirectoryApp.app_id == app_id)
    app = (await session.exec(query.order_by(col(DirectoryApp.updated_at).desc(), col(DirectoryApp.id).desc()))).first()
    if app is None:
        return None
    purpose = client_secret_purpose(product=product, tenant_id=tenant_id, is_test=is_test, app_id=app.app_id)
    return TenantLogin(
        tenant_id=tenant_id,
        is_test=is_test,
        tenant_code=tenant.tenant_code,
        domain_name=tenant.domain_name,
        app_id=app.app_id,
        client_id=app.client_id,
        client_secret=secret_box.open(app.client_secret_sealed, purpose=purpose),
    )


# -- departments -------------------------------------------------------------------------------


def _department_row(
    department: DepartmentRecord, *, product: str, tenant_id: str, is_test: bool, now: datetime
) -> dict[str, Any]:
    return {
        "product": product,
        "tenant_id": tenant_id,
        "is_test": is_test,
        "org_code": department.org_code,
        "org_name": department.org_name,
        "parent_code": department.parent_code,
        "created_at": now,
        "updated_at": now,
    }


_DEPARTMENT_KEYS = ("product", "tenant_id", "is_test", "org_code")


async def _stored_departments(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, org_codes: Sequence[str] | None
) -> dict[str, tuple[str, str, int]]:
    """orgCode → (orgName, parentCode, id), of all the tenant's departments or of `org_codes`."""
    scope = _scoped(DirectoryDepartment, product=product, tenant_id=tenant_id, is_test=is_test)
    columns = (
        col(DirectoryDepartment.org_code),
        col(DirectoryDepartment.org_name),
        col(DirectoryDepartment.parent_code),
        col(DirectoryDepartment.id),
    )
    stored: dict[str, tuple[str, str, int]] = {}
    batches: Sequence[Sequence[str] | None] = list(_chunks(org_codes)) if org_codes is not None else [None]
    for batch in batches:
        query = select(*columns).where(scope)
        if batch is not None:
            query = query.where(col(DirectoryDepartment.org_code).in_(batch))
        for code, name, parent, row_id in (await session.exec(query)).all():
            assert row_id is not None
            stored[code] = (name, parent, row_id)
    return stored


def _department_differs(department: DepartmentRecord, stored: Mapping[str, tuple[str, str, int]]) -> bool:
    current = stored.get(department.org_code)
    return current is None or current[:2] != (department.org_name, department.parent_code)


async def upsert_departments(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    departments: Sequence[DepartmentRecord],
    now: datetime,
) -> DepartmentChanges:
    """Add or change departments (singleOrgSync flag 1/2); returns those that differed."""
    scope: _Scope = {"product": product, "tenant_id": tenant_id, "is_test": is_test}
    stored = await _stored_departments(session, **scope, org_codes=[item.org_code for item in departments])
    changed = [item for item in departments if _department_differs(item, stored)]
    await _upsert(
        session,
        DirectoryDepartment,
        [_department_row(item, **scope, now=now) for item in changed],
        keys=_DEPARTMENT_KEYS,
    )
    return DepartmentChanges(upserted=changed)


async def delete_departments(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, org_codes: Sequence[str]
) -> DepartmentChanges:
    """Remove departments (singleOrgSync flag 0). Their members and sub-departments stay,
    pointing at a code that no longer exists."""
    scope: _Scope = {"product": product, "tenant_id": tenant_id, "is_test": is_test}
    stored = await _stored_departments(session, **scope, org_codes=org_codes)
    await _delete_ids(session, DirectoryDepartment, [row_id for _, _, row_id in stored.values()])
    return DepartmentChanges(removed=[code for code in org_codes if code in stored])


async def replace_departments(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    departments: Sequence[DepartmentRecord],
    now: datetime,
) -> DepartmentChanges:
    """Make the tenant's departments exactly `departments` (allOrgSync, a full snapshot)."""
    scope: _Scope = {"product": product, "tenant_id": tenant_id, "is_test": is_test}
    stored = await _stored_departments(session, **scope, org_codes=None)
    wanted = {item.org_code for item in departments}
    removed = [code for code in stored if code not in wanted]
    changed = [item for item in departments if _department_differs(item, stored)]
    await _delete_ids(session, DirectoryDepartment, [stored[code][2] for code in removed])
    await _upsert(
        session,
        DirectoryDepartment,
        [_department_row(item, **scope, now=now) for item in changed],
        keys=_DEPARTMENT_KEYS,
    )
    return DepartmentChanges(upserted=changed, removed=removed)


async def _delete_ids(session: AsyncSession, model: Any, ids: Sequence[int]) -> None:
    for chunk in _chunks(ids):
        await session.exec(delete(model).where(col(model.id).in_(chunk)))


async def list_departments(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool
) -> list[DirectoryDepartment]:
    query = (
        select(DirectoryDepartment)
        .where(_scoped(DirectoryDepartment, product=product, tenant_id=tenant_id, is_test=is_test))
        .order_by(col(DirectoryDepartment.org_code))
    )
    return list((await session.exec(query)).all())


def _subtree_codes(*, product: str, tenant_id: str, is_test: bool, org_code: str) -> Any:
    """A recursive CTE of `org_code` and every department below it (UNION: cycles end)."""
    departments = _table(DirectoryDepartment)
    root = select(literal(org_code, type_=departments.c.org_code.type).label("org_code")).cte("subtree", recursive=True)
    child = departments.alias("child")
    below = select(child.c.org_code).where(
        child.c.product == product,
        child.c.tenant_id == tenant_id,
        child.c.is_test == is_test,
        child.c.parent_code == root.c.org_code,
    )
    return root.union(below)


async def list_department_codes_under(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, org_code: str
) -> list[str]:
    """`org_code` and the codes of all departments below it, at any depth."""
    subtree = _subtree_codes(product=product, tenant_id=tenant_id, is_test=is_test, org_code=org_code)
    return sorted((await session.exec(select(subtree.c.org_code))).all())


# -- members and authorizations ------------------------------------------------------------------


def _member_values(member: MemberRecord) -> tuple[Any, ...]:
    extension = dict(member.extension) if member.extension is not None else None
    return (
        member.name,
        member.org_code,
        member.position,
        member.employee_code,
        member.employee_type,
        member.mobile,
        member.email,
        member.work_place,
        member.entry_date,
        extension,
        False,
    )


_MEMBER_COLUMNS = (
    "name",
    "org_code",
    "position",
    "employee_code",
    "employee_type",
    "mobile",
    "email",
    "work_place",
    "entry_date",
    "extension",
    "removed",
)


async def _stored_members(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, user_names: Sequence[str]
) -> dict[str, tuple[Any, ...]]:
    columns = [col(DirectoryMember.user_name), *(col(getattr(DirectoryMember, name)) for name in _MEMBER_COLUMNS)]
    where = _scoped(DirectoryMember, product=product, tenant_id=tenant_id, is_test=is_test)
    rows = await _rows_by_key(
        session, columns=columns, where=where, key=col(DirectoryMember.user_name), values=user_names
    )
    return {row[0]: tuple(row[1:]) for row in rows}


async def _rows_by_key(
    session: AsyncSession, *, columns: Sequence[Any], where: ColumnElement[bool], key: Any, values: Sequence[str]
) -> list[Row[*tuple[Any, ...]]]:
    """The rows matching `where` whose `key` is one of `values`.

    PostgreSQL: one index probe per value (`unnest` + `LATERAL .. LIMIT 1`), whatever the
    statistics say. A plain `key IN (...)` (or a join) is planned as a scan of the tenant's rows,
    each compared with every value, whenever the table has no statistics yet (a tenant loaded a
    moment ago): a hundred times slower.
    """
    if not values:
        return []
    connection = await connection_of(session)
    if connection.dialect.name != "postgresql":
        found: list[Row[*tuple[Any, ...]]] = []
        for batch in _chunks(values):
            found.extend(await _rows(session, sa_select(*columns).where(where, key.in_(batch))))
        return found
    wanted = (
        func.unnest(bindparam("keys", list(values), type_=ARRAY(String())))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    # LIMIT 1 (the key is unique) keeps the planner from flattening the probe into a join, which
    # without statistics it would run as a nested loop comparing every row with every value.
    probe = sa_select(*columns).where(where, key == wanted.c.value).limit(1).lateral("found")
    return list(await _rows(session, sa_select(*probe.c).select_from(wanted).join(probe, true())))


@dataclass(frozen=True, slots=True)
class _StoredAuthorization:
    role: MemberRole
    enabled: bool
    granted_at: datetime
    revoked_at: datetime | None


async def _stored_authorizations(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, app_id: str, user_names: Sequence[str]
) -> dict[str, _StoredAuthorization]:
    columns = (
        col(DirectoryAuthorization.user_name),
        col(DirectoryAuthorization.role),
        col(DirectoryAuthorization.enabled),
        col(DirectoryAuthorization.granted_at),
        col(DirectoryAuthorization.revoked_at),
    )
    where = and_(
        _scoped(DirectoryAuthorization, product=product, tenant_id=tenant_id, is_test=is_test),
        col(DirectoryAuthorization.app_id) == app_id,
    )
    rows = await _rows_by_key(
        session, columns=columns, where=where, key=col(DirectoryAuthorization.user_name), values=user_names
    )
    return {
        user_name: _StoredAuthorization(MemberRole(role), enabled, granted_at, revoked_at)
        for user_name, role, enabled, granted_at, revoked_at in rows
    }


async def grant_members(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    app_id: str,
    grants: Sequence[MemberGrant],
    cause: str,
    request_id: str | None,
    now: datetime,
) -> GrantChanges:
    """Store members and authorize them for `app_id` (authSync flag 1 or 2).

    Each userName must appear once in `grants`. Members are created or updated; their
    authorization is created, renewed after a revocation, or changed; the history gets one
    line per authorization that changed. Repeating a call changes nothing.
    """
    scope: _Scope = {"product": product, "tenant_id": tenant_id, "is_test": is_test}
    user_names = [grant.member.user_name for grant in grants]
    members = await _stored_members(session, **scope, user_names=user_names)
    authorizations = await _stored_authorizations(session, **scope, app_id=app_id, user_names=user_names)
    member_rows: list[dict[str, Any]] = []
    authorization_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    changes = GrantChanges()
    added = 0
    for grant in grants:
        member = grant.member
        values = _member_values(member)
        stored_member = members.get(member.user_name)
        member_changed = stored_member != values
        if stored_member is None or stored_member[-1]:
            added += 1  # new, or back after a removal: the row is written with removed false
        if member_changed:
            member_rows.append(
                {
                    **scope,
                    "user_name": member.user_name,
                    **dict(zip(_MEMBER_COLUMNS, values, strict=True)),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        stored = authorizations.get(member.user_name)
        action: AuthorizationAction | None = None
        if stored is None or stored.revoked_at is not None:
            action = AuthorizationAction.GRANTED
        elif (stored.role, stored.enabled) != (grant.role, grant.enabled):
            action = AuthorizationAction.CHANGED
        if action is not None:
            granted_at = now if action is AuthorizationAction.GRANTED or stored is None else stored.granted_at
            authorization_rows.append(
                {
                    **scope,
                    "app_id": app_id,
                    "user_name": member.user_name,
                    "role": grant.role.value,
                    "enabled": grant.enabled,
                    "granted_at": granted_at,
                    "revoked_at": None,
                    "updated_at": now,
                }
            )
            history_rows.append(
                {
                    **scope,
                    "app_id": app_id,
                    "user_name": member.user_name,
                    "action": action.value,
                    "role": grant.role.value,
                    "enabled": grant.enabled,
                    "cause": cause,
                    "request_id": request_id,
                    "created_at": now,
                }
            )
        if action is AuthorizationAction.GRANTED:
            changes.authorized.append(grant)
        elif action is AuthorizationAction.CHANGED or member_changed:
            changes.changed.append(grant)
    await _upsert(session, DirectoryMember, member_rows, keys=("product", "tenant_id", "is_test", "user_name"))
    await _count_members(session, scope, added=added)
    await _upsert(
        session,
        DirectoryAuthorization,
        authorization_rows,
        keys=("product", "tenant_id", "is_test", "app_id", "user_name"),
    )
    await _insert(session, DirectoryAuthorizationChange, history_rows)
    return changes


async def revoke_members(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    app_id: str,
    user_names: Sequence[str],
    remove_members: bool,
    cause: str,
    request_id: str | None,
    now: datetime,
) -> list[Revocation]:
    """Revoke the members' authorization for `app_id` (authSync flag 3, or 0 with `remove_members`).

    Unknown or already revoked users are left as they are; returns only what changed.
    """
    scope: _Scope = {"product": product, "tenant_id": tenant_id, "is_test": is_test}
    stored = await _stored_authorizations(session, **scope, app_id=app_id, user_names=user_names)
    live = [name for name in dict.fromkeys(user_names) if name in stored and stored[name].revoked_at is None]
    for batch in _chunks(live):
        await session.exec(
            update(DirectoryAuthorization)
            .where(
                _scoped(DirectoryAuthorization, **scope),
                col(DirectoryAuthorization.app_id) == app_id,
                col(DirectoryAuthorization.user_name).in_(batch),
            )
            .values(revoked_at=now, updated_at=now)
        )
    await _insert(
        session,
        DirectoryAuthorizationChange,
        [
            {
                **scope,
                "app_id": app_id,
                "user_name": name,
                "action": AuthorizationAction.REVOKED.value,
                "role": stored[name].role.value,
                "enabled": stored[name].enabled,
                "cause": cause,
                "request_id": request_id,
                "created_at": now,
            }
            for name in live
        ],
    )
    removed: set[str] = set()
    if remove_members:
        members = await _stored_members(session, **scope, user_names=user_names)
        removed = {name for name, values in members.items() if not values[-1]}
        for batch in _chunks(sorted(removed)):
            await session.exec(
                update(DirectoryMember)
                .where(_scoped(DirectoryMember, **scope), col(DirectoryMember.user_name).in_(batch))
                .values(removed=True, updated_at=now)
            )
        await _count_members(session, scope, added=-len(removed))
    revoked = set(live)
    return [
        Revocation(name, name in revoked, name in removed)
        for name in dict.fromkeys(user_names)
        if name in revoked or name in removed
    ]


async def get_authorized_member(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, user_name: str, app_id: str | None = None
) -> tuple[DirectoryMember, DirectoryAuthorization] | None:
    """The member SSO may log in: tenant bound, member not removed, authorization live and enabled.

    Without `app_id`, any app of the product; an admin authorization is preferred.
    """
    tenant = await get_tenant(session, product=product, tenant_id=tenant_id, is_test=is_test)
    if tenant is None or not is_bound(tenant):
        return None
    query = (
        select(DirectoryMember, DirectoryAuthorization)
        .join(
            DirectoryAuthorization,
            and_(
                col(DirectoryAuthorization.product) == col(DirectoryMember.product),
                col(DirectoryAuthorization.tenant_id) == col(DirectoryMember.tenant_id),
                col(DirectoryAuthorization.is_test) == col(DirectoryMember.is_test),
                col(DirectoryAuthorization.user_name) == col(DirectoryMember.user_name),
            ),
        )
        .where(
            _scoped(DirectoryMember, product=product, tenant_id=tenant_id, is_test=is_test),
            col(DirectoryMember.user_name) == user_name,
            col(DirectoryMember.removed).is_(False),
            col(DirectoryAuthorization.revoked_at).is_(None),
            col(DirectoryAuthorization.enabled).is_(True),
        )
        .order_by(col(DirectoryAuthorization.role), col(DirectoryAuthorization.app_id))
    )
    if app_id is not None:
        query = query.where(col(DirectoryAuthorization.app_id) == app_id)
    found = (await session.exec(query)).first()
    return (found[0], found[1]) if found is not None else None


async def list_members(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    org_code: str | None = None,
    include_sub_departments: bool = True,
    search: str | None = None,
    include_removed: bool = False,
    after: str | None = None,
    limit: int = 100,
) -> list[MemberListing]:
    """One page of members ordered by userName (keyset: pass the last userName as `after`).

    `org_code` narrows to a department (and, by default, every department below it);
    `search` matches userName or name, case-insensitively, anywhere in the text.
    """
    departments = _table(DirectoryDepartment)
    query = (
        select(DirectoryMember, departments.c.org_name)
        .outerjoin(
            departments,
            and_(
                departments.c.product == col(DirectoryMember.product),
                departments.c.tenant_id == col(DirectoryMember.tenant_id),
                departments.c.is_test == col(DirectoryMember.is_test),
                departments.c.org_code == col(DirectoryMember.org_code),
            ),
        )
        .where(_scoped(DirectoryMember, product=product, tenant_id=tenant_id, is_test=is_test))
        .order_by(col(DirectoryMember.user_name))
        .limit(limit)
    )
    if not include_removed:
        query = query.where(col(DirectoryMember.removed).is_(False))
    if org_code is not None:
        if include_sub_departments:
            subtree = _subtree_codes(product=product, tenant_id=tenant_id, is_test=is_test, org_code=org_code)
            query = query.where(col(DirectoryMember.org_code).in_(select(subtree.c.org_code)))
        else:
            query = query.where(col(DirectoryMember.org_code) == org_code)
    if search:
        needle = search.lower()
        query = query.where(
            or_(
                func.lower(col(DirectoryMember.user_name)).contains(needle, autoescape=True),
                func.lower(col(DirectoryMember.name)).contains(needle, autoescape=True),
            )
        )
    if after is not None:
        query = query.where(col(DirectoryMember.user_name) > after)
    return [MemberListing(member, org_name) for member, org_name in (await session.exec(query)).all()]


async def list_authorizations(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, user_name: str | None = None
) -> list[DirectoryAuthorization]:
    query = select(DirectoryAuthorization).where(
        _scoped(DirectoryAuthorization, product=product, tenant_id=tenant_id, is_test=is_test)
    )
    if user_name is not None:
        query = query.where(col(DirectoryAuthorization.user_name) == user_name)
    order = (col(DirectoryAuthorization.user_name), col(DirectoryAuthorization.app_id))
    return list((await session.exec(query.order_by(*order))).all())


async def list_authorization_history(
    session: AsyncSession,
    *,
    product: str,
    tenant_id: str,
    is_test: bool,
    user_name: str | None = None,
    limit: int = 100,
) -> list[DirectoryAuthorizationChange]:
    """The newest changes first."""
    query = select(DirectoryAuthorizationChange).where(
        _scoped(DirectoryAuthorizationChange, product=product, tenant_id=tenant_id, is_test=is_test)
    )
    if user_name is not None:
        query = query.where(col(DirectoryAuthorizationChange.user_name) == user_name)
    return list((await session.exec(query.order_by(col(DirectoryAuthorizationChange.id).desc()).limit(limit))).all())
