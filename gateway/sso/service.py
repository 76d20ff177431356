"""SSO free login assembled: identity domains, member sessions and login flows, sharing one set-up."""

from collections.abc import Mapping

import httpx

from gateway.clock import Clock
from gateway.products import Product
from gateway.sso.domains import IdentityDomains
from gateway.sso.logins import LoginFlows
from gateway.sso.member_sessions import MemberSessionService
from gateway.sso.options import SsoOptions
from gateway.store import Store
from tenants.database import Database
from tenants.secretbox import SecretBox


class Sso:
    """Built in the lifespan. `products` may be filled after construction (adapters are built
    with `sessions.login_tokens_for`, so they come after SSO); `transport` serves every identity
    domain when given (tests), else production transports are opened on first use."""

    def __init__(
        self,
        *,
        options: SsoOptions,
        products: Mapping[str, Product],
        database: Database,
        store: Store,
        master_key: bytes,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        secret_box = SecretBox(master_key)
        self.options = options
        self.domains = IdentityDomains(
            timeout_s=options.identity_timeout_s, overrides=options.domain_overrides, transport=transport
        )
        self.sessions = MemberSessionService(
            options=options,
            products=products,
            database=database,
            store=store,
            secret_box=secret_box,
            master_key=master_key,
            domains=self.domains,
            clock=clock,
        )
        self.logins = LoginFlows(
            options=options,
            products=products,
            database=database,
            store=store,
            secret_box=secret_box,
            domains=self.domains,
            sessions=self.sessions,
            clock=clock,
        )

    async def aclose(self) -> None:
        await self.domains.aclose()
