"""The root query: thin resolvers that parse arguments, call a scoped service and shape the result."""

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry import relay

from graphql_api._fields import field
from graphql_api.inputs import AuditLogFilter, CallLogFilter, InstanceFilter, JobFilter
from graphql_api.organization import (
    DepartmentNode,
    TenantConnection,
    TenantFilter,
    TenantNode,
    member_node,
)
from graphql_api.pagination import ConnectionT, connection, page_request, parse_node_id
from graphql_api.permissions import authenticated, operator, organization
from graphql_api.types import (
    AuditEntryConnection,
    AuditEntryNode,
    CallLogEntryConnection,
    CallLogEntryNode,
    Counter,
    Info,
    InstanceConnection,
    InstanceNode,
    JobConnection,
    JobNode,
    Product,
    Viewer,
)
from tenants import admin, operations
from tenants import organization as organizations
from tenants.admin import Page, PageRequest, TenantScope
from tenants.database import Database
from tenants.organization import MemberRow

PAGE_SIZE = 50


def _visible_products(info: Info) -> list[Product]:
    allowed = info.context.caller.products
    return [Product.of(product) for product in info.context.host.products if product.slug in allowed]


def _counter(database: Database, count: Callable[..., Awaitable[int]], **arguments: Any) -> Counter:
    async def counter() -> int:
        async with database.reader() as session:
            return await count(session, **arguments)

    return counter


async def _listed(
    info: Info,
    cls: type[ConnectionT],
    *,
    node: Callable[[Any], Any],
    lister: Callable[..., Awaitable[Page[Any]]],
    counter: Callable[..., Awaitable[int]],
    wanted: Any,
    request: PageRequest,
) -> ConnectionT:
    """A page of what `lister` finds for the caller and `wanted`, as a connection of `cls` whose
    total count `counter` counts when asked (the services filter by the caller)."""
    caller, database = info.context.caller, info.context.host.database
    async with database.reader() as session:
        page = await lister(session, caller=caller, wanted=wanted, page=request)
    count = _counter(database, counter, caller=caller, wanted=wanted)
    return connection(cls, page, request=request, node=node, counter=count)


async def load_node(info: Info, value: str) -> relay.Node | None:
    """The object behind a global id, if the caller may see it; None otherwise, whatever the reason."""
    parsed = parse_node_id(value)
    if parsed is None:
        return None
    type_name, row_id = parsed
    caller = info.context.caller
    member: MemberRow | None = None
    async with info.context.host.database.reader() as session:
        if type_name == "Instance":
            instance = await operations.get_instance_by_row_id(session, caller=caller, row_id=row_id)
            return InstanceNode.from_row(instance) if instance else None
        if type_name == "Job":
            job = await operations.get_job(session, caller=caller, job_id=row_id)
            return JobNode.from_row(job) if job else None
        if type_name == "CallLogEntry":
            entry = await operations.get_call_log_entry(session, caller=caller, entry_id=row_id)
            return CallLogEntryNode.from_row(entry) if entry else None
        if type_name == "AuditEntry":
            audit = await admin.get_audit_entry(session, caller=caller, entry_id=row_id)
            return AuditEntryNode.from_row(audit) if audit else None
        if type_name == "Tenant":
            tenant = await organizations.get_tenant_by_row_id(session, caller=caller, row_id=row_id)
            return TenantNode.from_row(tenant) if tenant else None
        if type_name == "Department":
            department = await organizations.get_department_by_row_id(session, caller=caller, row_id=row_id)
            return DepartmentNode.from_row(department) if department else None
        if type_name == "Member":
            member = await organizations.get_member_by_row_id(session, caller=caller, row_id=row_id)
    # A member's roles come through the request's loader, on a session of its own.
    return await member_node(info, member) if member is not None else None


@strawberry.type
class Query:
    @field(extensions=[authenticated()], description="Who is asking.")
    def viewer(self, info: Info) -> Viewer:
        return Viewer.of(info.context.caller, _visible_products(info))

    @field(extensions=[authenticated()], description="The products the caller may reach.")
    def products(self, info: Info) -> list[Product]:
        return _visible_products(info)

    @field(extensions=[organization()], description="Any object by its global id (null if out of reach).")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        return await load_node(info, id)

    @field(extensions=[operator()], description="Instances of the caller's products, newest first.")
    async def instances(
        self, info: Info, first: int = PAGE_SIZE, after: str | None = None, filter: InstanceFilter | None = None
    ) -> InstanceConnection:
        request, wanted = page_request(first, after), (filter or InstanceFilter()).to_service()
        return await _listed(
            info,
            InstanceConnection,
            node=InstanceNode.from_row,
            lister=operations.list_instances,
            counter=operations.count_instances,
            wanted=wanted,
            request=request,
        )

    @field(extensions=[operator()], description="One instance by product and marketplace id (null if out of reach).")
    async def instance(self, info: Info, product: str, instance_id: str) -> InstanceNode | None:
        async with info.context.host.database.reader() as session:
            row = await operations.get_instance(
                session, caller=info.context.caller, product=product, instance_id=instance_id
            )
        return InstanceNode.from_row(row) if row is not None else None

    @field(extensions=[operator()], description="Production calls to the caller's products, newest first.")
    async def call_log(
        self, info: Info, first: int = PAGE_SIZE, after: str | None = None, filter: CallLogFilter | None = None
    ) -> CallLogEntryConnection:
        request, wanted = page_request(first, after), (filter or CallLogFilter()).to_service()
        return await _listed(
            info,
            CallLogEntryConnection,
            node=CallLogEntryNode.from_row,
            lister=operations.list_call_log_entries,
            counter=operations.count_call_log_entries,
            wanted=wanted,
            request=request,
        )

    @field(extensions=[operator()], description="Background jobs of the caller's products, newest first.")
    async def jobs(
        self, info: Info, first: int = PAGE_SIZE, after: str | None = None, filter: JobFilter | None = None
    ) -> JobConnection:
        request, wanted = page_request(first, after), (filter or JobFilter()).to_service()
        return await _listed(
            info,
            JobConnection,
            node=JobNode.from_row,
            lister=operations.list_jobs,
            counter=operations.count_jobs,
            wanted=wanted,
            request=request,
        )

    @field(
        extensions=[organization()],
        description="Admin actions, newest first: of the caller's products (operators) or tenant (tenant admins).",
    )
    async def audit_log(
        self, info: Info, first: int = PAGE_SIZE, after: str | None = None, filter: AuditLogFilter | None = None
    ) -> AuditEntryConnection:
        request, wanted = page_request(first, after), (filter or AuditLogFilter()).to_service()
        return await _listed(
            info,
            AuditEntryConnection,
            node=AuditEntryNode.from_row,
            lister=admin.list_audit_entries,
            counter=admin.count_audit_entries,
            wanted=wanted,
            request=request,
        )

    @field(
        extensions=[organization()],
        description="Buyer enterprises, newest first: of the caller's products (operators), their own (tenant admins).",
    )
    async def tenants(
        self, info: Info, first: int = PAGE_SIZE, after: str | None = None, filter: TenantFilter | None = None
    ) -> TenantConnection:
        request, wanted = page_request(first, after), (filter or TenantFilter()).to_service()
        return await _listed(
            info,
            TenantConnection,
            node=TenantNode.from_row,
            lister=organizations.list_tenants,
            counter=organizations.count_tenants,
            wanted=wanted,
            request=request,
        )

    @field(extensions=[organization()], description="One buyer enterprise of a product (null if out of reach).")
    async def tenant(self, info: Info, product: str, tenant_id: str, is_test: bool = False) -> TenantNode | None:
        async with info.context.host.database.reader() as session:
            row = await organizations.get_tenant(
                session, caller=info.context.caller, scope=TenantScope(product, tenant_id, is_test)
            )
        return TenantNode.from_row(row) if row is not None else None
