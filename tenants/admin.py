"""Who is asking the admin API, operator tokens, the audit log, and paging of admin lists.

`Caller` is computed once per request and handed to every service that reads or changes
tenant data; the services filter by it in SQL, so a resolver cannot forget it.
"""

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, false, func
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.admin_models import ApiToken, AuditEntry, TokenScope
from tenants.errors import TenantsError

TOKEN_PREFIX = "mgt_"  # noqa: S105 (a marker, not a secret)
"""Marks MarketGate operator tokens, so secret scanners can recognise a leaked one."""
_TOKEN_PATTERN = re.compile(r"^mgt_[A-Za-z0-9_-]{43}$")
_SLUG_PATTERN = re.compile(r"^[a-z0-9-]{1,48}$")
MAX_PAGE_SIZE = 100


class AccessDeniedError(TenantsError):
    """The caller may not do this (a read token asked to change something, say)."""

    code = "forbidden"


class InvalidTokenRequestError(TenantsError):
    """A token cannot be created as asked (empty name, no products, a malformed slug)."""

    code = "invalid_token_request"


class CallerKind(enum.StrEnum):
    """What kind of caller is asking."""

    ANONYMOUS = "anonymous"
    OPERATOR = "operator"
    """The vendor's operator, with an API token limited to some products."""
    SYSTEM = "system"
    """The `marketgate` command run on the server: manages tokens, never served over HTTP."""
    TENANT_ADMIN = "tenant_admin"
    """A buyer enterprise's member whose marketplace role is `admin`: one product, one tenant."""
    MEMBER = "member"
    """Any other member of a buyer enterprise, logged in through SSO: reads only themselves."""


@dataclass(frozen=True, slots=True)
class TenantScope:
    """One buyer enterprise as one product knows it; the marketplace's debug data (`is_test`) apart."""

    product: str
    tenant_id: str
    is_test: bool = False


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking and from where; the scope every admin service filters by.

    `products` bounds everything the caller may reach. Operations data (instances, the call
    log, jobs) is only ever shown to operators: see `operations_products`. A caller with a
    `tenant_id` (a tenant admin or member) is further held to that one tenant, with `is_test`,
    and `user_name` names the member.
    """

    kind: CallerKind
    actor: str
    products: frozenset[str] = frozenset()
    can_write: bool = False
    token_id: int | None = None
    tenant_id: str | None = None
    client_address: str | None = None
    request_id: str | None = None
    is_test: bool = False
    user_name: str | None = None

    @classmethod
    def anonymous(cls) -> "Caller":
        """A caller without credentials: reaches nothing."""
        return cls(kind=CallerKind.ANONYMOUS, actor="anonymous")

    @classmethod
    def system(cls, actor: str = "marketgate-cli") -> "Caller":
        """The `marketgate` command on the server."""
        return cls(kind=CallerKind.SYSTEM, actor=actor, can_write=True)

    @classmethod
    def member_of(cls, scope: TenantScope, *, user_name: str, is_admin: bool) -> "Caller":
        """A logged-in member of `scope`: its tenant admin (may change roles) or an ordinary member."""
        return cls(
            kind=CallerKind.TENANT_ADMIN if is_admin else CallerKind.MEMBER,
            actor=f"member:{scope.product}:{scope.tenant_id}{':test' if scope.is_test else ''}:{user_name}",
            products=frozenset({scope.product}),
            can_write=is_admin,
            tenant_id=scope.tenant_id,
            is_test=scope.is_test,
            user_name=user_name,
        )

    @property
    def is_authenticated(self) -> bool:
        """Whether the caller presented valid credentials (or is the command)."""
        return self.kind is not CallerKind.ANONYMOUS

    @property
    def is_operator(self) -> bool:
        """Whether the caller is one of the vendor's operators."""
        return self.kind is CallerKind.OPERATOR

    @property
    def is_tenant_admin(self) -> bool:
        """Whether the caller is a tenant admin (held to one product and one tenant)."""
        return self.kind is CallerKind.TENANT_ADMIN

    @property
    def own_tenant(self) -> TenantScope | None:
        """The one tenant a tenant admin or member is held to; None for everyone else."""
        if self.kind not in (CallerKind.TENANT_ADMIN, CallerKind.MEMBER) or self.tenant_id is None:
            return None
        if len(self.products) != 1:
            return None
        [product] = self.products
        return TenantScope(product, self.tenant_id, self.is_test)

    def reaches_tenant(self, scope: TenantScope) -> bool:
        """Whether the caller may read `scope`'s organization: an operator of its product, or its admin."""
        if self.kind is CallerKind.OPERATOR:
            return scope.product in self.products
        return self.kind is CallerKind.TENANT_ADMIN and self.own_tenant == scope

    def reaches_member(self, scope: TenantScope, user_name: str) -> bool:
        """Whether the caller may read the member `user_name` of `scope`: their tenant's reach, or themselves."""
        if self.reaches_tenant(scope):
            return True
        return self.kind is CallerKind.MEMBER and self.own_tenant == scope and self.user_name == user_name

    @property
    def operations_products(self) -> frozenset[str]:
        """The products whose instances, call log and jobs this caller may read: an operator's own."""
        return self.products if self.kind is CallerKind.OPERATOR else frozenset()

    def with_origin(self, *, client_address: str | None, request_id: str | None) -> "Caller":
        """The same caller, marked with where the request came from (for the audit log)."""
        return replace(self, client_address=client_address, request_id=request_id)

    def require_write(self) -> None:
        """Raise `AccessDeniedError` unless the caller may change things."""
        if not (self.is_authenticated and self.can_write):
            raise AccessDeniedError("a write token is required")


def products_clause(column: Any, products: frozenset[str]) -> ColumnElement[bool]:
    """`column IN products`, and plain false when there are none (nothing matches)."""
    return col(column).in_(sorted(products)) if products else false()


def tenants_clause(caller: Caller, model: Any) -> ColumnElement[bool]:
    """Rows of `model` (with product, tenant_id, is_test) of the organizations the caller may read.

    An operator reads every tenant of their products, a tenant admin their own tenant, no one
    else anything: an ordinary member reaches only their own row (`members_clause`).
    """
    own = caller.own_tenant
    if caller.kind is CallerKind.OPERATOR:
        return products_clause(model.product, caller.products)
    if caller.kind is CallerKind.TENANT_ADMIN and own is not None:
        return _tenant_is(model, own)
    return false()


def members_clause(caller: Caller, model: Any) -> ColumnElement[bool]:
    """Rows of `model` (with a user_name) the caller may read: `tenants_clause`, and a member's own."""
    own = caller.own_tenant
    if caller.kind is CallerKind.MEMBER and own is not None and caller.user_name is not None:
        return and_(_tenant_is(model, own), col(model.user_name) == caller.user_name)
    return tenants_clause(caller, model)


def _tenant_is(model: Any, scope: TenantScope) -> ColumnElement[bool]:
    return and_(
        col(model.product) == scope.product,
        col(model.tenant_id) == scope.tenant_id,
        col(model.is_test) == scope.is_test,
    )


# --- paging -------------------------------------------------------------------------------

RowT = TypeVar("RowT", bound=SQLModel)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A forward page of a list shown newest first: `first` rows after the row with id `after`."""

    first: int = 50
    after: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.first <= MAX_PAGE_SIZE:
            raise ValueError(f"page size must be between 0 and {MAX_PAGE_SIZE}")


@dataclass(frozen=True, slots=True)
class Page(Generic[RowT]):
    """One page of rows, and whether more follow."""

    items: list[RowT] = field(default_factory=list)
    has_next: bool = False


async def fetch_page(
    session: AsyncSession, model: type[RowT], *, clauses: Sequence[ColumnElement[bool]], page: PageRequest
) -> Page[RowT]:
    """Rows of `model` matching `clauses`, newest (highest id) first, one page of them."""
    identity = col(model.id)  # type: ignore[attr-defined]
    query = select(model).where(*clauses)
    if page.after is not None:
        query = query.where(identity < page.after)
    rows = list((await session.exec(query.order_by(identity.desc()).limit(page.first + 1))).all())
    return Page(items=rows[: page.first], has_next=len(rows) > page.first)


async def count_rows(session: AsyncSession, model: type[SQLModel], *, clauses: Sequence[ColumnElement[bool]]) -> int:
    """How many rows of `model` match `clauses`."""
    query = select(func.count()).select_from(model).where(*clauses)
    return int((await session.exec(query)).one())


# --- operator tokens ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: `secret` is shown to its owner once and kept nowhere."""

    token: ApiToken
    secret: str = field(repr=False)


def hash_token(secret: str) -> str:
    """What is stored of a token: the SHA-256 of its text, hex encoded.

    The token carries 256 random bits, so a fast hash is enough: there is nothing to guess.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _require_system(caller: Caller) -> None:
    if caller.kind is not CallerKind.SYSTEM:
        raise AccessDeniedError("tokens are managed with the marketgate command only")


async def create_api_token(
    session: AsyncSession,
    *,
    caller: Caller,
    name: str,
    products: Sequence[str],
    scope: TokenScope,
    now: datetime,
) -> IssuedToken:
    """Issue an operator token for `products`; the audit log records it (without the secret)."""
    _require_system(caller)
    name = name.strip()
    wanted = sorted(set(products))
    if not 1 <= len(name) <= 64:
        raise InvalidTokenRequestError("the name must have 1 to 64 characters")
    if not wanted:
        raise InvalidTokenRequestError("a token needs at least one product")
    if bad := [slug for slug in wanted if not _SLUG_PATTERN.match(slug)]:
        raise InvalidTokenRequestError(f"not a product slug: {', '.join(bad)}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, products=wanted, scope=scope, token_hash=hash_token(secret), created_at=now)
    session.add(token)
    await session.flush()
    await create_audit_entry(
        session,
        caller=caller,
        action="apiTokenCreate",
        product=None,
        target=f"api_token:{token.id}",
        detail={"name": name, "products": wanted, "scope": scope.value},
        now=now,
    )
    return IssuedToken(token=token, secret=secret)


async def list_api_tokens(session: AsyncSession, *, caller: Caller) -> Sequence[ApiToken]:
    """Every token, oldest first, revoked ones included."""
    _require_system(caller)
    return list((await session.exec(select(ApiToken).order_by(col(ApiToken.id)))).all())


async def revoke_api_token(session: AsyncSession, *, caller: Caller, token_id: int, now: datetime) -> ApiToken | None:
    """Revoke a token at once (idempotent: revoking it again changes nothing). None: no such token."""
    _require_system(caller)
    token = (await session.exec(select(ApiToken).where(ApiToken.id == token_id).with_for_update())).first()
    if token is None or token.revoked_at is not None:
        return token
    token.revoked_at = now
    session.add(token)
    await create_audit_entry(
        session,
        caller=caller,
        action="apiTokenRevoke",
        product=None,
        target=f"api_token:{token.id}",
        detail={"name": token.name},
        now=now,
    )
    return token


async def authenticate_token(session: AsyncSession, *, presented: str) -> Caller | None:
    """The operator behind a presented bearer token; None for an unknown, revoked or malformed one.

    The lookup is by the token's hash, so its timing tells nothing about how much of a guess
    was right; the final comparison of the hashes is constant-time all the same.
    """
    candidate = hash_token(presented)
    if not _TOKEN_PATTERN.match(presented):
        return None
    token = (await session.exec(select(ApiToken).where(ApiToken.token_hash == candidate))).first()
    if token is None or token.revoked_at is not None or not hmac.compare_digest(token.token_hash, candidate):
        return None
    return Caller(
        kind=CallerKind.OPERATOR,
        actor=f"token:{token.id}:{token.name}",
        products=frozenset(token.products),
        can_write=token.scope is TokenScope.WRITE,
        token_id=token.id,
    )


# --- audit log ----------------------------------------------------------------------------


async def create_audit_entry(
    session: AsyncSession,
    *,
    caller: Caller,
    action: str,
    product: str | None,
    target: str | None,
    detail: dict[str, Any] | None,
    now: datetime,
    tenant_id: str | None = None,
    is_test: bool | None = None,
) -> AuditEntry:
    """Record an admin action in the caller's transaction: it is kept if and only if the action is.

    `is_test` marks an action on the marketplace's debug data (a testFlag 1 tenant or instance);
    by default, that of the caller's own tenant (a tenant admin's), else False.
    """
    entry = AuditEntry(
        actor_kind=caller.kind.value,
        actor=caller.actor[:128],
        action=action,
        product=product,
        tenant_id=tenant_id if tenant_id is not None else caller.tenant_id,
        target=target,
        is_test=is_test if is_test is not None else caller.is_test,
        detail=detail,
        client_address=caller.client_address[:64] if caller.client_address else None,
        request_id=caller.request_id,
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit entries to list; None means any."""

    products: frozenset[str] | None = None
    actions: frozenset[str] | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    is_test: bool | None = None
    """Actions on the marketplace's debug data only (True), or none of them (False)."""


def _audit_clauses(caller: Caller, wanted: AuditFilter) -> list[ColumnElement[bool]]:
    # Entries without a product (token management) are shown to no one through the services.
    clauses = [products_clause(AuditEntry.product, caller.products)]
    if caller.tenant_id is not None:
        # A tenant's debug data (testFlag 1) is another tenant, with its own admins and audit log.
        clauses += [col(AuditEntry.tenant_id) == caller.tenant_id, col(AuditEntry.is_test) == caller.is_test]
    if wanted.is_test is not None:
        clauses.append(col(AuditEntry.is_test) == wanted.is_test)
    if wanted.products is not None:
        clauses.append(products_clause(AuditEntry.product, wanted.products))
    if wanted.actions is not None:
        clauses.append(col(AuditEntry.action).in_(sorted(wanted.actions)))
    if wanted.actor is not None:
        clauses.append(col(AuditEntry.actor) == wanted.actor)
    if wanted.since is not None:
        clauses.append(col(AuditEntry.created_at) >= wanted.since)
    if wanted.until is not None:
        clauses.append(col(AuditEntry.created_at) < wanted.until)
    return clauses


async def list_audit_entries(
    session: AsyncSession, *, caller: Caller, wanted: AuditFilter, page: PageRequest
) -> Page[AuditEntry]:
    """Audit entries of the caller's products (and tenant, if held to one), newest first."""
    return await fetch_page(session, AuditEntry, clauses=_audit_clauses(caller, wanted), page=page)


async def count_audit_entries(session: AsyncSession, *, caller: Caller, wanted: AuditFilter) -> int:
    """How many audit entries the caller may see match `wanted`."""
    return await count_rows(session, AuditEntry, clauses=_audit_clauses(caller, wanted))


async def get_audit_entry(session: AsyncSession, *, caller: Caller, entry_id: int) -> AuditEntry | None:
    """One audit entry by its id, if the caller may see it."""
    clauses = [*_audit_clauses(caller, AuditFilter()), col(AuditEntry.id) == entry_id]
    return (await session.exec(select(AuditEntry).where(*clauses))).first()
