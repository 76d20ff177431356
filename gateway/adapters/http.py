"""The HTTP adapter: each contract call becomes a signed JSON POST to a backend in any language.

This docstring is the wire format backend authors implement.

Settings (`[products.<slug>.adapter_settings]`):

- `url`: the backend's http(s) base URL, without credentials, query or fragment.
- `secret`, or `secret_env` naming an environment variable that holds it, or `secret_file`
  naming a file that holds it (a trailing newline is ignored; a relative path is read beside
  the products file): the shared signing secret, at least 16 characters.
- `timeout_s` (default 2.5): the whole-request deadline, in seconds.
- `handles_test_calls` (default false): whether the marketplace's debug calls reach the backend.

Requests. `POST {url}/marketgate/v1/{operation}`, where `operation` is one of `provision`,
`renew`, `set_status`, `release`, `upgrade`, `check_change`, `describe`, `directory_event`, `login`,
`session_end`. The body is UTF-8
JSON, keys in camelCase, times as ISO-8601 UTC (`2030-01-31T00:00:00Z`), absent values as null:

    instance     {"product": str, "instanceId": str, "isTest": bool}
    order        {"orderId", "orderLineId", "orderType", "chargingMode", "periodType",
                  "periodNumber": int, "expireTime": time, "productId", "skuCode",
                  "productName", "linearValue": int,
                  "buyer": {"customerId", "customerName", "customerRealName",
                            "customerType": int, "userId", "userName", "mobilePhone", "email"},
                  "extendParams": {str: str}}

    provision     {"instance", "order": order | null}
    renew         {"instance", "scene", "orderId", "expireTime": time, "productId"}
    set_status    {"instance", "frozen": bool}
    release       {"instance"}
    upgrade       {"instance", "order": order | null}
    check_change  {"instance", "productId", "skuCode", "productName", "linearValue": int | null}
    describe      {"instance"}
    directory_event  {"eventId", "type", "product", "tenantId", "isTest", "data"}: a change of a
                  buyer's directory (see `DirectoryEvent` in the contract for every `data`; keys
                  inside `data` stay snake_case). `type` is "tenant.bound", "tenant.changed",
                  "tenant.unbound", "app.credentials_changed", "departments.changed",
                  "members.authorized", "members.changed", "members.revoked" (the Kit syncs) or
                  "member_roles.changed"; a backend ignores a type it does not know
    member_roles.changed  the `data` of that directory_event: whose effective product roles
                  changed (a tenant admin granted or revoked roles, or an authSync authorized,
                  revoked, enabled, disabled, re-roled or moved members), and their roles now:
                  {"cause": "memberRolesGrant" | "memberRolesRevoke" | "authSync",
                   "members": [{"user_name": str, "roles": [str]}]}, at most 1000 members an
                  event, only those whose roles changed; `roles` is all of the member's effective
                  roles, in the product's order ([]: none left). Apply it as a replacement.
    member       {"product", "tenantId", "isTest": bool, "userName", "name", "role": "admin" | "user",
                  "orgCode", "instanceId"}
    login        {"member", "sessionId", "loginToken", "expiresAt": time, "redeemUrl", "nextUrl"}: a
                  member signed in through SSO; answer where their browser goes. The backend's page
                  redeems `loginToken` once: `POST {redeemUrl}` with `Authorization: Bearer
                  <the product's sso_redeem_key>` and `{"loginToken": ...}` (see README, "SSO")
    session_end  {"member", "sessionId", "reason": "logout" | "revoked" | "refresh_failed"}

Headers:

- `x-marketgate-timestamp`: milliseconds since the Unix epoch, when the request was signed.
- `x-marketgate-nonce`: random hex, new for every attempt.
- `x-marketgate-product`: the product's slug.
- `x-marketgate-signature`: lowercase hex HMAC-SHA256 with the secret as key over
  `timestamp + "\\n" + nonce + "\\n" + operation + "\\n" + product + "\\n" + body` (the
  operation as in the path, the product as in its header, the body's exact bytes): a request
  signed for one operation or product does not verify for another (`describe` and `release`
  of an instance carry the same body).
- `x-marketgate-event-id`: hex SHA-256 of `operation + "\\n" + body`. Every retry of a delivery
  carries the same id, but so does a later request with the same content (freeze, unfreeze,
  freeze): never skip a request because its id was seen before.

A backend checks the signature over the operation of the path it was called on and the product
it serves, and that the timestamp is within five minutes of its clock
(`verify_backend_signature` does both), and should refuse a nonce it saw in that window.
Delivery is at least once: every operation must be idempotent, and applied as it comes.

Answers (any 2xx status; JSON where a body is read; unknown keys are ignored):

- `provision`: `{"appInfo": {"frontEndUrl": str, "adminUrl", "userName", "password", "memo"}}`;
  to refuse the purchase, status 409 with `{"refusal": "000100".."000107", "message": str}`.
- `describe`: the same `{"appInfo": ...}`, or `{"appInfo": null}` to keep what provision gave.
- `check_change`: `{"accepted": bool, "reason": str}`.
- `login`: `{"url": "https://..."}`, an absolute http(s) URL into the product (at most 4096 characters).
- `renew`, `set_status`, `release`, `upgrade`, `directory_event`, `session_end`: the body is not read.

Status 5xx or 429, a timeout or a connection failure make MarketGate retry the same request
later; any other answer (another 4xx, a redirect, malformed JSON) is a `BackendContractError`,
also retried and logged, since it is a bug to fix on one side or the other.
"""

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from gateway.adapters.contract import (
    AdapterConfigError,
    AdapterContext,
    AdapterError,
    AppInfo,
    ChangeCheckRequest,
    ChangeDecision,
    DirectoryEvent,
    InstanceRef,
    LoginRequest,
    ProvisionRequest,
    Refusal,
    Refused,
    RenewRequest,
    RetryLater,
    SessionEnd,
    StatusRequest,
    UpgradeRequest,
)
from gateway.outbound import AnswerTooLargeError, outbound_client, read_capped

__all__ = [
    "BackendContractError",
    "HttpAdapter",
    "HttpAdapterSettings",
    "sign_request",
    "verify_backend_signature",
    "wire_body",
]

Operation = Literal[
    "provision",
    "renew",
    "set_status",
    "release",
    "upgrade",
    "check_change",
    "describe",
    "directory_event",
    "login",
    "session_end",
]

MIN_SECRET_LENGTH = 16
MAX_ANSWER_BYTES = 1024 * 1024
"""The longest answer body read; a longer one is a `BackendContractError`."""
_READ_ANSWERS = frozenset({"provision", "describe", "check_change", "login"})
"""The operations whose answer has a body to read."""
SIGNATURE_WINDOW_MS = 300_000
_MESSAGE_LIMIT = 200


class BackendContractError(AdapterError):
    """The backend answered something the wire format does not allow."""

    code = "backend_contract"


# -- signing: pure functions, shared by MarketGate and Python backends ---------------------------------


def sign_request(secret: str, *, timestamp: str, nonce: str, operation: str, product: str, body: bytes) -> str:
    """The `x-marketgate-signature` of a request: hex HMAC-SHA256 over timestamp, nonce,
    operation, product and body."""
    head = "\n".join((timestamp, nonce, operation, product)).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), head + b"\n" + body, hashlib.sha256).hexdigest()


def verify_backend_signature(
    secret: str,
    *,
    timestamp: str,
    nonce: str,
    operation: str,
    product: str,
    body: bytes,
    signature: str,
    now_ms: int,
    window_ms: int = SIGNATURE_WINDOW_MS,
) -> bool:
    """True when `signature` signs this exact request and `timestamp` is within `window_ms` of now.

    For backends written in Python: pass the timestamp, nonce and signature headers as received,
    the operation of the path the request came to, the product slug the backend serves (not the
    header's, unchecked), the raw body bytes and the current time in milliseconds. Replayed
    nonces are the backend's to refuse.
    """
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16 and nonce.isascii() and nonce):
        return False
    if "\n" in operation or "\n" in product or abs(now_ms - int(timestamp)) > window_ms:
        return False
    expected = sign_request(
        secret, timestamp=timestamp, nonce=nonce, operation=operation, product=product, body=body
    )
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8", "replace"))


# -- the request body -----------------------------------------------------------------------------------


def _wire_time(moment: datetime) -> str:
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def _wire_value(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {to_camel(item.name): _wire_value(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, datetime):
        return _wire_time(value)
    if isinstance(value, Mapping):
        # extendParams keep the marketplace's own names.
        return {str(key): _wire_value(item) for key, item in value.items()}
    return value


def wire_body(request: object) -> bytes:
    """The JSON body for a request dataclass (or `{"instance": ...}` for an InstanceRef)."""
    payload = {"instance": _wire_value(request)} if isinstance(request, InstanceRef) else _wire_value(request)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def event_id(operation: str, body: bytes) -> str:
    """The `x-marketgate-event-id`: the same for every retry of a delivery (and for any request
    with the same content)."""
    return hashlib.sha256(operation.encode("ascii") + b"\n" + body).hexdigest()


# -- settings -------------------------------------------------------------------------------------------


class HttpAdapterSettings(BaseModel):
    """The HTTP adapter's settings; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret: SecretStr | None = None
    secret_env: str | None = Field(default=None, min_length=1)
    secret_file: Path | None = None
    timeout_s: float = Field(default=2.5, gt=0, le=60)
    handles_test_calls: bool = False

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials; use secret or secret_env")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_secret_source(self) -> "HttpAdapterSettings":
        if [self.secret, self.secret_env, self.secret_file].count(None) != 2:
            raise ValueError("give exactly one of secret, secret_env and secret_file")
        return self

    def resolved_secret(self, config_dir: Path) -> str:
        """The signing secret, read from the environment or a file (relative to `config_dir`) if so
        configured."""
        if self.secret is not None:
            secret = self.secret.get_secret_value()
        elif self.secret_file is not None:
            path = config_dir / self.secret_file
            try:
                secret = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise AdapterConfigError(f"secret_file {str(path)!r} cannot be read") from exc
        else:
            assert self.secret_env is not None  # ensured by _one_secret_source
            secret = os.environ.get(self.secret_env, "")
            if not secret:
                raise AdapterConfigError(f"environment variable {self.secret_env!r} is not set")
        if len(secret) < MIN_SECRET_LENGTH:
            raise AdapterConfigError(f"the secret must have at least {MIN_SECRET_LENGTH} characters")
        return secret


def _settings(settings: Mapping[str, Any]) -> HttpAdapterSettings:
    try:
        return HttpAdapterSettings.model_validate(dict(settings))
    except ValidationError as exc:
        # Never echo input values: one of them may be the secret.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise AdapterConfigError(f"invalid http adapter settings: {problems}") from exc


# -- answers --------------------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, frozen=True)


class _WireAppInfo(_Answer):
    front_end_url: str  # its limits are the marketplace's, checked for every adapter (`app_info_problem`)
    admin_url: str | None = None
    user_name: str | None = None
    password: str | None = Field(default=None, repr=False)
    memo: str | None = None


class _AppInfoAnswer(_Answer):
    app_info: _WireAppInfo | None


class _ChangeAnswer(_Answer):
    accepted: bool = Field(strict=True)  # "yes" or 1 is no decision
    reason: str = ""


class _LoginAnswer(_Answer):
    url: str = Field(min_length=1, max_length=4096)


class _RefusalAnswer(_Answer):
    refusal: Refusal
    message: str = ""


AnswerT = TypeVar("AnswerT", bound=_Answer)


@dataclass(frozen=True, slots=True)
class _Reply:
    """A backend's answer: its status and, for the operations that read it, its body."""

    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


# -- the adapter ----------------------------------------------------------------------------------------


class HttpAdapter:
    """Forwards every contract call to a backend over signed HTTP; see the module docstring."""

    contract_version: ClassVar[int] = 4
    handles_test_calls: bool

    def __init__(
        self,
        settings: Mapping[str, Any],
        context: AdapterContext,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = _settings(settings)
        self.context = context
        self.handles_test_calls = self.settings.handles_test_calls
        self._secret = self.settings.resolved_secret(Path(context.config_dir))
        self._client = outbound_client(
            base_url=self.settings.url,
            timeout=httpx.Timeout(self.settings.timeout_s),
            transport=transport,
            headers={"user-agent": "MarketGate-http-adapter/1"},
        )

    def __repr__(self) -> str:
        return f"HttpAdapter(product={self.context.product!r}, url={self.settings.url!r})"

    def _safe(self, text: str) -> str:
        """Backend text fit for a message: short, and without the secret should it be echoed."""
        return text.replace(self._secret, "***")[:_MESSAGE_LIMIT]

    async def _post(self, operation: Operation, request: object) -> _Reply:
        body = wire_body(request)
        timestamp = str(time.time_ns() // 1_000_000)
        nonce = secrets.token_hex(16)
        headers = {
            "content-type": "application/json",
            "x-marketgate-timestamp": timestamp,
            "x-marketgate-nonce": nonce,
            "x-marketgate-signature": sign_request(
                self._secret,
                timestamp=timestamp,
                nonce=nonce,
                operation=operation,
                product=self.context.product,
                body=body,
            ),
            "x-marketgate-event-id": event_id(operation, body),
            "x-marketgate-product": self.context.product,
        }
        try:
            async with (
                asyncio.timeout(self.settings.timeout_s),
                self._client.stream("POST", f"/marketgate/v1/{operation}", content=body, headers=headers) as response,
            ):
                # An answer whose body is not read is left unread (its connection is closed).
                content = await read_capped(response, MAX_ANSWER_BYTES) if operation in _READ_ANSWERS else b""
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise RetryLater(f"backend timed out on {operation} after {self.settings.timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise RetryLater(f"backend unreachable on {operation}: {type(exc).__name__}") from exc
        except httpx.DecodingError as exc:
            raise BackendContractError(f"answer to {operation} has a bad content encoding") from exc
        except AnswerTooLargeError as exc:
            raise BackendContractError(f"answer to {operation} is {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryLater(f"backend answered {response.status_code} to {operation}")
        return _Reply(response.status_code, content)

    def _expect_success(self, operation: Operation, response: _Reply) -> None:
        if not response.is_success:
            raise BackendContractError(f"backend answered {response.status_code} to {operation}")

    def _read(self, operation: Operation, content: bytes, model: type[AnswerT]) -> AnswerT:
        try:
            return model.model_validate_json(content)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False, include_context=False)
            )
            raise BackendContractError(self._safe(f"malformed answer to {operation}: {problems}")) from exc

    def _parse(self, operation: Operation, response: _Reply, model: type[AnswerT]) -> AnswerT:
        self._expect_success(operation, response)
        return self._read(operation, response.content, model)

    @staticmethod
    def _app_info(wire: _WireAppInfo) -> AppInfo:
        return AppInfo(
            front_end_url=wire.front_end_url,
            admin_url=wire.admin_url,
            user_name=wire.user_name,
            password=wire.password,
            memo=wire.memo,
        )

    async def provision(self, request: ProvisionRequest) -> AppInfo:
        response = await self._post("provision", request)
        if response.status_code == 409:
            refusal = self._read("provision", response.content, _RefusalAnswer)
            raise Refused(refusal.refusal, self._safe(refusal.message) or "refused by the backend")
        answer = self._parse("provision", response, _AppInfoAnswer)
        if answer.app_info is None:
            raise BackendContractError("malformed answer to provision: appInfo is null")
        return self._app_info(answer.app_info)

    async def renew(self, request: RenewRequest) -> None:
        self._expect_success("renew", await self._post("renew", request))

    async def set_status(self, request: StatusRequest) -> None:
        self._expect_success("set_status", await self._post("set_status", request))

    async def release(self, instance: InstanceRef) -> None:
        self._expect_success("release", await self._post("release", instance))

    async def upgrade(self, request: UpgradeRequest) -> None:
        self._expect_success("upgrade", await self._post("upgrade", request))

    async def check_change(self, request: ChangeCheckRequest) -> ChangeDecision:
        answer = self._parse("check_change", await self._post("check_change", request), _ChangeAnswer)
        return ChangeDecision(accepted=answer.accepted, reason=self._safe(answer.reason))

    async def describe(self, instance: InstanceRef) -> AppInfo | None:
        answer = self._parse("describe", await self._post("describe", instance), _AppInfoAnswer)
        return self._app_info(answer.app_info) if answer.app_info is not None else None

    async def on_directory_event(self, event: DirectoryEvent) -> None:
        self._expect_success("directory_event", await self._post("directory_event", event))

    async def on_login(self, request: LoginRequest) -> str:
        answer = self._parse("login", await self._post("login", request), _LoginAnswer)
        return answer.url

    async def on_session_end(self, end: SessionEnd) -> None:
        self._expect_success("session_end", await self._post("session_end", end))

    async def aclose(self) -> None:
        await self._client.aclose()
