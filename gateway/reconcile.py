"""The gateway's side of the admin API's `instanceReconcile`: ask the adapter again.

It implements `graphql_api.reconcile.InstanceReconciler`: it calls the product adapter's
`describe()` and says what to store, sealed, when that differs from the stored record.
The API writes the change; this module never touches the database.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from gateway.adapters.contract import InstanceRef
from gateway.products import Product, app_info_fields, app_info_problem
from gateway.provisioning import InstanceJobs
from graphql_api.reconcile import ReconcileError
from tenants.secretbox import SecretBoxError

log = structlog.get_logger(__name__)


class AdapterReconciler:
    """Asks a product's adapter to `describe()` an instance; implements `InstanceReconciler`."""

    def __init__(
        self, *, products: Mapping[str, Product], instance_jobs: InstanceJobs, timeout_s: float = 10.0
    ) -> None:
        self._products = products
        self._instance_jobs = instance_jobs
        self._timeout_s = timeout_s

    async def reconcile_app_info(
        self, *, product: str, instance_id: str, is_test: bool, stored_app_info: Mapping[str, Any] | None
    ) -> dict[str, str] | None:
        """What to store for the instance now, sealed; None when the adapter has nothing newer."""
        configured = self._products.get(product)
        if configured is None:
            raise ReconcileError(f"product {product!r} is not configured")
        if not configured.reaches_adapter(is_test=is_test):
            return None  # debug instances are answered from MarketGate's own records
        ref = InstanceRef(product=product, instance_id=instance_id, is_test=is_test)
        try:
            described = await asyncio.wait_for(configured.adapter.describe(ref), timeout=self._timeout_s)
        except Exception as exc:  # an adapter may fail in any way; the operator is told ADAPTER_FAILED
            log.warning("reconcile_describe_failed", product=product, instance_id=instance_id, error=type(exc).__name__)
            raise ReconcileError("the adapter did not describe the instance") from exc
        if described is None:
            return None
        if (problem := app_info_problem(described)) is not None:
            log.warning("reconcile_description_refused", product=product, instance_id=instance_id, problem=problem)
            raise ReconcileError(f"the adapter's AppInfo breaks the marketplace's limits: {problem}")
        try:
            current = self._instance_jobs.answered_app_info(dict(stored_app_info) if stored_app_info else None)
        except SecretBoxError:
            current = None  # an unreadable stored password is exactly what needs repair
        if app_info_fields(described) == current:
            return None
        return self._instance_jobs.stored_app_info(described)
