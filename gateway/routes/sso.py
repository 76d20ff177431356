"""GET /sso/<slug>/{login,callback,logout,signed-out}, GET /sso/<slug>/session,
POST /sso/<slug>/token and POST /sso/<slug>/redeem: thin handlers over `gateway.sso`.

Browser routes answer redirects or an HTML error page (with its code, a log line, never a
trace); the JSON routes answer JSON. Every refusal is logged as `sso_refused` with its code.
"""

import hmac
import json
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.products import Product
from gateway.routes.answers import BodyTooLargeError, read_capped_body
from gateway.sso import Sso
from gateway.sso.cookies import (
    FLOW_COOKIE,
    clear_flow_cookie,
    clear_session_cookie,
    set_flow_cookie,
    set_session_cookie,
)
from gateway.sso.errors import SsoError, SsoUnavailableError, UnknownProductError
from gateway.sso.pages import error_page, signed_out_page
from gateway.sso.records import SessionRecord
from gateway.store import StoreError
from graphql_api.principals import CSRF_HEADER, SESSION_COOKIE
from tenants.errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)

_REDEEM_BODY_LIMIT = 4096
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _sso(request: Request) -> Sso:
    sso: Sso = request.app.state.sso
    return sso


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _product(request: Request) -> Product | None:
    products: dict[str, Product] = request.app.state.edge.products
    return products.get(request.path_params["slug"])


def _redirect(location: str, status_code: int = 302) -> RedirectResponse:
    return RedirectResponse(location, status_code=status_code, headers=_NO_STORE)


def _refused(request: Request, error: Exception, *, login_url: str | None = None) -> Response:
    slug = request.path_params["slug"]
    if isinstance(error, SsoError):
        shown = error
        log.warning("sso_refused", product=slug, code=error.code, detail=str(error)[:300], client=_client(request))
    else:  # the store or the database did not answer
        shown = SsoUnavailableError()
        log.error("sso_refused", product=slug, code=shown.code, detail=type(error).__name__, client=_client(request))
    product = _product(request)
    return error_page(
        shown,
        product_name=product.config.name if product is not None else None,
        login_url=login_url if product is not None else None,
        request_id=getattr(request.state, "request_id", None),
    )


_FAILURES = (SsoError, StoreError, DatabaseUnavailableError)


async def login(request: Request) -> Response:
    slug = request.path_params["slug"]
    try:
        start = await _sso(request).logins.start(
            slug=slug,
            tenant_id=request.query_params.get("tenant"),
            next_url=request.query_params.get("next"),
            flow_nonce=request.cookies.get(FLOW_COOKIE),
            client=_client(request),
        )
    except _FAILURES as error:
        return _refused(request, error)
    response = _redirect(start.location)
    if start.flow_nonce is not None:
        max_age = _sso(request).options.state_ttl_s
        set_flow_cookie(response, start.flow_nonce, product=slug, max_age_s=max_age, secure=_secure(request))
    return response


async def callback(request: Request) -> Response:
    slug = request.path_params["slug"]
    sso = _sso(request)
    try:
        done = await sso.logins.finish(
            slug=slug,
            params=request.query_params,
            flow_nonce=request.cookies.get(FLOW_COOKIE),
            previous_session=request.cookies.get(SESSION_COOKIE),
            client=_client(request),
        )
    except _FAILURES as error:
        tenant = request.query_params.get("tenant", "")
        retry = f"/sso/{slug}/login" + (f"?{urlencode({'tenant': tenant})}" if 0 < len(tenant) <= 64 else "")
        response = _refused(request, error, login_url=retry)
    else:
        response = _redirect(done.location, 303)
        set_session_cookie(response, done.session_cookie, max_age_s=sso.options.session_ttl_s, secure=_secure(request))
    if FLOW_COOKIE in request.cookies:
        clear_flow_cookie(response, product=slug, secure=_secure(request))
    return response


async def logout(request: Request) -> Response:
    try:
        location = await _sso(request).logins.log_out(
            slug=request.path_params["slug"],
            session_cookie=request.cookies.get(SESSION_COOKIE),
            redirect_url=request.query_params.get("redirect_url"),
        )
    except _FAILURES as error:
        return _refused(request, error)
    response = _redirect(location)
    clear_session_cookie(response, secure=_secure(request))
    return response


async def signed_out(request: Request) -> Response:
    product = _product(request)
    if product is None:
        return _refused(request, UnknownProductError("signed-out page of an unknown product"))
    return signed_out_page(product_name=product.config.name, login_url=f"/sso/{product.slug}/login")


async def _session_of(request: Request) -> SessionRecord | None:
    record = await _sso(request).sessions.record_for_cookie(request.cookies.get(SESSION_COOKIE))
    return record if record is not None and record.product == request.path_params["slug"] else None


def _json(body: dict[str, object], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


async def session(request: Request) -> Response:
    """Who the session cookie belongs to, and the CSRF token its cookie-authenticated calls must echo."""
    if request.method != "GET":  # OPTIONS that is not a CORS preflight
        return _json({"error": "method_not_allowed"}, 405)
    try:
        record = await _session_of(request)
    except (StoreError, DatabaseUnavailableError):
        return _json({"error": "unavailable"}, 503)
    if record is None:
        return _json({"error": "no_session"}, 401)
    return _json(
        {
            "product": record.product,
            "tenantId": record.tenant_id,
            "isTest": record.is_test,
            "userName": record.user_name,
            "name": record.name,
            "role": record.role,
            "csrfToken": record.csrf_token,
            "expiresAt": int(record.expires_at),
        }
    )


async def token(request: Request) -> Response:
    """A short-lived bearer token for a separate admin frontend: session cookie plus CSRF header."""
    if request.method != "POST":  # OPTIONS that is not a CORS preflight
        return _json({"error": "method_not_allowed"}, 405)
    try:
        record = await _session_of(request)
        if record is None:
            return _json({"error": "no_session"}, 401)
        minted = await _sso(request).sessions.mint_bearer(record, csrf_token=request.headers.get(CSRF_HEADER))
    except (StoreError, DatabaseUnavailableError):
        return _json({"error": "unavailable"}, 503)
    if minted is None:
        log.warning("sso_refused", product=record.product, code="sso_csrf", client=_client(request))
        return _json({"error": "csrf"}, 403)
    bearer, expires_in = minted
    return _json({"accessToken": bearer, "tokenType": "Bearer", "expiresIn": expires_in})


async def redeem(request: Request) -> Response:
    """The product redeems a login token, once: `Authorization: Bearer <sso_redeem_key>`, `{"loginToken"}`."""
    product = _product(request)
    if product is None:
        return _json({"error": "not_found"}, 404)
    key = product.config.sso_redeem_key
    if key is None:
        return _json({"error": "redeem_disabled"}, 403)
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = key.get_secret_value().encode("utf-8")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode("utf-8", "replace"), expected):
        log.warning("sso_refused", product=product.slug, code="sso_redeem_unauthorized", client=_client(request))
        return _json({"error": "unauthorized"}, 401)
    try:
        login_token = json.loads(await read_capped_body(request, _REDEEM_BODY_LIMIT))["loginToken"]
    except (BodyTooLargeError, ValueError, TypeError, KeyError):
        login_token = None  # a body past the limit is not read to its end
    if not isinstance(login_token, str):
        return _json({"error": "bad_request"}, 400)
    try:
        grant = await _sso(request).sessions.redeem(product=product.slug, login_token=login_token)
    except (StoreError, DatabaseUnavailableError):
        return _json({"error": "unavailable"}, 503)
    if grant is None:
        log.warning("sso_refused", product=product.slug, code="sso_invalid_login_token", client=_client(request))
        return _json({"error": "invalid_login_token"}, 400)
    member = grant.member
    return _json(
        {
            "sessionId": grant.session_id,
            "nextUrl": grant.next_url,
            "member": {
                "product": member.product,
                "tenantId": member.tenant_id,
                "isTest": member.is_test,
                "userName": member.user_name,
                "name": member.name,
                "role": member.role,
                "orgCode": member.org_code,
                "instanceId": member.instance_id,
            },
        }
    )
