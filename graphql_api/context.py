"""The per-request context: who is asking (computed once), the host's services, the loaders."""

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from graphql_api.errors import CSRF_FAILED, UNAUTHENTICATED
from graphql_api.loaders import Loaders, make_loaders
from graphql_api.principals import CSRF_HEADER, SESSION_COOKIE, MemberPrincipal, MemberSessions
from graphql_api.reconcile import InstanceReconciler
from tenants.admin import TOKEN_PREFIX, Caller, TenantScope, authenticate_token
from tenants.database import Database
from tenants.directory_models import MemberRole
from tenants.organization import get_member_access
from tenants.roles import RoleCatalog


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """A product as the API shows it: never its keys."""

    slug: str
    name: str
    adapter: str
    roles: RoleCatalog = field(default_factory=RoleCatalog)
    """The product roles tenant admins grant (the products file's and the adapter's)."""


@dataclass(frozen=True, slots=True)
class ApiHost:
    """What the host application lends the API; it puts one on `app.state` at start-up."""

    database: Database
    products: Sequence[ProductInfo]
    reconciler: InstanceReconciler
    now: Callable[[], datetime]
    member_sessions: MemberSessions | None = None
    """Who stands behind a session cookie or a member's bearer token (SSO); None: members cannot log in."""
    jobs_created: Callable[[], None] | None = None
    """Called after a mutation stored outbox jobs, to wake the worker (else it finds them by polling)."""

    @property
    def catalogs(self) -> Mapping[str, RoleCatalog]:
        return {product.slug: product.roles for product in self.products}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why credentials a request presented were refused: an error code and a message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    response: Response
    host: ApiHost
    caller: Caller
    rejection: Rejection | None
    """Credentials were presented and refused (unknown, revoked, malformed, or no CSRF token)."""
    loaders: Loaders

    @property
    def credentials_rejected(self) -> bool:
        return self.rejection is not None


_UNKNOWN = Rejection(UNAUTHENTICATED, "the bearer token is unknown or revoked")
_NO_SESSION = Rejection(UNAUTHENTICATED, "the session is unknown or over: log in again")
_NOT_AUTHORIZED = Rejection(UNAUTHENTICATED, "the member is no longer authorized for the product")
_CSRF = Rejection(CSRF_FAILED, f"a session cookie needs the {CSRF_HEADER} header the session gave")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


async def _member_caller(host: ApiHost, principal: MemberPrincipal) -> Caller | None:
    """The caller a logged-in member is now: the marketplace role is read again, not trusted from
    the session (a revoked or changed authorization takes effect at once)."""
    if principal.product not in {product.slug for product in host.products}:
        return None
    scope = TenantScope(principal.product, principal.tenant_id, principal.is_test)
    async with host.database.reader() as session:
        role = await get_member_access(session, scope=scope, user_name=principal.user_name)
    if role is None:
        return None
    return Caller.member_of(scope, user_name=principal.user_name, is_admin=role is MemberRole.ADMIN)


async def _authenticate(request: Request, host: ApiHost) -> tuple[Caller, Rejection | None]:
    presented = _bearer(request)
    sessions = host.member_sessions
    if presented is not None:
        if presented.startswith(TOKEN_PREFIX):
            async with host.database.reader() as session:
                found = await authenticate_token(session, presented=presented)
            return (found, None) if found is not None else (Caller.anonymous(), _UNKNOWN)
        principal = await sessions.principal_for_bearer(presented) if sessions is not None and presented else None
        if principal is None:
            return Caller.anonymous(), _UNKNOWN
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return Caller.anonymous(), None
        principal = await sessions.principal_for_session(cookie) if sessions is not None else None
        if principal is None:
            return Caller.anonymous(), _NO_SESSION
        # A browser sends the cookie with any request, a forged one included; only the page the
        # session was given to knows the CSRF token.
        echoed = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(echoed.encode("utf-8"), principal.csrf_token.encode("utf-8")):
            return Caller.anonymous(), _CSRF
    caller = await _member_caller(host, principal)
    return (caller, None) if caller is not None else (Caller.anonymous(), _NOT_AUTHORIZED)


async def authenticate(request: Request, host: ApiHost) -> tuple[Caller, Rejection | None]:
    """The caller behind a request, and why presented credentials were refused (None: they were not).

    Operators present `Authorization: Bearer mgt_…`; members a short-lived bearer token
    minted from their SSO session, or the session cookie itself with the `X-CSRF-Token`
    header. A bearer token wins over a cookie. Without credentials the caller is anonymous
    and reaches nothing.
    """
    caller, rejection = await _authenticate(request, host)
    client_address = request.client.host if request.client else None
    request_id = getattr(request.state, "request_id", None)
    return caller.with_origin(client_address=client_address, request_id=request_id), rejection


async def build_context(request: Request, response: Response, host: ApiHost) -> Context:
    caller, rejection = await authenticate(request, host)
    return Context(
        request=request,
        response=response,
        host=host,
        caller=caller,
        rejection=rejection,
        loaders=make_loaders(host.database, caller, host.catalogs),
    )
