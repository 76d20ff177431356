"""The adapter contract: everything an adapter author imports, and nothing else.

An adapter connects one product to MarketGate. MarketGate verifies and records every
marketplace call, then tells the adapter what to do through the methods of `Adapter`.
Adapters receive plain, frozen data (never database rows) and must be idempotent: a call
is delivered at least once, so the same request may arrive again after a crash or a retry.

Versioning: `CONTRACT_VERSION` grows when a method or field is added; an adapter states the
version it was written for in `contract_version`, and MarketGate refuses to start an adapter
written for a newer contract than its own.

Discovery: an adapter is a factory registered in the `marketgate.adapters` entry-point group:

    [project.entry-points."marketgate.adapters"]
    my-product = "my_package.adapter:MyAdapter"

The factory is called once per product as `factory(settings, context)`, where `settings` is the
product's `[products.<slug>.adapter_settings]` table; it raises `AdapterConfigError` for bad
settings, which stops start-up with a message naming the product.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

CONTRACT_VERSION = 2
"""2 added `Adapter.on_directory_event` (the Kit syncs); an adapter without it is not sent events."""


class AdapterError(Exception):
    """Root of the errors an adapter raises on purpose."""

    code = "adapter_error"


class AdapterConfigError(AdapterError):
    """The adapter's settings are unusable; start-up stops with this message."""

    code = "adapter_config"


class RetryLater(AdapterError):  # noqa: N818 - reads as the instruction it is
    """A passing failure: MarketGate retries the same request later, with backoff."""

    code = "retry_later"


class Refusal(enum.StrEnum):
    """Refusals of a new purchase that the marketplace understands (its result codes)."""

    NO_RESOURCE = "000100"
    MOBILE_TAKEN = "000101"
    EMAIL_TAKEN = "000102"
    ALREADY_PURCHASED = "000103"
    SERVICE_ERROR = "000104"
    ALREADY_SUBSCRIBED = "000105"
    SOLD_OUT = "000106"
    EMAIL_DOMAIN_TAKEN = "000107"


class Refused(AdapterError):  # noqa: N818 - reads as the outcome it is
    """The adapter refuses a new purchase for good; the buyer's order fails with `refusal`."""

    code = "refused"

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What MarketGate gives an adapter when it creates it."""

    product: str
    product_name: str
    public_url: str
    database_url: str
    data_dir: str


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """Which instance a request is about. `is_test` marks the marketplace's debug calls."""

    product: str
    instance_id: str
    is_test: bool


@dataclass(frozen=True, slots=True)
class Buyer:
    customer_id: str | None = None
    customer_name: str | None = None
    customer_real_name: str | None = None
    customer_type: int | None = None
    user_id: str | None = None
    user_name: str | None = None
    mobile_phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """What the marketplace's order query says about the order line an instance serves."""

    order_id: str
    order_line_id: str
    order_type: str | None = None
    charging_mode: str | None = None
    period_type: str | None = None
    period_number: int | None = None
    expire_time: datetime | None = None
    product_id: str | None = None
    sku_code: str | None = None
    product_name: str | None = None
    linear_value: int | None = None
    buyer: Buyer = field(default_factory=Buyer)
    extend_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppInfo:
    """How the buyer reaches the instance; returned to the marketplace by queryInstance.

    `front_end_url` is required by the marketplace (at most 512 characters); `password` is
    the initial administrator password, shown to the buyer and never logged by MarketGate.
    """

    front_end_url: str
    admin_url: str | None = None
    user_name: str | None = None
    password: str | None = field(default=None, repr=False)
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    instance: InstanceRef
    order: Order | None


@dataclass(frozen=True, slots=True)
class RenewRequest:
    instance: InstanceRef
    scene: str
    order_id: str
    expire_time: datetime
    product_id: str | None


@dataclass(frozen=True, slots=True)
class StatusRequest:
    instance: InstanceRef
    frozen: bool


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    instance: InstanceRef
    order: Order | None


@dataclass(frozen=True, slots=True)
class ChangeCheckRequest:
    """A buyer wants `sku_code`/`linear_value` at renewal: may the instance change to it?"""

    instance: InstanceRef
    product_id: str
    sku_code: str
    product_name: str
    linear_value: int | None


@dataclass(frozen=True, slots=True)
class ChangeDecision:
    accepted: bool
    reason: str = ""


class DirectoryEventType(enum.StrEnum):
    """What changed in a buyer enterprise's directory, as the joint-operation Kit syncs report it."""

    TENANT_BOUND = "tenant.bound"
    TENANT_CHANGED = "tenant.changed"
    TENANT_UNBOUND = "tenant.unbound"
    APP_CREDENTIALS_CHANGED = "app.credentials_changed"
    DEPARTMENTS_CHANGED = "departments.changed"
    MEMBERS_AUTHORIZED = "members.authorized"
    MEMBERS_CHANGED = "members.changed"
    MEMBERS_REVOKED = "members.revoked"


@dataclass(frozen=True, slots=True)
class DirectoryEvent:
    """One stored change of a tenant's directory (tenant, app credentials, departments, members).

    Events of one (product, tenant) arrive one at a time, in the order the changes were
    stored, at least once: `event_id` is the same on every delivery of one event, so an
    adapter can skip one it has applied. `is_test` marks the marketplace's debug data
    (testFlag 1), kept apart from the tenant's real data. `data` is plain JSON data, by type:

    - tenant.bound / tenant.changed: `tenant_code`, `name`, `domain_name`, `instance_id`, `order_id`
    - tenant.unbound: `tenant_code`, `instance_id`; everything known of the tenant is gone
    - app.credentials_changed: `app_id`, `deleted`, and `client_id` unless deleted (never the secret)
    - departments.changed: `upserted` (list of `org_code`, `org_name`, `parent_code`),
      `removed` (list of org codes) and `snapshot` (true for a full allOrgSync: departments not
      listed are gone; members keep their now dangling `org_code`)
    - members.authorized / members.changed: `app_id` and `members`, each with `user_name`,
      `name`, `org_code`, `role` ("admin" or "user"), `enabled`, and `position`,
      `employee_code`, `employee_type`, `mobile`, `email`, `work_place`, `entry_date`,
      `extension` (each possibly null)
    - members.revoked: `app_id` and `members`, each with `user_name` and `removed` (true when
      the member was also deleted from the enterprise)
    """

    event_id: str
    type: DirectoryEventType
    product: str
    tenant_id: str
    is_test: bool
    data: Mapping[str, Any]


@runtime_checkable
class Adapter(Protocol):
    """One product's side of the marketplace's production calls."""

    contract_version: ClassVar[int]

    @property
    def handles_test_calls(self) -> bool:
        """False: MarketGate answers the marketplace's debug calls (testFlag 1) from its own records."""
        ...

    async def provision(self, request: ProvisionRequest) -> AppInfo:
        """Create the instance (idempotent per instance id); raise `Refused` to refuse it."""
        ...

    async def renew(self, request: RenewRequest) -> None:
        """Record the instance's new expiry (renewal, trial to formal, cancelled renewal)."""
        ...

    async def set_status(self, request: StatusRequest) -> None:
        """Freeze (keep the data, stop service) or unfreeze the instance."""
        ...

    async def release(self, instance: InstanceRef) -> None:
        """Delete the instance and its data."""
        ...

    async def upgrade(self, request: UpgradeRequest) -> None:
        """Apply the new spec of an upgrade order."""
        ...

    async def check_change(self, request: ChangeCheckRequest) -> ChangeDecision:
        """Decide, within the answer deadline, whether a change at renewal is acceptable."""
        ...

    async def describe(self, instance: InstanceRef) -> AppInfo | None:
        """Current access information of the instance (None: keep what provision returned).

        Asked when an operator reconciles an instance (admin API `instanceReconcile`); the
        answer repairs MarketGate's record, from which queryInstance is answered.
        """
        ...

    async def on_directory_event(self, event: DirectoryEvent) -> None:
        """Apply one change of a tenant's directory (contract 2). Idempotent per `event_id`;
        raise `RetryLater` to have the same event delivered again later."""
        ...

    async def aclose(self) -> None:
        """Release the adapter's resources at shutdown."""
        ...


class AdapterFactory(Protocol):
    def __call__(self, settings: Mapping[str, Any], context: AdapterContext) -> Adapter: ...
