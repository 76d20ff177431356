"""Live SSO sessions: who stands behind a cookie or a bearer token, renewal, and every way a session ends.

Used sessions renew the identity domain's tokens shortly before the access token expires
(one replica at a time, under a store lock), re-checking on the way that the member is still
authorized. A session ends at logout, when its time is up, when the identity domain refuses
to renew it, and when the buyer revokes, disables or changes the member's authorization or
unbinds the tenant (`end_member_sessions`, called by the Kit syncs). Each end is told to the
product's adapter (`on_session_end`), best effort.
"""

import asyncio
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from gateway.adapters.contract import LoginGrant, SessionEnd, SessionEndReason
from gateway.clock import Clock
from gateway.products import Product
from gateway.sso.cookies import cookie_key, is_token, sign, unsign
from gateway.sso.domains import IdentityDomains
from gateway.sso.errors import IdentityTimeoutError, IdentityUnavailableError, SsoError
from gateway.sso.members import get_login_member, get_tenant_access
from gateway.sso.oauth_client import ClientCredentials, TokenSet
from gateway.sso.options import SsoOptions
from gateway.sso.records import (
    BearerRecord,
    LoginTokenRecord,
    SessionRecord,
    bearer_key,
    digest,
    login_token_key,
    refresh_lock_key,
)
from gateway.sso.sessions import SessionBook
from gateway.store import Store, StoreLockTimeout
from graphql_api.principals import MemberPrincipal
from tenants.database import Database
from tenants.secretbox import SecretBox

log = structlog.get_logger(__name__)

BEARER_PREFIX = "mgb_"
_END_NOTICE_S = 5.0


def tokens_purpose(ref: str) -> str:
    """The SecretBox purpose of one session's tokens: a seal cannot move to another session."""
    return f"sso-session-tokens:{ref}"


class MemberSessionService:
    """Implements `graphql_api.principals.MemberSessions` and the Kit's `MemberAccessListener`."""

    def __init__(
        self,
        *,
        options: SsoOptions,
        products: Mapping[str, Product],
        database: Database,
        store: Store,
        secret_box: SecretBox,
        master_key: bytes,
        domains: IdentityDomains,
        clock: Clock,
    ) -> None:
        self._options = options
        self._products = products
        self._database = database
        self._store = store
        self._secret_box = secret_box
        self._cookie_key = cookie_key(master_key)
        self._domains = domains
        self._clock = clock
        self.book = SessionBook(store)

    def _now(self) -> float:
        return self._clock.now().timestamp()

    # -- the session cookie and its record -----------------------------------------------------

    @staticmethod
    def new_session_id() -> str:
        return secrets.token_urlsafe(32)

    def cookie_value(self, session_id: str) -> str:
        return sign(session_id, key=self._cookie_key)

    def ref_of_cookie(self, cookie_value: str | None) -> str | None:
        """The session ref a well-signed cookie names (the session may be gone)."""
        session_id = unsign(cookie_value, key=self._cookie_key) if cookie_value else None
        return digest(session_id) if session_id is not None else None

    def seal_tokens(self, ref: str, tokens: TokenSet) -> str:
        plain = json.dumps({"access_token": tokens.access_token, "refresh_token": tokens.refresh_token})
        return self._secret_box.seal(plain, purpose=tokens_purpose(ref))

    def _open_tokens(self, record: SessionRecord) -> TokenSet:
        plain = json.loads(self._secret_box.open(record.sealed_tokens, purpose=tokens_purpose(record.ref)))
        return TokenSet(plain["access_token"], plain.get("refresh_token"), record.access_expires_at - self._now())

    async def record_for_cookie(self, cookie_value: str | None, *, renew: bool = True) -> SessionRecord | None:
        """The live session behind a cookie; `renew` renews its tokens if they are about to expire."""
        ref = self.ref_of_cookie(cookie_value)
        if ref is None:
            return None
        record = await self.book.get(ref)
        if record is None:
            return None
        return await self.in_use(record) if renew else record

    # -- using a session: expiry and renewal ----------------------------------------------------

    async def in_use(self, record: SessionRecord) -> SessionRecord | None:
        """The session as it may be used now: None once over, renewed when its access token is due."""
        now = self._now()
        if now >= record.expires_at:
            await self.book.end(record.ref)
            return None
        if now + self._options.refresh_margin_s < record.access_expires_at:
            return record
        timeout = self._options.identity_timeout_s
        try:
            async with self._store.lock(refresh_lock_key(record.ref), ttl_s=3 * timeout, wait_s=2 * timeout):
                current = await self.book.get(record.ref)
                if current is None or self._now() + self._options.refresh_margin_s < current.access_expires_at:
                    return current  # ended meanwhile, or renewed by another request
                return await self._renew(current)
        except StoreLockTimeout:
            return record if now < record.access_expires_at else None

    async def _renew(self, record: SessionRecord) -> SessionRecord | None:
        try:
            async with self._database.reader() as session:
                access = await get_tenant_access(
                    session,
                    product=record.product,
                    tenant_id=record.tenant_id,
                    is_test=record.is_test,
                    secret_box=self._secret_box,
                )
                await get_login_member(
                    session,
                    product=record.product,
                    tenant_id=record.tenant_id,
                    is_test=record.is_test,
                    user_name=record.user_name,
                    app_id=record.app_id,
                )
        except SsoError as exc:
            await self.end(record, SessionEndReason.REVOKED, detail=exc.code)
            return None
        login = access.login
        tokens = self._open_tokens(record)
        if tokens.refresh_token is None:
            await self.end(record, SessionEndReason.REFRESH_FAILED, detail="no refresh token")
            return None
        client = self._domains.client(login.domain_name)
        try:
            renewed = await client.refresh(
                self._domains.endpoints(login.domain_name),
                ClientCredentials(login.client_id, login.client_secret),
                refresh_token=tokens.refresh_token,
            )
        except (IdentityTimeoutError, IdentityUnavailableError) as exc:
            if self._now() < record.access_expires_at:
                log.warning("sso_refresh_postponed", product=record.product, session=record.ref[:12], code=exc.code)
                return record
            await self.end(record, SessionEndReason.REFRESH_FAILED, detail=exc.code)
            return None
        except SsoError as exc:  # refused refresh token, or client
            await self.end(record, SessionEndReason.REFRESH_FAILED, detail=exc.code)
            return None
        now = self._now()
        updated = replace(
            record,
            access_expires_at=now + renewed.expires_in,
            sealed_tokens=self.seal_tokens(record.ref, renewed),
        )
        await self.book.replace(updated, ttl_s=max(record.expires_at - now, 1.0))
        log.info("sso_session_renewed", product=record.product, tenant_id=record.tenant_id, session=record.ref[:12])
        return updated

    # -- ending sessions ------------------------------------------------------------------------

    async def end(self, record: SessionRecord, reason: SessionEndReason, *, detail: str = "") -> bool:
        """End a session and tell the product; False if it had ended already."""
        ended = await self.book.end(record.ref)
        if ended is None:
            return False
        log.info(
            "sso_session_ended",
            product=ended.product,
            tenant_id=ended.tenant_id,
            user_name=ended.user_name,
            session=ended.ref[:12],
            reason=reason.value,
            detail=detail,
        )
        await self._tell_product(ended, reason)
        return True

    async def _tell_product(self, record: SessionRecord, reason: SessionEndReason) -> None:
        product = self._products.get(record.product)
        hook = getattr(product.adapter, "on_session_end", None) if product is not None else None
        if hook is None:
            return
        try:
            async with asyncio.timeout(_END_NOTICE_S):
                await hook(SessionEnd(member=record.member(), session_id=record.ref, reason=reason))
        except Exception as exc:  # best effort: the session is over either way
            log.warning("sso_session_end_not_delivered", product=record.product, error=type(exc).__name__)

    async def end_member_sessions(
        self, *, product: str, tenant_id: str, is_test: bool, user_names: Sequence[str] | None
    ) -> int:
        """End the live sessions of these members (None: of every member of the tenant); how many ended.

        Called by the Kit syncs when authorizations are revoked, disabled or changed, or the
        tenant is unbound. Idempotent.
        """
        # One look at the tenant's index first: usually there is no live session, or fewer
        # sessions than names (an authSync changes up to thousands of members at once).
        refs = await self.book.tenant_refs(product=product, tenant_id=tenant_id, is_test=is_test)
        names = None if user_names is None else set(user_names)
        if names is not None and len(names) < len(refs):
            refs = set()
            for user_name in sorted(names):
                refs |= await self.book.member_refs(
                    product=product, tenant_id=tenant_id, is_test=is_test, user_name=user_name
                )
        ended = 0
        for ref in sorted(refs):
            record = await self.book.get(ref)
            if record is None or (names is not None and record.user_name not in names):
                continue
            if await self.end(record, SessionEndReason.REVOKED, detail="authorization changed"):
                ended += 1
        return ended

    # -- principals: the admin API's view -----------------------------------------------------

    @staticmethod
    def _principal(record: SessionRecord) -> MemberPrincipal:
        return MemberPrincipal(
            product=record.product,
            tenant_id=record.tenant_id,
            is_test=record.is_test,
            user_name=record.user_name,
            marketplace_role=record.role,
            session_id=record.ref,
            csrf_token=record.csrf_token,
        )

    async def principal_for_session(self, cookie_value: str) -> MemberPrincipal | None:
        record = await self.record_for_cookie(cookie_value)
        return self._principal(record) if record is not None else None

    async def principal_for_bearer(self, token: str) -> MemberPrincipal | None:
        if not token.startswith(BEARER_PREFIX) or not is_token(token.removeprefix(BEARER_PREFIX)):
            return None
        raw = await self._store.get(bearer_key(token))
        if raw is None:
            return None
        record = await self.book.get(BearerRecord.from_bytes(raw).session_ref)
        record = await self.in_use(record) if record is not None else None
        return self._principal(record) if record is not None else None

    async def mint_bearer(self, record: SessionRecord, *, csrf_token: str | None) -> tuple[str, int] | None:
        """A short-lived bearer token for the session, if `csrf_token` is the session's; else None."""
        if not csrf_token or not hmac.compare_digest(csrf_token.encode(), record.csrf_token.encode()):
            return None
        ttl = int(min(self._options.bearer_ttl_s, record.expires_at - self._now()))
        if ttl < 1:
            return None
        token = BEARER_PREFIX + secrets.token_urlsafe(32)
        await self._store.set(bearer_key(token), BearerRecord(record.product, record.ref).to_bytes(), ttl)
        return token, ttl

    # -- login tokens: the hand-off to the product ---------------------------------------------

    async def mint_login_token(self, record: SessionRecord, *, next_url: str | None) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(32)
        ttl = self._options.login_token_ttl_s
        await self._store.set(
            login_token_key(token), LoginTokenRecord(record.product, record.ref, next_url).to_bytes(), ttl
        )
        return token, datetime.fromtimestamp(self._now() + ttl, UTC)

    async def forget_login_token(self, token: str) -> None:
        await self._store.delete(login_token_key(token))

    async def redeem(self, *, product: str, login_token: str) -> LoginGrant | None:
        """The grant behind a live login token of `product`, once; None for anything else."""
        if not is_token(login_token):
            return None
        key = login_token_key(login_token)
        # Look before taking: another product's refused redeem must leave the token to its own.
        raw = await self._store.get(key)
        if raw is None:
            return None
        minted = LoginTokenRecord.from_bytes(raw)
        if minted.product != product:
            log.warning("sso_login_token_wrong_product", product=product)
            return None
        if await self._store.take(key) is None:
            return None  # redeemed meanwhile
        record = await self.book.get(minted.session_ref)
        if record is None or self._now() >= record.expires_at:
            return None
        log.info("sso_login_token_redeemed", product=product, session=record.ref[:12])
        return LoginGrant(member=record.member(), session_id=record.ref, next_url=minted.next_url)

    def login_tokens_for(self, product: str) -> "ProductLoginTokens":
        return ProductLoginTokens(product, self)


class ProductLoginTokens:
    """`AdapterContext.login_tokens` for one product: redeems that product's tokens only."""

    def __init__(self, product: str, sessions: MemberSessionService) -> None:
        self._product = product
        self._sessions = sessions

    async def redeem(self, login_token: str) -> LoginGrant | None:
        return await self._sessions.redeem(product=self._product, login_token=login_token)
