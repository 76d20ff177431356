"""authlib's OAuth 2.0 server components, bound to Starlette and to the identity directory.

authlib ships no Starlette integration and is synchronous, so a route first reads the whole
request (`read_request`) and then hands authlib a finished `StarletteOAuth2Request`, the way
authlib's own Flask and Django integrations wrap their frameworks' requests. Everything that is
protocol (client authentication, redirect-URI and scope checks, grant dispatch, token responses,
error bodies, Bearer parsing) is authlib's; this module only stores and finds records.

authlib ships no type information, so its names are `Any` to mypy: imports and subclasses carry
`type: ignore`s, each also tolerating `unused-ignore` so that adding stubs or a mypy override
for authlib later does not turn them into errors.
"""

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from authlib.common.security import generate_token  # type: ignore[import-untyped, unused-ignore]
from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped, unused-ignore]
    AuthorizationServer,
    JsonRequest,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
    grants,
)
from authlib.oauth2.rfc6749.errors import InvalidGrantError  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc6750 import (  # type: ignore[import-untyped, unused-ignore]
    BearerTokenGenerator,
    BearerTokenValidator,
)
from starlette.requests import Request
from starlette.responses import Response

from gateway.clock import Clock
from gateway.simulator._identity_directory import (
    DEFAULT_SCOPE,
    AuthorizationCode,
    IdentityClient,
    IdentityDirectory,
    IdentityUser,
    IssuedToken,
)

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
GRANT_TYPES = ("authorization_code", "refresh_token")
INVALID_CODE = "Invalid authorization code"
INVALID_REFRESH_TOKEN = "Invalid refresh token"  # noqa: S105 - an error description, not a secret


@dataclass(frozen=True)
class ReadRequest:
    """A Starlette request with its body already read, ready for synchronous authlib code."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Sequence[tuple[str, str]]
    form: Sequence[tuple[str, str]]


async def read_request(request: Request) -> ReadRequest:
    """Read query and url-encoded form (the only body OAuth 2.0 endpoints take) up front."""
    form: list[tuple[str, str]] = []
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # Latin-1 never fails and is the identity on the ASCII a url-encoded body is made of.
        form = parse_qsl((await request.body()).decode("latin-1"), keep_blank_values=True)
    return ReadRequest(request.method, str(request.url), request.headers, request.query_params.multi_items(), form)


class _Payload(OAuth2Payload):  # type: ignore[misc, unused-ignore]
    """Query and form parameters together, the form winning (as in authlib's Django integration)."""

    def __init__(self, read: ReadRequest) -> None:
        self._data = dict(read.query) | dict(read.form)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in [*read.query, *read.form]:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc, unused-ignore]
    """authlib's request object over a `ReadRequest`."""

    def __init__(self, read: ReadRequest) -> None:
        super().__init__(method=read.method, uri=read.url, headers=read.headers)
        self.payload = _Payload(read)
        self._args = dict(read.query)
        self._form = dict(read.form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass(frozen=True)
class _Client:
    """An `IdentityClient` as authlib's `ClientMixin` sees it."""

    record: IdentityClient

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> str:
        return self.record.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        # The server already refused scopes other than get_user_info; none asked means the default.
        return scope or DEFAULT_SCOPE

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.record.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.record.secret_matches(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass(frozen=True)
class _Code:
    """An `AuthorizationCode` as authlib's `AuthorizationCodeMixin` sees it."""

    record: AuthorizationCode
    redirect_uri_sent: bool

    def get_redirect_uri(self) -> str | None:
        # The identity domain makes redirect_uri optional at the token endpoint (spec §4.2 step 4):
        # authlib compares it with the code's only when the token request carries one.
        return self.record.redirect_uri if self.redirect_uri_sent else None

    def get_scope(self) -> str:
        return self.record.scope


@dataclass(frozen=True)
class _Token:
    """An `IssuedToken` as authlib's `TokenMixin` sees it, at a given moment."""

    record: IssuedToken
    server: "IdentityAuthorizationServer"

    def check_client(self, client: _Client) -> bool:
        return self.record.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return self.server.directory.access_token_lifetime_s

    def is_expired(self) -> bool:
        return self.server.clock.now() >= self.record.access_expires_at

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> IdentityUser | None:
        return self.server.directory.user(self.record.tenant_id, self.record.user_name)

    def get_client(self) -> _Client | None:
        client = self.server.directory.client(self.record.client_id)
        return _Client(client) if client is not None else None


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc, unused-ignore]
    """The code grant, storing codes in the directory and adding `tenant` to the redirect."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: "IdentityAuthorizationServer"

    @property
    def tenant_id(self) -> str:
        """The tenant of the client asking (valid after authlib validated the request)."""
        client: _Client = self.request.client
        return client.record.tenant_id

    def create_authorization_response(self, redirect_uri: str, grant_user: IdentityUser) -> tuple[int, str, Any]:
        self._sent_to = redirect_uri
        status, body, headers = super().create_authorization_response(redirect_uri, grant_user)
        # The marketplace's callback carries `code` and `tenant` (spec §4.2 step 2, §4.3).
        located = [(name, value) for name, value in headers if name == "Location"]
        others = [(name, value) for name, value in headers if name != "Location"]
        tenant = [("tenant", grant_user.tenant_id)]
        return status, body, [*others, *(("Location", add_params_to_uri(uri, tenant)) for _, uri in located)]

    def save_authorization_code(self, code: str, request: StarletteOAuth2Request) -> None:
        user: IdentityUser = request.user
        self.server.directory.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                tenant_id=user.tenant_id,
                user_name=user.user_name,
                redirect_uri=self._sent_to,
                scope=request.scope,
                issued_at=self.server.clock.now(),
            )
        )

    def query_authorization_code(self, code: str, client: _Client) -> _Code:
        found = self.server.directory.take_code(code, client_id=client.get_client_id(), now=self.server.clock.now())
        if found is None:
            raise InvalidGrantError(description=INVALID_CODE)
        return _Code(found, redirect_uri_sent=self.request.payload.redirect_uri is not None)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Nothing left to do: `query_authorization_code` consumed the code on first use."""

    def authenticate_user(self, authorization_code: _Code) -> IdentityUser | None:
        return self.server.directory.user(authorization_code.record.tenant_id, authorization_code.record.user_name)


class _RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc, unused-ignore]
    """The refresh grant; rotates refresh tokens when the directory says so."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: "IdentityAuthorizationServer"

    def __init__(self, request: StarletteOAuth2Request, server: "IdentityAuthorizationServer") -> None:
        super().__init__(request, server)
        self.INCLUDE_NEW_REFRESH_TOKEN = server.directory.rotate_refresh_tokens

    def authenticate_refresh_token(self, refresh_token: str) -> _Token:
        found = self.server.directory.refresh_token(refresh_token)
        now = self.server.clock.now()
        if (
            found is None
            or found.refresh_revoked
            or found.refresh_expires_at is None
            or now >= found.refresh_expires_at
        ):
            raise InvalidGrantError(description=INVALID_REFRESH_TOKEN)
        return _Token(found, self.server)

    def authenticate_user(self, refresh_token: _Token) -> IdentityUser | None:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        if self.INCLUDE_NEW_REFRESH_TOKEN and refresh_token.record.refresh_token is not None:
            self.server.directory.revoke_refresh_token(refresh_token.record.refresh_token)


class _BearerTokenValidator(BearerTokenValidator):  # type: ignore[misc, unused-ignore]
    def __init__(self, server: "IdentityAuthorizationServer") -> None:
        super().__init__(realm="oneaccess")
        self.server = server

    def authenticate_token(self, token_string: str) -> _Token | None:
        found = self.server.directory.access_token(token_string)
        return _Token(found, self.server) if found is not None else None


class IdentityAuthorizationServer(AuthorizationServer):  # type: ignore[misc, unused-ignore]
    """authlib's authorization server over an `IdentityDirectory`, answering Starlette responses."""

    def __init__(self, directory: IdentityDirectory, clock: Clock) -> None:
        super().__init__(scopes_supported=[DEFAULT_SCOPE])
        self.directory = directory
        self.clock = clock
        self.register_token_generator(
            "default",
            BearerTokenGenerator(_new_token, _new_token, lambda client, grant_type: directory.access_token_lifetime_s),
        )
        self.register_grant(_AuthorizationCodeGrant)
        self.register_grant(_RefreshTokenGrant)
        self.resource_protector = ResourceProtector()
        self.resource_protector.register_token_validator(_BearerTokenValidator(self))

    def query_client(self, client_id: str) -> _Client | None:
        client = self.directory.client(client_id)
        return _Client(client) if client is not None else None

    def save_token(self, token: dict[str, Any], request: StarletteOAuth2Request) -> None:
        user: IdentityUser = request.user
        now = self.clock.now()
        refresh_token: str | None = token.get("refresh_token")
        self.directory.save_token(
            IssuedToken(
                access_token=token["access_token"],
                refresh_token=refresh_token,
                client_id=request.client.get_client_id(),
                tenant_id=user.tenant_id,
                user_name=user.user_name,
                scope=token.get("scope", DEFAULT_SCOPE),
                access_expires_at=now + timedelta(seconds=token["expires_in"]),
                refresh_expires_at=now + self.directory.refresh_token_lifetime if refresh_token else None,
            )
        )

    def create_oauth2_request(self, request: ReadRequest | StarletteOAuth2Request) -> StarletteOAuth2Request:
        if isinstance(request, StarletteOAuth2Request):
            return request
        return StarletteOAuth2Request(request)

    def create_json_request(self, request: ReadRequest) -> Any:
        return JsonRequest(request.method, request.url, request.headers)

    def handle_response(self, status: int, body: object, headers: Sequence[tuple[str, str]]) -> Response:
        content = json.dumps(body).encode() if isinstance(body, dict) else str(body or "").encode()
        return Response(content, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """No signal system here: nothing listens."""

    def authorization_grant(self, request: StarletteOAuth2Request) -> "_AuthorizationCodeGrant | Response":
        """authlib's grant for a valid authorization request, else authlib's error response.

        Errors found before the redirect URI is trusted (unknown client, unregistered URI) are a
        400 JSON body; later ones (bad response_type or scope) go back to the client as a redirect.
        """
        try:
            grant: _AuthorizationCodeGrant = self.get_consent_grant(request)
        except OAuth2Error as error:
            response: Response = self.handle_error_response(request, error)
            return response
        return grant

    def user_for_token(self, read: ReadRequest) -> IdentityUser | None:
        """The user a Bearer access token speaks for, or None for any missing, unknown or expired one."""
        try:
            token: _Token = self.resource_protector.validate_request([DEFAULT_SCOPE], self.create_json_request(read))
        except OAuth2Error:
            return None
        return token.get_user()


# authlib's root error, typed for Starlette's `exception_handlers`.
OAUTH2_ERROR: type[Exception] = OAuth2Error


async def oauth2_error_response(request: Request, exc: Exception) -> Response:
    """authlib's own JSON rendering of an error raised outside its handlers.

    The one expected here is `insecure_transport`: authlib refuses plain HTTP except on loopback.
    """
    error: Any = exc  # an authlib OAuth2Error: calling it renders (status, body, headers)
    status, body, headers = error()
    return Response(json.dumps(body).encode(), status_code=status, headers=dict(headers))


def _new_token(**_: object) -> str:
    return str(generate_token(48))
