"""What the API needs from its host to ask an adapter about an instance again.

The API cannot reach adapters itself (it imports `tenants` only); the gateway implements
`InstanceReconciler` and lends it through `ApiHost`.
"""

from collections.abc import Mapping
from typing import Any, Protocol


class ReconcileError(Exception):
    """The adapter failed or did not answer in time; nothing was changed."""


class InstanceReconciler(Protocol):
    async def reconcile_app_info(
        self, *, product: str, instance_id: str, is_test: bool, stored_app_info: Mapping[str, Any] | None
    ) -> dict[str, str] | None:
        """Ask the product's adapter how the instance is reached now.

        Returns the access information to store (secrets already sealed) when it differs
        from `stored_app_info`, None when there is nothing to repair; raises `ReconcileError`
        when the adapter fails. Must not touch the database.
        """
        ...
