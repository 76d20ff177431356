"""MarketGate's SSO cookies: names, signing, and the attributes every one of them gets.

The session cookie holds a random session id and an HMAC-SHA256 tag over it, under a key
derived from the master key: a tampered or made-up value is refused before the store is
asked. Pure functions over bytes; comparisons in constant time.
"""

import base64
import hashlib
import hmac
import re

from starlette.responses import Response

from graphql_api.principals import SESSION_COOKIE

FLOW_COOKIE = "mg_sso_flow"
"""Binds a login MarketGate started to the browser that started it (path /sso/<slug>/)."""

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def cookie_key(master_key: bytes) -> bytes:
    """The signing key of SSO cookies, derived from (and independent of other uses of) the master key."""
    return hmac.new(master_key, b"marketgate/sso/cookie/v1", hashlib.sha256).digest()


def _tag(value: str, key: bytes) -> str:
    mac = hmac.new(key, value.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign(value: str, *, key: bytes) -> str:
    """`value.tag`; `value` must be a URL-safe token."""
    if not _TOKEN.match(value):
        raise ValueError("only URL-safe tokens are signed")
    return f"{value}.{_tag(value, key)}"


def unsign(signed: str, *, key: bytes) -> str | None:
    """The value of a well-formed, correctly signed cookie, else None."""
    value, _, tag = signed.partition(".")
    if not _TOKEN.match(value) or not tag:
        return None
    expected = _tag(value, key)
    return value if hmac.compare_digest(expected.encode("ascii"), tag.encode("ascii", "replace")) else None


def is_token(value: str | None) -> bool:
    """A URL-safe random token as MarketGate makes them (flow nonces, login and bearer tokens)."""
    return value is not None and bool(_TOKEN.match(value))


def set_session_cookie(response: Response, value: str, *, max_age_s: float, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=int(max_age_s), path="/", httponly=True, secure=secure, samesite="lax"
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=secure, samesite="lax")


def set_flow_cookie(response: Response, value: str, *, product: str, max_age_s: float, secure: bool) -> None:
    response.set_cookie(
        FLOW_COOKIE,
        value,
        max_age=int(max_age_s),
        path=f"/sso/{product}/",
        httponly=True,
        secure=secure,
        samesite="lax",
    )


def clear_flow_cookie(response: Response, *, product: str, secure: bool) -> None:
    response.delete_cookie(FLOW_COOKIE, path=f"/sso/{product}/", httponly=True, secure=secure, samesite="lax")
