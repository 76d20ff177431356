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

The factory is called per product as `factory(settings, context)`, where `settings` is the
product's `[products.<slug>.adapter_settings]` table; it raises `AdapterConfigError` for bad
settings, which stops start-up with a message naming the product. It may be called more than
once in a process: `marketgate serve` first checks every product (the adapter is made, then
closed with `aclose` unused, on an event loop of its own), then serves with a new one. So a
factory checks its settings, opens no connection and starts nothing; connections and tasks
begin with the first call that needs them.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

CONTRACT_VERSION = 4
"""2 added `Adapter.on_directory_event` (the Kit syncs); an adapter without it is not sent events.
3 added `Adapter.on_login` and `Adapter.on_session_end` (SSO free login) and `AdapterContext.login_tokens`;
an adapter without `on_login` cannot take SSO logins (members see an error page), one without
`on_session_end` is not told when sessions end.
3 also added the directory event `member_roles.changed` (whose effective product roles changed: a
tenant admin's grant in the admin API, or an authSync; an adapter ignores event types it does not
know) and the optional `Adapter.product_roles`.
4 added `AdapterContext.config_dir`, the folder relative paths in adapter settings are read from."""


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
class SsoMember:
    """A buyer enterprise's member, logged in through SSO free login (contract 3).

    `role` is the marketplace role the buyer gave the member for the product: "admin" or
    "user"; the product maps it onto its own permissions. `instance_id` is the tenant's
    instance as tenantSync named it (empty for the marketplace's debug data).
    """

    product: str
    tenant_id: str
    is_test: bool
    user_name: str
    name: str
    role: str
    org_code: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """A member has just logged in; `Adapter.on_login` says where their browser goes.

    `login_token` is single use and expires at `expires_at` (about a minute): the product
    redeems it once, from its own server, either at `redeem_url` (POST, see the README) or,
    for an adapter running inside MarketGate, through `AdapterContext.login_tokens`. It
    proves nothing after redemption. `next_url` is where the member asked to go, already
    checked against the product's `sso_redirect_allow`, or None.
    """

    member: SsoMember
    session_id: str
    login_token: str = field(repr=False)
    expires_at: datetime
    redeem_url: str
    next_url: str | None = None


@dataclass(frozen=True, slots=True)
class LoginGrant:
    """What redeeming a login token gives the product: who logged in, and which session it is."""

    member: SsoMember
    session_id: str
    next_url: str | None = None


class SessionEndReason(enum.StrEnum):
    LOGOUT = "logout"
    REVOKED = "revoked"
    """The buyer revoked or disabled the member's authorization, or changed it, or unbound the tenant."""
    REFRESH_FAILED = "refresh_failed"
    """The identity domain refused to renew the member's tokens."""


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """A MarketGate session ended; the product should end what it started from it."""

    member: SsoMember
    session_id: str
    reason: SessionEndReason


class LoginTokens(Protocol):
    """Redeems login tokens for an adapter running inside MarketGate (contract 3)."""

    async def redeem(self, login_token: str) -> LoginGrant | None:
        """The grant behind a live, unused token of this product; None otherwise (it is used up)."""
        ...


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What MarketGate gives an adapter when it creates it.

    `login_tokens` (contract 3) redeems SSO login tokens in process; None where MarketGate
    does not serve SSO (`marketgate check-config`). `config_dir` (contract 4) is the folder of
    the products file: a relative path in the adapter's settings means a file beside it, as
    MarketGate's own `<field>_file` keys do (the working folder when there is no file).
    """

    product: str
    product_name: str
    public_url: str
    database_url: str
    data_dir: str
    login_tokens: LoginTokens | None = None
    config_dir: str = "."


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
    The marketplace's other limits: `admin_url` 512, `user_name` and `password` 128, `memo` 1024
    characters. An AppInfo beyond them is not stored: the provisioning fails at once (its job
    is not retried; the marketplace is answered `000005`), and a reconcile is refused.
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
    MEMBER_ROLES_CHANGED = "member_roles.changed"
    """Product roles: a tenant admin granted or revoked roles in the admin API (contract 3)."""


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
    - member_roles.changed: `cause` (what changed them: the admin API mutation,
      `memberRolesGrant` or `memberRolesRevoke`, or `authSync`, the marketplace authorizing,
      revoking, enabling, disabling, re-roling or moving members) and `members` (at most 1000 an
      event), each with `user_name` and `roles`: the member's effective product roles now, all
      of them (empty: none). Only members whose effective roles changed are listed. An authSync's
      comes after its members.* event. tenant.unbound sends none: every role is gone with the
      tenant, grants included (a later binding starts without them).

    Events of types an adapter does not know (added by later contracts) are to be ignored.
    """

    event_id: str
    type: DirectoryEventType
    product: str
    tenant_id: str
    is_test: bool
    data: Mapping[str, Any]


@runtime_checkable
class Adapter(Protocol):
    """One product's side of the marketplace's production calls.

    Optional (contract 3): `product_roles`, a sequence of role names the product declares
    beside the products file's `roles` (read once, at start-up). Tenant admins grant them to
    members and departments; `member_roles.changed` events report the effective roles.
    """

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

    async def on_login(self, request: LoginRequest) -> str:
        """Where to send the browser of a member SSO just logged in (contract 3): an absolute
        http(s) URL into the product that carries `request.login_token`. Answer within a few
        seconds; raise `AdapterError` to refuse (the member sees an error page, no session starts)."""
        ...

    async def on_session_end(self, end: SessionEnd) -> None:
        """A MarketGate session ended (logout, revocation, failed renewal): end the product's
        own session started from it (contract 3). Best effort: failures are logged, not retried."""
        ...

    async def aclose(self) -> None:
        """Release the adapter's resources at shutdown."""
        ...


class AdapterFactory(Protocol):
    def __call__(self, settings: Mapping[str, Any], context: AdapterContext) -> Adapter: ...
