"""What SSO keeps in the shared store, and the one place that builds its keys.

Records are JSON. Sessions, login tokens and bearer tokens are stored under the SHA-256 of
their secret value, so the store never holds a value that would let its reader log in; the
hex digest of a session id (its `ref`) is also how the rest of MarketGate names a session.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from gateway.adapters.contract import SsoMember
from gateway.store import store_key


def digest(secret: str) -> str:
    """The hex SHA-256 of a secret value: its name in the store."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _test_flag(is_test: bool) -> str:
    return "1" if is_test else "0"


def state_key(product: str, state: str) -> str:
    return store_key("sso", "state", product, state)


def session_key(ref: str) -> str:
    return store_key("sso", "session", ref)


def member_index_key(product: str, tenant_id: str, is_test: bool, user_name: str) -> str:
    return store_key("sso", "member", product, _test_flag(is_test), tenant_id, user_name)


def tenant_index_key(product: str, tenant_id: str, is_test: bool) -> str:
    return store_key("sso", "tenant", product, _test_flag(is_test), tenant_id)


def login_token_key(token: str) -> str:
    return store_key("sso", "login-token", digest(token))


def bearer_key(token: str) -> str:
    return store_key("sso", "bearer", digest(token))


def refresh_lock_key(ref: str) -> str:
    return store_key("sso", "refresh", ref)


def rate_key(kind: str, client: str) -> str:
    return store_key("sso", "rate", kind, client)


class _Json:
    """JSON round trip for the flat dataclasses below."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode("utf-8")  # type: ignore[call-overload]

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        data: dict[str, Any] = json.loads(raw)
        names = {item.name for item in fields(cls)}  # type: ignore[arg-type]
        return cls(**{name: value for name, value in data.items() if name in names})


@dataclass(frozen=True, slots=True)
class PendingFlow(_Json):
    """A login MarketGate started (`state`): for whom, in which browser, going where."""

    product: str
    tenant_id: str
    is_test: bool
    browser: str
    """The digest of the nonce in the browser's flow cookie."""
    next_url: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class SessionRecord(_Json):
    """A MarketGate SSO session; times are seconds since the epoch by MarketGate's clock."""

    ref: str
    product: str
    tenant_id: str
    is_test: bool
    user_name: str
    name: str
    role: str
    org_code: str
    instance_id: str
    app_id: str
    domain: str
    """The tenant's identity domain as tenantSync sent it (logout goes there)."""
    csrf_token: str
    created_at: float
    expires_at: float
    access_expires_at: float
    sealed_tokens: str
    """The identity domain's access and refresh tokens, sealed with the SecretBox."""

    def member(self) -> SsoMember:
        return SsoMember(
            product=self.product,
            tenant_id=self.tenant_id,
            is_test=self.is_test,
            user_name=self.user_name,
            name=self.name,
            role=self.role,
            org_code=self.org_code,
            instance_id=self.instance_id,
        )


@dataclass(frozen=True, slots=True)
class LoginTokenRecord(_Json):
    product: str
    session_ref: str
    next_url: str | None


@dataclass(frozen=True, slots=True)
class BearerRecord(_Json):
    product: str
    session_ref: str
