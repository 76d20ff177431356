"""The API's object types, built from rows by `from_row`; nothing secret has a field here.

Instances keep sealed passwords and product keys live in settings: neither is reachable.
"""

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from graphql_api._fields import field
from graphql_api.context import Context, ProductInfo
from tenants import organization
from tenants.admin import Caller
from tenants.admin_models import AuditEntry
from tenants.directory_models import MemberRole
from tenants.models import CallLogEntry, Instance, InstanceEvent, Job
from tenants.operations import job_status
from tenants.roles import RoleCatalog

if TYPE_CHECKING:
    from graphql_api.organization import MemberNode, TenantNode

Info = strawberry.Info[Context, None]


def _row_id(value: int | None) -> int:
    if value is None:
        raise ValueError("row without id")  # rows come from the database, never unsaved
    return value


@strawberry.enum(name="InstanceStatus", description="Where an instance is in its life.")
class InstanceStatusValue(enum.Enum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FROZEN = "frozen"
    RELEASED = "released"
    FAILED = "failed"


@strawberry.enum(name="JobStatus", description="A background job as an operator sees it.")
class JobStatusValue(enum.Enum):
    PENDING = "pending"
    FAILED = "failed"
    DEAD = "dead"
    DONE = "done"


@strawberry.enum(name="CallerKind", description="What kind of caller is asking.")
class CallerKindValue(enum.Enum):
    OPERATOR = "operator"
    TENANT_ADMIN = "tenant_admin"
    MEMBER = "member"


@strawberry.enum(name="MarketplaceRole", description="The marketplace's account roles for the product.")
class MarketplaceRoleValue(enum.Enum):
    ADMIN = "admin"
    USER = "user"


@strawberry.type(description="A role of the product, which tenant admins grant to members and departments.")
class ProductRole:
    name: str
    default_for: list[MarketplaceRoleValue] = strawberry.field(
        description="The marketplace roles whose members hold it by default."
    )

    @classmethod
    def all_of(cls, catalog: RoleCatalog) -> list["ProductRole"]:
        return [
            cls(
                name=role,
                default_for=[MarketplaceRoleValue(mr.value) for mr in MemberRole if role in catalog.default_for(mr)],
            )
            for role in catalog.roles
        ]


@strawberry.type(description="A product sold through MarketGate (its keys are never shown).")
class Product:
    slug: str
    name: str
    adapter: str = strawberry.field(description="The adapter that connects the product.")
    roles: list[ProductRole] = strawberry.field(description="The product's roles, which tenant admins grant.")

    @classmethod
    def of(cls, info: ProductInfo) -> "Product":
        return cls(slug=info.slug, name=info.name, adapter=info.adapter, roles=ProductRole.all_of(info.roles))


@strawberry.type(description="Who is asking, and what they may reach.")
class Viewer:
    kind: CallerKindValue
    actor: str = strawberry.field(description="How the audit log names the caller.")
    can_write: bool = strawberry.field(description="Whether the caller may run mutations.")
    products: list[Product] = strawberry.field(description="The products the caller may reach.")

    @field(description="A tenant admin's tenant (null for operators and ordinary members).")
    async def tenant(self, info: Info) -> Annotated["TenantNode", strawberry.lazy("graphql_api.organization")] | None:
        from graphql_api.organization import TenantNode

        caller, own = info.context.caller, info.context.caller.own_tenant
        if own is None:
            return None
        async with info.context.host.database.reader() as session:
            row = await organization.get_tenant(session, caller=caller, scope=own)
        return TenantNode.from_row(row) if row is not None else None

    @field(description="The member who is asking, with their roles (null for operators).")
    async def member(self, info: Info) -> Annotated["MemberNode", strawberry.lazy("graphql_api.organization")] | None:
        from graphql_api.organization import member_node

        caller, own = info.context.caller, info.context.caller.own_tenant
        if own is None or caller.user_name is None:
            return None
        async with info.context.host.database.reader() as session:
            row = await organization.get_member(session, caller=caller, scope=own, user_name=caller.user_name)
        return await member_node(info, row) if row is not None else None

    @classmethod
    def of(cls, caller: Caller, products: list[Product]) -> "Viewer":
        return cls(
            kind=CallerKindValue(caller.kind.value), actor=caller.actor, can_write=caller.can_write, products=products
        )


@strawberry.type(name="InstanceEvent", description="One change of an instance.")
class InstanceEventType:
    activity: str
    from_status: str | None
    to_status: str | None
    order_id: str | None
    detail: JSON | None
    request_id: str | None = strawberry.field(description="The request that made the change.")
    at: datetime

    @classmethod
    def from_row(cls, row: InstanceEvent) -> "InstanceEventType":
        return cls(
            activity=row.activity,
            from_status=row.from_status,
            to_status=row.to_status,
            order_id=row.order_id,
            detail=cast(JSON, row.detail),
            request_id=row.request_id,
            at=row.created_at,
        )


@strawberry.type(name="Instance", description="A purchased instance of a product.")
class InstanceNode(relay.Node):
    id: relay.NodeID[int]
    product: str
    instance_id: str = strawberry.field(description="The marketplace's instance id (businessId).")
    order_id: str
    order_line_id: str
    status: InstanceStatusValue
    is_test: bool = strawberry.field(description="Created by the marketplace's debug calls.")
    expire_time: datetime | None
    sku_code: str | None
    product_id: str | None = strawberry.field(description="The marketplace's product id.")
    linear_value: int | None
    charging_mode: str | None
    front_end_url: str | None
    admin_url: str | None
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    @field(description="Every change of the instance, oldest first.")
    async def history(self, info: Info) -> list[InstanceEventType]:
        events = await info.context.loaders.history.load((self.product, self.instance_id))
        return [InstanceEventType.from_row(event) for event in events]

    @classmethod
    def from_row(cls, row: Instance) -> "InstanceNode":
        app_info = row.app_info or {}
        return cls(
            id=_row_id(row.id),
            product=row.product,
            instance_id=row.instance_id,
            order_id=row.order_id,
            order_line_id=row.order_line_id,
            status=InstanceStatusValue(row.status.value),
            is_test=row.is_test,
            expire_time=row.expire_time,
            sku_code=row.sku_code,
            product_id=row.product_id,
            linear_value=row.linear_value,
            charging_mode=row.charging_mode,
            front_end_url=app_info.get("frontEndUrl"),
            admin_url=app_info.get("adminUrl"),
            failure_code=row.failure_code,
            failure_reason=row.failure_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(name="CallLogEntry", description="A production call, as received and answered.")
class CallLogEntryNode(relay.Node):
    id: relay.NodeID[int]
    product: str
    kind: str
    activity: str | None
    result_code: str
    reason: str | None
    http_status: int
    latency_ms: float
    request_id: str
    instance_id: str | None
    is_test: bool
    body: str | None = strawberry.field(description="The request body, secrets and personal data redacted.")
    at: datetime

    @classmethod
    def from_row(cls, row: CallLogEntry) -> "CallLogEntryNode":
        return cls(
            id=_row_id(row.id),
            product=row.product,
            kind=row.kind,
            activity=row.activity,
            result_code=row.result_code,
            reason=row.reason,
            http_status=row.http_status,
            latency_ms=row.latency_ms,
            request_id=row.request_id,
            instance_id=row.instance_id,
            is_test=row.is_test,
            body=row.body,
            at=row.created_at,
        )


@strawberry.type(
    name="Job",
    description="Background work (the outbox). Its payload is not shown: directory events carry personal data.",
)
class JobNode(relay.Node):
    id: relay.NodeID[int]
    product: str
    kind: str
    status: JobStatusValue
    attempts: int
    run_at: datetime = strawberry.field(description="When the job runs next (if it is not done or dead).")
    last_error: str | None
    instance_id: str | None = strawberry.field(description="The instance the job works on, if any.")
    tenant_id: str | None = strawberry.field(description="The tenant the job works on, if any.")
    created_at: datetime
    updated_at: datetime

    @field(description="The instance the job works on.")
    async def instance(self, info: Info) -> InstanceNode | None:
        if self.instance_id is None:
            return None
        row = await info.context.loaders.instance.load((self.product, self.instance_id))
        return InstanceNode.from_row(row) if row is not None else None

    @classmethod
    def from_row(cls, row: Job) -> "JobNode":
        instance_id, tenant_id = row.payload.get("instance_id"), row.payload.get("tenant_id")
        return cls(
            id=_row_id(row.id),
            product=row.product,
            kind=row.kind,
            status=JobStatusValue(job_status(row).value),
            attempts=row.attempts,
            run_at=row.run_at,
            last_error=row.last_error,
            instance_id=instance_id if isinstance(instance_id, str) else None,
            tenant_id=tenant_id if isinstance(tenant_id, str) else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(name="AuditEntry", description="An admin action: who did what, when and from where.")
class AuditEntryNode(relay.Node):
    id: relay.NodeID[int]
    actor_kind: str
    actor: str
    action: str
    product: str | None
    target: str | None
    is_test: bool = strawberry.field(
        description="The action was on the marketplace's debug data (a testFlag 1 tenant or instance)."
    )
    detail: JSON | None
    client_address: str | None
    request_id: str | None
    at: datetime

    @classmethod
    def from_row(cls, row: AuditEntry) -> "AuditEntryNode":
        return cls(
            id=_row_id(row.id),
            actor_kind=row.actor_kind,
            actor=row.actor,
            action=row.action,
            product=row.product,
            target=row.target,
            is_test=row.is_test,
            detail=cast(JSON, row.detail),
            client_address=row.client_address,
            request_id=row.request_id,
            at=row.created_at,
        )


Counter = Callable[[], Awaitable[int]]


@strawberry.type(description="A page of instances.")
class InstanceConnection(relay.Connection[InstanceNode]):
    counter: strawberry.Private[Counter]

    @field(description="How many match the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.type(description="A page of the call log.")
class CallLogEntryConnection(relay.Connection[CallLogEntryNode]):
    counter: strawberry.Private[Counter]

    @field(description="How many match the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.type(description="A page of background jobs.")
class JobConnection(relay.Connection[JobNode]):
    counter: strawberry.Private[Counter]

    @field(description="How many match the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.type(description="A page of the audit log.")
class AuditEntryConnection(relay.Connection[AuditEntryNode]):
    counter: strawberry.Private[Counter]

    @field(description="How many match the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.counter()
