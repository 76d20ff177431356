"""The tenant identity domain, seen through authlib's OAuth 2.0 client (koogallery-kit-sso.md §4).

One `AsyncOAuth2Client` per exchange, configured with that tenant's domain and client
credentials (client_secret_post), borrowing one long-lived transport so connections and TLS
set-up are shared. Every call is bounded by `timeout_s` as a whole; authlib's and httpx's
failures, and whatever a malformed answer makes authlib raise, become SSO errors with stable codes.
"""

import asyncio
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

# authlib's own filter ("always" for its deprecation warnings) is installed when authlib.deprecate
# is first imported; import it first so that the narrower filter below takes precedence.
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped, unused-ignore]

from gateway.sso._egress import SharedTransport
from gateway.sso.errors import (
    ClientRejectedError,
    IdentityTimeoutError,
    IdentityUnavailableError,
    InvalidCodeError,
    SsoError,
    UserinfoInvalidError,
)

with warnings.catch_warnings():
    # authlib 1.9 prefers the `httpx2` package and warns once on import when it falls back to
    # `httpx`, which is what MarketGate installs; the fallback is supported.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped, unused-ignore]
        AsyncOAuth2Client,
        OAuthError,
    )

SCOPE = "get_user_info"
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
TOKEN_PATH = "/api/v1/oauth2/token"  # noqa: S105 - a path
USERINFO_PATH = "/api/v1/oauth2/userinfo"
LOGOUT_PATH = "/api/v1/logout"
_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


class RefreshRejectedError(SsoError):
    """The identity domain refused the refresh token (`invalid_grant`): the session is over."""

    code = "sso_refresh_rejected"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A tenant's identity domain: the paths of §4 under its base URL."""

    base: str

    @property
    def authorize(self) -> str:
        return self.base + AUTHORIZE_PATH

    @property
    def token(self) -> str:
        return self.base + TOKEN_PATH

    @property
    def userinfo(self) -> str:
        return self.base + USERINFO_PATH

    def logout(self, redirect_url: str) -> str:
        return f"{self.base}{LOGOUT_PATH}?{urlencode({'redirect_url': redirect_url})}"


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: float


class IdentityClient:
    """Talks OAuth 2.0 to tenant identity domains; `transport` is shared by every exchange."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, timeout_s: float) -> None:
        self._transport = SharedTransport(transport)
        self._timeout_s = timeout_s

    @asynccontextmanager
    async def _client(self, credentials: ClientCredentials, *, redirect_uri: str | None) -> AsyncIterator[Any]:
        client = AsyncOAuth2Client(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            scope=SCOPE,
            redirect_uri=redirect_uri,
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=False,
            trust_env=False,
        )
        async with client:
            yield client

    def authorization_url(self, endpoints: Endpoints, *, client_id: str, redirect_uri: str, state: str) -> str:
        """The authorize URL for the browser (§4.3): response_type=code, scope get_user_info, state."""
        url: str = prepare_grant_uri(
            endpoints.authorize, client_id, "code", redirect_uri=redirect_uri, scope=SCOPE, state=state
        )
        return url

    async def log_in(
        self, endpoints: Endpoints, credentials: ClientCredentials, *, code: str, redirect_uri: str
    ) -> tuple[TokenSet, Mapping[str, Any]]:
        """Exchange the code (§4.2 step 4), then read the user (step 5)."""
        async with self._client(credentials, redirect_uri=redirect_uri) as client:
            token = await self._bounded(
                client.fetch_token(endpoints.token, grant_type="authorization_code", code=code),
                refusal=InvalidCodeError,
            )
            try:
                async with asyncio.timeout(self._timeout_s):
                    response = await client.get(endpoints.userinfo, headers={"Accept": "application/json"})
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise IdentityTimeoutError("userinfo timed out") from exc
            except Exception as exc:  # see _bounded: authlib trusts the token answer's shape
                raise IdentityUnavailableError(f"userinfo failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise UserinfoInvalidError(f"userinfo answered HTTP {response.status_code}")
        try:
            userinfo = response.json()
        except ValueError as exc:
            raise UserinfoInvalidError("userinfo is not JSON") from exc
        if not isinstance(userinfo, dict):
            raise UserinfoInvalidError("userinfo is not a JSON object")
        return _token_set(token), userinfo

    async def refresh(self, endpoints: Endpoints, credentials: ClientCredentials, *, refresh_token: str) -> TokenSet:
        """Renew the tokens (§4.4); `RefreshRejectedError` when the identity domain refuses."""
        async with self._client(credentials, redirect_uri=None) as client:
            token = await self._bounded(
                client.refresh_token(endpoints.token, refresh_token=refresh_token), refusal=RefreshRejectedError
            )
        renewed = _token_set(token)
        # Whether refresh tokens rotate is unconfirmed (§4.4): keep the old one when none comes back.
        return TokenSet(renewed.access_token, renewed.refresh_token or refresh_token, renewed.expires_in)

    async def _bounded(self, call: Any, *, refusal: type[SsoError]) -> Mapping[str, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                token: Mapping[str, Any] = await call
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise IdentityTimeoutError("token endpoint timed out") from exc
        except OAuthError as exc:
            error = str(getattr(exc, "error", "") or "")
            if error == "invalid_grant":
                raise refusal(f"token endpoint: {error}") from exc
            if error in _CLIENT_ERRORS:
                raise ClientRejectedError(f"token endpoint: {error}") from exc
            raise IdentityUnavailableError(f"token endpoint: {error[:64]}") from exc
        except Exception as exc:
            # Besides httpx's errors and bad JSON, authlib trusts the answer's shape: a `token_type`
            # of null is an AttributeError, an `expires_in` of [1] a TypeError. Whatever it raises,
            # the identity domain answered badly; the person gets the error page, not a 500.
            raise IdentityUnavailableError(f"token endpoint failed: {type(exc).__name__}") from exc
        return token


def _token_set(token: Mapping[str, Any]) -> TokenSet:
    access = token.get("access_token")
    refresh = token.get("refresh_token")
    expires_in = token.get("expires_in", 7200)
    if not isinstance(access, str) or not access:
        raise IdentityUnavailableError("token answer without access_token")
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError) as exc:
        raise IdentityUnavailableError("token answer with a malformed expires_in") from exc
    return TokenSet(access, refresh if isinstance(refresh, str) and refresh else None, max(lifetime, 0.0))
