"""The root mutation: operator actions, each with a union result and an audit entry.

Expected failures are members of the result union with a stable `code`; nothing is changed
and nothing is audited when one is returned. Permission refusals are GraphQL errors.
"""

from typing import Annotated

import strawberry

from graphql_api._fields import mutation
from graphql_api.errors import AdapterFailedError, InstanceNotReconcilableError, JobFinishedError, NotFoundError
from graphql_api.pagination import parse_node_id
from graphql_api.permissions import operator_write
from graphql_api.reconcile import ReconcileError
from graphql_api.types import Info, InstanceNode, JobNode
from tenants import operations
from tenants.errors import InstanceNotFoundError


@strawberry.type(description="The job was put back to run now.")
class JobRetrySuccess:
    job: JobNode


@strawberry.type(description="The instance was compared with what its adapter says, and repaired if needed.")
class InstanceReconcileSuccess:
    instance: InstanceNode
    changed: bool = strawberry.field(description="Whether the stored record differed and was repaired.")


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
        if instance.status not in operations.RECONCILABLE:
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
