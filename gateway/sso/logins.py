"""Logging members in and out (spec §6, koogallery-kit-sso.md §4).

- `start`: from the vendor's own login button. Without a tenant, to the marketplace's unified
  login page with the product's appId; with one, to that tenant's authorize endpoint with a
  fresh single-use `state`, kept in the shared store (any replica finishes the flow) and bound
  to the browser by a nonce cookie.
- `finish`: the callback. With our `state`: taken once, checked against the browser, and the
  tenant taken from it (a `tenant` parameter, if any, must agree). Without one (workbench and
  unified-login sign-ins): accepted with a `tenant`, as the marketplace starts those. Then the
  code is exchanged and the user read with authlib, the user matched to an authorized, enabled
  member of the product's app, the product asked where to send the member (with a single-use
  login token), and only then the session stored.
- `log_out`: the session ends everywhere, then the identity domain's logout, back to an
  allowed address.

Every refusal is an `SsoError`, raised before anything is stored: no session, no login token;
a `state` is consumed by its first use whatever follows.
"""

import asyncio
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import structlog

from gateway.adapters.contract import AdapterError, LoginRequest, SessionEndReason
from gateway.clock import Clock
from gateway.products import Product
from gateway.sso.cookies import is_token
from gateway.sso.domains import IdentityDomains
from gateway.sso.errors import (
    BadCallbackError,
    IdentityDeniedError,
    NoAppIdError,
    ProductLoginUnsupportedError,
    ProductUnavailableError,
    RateLimitedError,
    RedirectNotAllowedError,
    StateInvalidError,
    StateMismatchError,
    TenantMismatchError,
    UnknownProductError,
    UnknownTenantError,
    UserinfoInvalidError,
)
from gateway.sso.member_sessions import MemberSessionService
from gateway.sso.members import TenantAccess, get_latest_app_id, get_login_member, get_tenant_access
from gateway.sso.oauth_client import ClientCredentials
from gateway.sso.options import SsoOptions
from gateway.sso.records import PendingFlow, SessionRecord, digest, rate_key, state_key
from gateway.sso.redirects import allowed_redirect
from gateway.store import Store
from tenants.database import Database
from tenants.secretbox import SecretBox

log = structlog.get_logger(__name__)

_TENANT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_CODE = re.compile(r"^[\x21-\x7e]{1,1024}$")
_USER_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class LoginStart:
    location: str
    flow_nonce: str | None
    """The browser-binding nonce to set as the flow cookie (None: the flow is not ours)."""


@dataclass(frozen=True, slots=True)
class LoginDone:
    location: str
    session_cookie: str
    record: SessionRecord


class LoginFlows:
    def __init__(
        self,
        *,
        options: SsoOptions,
        products: Mapping[str, Product],
        database: Database,
        store: Store,
        secret_box: SecretBox,
        domains: IdentityDomains,
        sessions: MemberSessionService,
        clock: Clock,
    ) -> None:
        self._options = options
        self._products = products
        self._database = database
        self._store = store
        self._secret_box = secret_box
        self._domains = domains
        self._sessions = sessions
        self._clock = clock

    def product(self, slug: str) -> Product:
        product = self._products.get(slug)
        if product is None:
            raise UnknownProductError(f"no product {slug!r}")
        return product

    def _next_url(self, product: Product, target: str | None) -> str | None:
        if target is None:
            return None
        allowed = allowed_redirect(target, public_url=self._options.public_url, allow=product.config.sso_redirect_allow)
        if allowed is None:
            raise RedirectNotAllowedError(f"redirect to {target[:200]!r} is not allowed")
        return allowed

    async def _limit(self, kind: str, client: str) -> None:
        count = await self._store.incr_window(rate_key(kind, client), self._options.callback_rate_window_s)
        if count > self._options.callback_rate_limit:
            raise RateLimitedError(f"{count} {kind} requests from {client} within the window")

    async def _tenant_access(self, product: Product, tenant_id: str, *, is_test: bool | None) -> TenantAccess:
        async with self._database.reader() as session:
            return await get_tenant_access(
                session, product=product.slug, tenant_id=tenant_id, is_test=is_test, secret_box=self._secret_box
            )

    # -- starting -------------------------------------------------------------------------------

    async def start(
        self, *, slug: str, tenant_id: str | None, next_url: str | None, flow_nonce: str | None, client: str
    ) -> LoginStart:
        """Where the vendor's login button sends the browser."""
        product = self.product(slug)
        checked_next = self._next_url(product, next_url)
        await self._limit("login", client)
        if not tenant_id:
            app_id = product.config.sso_app_id
            if app_id is None:
                async with self._database.reader() as session:
                    app_id = await get_latest_app_id(session, product=product.slug)
            if app_id is None:
                raise NoAppIdError(f"product {slug!r} has no sso_app_id and no synced app credentials")
            return LoginStart(self._options.unified_login_url.replace("{app_id}", quote(app_id, safe="")), None)
        if not _TENANT_ID.match(tenant_id):
            raise UnknownTenantError("malformed tenant id")
        access = await self._tenant_access(product, tenant_id, is_test=None)
        nonce = flow_nonce if is_token(flow_nonce) else secrets.token_urlsafe(24)
        assert nonce is not None
        state = secrets.token_hex(20)
        flow = PendingFlow(
            product=product.slug,
            tenant_id=tenant_id,
            is_test=access.login.is_test,
            browser=digest(nonce),
            next_url=checked_next,
            created_at=self._clock.now().timestamp(),
        )
        await self._store.add_if_absent(state_key(product.slug, state), flow.to_bytes(), self._options.state_ttl_s)
        domain = access.login.domain_name
        location = self._domains.client(domain).authorization_url(
            self._domains.endpoints(domain),
            client_id=access.login.client_id,
            redirect_uri=self._options.callback_url(product.slug),
            state=state,
        )
        log.info("sso_login_started", product=product.slug, tenant_id=tenant_id)
        return LoginStart(location, nonce)

    # -- finishing: the callback ----------------------------------------------------------------

    async def finish(
        self,
        *,
        slug: str,
        params: Mapping[str, str],
        flow_nonce: str | None,
        previous_session: str | None,
        client: str,
    ) -> LoginDone:
        product = self.product(slug)
        await self._limit("callback", client)
        if "error" in params:
            raise IdentityDeniedError(f"identity domain answered error={params['error'][:64]!r}")
        code, given_tenant = params.get("code", ""), params.get("tenant")
        if not _CODE.match(code) or (given_tenant is not None and not _TENANT_ID.match(given_tenant)):
            raise BadCallbackError("code or tenant missing or malformed")
        flow = await self._take_flow(product, params.get("state"), flow_nonce=flow_nonce, tenant_id=given_tenant)
        # The identity domain may come back with only `code` and `state` (§4.3): our flow knows the tenant.
        tenant_id = flow.tenant_id if flow is not None else given_tenant
        if tenant_id is None:
            raise BadCallbackError("tenant missing from a callback without our state")
        access = await self._tenant_access(product, tenant_id, is_test=flow.is_test if flow else None)
        login = access.login
        domain = login.domain_name
        tokens, userinfo = await self._domains.client(domain).log_in(
            self._domains.endpoints(domain),
            ClientCredentials(login.client_id, login.client_secret),
            code=code,
            redirect_uri=self._options.callback_url(product.slug),
        )
        user_name = userinfo.get("userName")
        if not isinstance(user_name, str) or not user_name or len(user_name) > _USER_NAME_MAX:
            raise UserinfoInvalidError("userinfo without a usable userName")
        said_tenant = userinfo.get("tenant")
        if said_tenant is not None and said_tenant != tenant_id:
            raise TenantMismatchError(f"userinfo is for tenant {str(said_tenant)[:64]!r}, not {tenant_id!r}")
        async with self._database.reader() as session:
            member, authorization = await get_login_member(
                session,
                product=product.slug,
                tenant_id=tenant_id,
                is_test=login.is_test,
                user_name=user_name,
                app_id=login.app_id,
            )
        session_id = self._sessions.new_session_id()
        ref = digest(session_id)
        now = self._clock.now().timestamp()
        record = SessionRecord(
            ref=ref,
            product=product.slug,
            tenant_id=tenant_id,
            is_test=login.is_test,
            user_name=member.user_name,
            name=member.name,
            role=authorization.role.value,
            org_code=member.org_code,
            instance_id=access.instance_id,
            app_id=login.app_id,
            domain=domain,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + self._options.session_ttl_s,
            access_expires_at=now + tokens.expires_in,
            sealed_tokens=self._sessions.seal_tokens(ref, tokens),
        )
        location = await self._hand_off(product, record, next_url=flow.next_url if flow else None)
        await self._sessions.book.save(record, ttl_s=self._options.session_ttl_s)
        await self._end_previous(previous_session, keep=ref)
        log.info(
            "sso_login",
            product=product.slug,
            tenant_id=tenant_id,
            is_test=login.is_test,
            user_name=member.user_name,
            role=record.role,
            started_here=flow is not None,
            session=ref[:12],
        )
        return LoginDone(location=location, session_cookie=self._sessions.cookie_value(session_id), record=record)

    async def _take_flow(
        self, product: Product, state: str | None, *, flow_nonce: str | None, tenant_id: str | None
    ) -> PendingFlow | None:
        if state is None:
            return None  # a sign-in the marketplace started (workbench, unified login page)
        if not _STATE.match(state):
            raise StateInvalidError("malformed state")
        raw = await self._store.take(state_key(product.slug, state))
        if raw is None:
            raise StateInvalidError("unknown, expired or used state")
        flow = PendingFlow.from_bytes(raw)
        if not is_token(flow_nonce) or digest(flow_nonce or "") != flow.browser:
            raise StateMismatchError("state issued to another browser")
        if tenant_id is not None and flow.tenant_id != tenant_id:
            raise StateMismatchError(f"state issued for tenant {flow.tenant_id!r}, callback for {tenant_id!r}")
        return flow

    async def _hand_off(self, product: Product, record: SessionRecord, *, next_url: str | None) -> str:
        hook = getattr(product.adapter, "on_login", None)
        if hook is None:
            raise ProductLoginUnsupportedError(f"adapter of {product.slug!r} has no on_login")
        token, expires_at = await self._sessions.mint_login_token(record, next_url=next_url)
        request = LoginRequest(
            member=record.member(),
            session_id=record.ref,
            login_token=token,
            expires_at=expires_at,
            redeem_url=self._options.redeem_url(product.slug),
            next_url=next_url,
        )
        try:
            try:
                async with asyncio.timeout(self._options.product_timeout_s):
                    location = await hook(request)
            except TimeoutError as exc:
                raise ProductUnavailableError("on_login timed out") from exc
            except AdapterError as exc:
                raise ProductUnavailableError(f"on_login refused: {exc.code}") from exc
            except Exception as exc:  # an adapter bug: the member gets the page, the log gets the trace
                log.exception("sso_on_login_failed", product=product.slug)
                raise ProductUnavailableError(f"on_login failed: {type(exc).__name__}") from exc
            if not isinstance(location, str) or not _is_web_url(location):
                raise ProductUnavailableError("on_login did not answer an http(s) URL")
        except ProductUnavailableError:
            await self._sessions.forget_login_token(token)
            raise
        return location

    async def _end_previous(self, cookie_value: str | None, *, keep: str) -> None:
        """A new sign-in in the same browser replaces the session it had."""
        previous = await self._sessions.record_for_cookie(cookie_value, renew=False)
        if previous is not None and previous.ref != keep:
            await self._sessions.end(previous, SessionEndReason.LOGOUT, detail="replaced by a new sign-in")

    # -- logging out ----------------------------------------------------------------------------

    async def log_out(self, *, slug: str, session_cookie: str | None, redirect_url: str | None) -> str:
        """End the session (if any) and answer where the browser goes: the identity domain's logout."""
        product = self.product(slug)
        target = self._next_url(product, redirect_url) if redirect_url is not None else None
        if target is None:
            target = product.config.sso_logout_redirect_url or self._options.signed_out_url(product.slug)
        record = await self._sessions.record_for_cookie(session_cookie, renew=False)
        if record is None:
            return target
        await self._sessions.end(record, SessionEndReason.LOGOUT)
        return self._domains.endpoints(record.domain).logout(target)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(url) <= 4096
