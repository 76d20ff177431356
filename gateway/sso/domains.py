"""Which base URL and which HTTP transport serve a tenant's identity domain.

In production every domain is reached through `PublicOnlyTransport`. In development,
`dev_identity_domain_overrides` may replace a domain by another base URL (a local identity
stand-in on loopback), reached through a plain transport; settings refuse overrides in
production. Tests pass one transport (an ASGI transport, say) that serves every domain.
Transports are opened on first use and closed by `aclose`.
"""

from collections.abc import Callable, Mapping

import httpx

from gateway.sso._egress import PublicOnlyTransport
from gateway.sso.oauth_client import Endpoints, IdentityClient


class IdentityDomains:
    def __init__(
        self,
        *,
        timeout_s: float,
        overrides: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._overrides = {domain.rstrip("/"): target.rstrip("/") for domain, target in (overrides or {}).items()}
        self._given = transport
        self._owned: list[httpx.AsyncBaseTransport] = []
        self._public: IdentityClient | None = None
        self._overridden: IdentityClient | None = None

    def endpoints(self, domain_name: str) -> Endpoints:
        domain = domain_name.rstrip("/")
        return Endpoints(self._overrides.get(domain, domain))

    def client(self, domain_name: str) -> IdentityClient:
        """The OAuth client for `domain_name`, with the transport its kind of address needs."""
        if domain_name.rstrip("/") in self._overrides:
            if self._overridden is None:
                self._overridden = IdentityClient(
                    transport=self._transport(lambda: httpx.AsyncHTTPTransport(trust_env=False)),
                    timeout_s=self._timeout_s,
                )
            return self._overridden
        if self._public is None:
            self._public = IdentityClient(transport=self._transport(PublicOnlyTransport), timeout_s=self._timeout_s)
        return self._public

    def _transport(self, factory: Callable[[], httpx.AsyncBaseTransport]) -> httpx.AsyncBaseTransport:
        if self._given is not None:
            return self._given
        transport = factory()
        self._owned.append(transport)
        return transport

    async def aclose(self) -> None:
        for transport in self._owned:
            await transport.aclose()
        self._owned.clear()
