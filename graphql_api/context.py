"""The per-request context: who is asking (computed once), the host's services, the loaders."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from graphql_api.loaders import Loaders, make_loaders
from graphql_api.reconcile import InstanceReconciler
from tenants.admin import Caller, authenticate_token
from tenants.database import Database


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """A product as the API shows it: never its keys."""

    slug: str
    name: str
    adapter: str


@dataclass(frozen=True, slots=True)
class ApiHost:
    """What the host application lends the API; it puts one on `app.state` at start-up."""

    database: Database
    products: Sequence[ProductInfo]
    reconciler: InstanceReconciler
    now: Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    response: Response
    host: ApiHost
    caller: Caller
    credentials_rejected: bool
    """A credential was presented and refused (unknown, revoked or malformed)."""
    loaders: Loaders


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


async def authenticate(request: Request, host: ApiHost) -> tuple[Caller, bool]:
    """The caller behind a request, and whether a presented credential was refused.

    Operators present `Authorization: Bearer mgt_…`. Without credentials the caller is
    anonymous and reaches nothing. (Tenant admins' SSO sessions are the next step here.)
    """
    presented = _bearer(request)
    caller, rejected = Caller.anonymous(), False
    if presented is not None:
        found = None
        if presented:
            async with host.database.reader() as session:
                found = await authenticate_token(session, presented=presented)
        caller, rejected = (found, False) if found is not None else (caller, True)
    client_address = request.client.host if request.client else None
    request_id = getattr(request.state, "request_id", None)
    return caller.with_origin(client_address=client_address, request_id=request_id), rejected


async def build_context(request: Request, response: Response, host: ApiHost) -> Context:
    caller, rejected = await authenticate(request, host)
    return Context(
        request=request,
        response=response,
        host=host,
        caller=caller,
        credentials_rejected=rejected,
        loaders=make_loaders(host.database, caller),
    )
