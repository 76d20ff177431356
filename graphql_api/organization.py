"""Buyer organizations in the API: tenants, their department tree, members, grants and roles.

Nested fields go through the request's loaders (a page of members costs the same few
statements whatever its size); every read passes the caller to a `tenants` service, which
filters by it in SQL. Contact details (mobile, email) and the Kit's `extension` are not
exposed: granting roles does not need them.
"""

import asyncio
import enum
from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types.nodes import FragmentSpread, InlineFragment

from graphql_api._fields import field
from graphql_api.context import Context
from graphql_api.errors import bad_input
from graphql_api.pagination import encode_key_cursor, key_after
from graphql_api.types import Counter, InstanceNode, MarketplaceRoleValue, ProductRole
from tenants import organization, roles
from tenants.admin import TenantScope
from tenants.directory_models import DirectoryDepartment, DirectoryTenant, MemberRole
from tenants.organization import MemberPageRequest, MemberRow
from tenants.role_models import GrantSubject
from tenants.roles import Grant, MemberRoles, RoleCatalog

Info = strawberry.Info[Context, None]
MEMBER_CURSOR = "member"
PAGE_SIZE = 50


def _row_id(value: int | None) -> int:
    if value is None:
        raise ValueError("row without id")  # rows come from the database, never unsaved
    return value


@strawberry.enum(name="GrantSubject", description="What a role grant is given to.")
class GrantSubjectValue(enum.Enum):
    MEMBER = "member"
    DEPARTMENT = "department"


@strawberry.type(name="RoleGrant", description="A product role given to a member or a department.")
class RoleGrantType:
    role: str
    subject_kind: GrantSubjectValue
    subject: str = strawberry.field(description="The member's userName or the department's orgCode.")
    include_sub_departments: bool = strawberry.field(
        description="For a department: its grant also reaches the members of every department below it."
    )
    granted_by: str = strawberry.field(description="Who granted it, as the audit log names them.")
    granted_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, grant: Grant) -> "RoleGrantType":
        return cls(
            role=grant.role,
            subject_kind=GrantSubjectValue(grant.subject_kind.value),
            subject=grant.subject_code,
            include_sub_departments=grant.include_sub_departments
            if grant.subject_kind is GrantSubject.DEPARTMENT
            else False,
            granted_by=grant.granted_by,
            granted_at=grant.created_at,
            updated_at=grant.updated_at,
        )


@strawberry.type(name="Department", description="A department of a buyer enterprise (the Kit's orgCode).")
class DepartmentNode(relay.Node):
    id: relay.NodeID[int]
    product: str
    tenant_id: str
    is_test: bool
    org_code: str
    org_name: str
    parent_code: str | None = strawberry.field(description="null at the top of the tree.")

    @field(description="The department above, if it is known.")
    async def parent(self, info: Info) -> "DepartmentNode | None":
        if self.parent_code is None:
            return None
        row = await info.context.loaders.department.load((self.product, self.tenant_id, self.is_test, self.parent_code))
        return DepartmentNode.from_row(row) if row is not None else None

    @field(description="The role grants on the department, by role.")
    async def grants(self, info: Info) -> list[RoleGrantType]:
        return [RoleGrantType.of(grant) for grant in await info.context.loaders.department_grants.load(self.id)]

    @classmethod
    def from_row(cls, row: DirectoryDepartment) -> "DepartmentNode":
        return cls(
            id=_row_id(row.id),
            product=row.product,
            tenant_id=row.tenant_id,
            is_test=row.is_test,
            org_code=row.org_code,
            org_name=row.org_name,
            parent_code=row.parent_code or None,
        )


@strawberry.type(name="Member", description="A member of a buyer enterprise, with their product roles.")
class MemberNode(relay.Node):
    id: relay.NodeID[int]
    product: str
    tenant_id: str
    is_test: bool
    user_name: str
    name: str
    org_code: str
    department_name: str | None = strawberry.field(description="null when the orgCode names no known department.")
    position: str | None
    employee_code: str | None
    removed: bool = strawberry.field(description="Deleted from the enterprise (authSync flag 0).")
    marketplace_role: MarketplaceRoleValue | None = strawberry.field(
        description="The role of the member's live marketplace authorization; null if not authorized."
    )
    authorized: bool = strawberry.field(description="The marketplace authorizes the member for the product.")
    enabled: bool = strawberry.field(description="The authorization is enabled: only then are roles effective.")

    @field(description="The member's department, if known (null for ordinary members reading themselves).")
    async def department(self, info: Info) -> DepartmentNode | None:
        if not self.org_code:
            return None
        row = await info.context.loaders.department.load((self.product, self.tenant_id, self.is_test, self.org_code))
        return DepartmentNode.from_row(row) if row is not None else None

    # Plain data, not resolvers: a page of a hundred members shows them without a resolver call
    # each. Whoever makes the node loads the roles when the query asks for them (`member_node`,
    # `list_members`); None means not asked for, and a query that gets it anyway fails loudly
    # (null in a non-null field) instead of showing no roles.
    grants: list[RoleGrantType] | None = strawberry.field(
        description="Role grants on the member themselves.", graphql_type=list[RoleGrantType]
    )
    inherited_grants: list[RoleGrantType] | None = strawberry.field(
        description="Role grants on the member's department, and on departments above it that include sub-departments.",
        graphql_type=list[RoleGrantType],
    )
    effective_roles: list[str] | None = strawberry.field(
        description="The product roles the member holds now: their marketplace role's defaults and every grant "
        "that reaches them; empty unless authorized, enabled and not removed.",
        graphql_type=list[str],
    )

    @classmethod
    def from_row(cls, row: MemberRow, roles: MemberRoles | None, asked: frozenset[str] = frozenset()) -> "MemberNode":
        """The node of `row`, with the role fields the query asks for (`asked`, of `ROLE_FIELDS`) from
        `roles` (None when it asks for none); the others are left None."""
        member = row.member
        grants: list[RoleGrantType] | None = None
        inherited: list[RoleGrantType] | None = None
        effective: list[str] | None = None
        if roles is not None:
            if "grants" in asked:
                grants = [RoleGrantType.of(grant) for grant in roles.direct]
            if "inheritedGrants" in asked:
                inherited = [RoleGrantType.of(grant) for grant in roles.inherited]
            if "effectiveRoles" in asked:
                effective = list(roles.effective)
        return cls(
            grants=grants,
            inherited_grants=inherited,
            effective_roles=effective,
            id=_row_id(member.id),
            product=member.product,
            tenant_id=member.tenant_id,
            is_test=member.is_test,
            user_name=member.user_name,
            name=member.name,
            org_code=member.org_code,
            department_name=row.org_name,
            position=member.position,
            employee_code=member.employee_code,
            removed=member.removed,
            marketplace_role=MarketplaceRoleValue(row.marketplace_role.value) if row.marketplace_role else None,
            authorized=row.authorized,
            enabled=row.enabled,
        )


@strawberry.type(description="A page of members, in userName order.")
class MemberConnection(relay.Connection[MemberNode]):
    counter: strawberry.Private[Counter]

    @field(description="How many match the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.input(description="Which members to list; every given condition must hold.")
class MemberFilter:
    org_code: str | None = strawberry.field(default=None, description="Members of this department.")
    include_sub_departments: bool = strawberry.field(
        default=True, description="With orgCode: also the members of every department below it."
    )
    marketplace_role: MarketplaceRoleValue | None = None
    product_role: str | None = strawberry.field(default=None, description="Holds this product role (effective).")
    authorized: bool | None = None
    enabled: bool | None = None
    search: str | None = strawberry.field(default=None, description="Part of the userName or name, any case.")
    include_removed: bool = strawberry.field(default=False, description="Also members deleted from the enterprise.")

    def to_service(self) -> organization.MemberFilter:
        if self.search is not None and len(self.search) > 64:
            raise bad_input("search is at most 64 characters")
        return organization.MemberFilter(
            org_code=self.org_code,
            include_sub_departments=self.include_sub_departments,
            marketplace_role=MemberRole(self.marketplace_role.value) if self.marketplace_role else None,
            product_role=self.product_role,
            authorized=self.authorized,
            enabled=self.enabled,
            search=self.search or None,
            include_removed=self.include_removed,
        )


ROLE_FIELDS = frozenset({"grants", "inheritedGrants", "effectiveRoles"})
EMPTY_ROLES = MemberRoles(direct=[], inherited=[], effective=[])


def _selected(info: Info, names: frozenset[str]) -> frozenset[str]:
    """The fields named in `names` selected anywhere below the current field."""
    found: set[str] = set()
    pending: list[Any] = list(info.selected_fields)
    while pending:
        selection = pending.pop()
        name = getattr(selection, "name", None)
        if name in names:
            found.add(name)
        pending.extend(getattr(selection, "selections", ()))
    return frozenset(found)


async def member_node(info: Info, row: MemberRow) -> MemberNode:
    """The node of one member the caller read, with their roles when the query asks for them
    (through the request's loader: several members in one query cost one lookup)."""
    roles: MemberRoles | None = None
    asked = _selected(info, ROLE_FIELDS)
    if asked:
        roles = await info.context.loaders.member_roles.load(_row_id(row.member.id)) or EMPTY_ROLES
    return MemberNode.from_row(row, roles, asked)


def _catalog(info: Info, product: str) -> RoleCatalog:
    for known in info.context.host.products:
        if known.slug == product:
            return known.roles
    return RoleCatalog()


def _selects_here(info: Info, name: str) -> bool:
    """Whether the current field's own selection (fragments included) asks for the field `name`."""
    pending: list[Any] = [selection for field in info.selected_fields for selection in field.selections]
    while pending:
        selection = pending.pop()
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            pending.extend(selection.selections)
        elif getattr(selection, "name", None) == name:
            return True
    return False


def _counter(info: Info, scope: TenantScope, wanted: organization.MemberFilter, catalog: RoleCatalog) -> Counter:
    caller, database = info.context.caller, info.context.host.database

    async def counter() -> int:
        async with database.reader() as session:
            return await organization.count_members(session, caller=caller, scope=scope, wanted=wanted, catalog=catalog)

    return counter


def _started(count: Counter) -> tuple[Counter, Callable[[], object]]:
    """`count` running already, on a connection of its own, while the page is read and shaped (it
    reads every matching member; the page reads a hundred), and a way to stop it."""
    task = asyncio.ensure_future(count())
    # Retrieved here too, so that a count nobody awaits (the request failed first) logs nothing.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def counted() -> int:
        return await task

    return counted, task.cancel


def _known(total: int) -> Counter:
    async def counted() -> int:
        return total

    return counted


async def list_members(
    info: Info, scope: TenantScope, *, first: int, after: str | None, filter: MemberFilter | None
) -> MemberConnection:
    """A connection of a tenant's members, as the caller may read them; their roles (when asked for)
    come with the page. The total count (when asked for): of the whole tenant, a row read with the
    page (`organization.count_members`); of a narrower filter, counted meanwhile."""
    first, after_key = key_after(MEMBER_CURSOR, first, after)
    wanted, catalog = (filter or MemberFilter()).to_service(), _catalog(info, scope.product)
    caller = info.context.caller
    counter, stop = _counter(info, scope, wanted, catalog), None
    count_with_page = False
    if _selects_here(info, "totalCount"):
        if wanted.is_everyone:
            count_with_page = True
        else:
            counter, stop = _started(counter)
    try:
        async with info.context.host.database.reader() as session:
            page = await organization.list_members(
                session,
                caller=caller,
                scope=scope,
                wanted=wanted,
                catalog=catalog,
                page=MemberPageRequest(first=first, after=after_key),
            )
            found: dict[str, MemberRoles] | None = None
            asked = _selected(info, ROLE_FIELDS)
            if asked:
                found = await roles.list_roles_of_members(
                    session, caller=caller, scope=scope, catalog=catalog, members=[row.holder for row in page.items]
                )
            if count_with_page:
                total = await organization.count_members(
                    session, caller=caller, scope=scope, wanted=wanted, catalog=catalog
                )
                counter = _known(total)
    except BaseException:
        if stop is not None:
            stop()
        raise
    edges = [
        relay.Edge(
            cursor=encode_key_cursor(MEMBER_CURSOR, row.member.user_name),
            node=MemberNode.from_row(
                row, found.get(row.member.user_name, EMPTY_ROLES) if found is not None else None, asked
            ),
        )
        for row in page.items
    ]
    page_info = relay.PageInfo(
        has_next_page=page.has_next,
        has_previous_page=after_key is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return MemberConnection(page_info=page_info, edges=edges, counter=counter)


@strawberry.type(name="Tenant", description="A buyer enterprise as one product knows it (from the Kit syncs).")
class TenantNode(relay.Node):
    id: relay.NodeID[int]
    product: str
    tenant_id: str
    is_test: bool = strawberry.field(description="The marketplace's debug data (testFlag 1), kept apart.")
    tenant_code: str | None
    name: str | None
    domain_name: str | None = strawberry.field(description="The tenant's identity domain (SSO).")
    instance_id: str | None
    order_id: str | None
    bound: bool = strawberry.field(description="tenantSync bound it and it is not unbound.")
    deleted_at: datetime | None = strawberry.field(description="When the tenant was unbound.")
    created_at: datetime
    updated_at: datetime

    @field(description="The roles of the product, which tenant admins grant.")
    def roles(self, info: Info) -> list[ProductRole]:
        return ProductRole.all_of(_catalog(info, self.product))

    @field(description="Every department (the whole tree, as parentCode links), by orgCode.")
    async def departments(self, info: Info) -> list[DepartmentNode]:
        async with info.context.host.database.reader() as session:
            rows = await organization.list_departments(session, caller=info.context.caller, scope=self.scope)
        return [DepartmentNode.from_row(row) for row in rows]

    @field(description="One department by orgCode.")
    async def department(self, info: Info, org_code: str) -> DepartmentNode | None:
        async with info.context.host.database.reader() as session:
            row = await organization.get_department(
                session, caller=info.context.caller, scope=self.scope, org_code=org_code
            )
        return DepartmentNode.from_row(row) if row is not None else None

    @field(description="Members in userName order, with their grants and effective roles.")
    async def members(
        self, info: Info, first: int = PAGE_SIZE, after: str | None = None, filter: MemberFilter | None = None
    ) -> MemberConnection:
        return await list_members(info, self.scope, first=first, after=after, filter=filter)

    @field(description="One member by userName (removed ones too).")
    async def member(self, info: Info, user_name: str) -> MemberNode | None:
        async with info.context.host.database.reader() as session:
            row = await organization.get_member(
                session, caller=info.context.caller, scope=self.scope, user_name=user_name
            )
        return await member_node(info, row) if row is not None else None

    @field(description="The instance the tenant bought (operators only).")
    async def instance(self, info: Info) -> InstanceNode | None:
        if not self.instance_id:
            return None
        row = await info.context.loaders.instance.load((self.product, self.instance_id))
        return InstanceNode.from_row(row) if row is not None else None

    @property
    def scope(self) -> TenantScope:
        return TenantScope(self.product, self.tenant_id, self.is_test)

    @classmethod
    def from_row(cls, row: DirectoryTenant) -> "TenantNode":
        return cls(
            id=_row_id(row.id),
            product=row.product,
            tenant_id=row.tenant_id,
            is_test=row.is_test,
            tenant_code=row.tenant_code,
            name=row.name,
            domain_name=row.domain_name,
            instance_id=row.instance_id or None,
            order_id=row.order_id or None,
            bound=not row.deleted and row.tenant_code is not None,
            deleted_at=row.deleted_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A page of tenants.")
class TenantConnection(relay.Connection[TenantNode]):
    counter: strawberry.Private[Counter]

    @field(description="How many match the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.input(description="Which tenants to list; every given condition must hold.")
class TenantFilter:
    products: list[str] | None = None
    is_test: bool | None = None
    bound: bool | None = None
    search: str | None = strawberry.field(default=None, description="Part of the tenant id, code or name.")

    def to_service(self) -> organization.TenantFilter:
        return organization.TenantFilter(
            products=frozenset(self.products) if self.products is not None else None,
            is_test=self.is_test,
            bound=self.bound,
            search=self.search or None,
        )
