"""SSO's share of the settings, as plain values (tests and the benchmark build it directly)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class SsoOptions:
    public_url: str
    session_ttl_s: float = 8 * 3600.0
    state_ttl_s: float = 600.0
    login_token_ttl_s: float = 60.0
    bearer_ttl_s: float = 300.0
    refresh_margin_s: float = 300.0
    identity_timeout_s: float = 5.0
    product_timeout_s: float = 5.0
    """How long a product's `on_login` may take before the member sees an error page."""
    callback_rate_limit: int = 30
    callback_rate_window_s: float = 60.0
    unified_login_url: str = "https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId={app_id}"
    domain_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            public_url=settings.public_url.rstrip("/"),
            session_ttl_s=settings.sso_session_ttl_s,
            state_ttl_s=settings.sso_state_ttl_s,
            login_token_ttl_s=settings.sso_login_token_ttl_s,
            bearer_ttl_s=settings.sso_bearer_ttl_s,
            refresh_margin_s=settings.sso_refresh_margin_s,
            identity_timeout_s=settings.sso_identity_timeout_s,
            callback_rate_limit=settings.sso_callback_rate_limit,
            callback_rate_window_s=settings.sso_callback_rate_window_s,
            unified_login_url=settings.sso_unified_login_url,
            domain_overrides=dict(settings.dev_identity_domain_overrides),
        )

    def callback_url(self, product: str) -> str:
        """The callback registered in the application credential (spec §6)."""
        return f"{self.public_url}/sso/{product}/callback"

    def redeem_url(self, product: str) -> str:
        return f"{self.public_url}/sso/{product}/redeem"

    def signed_out_url(self, product: str) -> str:
        return f"{self.public_url}/sso/{product}/signed-out"
