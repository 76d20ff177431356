"""Background work on instances, run from the outbox: provision, renew, status, release, upgrade.

Each handler is idempotent: it reads the instance as it is now and does only what is still
to do, so running a job twice (after a crash, or a lease taken over) changes nothing more.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.adapters.contract import (
    AppInfo,
    Buyer,
    Order,
    ProvisionRequest,
    Refused,
    RenewRequest,
    RetryLater,
    StatusRequest,
    UpgradeRequest,
)
from gateway.clock import Clock
from gateway.koogallery.orders import OrderInfo
from gateway.koogallery.results import ResultCode
from gateway.koogallery.times import parse_marketplace_time
from gateway.order_query import OrderQueryClient, OrderQueryError, OrderQueryUnavailableError
from gateway.products import Product, app_info_fields, app_info_problem
from gateway.worker import Finished, JobHandler, PermanentJobError
from tenants import instances, jobs
from tenants.database import Database
from tenants.models import LIVE_STATUSES, Instance, InstanceStatus, Job
from tenants.secretbox import SecretBox

log = structlog.get_logger(__name__)

PASSWORD_PURPOSE = "instance-admin-password"  # noqa: S105 - a label, not a password


class InstanceJobs:
    """The job handlers for instances, keyed by job kind."""

    def __init__(
        self,
        *,
        database: Database,
        products: Mapping[str, Product],
        order_queries: OrderQueryClient,
        secret_box: SecretBox,
        clock: Clock,
        public_url: str,
    ) -> None:
        self._database = database
        self._products = products
        self._order_queries = order_queries
        self._secret_box = secret_box
        self._clock = clock
        self._public_url = public_url
        self._handed_over: dict[int, Instance] = {}

    @property
    def handlers(self) -> dict[str, JobHandler]:
        return {
            "provision": self.provision,
            "renew": self.renew,
            "set_status": self.set_status,
            "release": self.release,
            "upgrade": self.upgrade,
        }

    def hand_over(self, job: Job, instance: Instance) -> None:
        """`instance` as the transaction that created `job` (its provisioning) left it, for the
        job's run that the same request starts at once: that run need not read it again.

        Taken by the run's first `_load`. A change that came in between (a release, say) is
        caught where it matters: provisioning ends with a conditional update, and the next job
        of the instance's sequence runs only after this one.
        """
        assert job.id is not None
        self._handed_over[job.id] = instance

    async def _load(self, job: Job) -> tuple[Product, Instance] | None:
        product = self._products.get(job.product)
        if product is None:
            self._handed_over.pop(job.id or 0, None)
            raise PermanentJobError(f"product {job.product!r} is no longer configured")
        if (handed_over := self._handed_over.pop(job.id or 0, None)) is not None:
            return product, handed_over
        async with self._database.reader() as session:
            instance = await instances.get_instance(
                session, product=job.product, instance_id=job.payload["instance_id"]
            )
        return (product, instance) if instance is not None else None

    async def provision(self, job: Job) -> Finished | None:
        loaded = await self._load(job)
        if loaded is None or loaded[1].status is not InstanceStatus.PROVISIONING:
            return None
        product, instance = loaded
        if not product.reaches_adapter(is_test=instance.is_test):
            return await self._finish_provisioning(
                job, product, instance, order=None, app_info=self.test_app_info(product)
            )
        order = await self._query_order(product, instance.order_id, instance.order_line_id)
        try:
            app_info = await product.adapter.provision(ProvisionRequest(instance=product.ref(instance), order=order))
        except Refused as refused:
            await self._fail_provisioning(product, instance, code=refused.refusal.value, reason=refused.message)
            return None
        if (problem := app_info_problem(app_info)) is not None:
            # An adapter bug that a retry would repeat: the job is dead, the instance failed (000005).
            raise PermanentJobError(f"the adapter's AppInfo breaks the marketplace's limits: {problem}")
        return await self._finish_provisioning(job, product, instance, order=order, app_info=app_info)

    async def provisioning_gave_up(self, session: AsyncSession, job: Job) -> None:
        """Its job is dead (retries spent): the instance becomes `failed`, answered 000005 until
        the marketplace's next newInstance for the order line tries again. In the transaction
        that marks the job dead: an instance left `provisioning` with no job would stay so."""
        self._handed_over.pop(job.id or 0, None)
        reason = f"provisioning gave up: {job.last_error or 'retries spent'}"
        await self._mark_failed(
            session, job.product, job.payload["instance_id"], code=ResultCode.INTERNAL_ERROR.value, reason=reason
        )

    def test_app_info(self, product: Product) -> AppInfo:
        """What MarketGate answers for a debug instance its adapter never sees."""
        return AppInfo(front_end_url=f"{self._public_url}/", memo=f"{product.config.name} (test instance)")

    async def _query_order(self, product: Product, order_id: str, order_line_id: str) -> Order | None:
        config = product.config
        if config.open_api_ak is None or config.open_api_sk is None:
            return None
        try:
            info = await self._order_queries.query(
                endpoint=config.open_api_endpoint,
                ak=config.open_api_ak.get_secret_value(),
                sk=config.open_api_sk.get_secret_value(),
                order_id=order_id,
                order_line_id=order_line_id,
            )
        except OrderQueryUnavailableError as exc:
            raise RetryLater(f"order query unavailable: {exc}") from exc
        except OrderQueryError as exc:
            raise RetryLater(f"order query failed: {exc}") from exc
        return order_from_info(info, order_line_id=order_line_id)

    async def _finish_provisioning(
        self, job: Job, product: Product, instance: Instance, *, order: Order | None, app_info: AppInfo
    ) -> Finished | None:
        """The instance becomes active, and its job done, in one transaction."""
        changes = {
            **(order_columns(order) if order is not None else {}),
            "app_info": self.stored_app_info(app_info),
            "failure_code": None,
            "failure_reason": None,
        }
        async with self._database.transaction() as session:
            activated = await self._leave_provisioning(
                session,
                product.slug,
                instance.instance_id,
                InstanceStatus.ACTIVE,
                changes=changes,
                activity="provisioned",
            )
            if not activated:
                return None
            successor_due = await jobs.finish_job(session, job=job, now=self._clock.now())
        log.info("instance_provisioned", product=product.slug, instance_id=instance.instance_id)
        return Finished(successor_due=successor_due)

    async def _fail_provisioning(self, product: Product, instance: Instance, *, code: str, reason: str) -> None:
        async with self._database.transaction() as session:
            await self._mark_failed(session, product.slug, instance.instance_id, code=code, reason=reason)

    async def _mark_failed(
        self, session: AsyncSession, product: str, instance_id: str, *, code: str, reason: str
    ) -> None:
        """The instance, if still provisioning, becomes `failed`, answered `code` with `reason`."""
        reason = reason[:512]
        failed = await self._leave_provisioning(
            session,
            product,
            instance_id,
            InstanceStatus.FAILED,
            changes={"failure_code": code, "failure_reason": reason},
            activity="provisioning refused",
            detail={"resultCode": code, "reason": reason},
        )
        if failed:
            log.warning("instance_refused", product=product, instance_id=instance_id, code=code)

    async def _leave_provisioning(
        self,
        session: AsyncSession,
        product: str,
        instance_id: str,
        status: InstanceStatus,
        *,
        changes: dict[str, Any],
        activity: str,
        detail: dict[str, Any] | None = None,
    ) -> bool:
        """The instance, if still provisioning, becomes `status`; False if something else moved it."""
        return await instances.change_status_if(
            session,
            product=product,
            instance_id=instance_id,
            expected=InstanceStatus.PROVISIONING,
            status=status,
            activity=activity,
            now=self._clock.now(),
            changes=changes,
            detail=detail,
        )

    def stored_app_info(self, app_info: AppInfo) -> dict[str, str]:
        """AppInfo as kept on the instance: the password only sealed."""
        fields = app_info_fields(app_info)
        if "password" in fields:
            fields["password"] = self._secret_box.seal(fields["password"], purpose=PASSWORD_PURPOSE)
        return fields

    def answered_app_info(self, stored: dict[str, Any] | None) -> dict[str, str] | None:
        """The stored AppInfo with its password opened, for queryInstance."""
        if not stored:
            return None
        fields = {name: str(value) for name, value in stored.items()}
        if "password" in fields:
            fields["password"] = self._secret_box.open(fields["password"], purpose=PASSWORD_PURPOSE)
        return fields

    async def renew(self, job: Job) -> None:
        loaded = await self._load(job)
        if loaded is None or loaded[1].status is InstanceStatus.RELEASED:
            return
        product, instance = loaded
        if product.reaches_adapter(is_test=instance.is_test):
            request = RenewRequest(
                instance=product.ref(instance),
                scene=job.payload["scene"],
                order_id=job.payload["order_id"],
                expire_time=datetime.fromisoformat(job.payload["expire_time"]),
                product_id=job.payload.get("product_id"),
            )
            await product.adapter.renew(request)

    async def set_status(self, job: Job) -> None:
        loaded = await self._load(job)
        if loaded is None or loaded[1].status not in LIVE_STATUSES:
            return
        product, instance = loaded
        if product.reaches_adapter(is_test=instance.is_test):
            # Level-triggered: the adapter is told the state the instance has now.
            frozen = instance.status is InstanceStatus.FROZEN
            await product.adapter.set_status(StatusRequest(instance=product.ref(instance), frozen=frozen))

    async def release(self, job: Job) -> None:
        loaded = await self._load(job)
        if loaded is None or loaded[1].status is not InstanceStatus.RELEASED:
            return
        product, instance = loaded
        if product.reaches_adapter(is_test=instance.is_test):
            await product.adapter.release(product.ref(instance))

    async def upgrade(self, job: Job) -> None:
        loaded = await self._load(job)
        if loaded is None or loaded[1].status is InstanceStatus.RELEASED:
            return
        product, instance = loaded
        if not product.reaches_adapter(is_test=instance.is_test):
            return
        order = await self._query_order(product, job.payload["order_id"], job.payload["order_line_id"])
        await product.adapter.upgrade(UpgradeRequest(instance=product.ref(instance), order=order))
        if order is not None:
            async with self._database.transaction() as session:
                current = await instances.get_instance_for_update(
                    session, product=product.slug, instance_id=instance.instance_id
                )
                if current is not None:
                    apply_order(current, order)
                    await instances.record_event(
                        session,
                        instance=current,
                        activity="upgraded",
                        now=self._clock.now(),
                        detail={"orderId": order.order_id, "skuCode": order.sku_code},
                    )


def order_from_info(info: OrderInfo, *, order_line_id: str) -> Order:
    """The contract's Order from the order query's answer, for one order line."""
    lines = [line for line in info.order_line if line.order_line_id == order_line_id] or info.order_line
    line = lines[0] if lines else None
    product = line.product_info[0] if line is not None and line.product_info else None
    buyer = info.buyer_info
    expire_time = None
    if line is not None and line.expire_time:
        try:
            expire_time = parse_marketplace_time(line.expire_time)
        except ValueError:
            log.warning("order_expire_time_unreadable", order_id=info.order_id)
    return Order(
        order_id=info.order_id,
        order_line_id=line.order_line_id if line is not None else order_line_id,
        order_type=info.order_type,
        charging_mode=line.charging_mode if line is not None else None,
        period_type=line.period_type if line is not None else None,
        period_number=line.period_number if line is not None else None,
        expire_time=expire_time,
        product_id=product.product_id if product is not None else None,
        sku_code=product.sku_code if product is not None else None,
        product_name=product.product_name if product is not None else None,
        linear_value=int(product.linear_value) if product is not None and product.linear_value is not None else None,
        buyer=Buyer(
            customer_id=buyer.customer_id,
            customer_name=buyer.customer_name,
            customer_real_name=buyer.customer_real_name,
            customer_type=buyer.customer_type,
            user_id=buyer.user_id,
            user_name=buyer.user_name,
            mobile_phone=buyer.mobile_phone,
            email=buyer.email,
        )
        if buyer is not None
        else Buyer(),
        extend_params={
            param.name: param.value for param in (line.extend_params if line else []) if param.value is not None
        },
    )


def apply_order(instance: Instance, order: Order) -> None:
    """Keep what the order query said on the instance."""
    for name, value in order_columns(order).items():
        setattr(instance, name, value)


def order_columns(order: Order) -> dict[str, Any]:
    """The instance's columns that keep what the order query said (buyer contact details left out)."""
    columns: dict[str, Any] = {
        "sku_code": order.sku_code,
        "product_id": order.product_id,
        "linear_value": order.linear_value,
        "charging_mode": order.charging_mode,
    }
    if order.expire_time is not None:
        columns["expire_time"] = order.expire_time
    columns["order_details"] = {
        "orderId": order.order_id,
        "orderLineId": order.order_line_id,
        "orderType": order.order_type,
        "periodType": order.period_type,
        "periodNumber": order.period_number,
        "productName": order.product_name,
        "customerId": order.buyer.customer_id,
        "customerName": order.buyer.customer_name,
    }
    return columns
