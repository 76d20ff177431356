"""Filter inputs of the list queries, turned into the services' filters."""

from datetime import datetime

import strawberry

from graphql_api.errors import bad_input
from graphql_api.types import InstanceStatusValue, JobStatusValue
from tenants import admin, operations
from tenants.models import InstanceStatus


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise bad_input(f"{name} needs a UTC offset, as in 2030-01-31T00:00:00Z")
    return value


def _set(values: list[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values is not None else None


@strawberry.input(description="Which instances to list; every given condition must hold.")
class InstanceFilter:
    products: list[str] | None = None
    statuses: list[InstanceStatusValue] | None = None
    is_test: bool | None = None
    expires_after: datetime | None = strawberry.field(default=None, description="Expiry at or after this time.")
    expires_before: datetime | None = strawberry.field(default=None, description="Expiry before this time.")
    search: str | None = strawberry.field(default=None, description="A prefix of the instance id or the order id.")

    def to_service(self) -> operations.InstanceFilter:
        return operations.InstanceFilter(
            products=_set(self.products),
            statuses=frozenset(InstanceStatus(s.value) for s in self.statuses) if self.statuses is not None else None,
            is_test=self.is_test,
            expires_after=_aware(self.expires_after, "expiresAfter"),
            expires_before=_aware(self.expires_before, "expiresBefore"),
            search=self.search or None,
        )


@strawberry.input(description="Which production calls to list; every given condition must hold.")
class CallLogFilter:
    products: list[str] | None = None
    kinds: list[str] | None = strawberry.field(default=None, description="basic or kit.")
    activities: list[str] | None = None
    result_codes: list[str] | None = None
    instance_id: str | None = None
    request_id: str | None = None
    since: datetime | None = strawberry.field(default=None, description="Received at or after this time.")
    until: datetime | None = strawberry.field(default=None, description="Received before this time.")

    def to_service(self) -> operations.CallLogFilter:
        return operations.CallLogFilter(
            products=_set(self.products),
            kinds=_set(self.kinds),
            activities=_set(self.activities),
            result_codes=_set(self.result_codes),
            instance_id=self.instance_id,
            request_id=self.request_id,
            since=_aware(self.since, "since"),
            until=_aware(self.until, "until"),
        )


@strawberry.input(description="Which background jobs to list; every given condition must hold.")
class JobFilter:
    products: list[str] | None = None
    statuses: list[JobStatusValue] | None = None
    kinds: list[str] | None = None

    def to_service(self) -> operations.JobFilter:
        return operations.JobFilter(
            products=_set(self.products),
            statuses=frozenset(operations.JobStatus(s.value) for s in self.statuses)
            if self.statuses is not None
            else None,
            kinds=_set(self.kinds),
        )


@strawberry.input(description="Which audit entries to list; every given condition must hold.")
class AuditLogFilter:
    products: list[str] | None = None
    actions: list[str] | None = strawberry.field(default=None, description="Mutation names, as jobRetry.")
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    is_test: bool | None = strawberry.field(
        default=None, description="Only actions on the marketplace's debug data (true), or none of them (false)."
    )

    def to_service(self) -> admin.AuditFilter:
        return admin.AuditFilter(
            products=_set(self.products),
            actions=_set(self.actions),
            actor=self.actor,
            since=_aware(self.since, "since"),
            until=_aware(self.until, "until"),
            is_test=self.is_test,
        )
