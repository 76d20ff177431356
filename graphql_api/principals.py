"""Who a buyer enterprise's member is, as the SSO sessions tell the admin API.

The gateway's SSO module owns sessions (they live in the shared store); the admin API only
asks, through `MemberSessions`, which member stands behind a session cookie or a short-lived
bearer token minted from a session. The gateway passes its implementation in `ApiHost`.
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MemberPrincipal:
    """A member logged in through SSO free login, for one product of one tenant."""

    product: str
    tenant_id: str
    is_test: bool
    user_name: str
    marketplace_role: str
    """`admin` or `user`: the role the buyer's administrator gave the member in the marketplace."""
    session_id: str
    csrf_token: str
    """Cookie-authenticated requests must echo it in the `X-CSRF-Token` header."""


class MemberSessions(Protocol):
    async def principal_for_session(self, cookie_value: str) -> MemberPrincipal | None:
        """The member behind the session cookie's value, or None (unknown, expired, ended)."""
        ...

    async def principal_for_bearer(self, token: str) -> MemberPrincipal | None:
        """The member behind a bearer token minted from a live session, or None."""
        ...


SESSION_COOKIE = "mg_session"
"""The name of MarketGate's session cookie (set by the SSO callback)."""
CSRF_HEADER = "X-CSRF-Token"
