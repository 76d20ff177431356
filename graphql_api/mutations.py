"""The root mutation: operator actions, each with a union result and an audit entry.

Expected failures are members of the result union with a stable `code`; nothing is changed
and nothing is audited when one is returned. Permission refusals are GraphQL errors.
"""

from typing import Annotated

import strawberry

from graphql_api._fields import mutation
from graphql_api.errors import (
    AdapterFailedError,
    InstanceNotReconcilableError,
    JobFinishedError,
    NotFoundError,
    TooManySubjectsError,
    UnknownRolesError,
    UnknownSubjectsError,
)
from graphql_api.organization import TenantNode
from graphql_api.pagination import parse_node_id
from graphql_api.permissions import operator_write, organization_write
from graphql_api.reconcile import ReconcileError
from graphql_api.types import Info, InstanceNode, JobNode
from tenants import operations, organization, roles
from tenants.errors import InstanceNotFoundError
from tenants.models import LIVE_STATUSES


@strawberry.type(description="The job was put back to run now.")
class JobRetrySuccess:
    job: JobNode


@strawberry.type(description="The instance was compared with what its adapter says, and repaired if needed.")
class InstanceReconcileSuccess:
    instance: InstanceNode
    changed: bool = strawberry.field(description="Whether the stored record differed and was repaired.")


@strawberry.input(description="Product roles to give to members and departments of one tenant.")
class MemberRolesGrantInput:
    tenant: strawberry.ID = strawberry.field(description="The Tenant's id (a tenant admin's: viewer.tenant.id).")
    roles: list[str] = strawberry.field(description="Roles the product declares (Tenant.roles).")
    members: list[str] = strawberry.field(default_factory=list, description="userNames.")
    departments: list[str] = strawberry.field(default_factory=list, description="orgCodes.")
    include_sub_departments: bool = strawberry.field(
        default=False,
        description="A department's grant also reaches the members of every department below it (set on each "
        "department grant given here).",
    )


@strawberry.input(description="Product roles to take back from members and departments of one tenant.")
class MemberRolesRevokeInput:
    tenant: strawberry.ID = strawberry.field(description="The Tenant's id (a tenant admin's: viewer.tenant.id).")
    roles: list[str]
    members: list[str] = strawberry.field(default_factory=list, description="userNames.")
    departments: list[str] = strawberry.field(default_factory=list, description="orgCodes.")


@strawberry.type(description="The roles are granted (granting what was granted changes nothing).")
class MemberRolesGrantSuccess:
    tenant: TenantNode
    changed_grants: int = strawberry.field(description="Grants created, or whose includeSubDepartments changed.")
    affected_members: int = strawberry.field(
        description="Members whose effective roles changed; the product is told of each."
    )


@strawberry.type(description="The grants are taken back (revoking what is not granted changes nothing).")
class MemberRolesRevokeSuccess:
    tenant: TenantNode
    changed_grants: int = strawberry.field(description="Grants deleted.")
    affected_members: int = strawberry.field(
        description="Members whose effective roles changed; the product is told of each."
    )


MemberRolesGrantResult = Annotated[
    MemberRolesGrantSuccess | NotFoundError | UnknownRolesError | UnknownSubjectsError | TooManySubjectsError,
    strawberry.union("MemberRolesGrantResult"),
]
MemberRolesRevokeResult = Annotated[
    MemberRolesRevokeSuccess | NotFoundError | UnknownSubjectsError | TooManySubjectsError,
    strawberry.union("MemberRolesRevokeResult"),
]
RolesErrors = NotFoundError | UnknownRolesError | UnknownSubjectsError | TooManySubjectsError


async def _change_roles(
    info: Info, input: MemberRolesGrantInput | MemberRolesRevokeInput
) -> tuple[TenantNode, roles.RolesChange] | RolesErrors:
    """Find the tenant within the caller's reach and grant or revoke, in one transaction."""
    parsed = parse_node_id(input.tenant)
    if parsed is None or parsed[0] != "Tenant":
        return NotFoundError.of("tenant")
    host, caller = info.context.host, info.context.caller
    try:
        async with host.database.transaction() as session:
            tenant = await organization.get_tenant_by_row_id(session, caller=caller, row_id=parsed[1])
            if tenant is None:
                return NotFoundError.of("tenant")
            scope = organization.scope_of(tenant)
            catalog = host.catalogs.get(scope.product, roles.RoleCatalog())
            if isinstance(input, MemberRolesGrantInput):
                change = await roles.grant_member_roles(
                    session,
                    caller=caller,
                    scope=scope,
                    catalog=catalog,
                    roles=input.roles,
                    members=input.members,
                    departments=input.departments,
                    include_sub_departments=input.include_sub_departments,
                    now=host.now(),
                )
            else:
                change = await roles.revoke_member_roles(
                    session,
                    caller=caller,
                    scope=scope,
                    catalog=catalog,
                    roles=input.roles,
                    members=input.members,
                    departments=input.departments,
                    now=host.now(),
                )
    except roles.TenantNotFoundError:
        return NotFoundError.of("tenant")
    except roles.UnknownRolesError as exc:
        return UnknownRolesError.of(exc.roles)
    except roles.UnknownSubjectsError as exc:
        return UnknownSubjectsError.of(exc.members, exc.departments)
    except roles.TooManySubjectsError as exc:
        return TooManySubjectsError.of(given=exc.given, limit=exc.limit)
    if change.affected_members and host.jobs_created is not None:
        host.jobs_created()
    return TenantNode.from_row(tenant), change


JobRetryResult = Annotated[JobRetrySuccess | NotFoundError | JobFinishedError, strawberry.union("JobRetryResult")]
InstanceReconcileResult = Annotated[
    InstanceReconcileSuccess | NotFoundError | InstanceNotReconcilableError | AdapterFailedError,
    strawberry.union("InstanceReconcileResult"),
]


@strawberry.type
class Mutation:
    @mutation(
        extensions=[operator_write()],
        description="Run a failed, dead or waiting job again now. Idempotent.",
    )
    async def job_retry(self, info: Info, id: strawberry.ID) -> JobRetryResult:
        parsed = parse_node_id(id)
        if parsed is None or parsed[0] != "Job":
            return NotFoundError.of("job")
        host = info.context.host
        try:
            async with host.database.transaction() as session:
                job = await operations.retry_job(session, caller=info.context.caller, job_id=parsed[1], now=host.now())
        except operations.JobNotFoundError:
            return NotFoundError.of("job")
        except operations.JobFinishedError:
            return JobFinishedError.of()
        return JobRetrySuccess(job=JobNode.from_row(job))

    @mutation(
        extensions=[operator_write()],
        description="Ask the product's adapter about a live instance again and repair the stored record. Idempotent.",
    )
    async def instance_reconcile(self, info: Info, product: str, instance_id: str) -> InstanceReconcileResult:
        host, caller = info.context.host, info.context.caller
        async with host.database.reader() as session:
            instance = await operations.get_instance(session, caller=caller, product=product, instance_id=instance_id)
        if instance is None:
            return NotFoundError.of("instance")
        if instance.status not in LIVE_STATUSES:
            return InstanceNotReconcilableError.of(instance.status.value)
        try:
            # Asked outside any transaction: an adapter may be slow, and holds no lock meanwhile.
            app_info = await host.reconciler.reconcile_app_info(
                product=product, instance_id=instance_id, is_test=instance.is_test, stored_app_info=instance.app_info
            )
        except ReconcileError:
            return AdapterFailedError.of()
        try:
            async with host.database.transaction() as session:
                repaired, changed = await operations.repair_instance_app_info(
                    session, caller=caller, product=product, instance_id=instance_id, app_info=app_info, now=host.now()
                )
        except InstanceNotFoundError:
            return NotFoundError.of("instance")
        except operations.InstanceNotReconcilableError as exc:
            return InstanceNotReconcilableError.of(exc.status.value)
        return InstanceReconcileSuccess(instance=InstanceNode.from_row(repaired), changed=changed)

    @mutation(
        extensions=[organization_write()],
        description="Give product roles to members and departments of a tenant (at most 5000 at once). Idempotent.",
    )
    async def member_roles_grant(self, info: Info, input: MemberRolesGrantInput) -> MemberRolesGrantResult:
        outcome = await _change_roles(info, input)
        if not isinstance(outcome, tuple):
            return outcome
        tenant, change = outcome
        return MemberRolesGrantSuccess(
            tenant=tenant, changed_grants=change.changed_grants, affected_members=len(change.affected_members)
        )

    @mutation(
        extensions=[organization_write()],
        description="Take product roles back from members and departments of a tenant (at most 5000 at once). "
        "Idempotent; roles held by default or through other grants stay.",
    )
    async def member_roles_revoke(self, info: Info, input: MemberRolesRevokeInput) -> MemberRolesRevokeResult:
        outcome = await _change_roles(info, input)
        if isinstance(outcome, UnknownRolesError):  # revoking takes any role, declared or not
            raise AssertionError("unreachable")
        if not isinstance(outcome, tuple):
            return outcome
        tenant, change = outcome
        return MemberRolesRevokeSuccess(
            tenant=tenant, changed_grants=change.changed_grants, affected_members=len(change.affected_members)
        )
