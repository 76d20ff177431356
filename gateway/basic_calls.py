"""Answers the seven basic production calls, once verified: the instance lifecycle.

Every state change is committed, together with the job that carries it to the adapter,
before the marketplace is answered. newInstance and upgradeInstance wait for their job up
to the answer deadline and answer `000004` if it is still running; the other changes are
answered as soon as they are durable, and their jobs run at once in the background.
"""

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.adapters.contract import ChangeCheckRequest
from gateway.clock import Clock
from gateway.koogallery.basic import (
    BasicRequest,
    ChangeInstanceCheck,
    NewInstance,
    QueryInstance,
    RefreshInstance,
    ReleaseInstance,
    StatusChange,
    UpdateInstanceStatus,
    UpgradeInstance,
)
from gateway.koogallery.results import ResultCode
from gateway.koogallery.times import parse_marketplace_time
from gateway.products import Product
from gateway.provisioning import InstanceJobs
from gateway.worker import Finished, JobRunner
from tenants import instances, jobs
from tenants.database import Database
from tenants.errors import InvalidTransitionError
from tenants.models import Instance, InstanceStatus, Job, JobState

log = structlog.get_logger(__name__)

_InstanceCall = RefreshInstance | UpdateInstanceStatus | ReleaseInstance | UpgradeInstance
"""The calls that change the one instance they name."""

@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer the marketplace, and what the call log should say about it."""

    code: ResultCode
    fields: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    reason: str | None = None
    instance_id: str | None = None


def _sequence(product: str, instance_id: str) -> str:
    """The jobs of one instance run in order; the key names the product too (ids are per product)."""
    return _job_key("instance", product, instance_id)


def _job_key(*parts: str) -> str:
    """A bounded, unambiguous key for jobs (ids of 64 characters each would not fit the column)."""
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


class BasicCalls:
    def __init__(
        self,
        *,
        database: Database,
        runner: JobRunner,
        instance_jobs: InstanceJobs,
        products: Mapping[str, Product],
        clock: Clock,
    ) -> None:
        self._database = database
        self._runner = runner
        self._instance_jobs = instance_jobs
        self._products = products
        self._clock = clock

    async def answer(self, product: Product, request: BasicRequest, *, request_id: str, deadline: float) -> Answer:
        """Carry out one verified call; `deadline` is on the clock's monotonic scale."""
        match request:
            case NewInstance():
                return await self._new_instance(product, request, request_id=request_id, deadline=deadline)
            case QueryInstance():
                return await self._query_instance(product, request)
            case RefreshInstance():
                return await self._refresh_instance(product, request, request_id=request_id)
            case UpdateInstanceStatus():
                return await self._update_status(product, request, request_id=request_id)
            case ReleaseInstance():
                return await self._release_instance(product, request, request_id=request_id)
            case UpgradeInstance():
                return await self._upgrade_instance(product, request, request_id=request_id, deadline=deadline)
            case ChangeInstanceCheck():
                return await self._change_check(product, request, request_id=request_id, deadline=deadline)

    def _remaining(self, deadline: float) -> float:
        return max(0.0, deadline - self._clock.monotonic())

    async def _wait(self, job_id: int | None, deadline: float) -> Finished | None:
        if job_id is None:
            return None
        return await self._runner.wait_for(job_id, timeout_s=self._remaining(deadline))

    def _start(self, job: Job | None) -> int | None:
        """Run a job this call created or found; returns its id to wait on."""
        if job is None or job.id is None:
            return None
        if job.lease_owner == self._runner.owner and self._runner.running(job.id) is None:
            self._runner.run_now(job)
        elif job.lease_owner is None:
            self._runner.wake()
        return job.id

    async def _new_instance(
        self, product: Product, request: NewInstance, *, request_id: str, deadline: float
    ) -> Answer:
        now = self._clock.now()
        job: Job | None = None
        async with self._database.transaction() as session:
            try:
                instance, created = await instances.create_instance_if_absent(
                    session,
                    product=product.slug,
                    instance_id=request.business_id,
                    order_id=request.order_id,
                    order_line_id=request.order_line_id,
                    is_test=request.is_test,
                    now=now,
                )
            except InvalidTransitionError as exc:
                return Answer(ResultCode.BAD_PARAMETER, reason=str(exc))
            detail = {"orderId": request.order_id, "orderLineId": request.order_line_id}
            if created:
                await instances.record_event(
                    session, instance=instance, activity="newInstance", now=now, request_id=request_id, detail=detail
                )
            elif instance.status is InstanceStatus.FAILED or (
                instance.is_test and instance.status is InstanceStatus.RELEASED  # a debug case replayed
            ):
                await instances.change_status(
                    session,
                    instance=instance,
                    status=InstanceStatus.PROVISIONING,
                    activity="newInstance retried",
                    now=now,
                    request_id=request_id,
                    detail=detail,
                )
            if created or instance.status is InstanceStatus.PROVISIONING:
                job = await self._provision_job(session, product, instance, now=now, created=created)
        if job is not None and created:
            self._instance_jobs.hand_over(job, instance)
        finished = await self._wait(self._start(job), deadline)
        return await self._provisioning_answer(product, instance.instance_id, provisioned=finished is not None)

    async def _provision_job(
        self, session: AsyncSession, product: Product, instance: Instance, *, now: datetime, created: bool
    ) -> Job:
        """The pending provisioning job of `instance`, created if there is none."""
        if not created:
            sequence_key = _sequence(product.slug, instance.instance_id)
            existing = await jobs.get_pending_job(
                session, product=product.slug, sequence_key=sequence_key, kind="provision"
            )
            if existing is not None:
                return existing
        return await jobs.create_job(
            session,
            product=product.slug,
            kind="provision",
            payload={"instance_id": instance.instance_id},
            sequence_key=_sequence(product.slug, instance.instance_id),
            now=now,
            lease_owner=self._runner.owner,
            lease_s=self._runner.lease_s,
            new_sequence=created,
        )

    async def _provisioning_answer(self, product: Product, instance_id: str, *, provisioned: bool) -> Answer:
        """The answer to newInstance; `provisioned` says its job just ran here to its end and
        activated the instance (the job's handler only then gives `Finished`)."""
        fields = {"instanceId": instance_id}
        if provisioned:
            return Answer(ResultCode.SUCCESS, fields, instance_id=instance_id)
        async with self._database.reader() as session:
            instance = await instances.get_instance(session, product=product.slug, instance_id=instance_id)
        assert instance is not None
        if instance.status is InstanceStatus.PROVISIONING:
            return Answer(ResultCode.PROCESSING, fields, instance_id=instance_id, reason="provisioning continues")
        if instance.status is InstanceStatus.FAILED:
            code = ResultCode(instance.failure_code or ResultCode.INTERNAL_ERROR)
            # An adapter's refusal says why in its own words; a provisioning that gave up says
            # only what failed inside (kept in the instance's history), not for the marketplace.
            message = instance.failure_reason if code is not ResultCode.INTERNAL_ERROR else None
            return Answer(code, fields, message=message, instance_id=instance_id, reason="refused")
        return Answer(ResultCode.SUCCESS, fields, instance_id=instance_id)

    async def _query_instance(self, product: Product, request: QueryInstance) -> Answer:
        """Answered from MarketGate's own records: no adapter round trip per instance.

        The record holds what provisioning returned; `instanceReconcile` (admin API) asks the
        adapter to describe an instance again and repairs the record when the product changed it.
        """
        async with self._database.reader() as session:
            found = await instances.list_live_app_info(
                session, product=product.slug, instance_ids=request.instance_ids, is_test=request.is_test
            )
        info = [
            {"instanceId": instance_id, "appInfo": self._instance_jobs.answered_app_info(app_info)}
            for instance_id, app_info in found
        ]
        return Answer(ResultCode.SUCCESS, {"info": info})

    async def _locked_instance(
        self, session: AsyncSession, product: Product, request: _InstanceCall
    ) -> Instance | None:
        """The instance the call names, locked; None if there is none of the call's kind (a test
        call sees only test instances, a real call only real ones)."""
        instance = await instances.get_instance_for_update(
            session, product=product.slug, instance_id=request.instance_id
        )
        return instance if instance is not None and instance.is_test == request.is_test else None

    async def _locked_live_instance(
        self, session: AsyncSession, product: Product, request: _InstanceCall
    ) -> Instance | None:
        instance = await self._locked_instance(session, product, request)
        if instance is None or instance.status in (InstanceStatus.RELEASED, InstanceStatus.FAILED):
            return None
        return instance

    async def _refresh_instance(self, product: Product, request: RefreshInstance, *, request_id: str) -> Answer:
        now = self._clock.now()
        dedupe_key = _job_key("renew", request.instance_id, request.order_id, request.order_line_id)
        async with self._database.transaction() as session:
            instance = await self._locked_live_instance(session, product, request)
            if instance is None:
                return Answer(ResultCode.INSTANCE_NOT_FOUND, reason="no live instance", instance_id=request.instance_id)
            if await jobs.get_job_by_dedupe_key(session, product=product.slug, dedupe_key=dedupe_key):
                return Answer(ResultCode.SUCCESS, instance_id=request.instance_id, reason="repeat")
            expire_time = parse_marketplace_time(request.expire_time)
            detail = {"orderId": request.order_id, "scene": request.scene.value, "expireTime": request.expire_time}
            await instances.record_event(
                session, instance=instance, activity="refreshInstance", now=now, request_id=request_id, detail=detail
            )
            instance.expire_time = expire_time
            instance.product_id = request.product_id or instance.product_id
            instance.updated_at = now
            session.add(instance)
            payload = {
                "instance_id": instance.instance_id,
                "scene": request.scene.value,
                "order_id": request.order_id,
                "expire_time": expire_time.isoformat(),
                "product_id": request.product_id,
            }
            job = await self._follow_up(
                session, product, instance, kind="renew", payload=payload, dedupe_key=dedupe_key, now=now
            )
        self._start(job)
        return Answer(ResultCode.SUCCESS, instance_id=request.instance_id)

    async def _follow_up(
        self,
        session: AsyncSession,
        product: Product,
        instance: Instance,
        *,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        dedupe_key: str | None = None,
    ) -> Job:
        return await jobs.create_job(
            session,
            product=product.slug,
            kind=kind,
            payload=payload,
            dedupe_key=dedupe_key,
            sequence_key=_sequence(product.slug, instance.instance_id),
            now=now,
            lease_owner=self._runner.owner,
            lease_s=self._runner.lease_s,
        )

    async def _update_status(self, product: Product, request: UpdateInstanceStatus, *, request_id: str) -> Answer:
        now = self._clock.now()
        target = InstanceStatus.FROZEN if request.status is StatusChange.FREEZE else InstanceStatus.ACTIVE
        async with self._database.transaction() as session:
            instance = await self._locked_live_instance(session, product, request)
            if instance is None:
                return Answer(ResultCode.INSTANCE_NOT_FOUND, reason="no live instance", instance_id=request.instance_id)
            if instance.status is InstanceStatus.PROVISIONING:
                return Answer(ResultCode.PROCESSING, reason="still provisioning", instance_id=request.instance_id)
            if instance.status is target:
                return Answer(ResultCode.SUCCESS, reason="already in that state", instance_id=request.instance_id)
            await instances.change_status(
                session,
                instance=instance,
                status=target,
                activity="updateInstanceStatus",
                now=now,
                request_id=request_id,
                detail={"status": request.status.value},
            )
            job = await self._follow_up(
                session, product, instance, kind="set_status", payload={"instance_id": instance.instance_id}, now=now
            )
        self._start(job)
        return Answer(ResultCode.SUCCESS, instance_id=request.instance_id)

    async def _release_instance(self, product: Product, request: ReleaseInstance, *, request_id: str) -> Answer:
        now = self._clock.now()
        async with self._database.transaction() as session:
            instance = await self._locked_instance(session, product, request)
            if instance is None:
                return Answer(ResultCode.INSTANCE_NOT_FOUND, reason="unknown instance", instance_id=request.instance_id)
            if instance.status is InstanceStatus.RELEASED:
                return Answer(ResultCode.SUCCESS, reason="already released", instance_id=request.instance_id)
            await instances.change_status(
                session,
                instance=instance,
                status=InstanceStatus.RELEASED,
                activity="releaseInstance",
                now=now,
                request_id=request_id,
                detail={"orderId": request.order_id} if request.order_id else None,
            )
            job = await self._follow_up(
                session, product, instance, kind="release", payload={"instance_id": instance.instance_id}, now=now
            )
        self._start(job)
        return Answer(ResultCode.SUCCESS, instance_id=request.instance_id)

    async def _upgrade_instance(
        self, product: Product, request: UpgradeInstance, *, request_id: str, deadline: float
    ) -> Answer:
        now = self._clock.now()
        dedupe_key = _job_key("upgrade", request.instance_id, request.order_id, request.order_line_id)
        async with self._database.transaction() as session:
            instance = await self._locked_live_instance(session, product, request)
            if instance is None:
                return Answer(ResultCode.INSTANCE_NOT_FOUND, reason="no live instance", instance_id=request.instance_id)
            job = await jobs.get_job_by_dedupe_key(session, product=product.slug, dedupe_key=dedupe_key)
            if job is None:
                await instances.record_event(
                    session,
                    instance=instance,
                    activity="upgradeInstance",
                    now=now,
                    request_id=request_id,
                    detail={"orderId": request.order_id, "orderLineId": request.order_line_id},
                )
                payload = {
                    "instance_id": instance.instance_id,
                    "order_id": request.order_id,
                    "order_line_id": request.order_line_id,
                }
                job = await self._follow_up(
                    session, product, instance, kind="upgrade", payload=payload, dedupe_key=dedupe_key, now=now
                )
        await self._wait(self._start(job) if job.state is JobState.PENDING else None, deadline)
        async with self._database.reader() as session:
            state = await jobs.get_job_by_dedupe_key(session, product=product.slug, dedupe_key=dedupe_key)
        if state is None or state.state is JobState.PENDING:
            return Answer(ResultCode.PROCESSING, instance_id=request.instance_id, reason="upgrade continues")
        if state.state is JobState.DEAD:
            return Answer(ResultCode.INTERNAL_ERROR, instance_id=request.instance_id, reason="upgrade failed")
        return Answer(ResultCode.SUCCESS, instance_id=request.instance_id)

    async def _change_check(
        self, product: Product, request: ChangeInstanceCheck, *, request_id: str, deadline: float
    ) -> Answer:
        async with self._database.reader() as session:
            instance = await instances.get_instance(session, product=product.slug, instance_id=request.instance_id)
        if (
            instance is None
            or instance.is_test != request.is_test
            or instance.status in (InstanceStatus.RELEASED, InstanceStatus.FAILED)
        ):
            return Answer(ResultCode.INSTANCE_NOT_FOUND, reason="no live instance", instance_id=request.instance_id)
        if not product.reaches_adapter(is_test=request.is_test):
            return Answer(ResultCode.SUCCESS, instance_id=request.instance_id, reason="test call")
        target = request.product_info
        check = ChangeCheckRequest(
            instance=product.ref(instance),
            product_id=target.product_id,
            sku_code=target.sku_code,
            product_name=target.product_name,
            linear_value=target.linear_value,
        )
        try:
            decision = await asyncio.wait_for(product.adapter.check_change(check), timeout=self._remaining(deadline))
        except TimeoutError:
            return Answer(ResultCode.INTERNAL_ERROR, instance_id=request.instance_id, reason="adapter too slow")
        if decision.accepted:
            return Answer(ResultCode.SUCCESS, instance_id=request.instance_id)
        return Answer(
            ResultCode.BAD_PARAMETER,
            message=decision.reason or "change refused",
            instance_id=request.instance_id,
            reason=f"change refused: {decision.reason}"[:512],
        )
