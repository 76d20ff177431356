"""The demo product's side of SSO free login: it redeems MarketGate's login tokens and keeps
its own short sessions, as a real product would.

Pages, below `/apps/<slug>/`:

- `GET /login`: the vendor's own login page. Its button goes to MarketGate's
  `/sso/<slug>/login` (with the enterprise's tenant id when the visitor gives one).
- `GET /sso/enter?login_token=…`: where `on_login` sends a member. The token is redeemed once,
  in process; the demo's own session starts (cookie `demo_session`, HttpOnly, SameSite=Lax,
  path `/apps/<slug>/`) and the browser goes on to `/me`, so the token leaves the address bar.
- `GET /me`: who is signed in, with their marketplace role; a sign-out link to MarketGate.

Sessions live in this process's memory (the demo runs as one process), at most `MAX_SESSIONS`,
for `SESSION_TTL_S` at most, and end with MarketGate's (`end_for`).
"""

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.adapters.contract import LoginGrant, LoginTokens

SESSION_COOKIE = "demo_session"
MAX_SESSIONS = 10_000
SESSION_TTL_S = 8 * 3600.0

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<main>
{content}
</main>
</body>
</html>
"""


def _page(title: str, content: str, *, status_code: int = 200) -> HTMLResponse:
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(_PAGE.format(title=escape(title), content=content), status_code=status_code, headers=headers)


@dataclass(frozen=True, slots=True)
class _Session:
    grant: LoginGrant
    started: float


class DemoSessions:
    """The demo product's own sessions, by a random id in its cookie."""

    def __init__(self, *, max_sessions: int = MAX_SESSIONS, ttl_s: float = SESSION_TTL_S) -> None:
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._max = max_sessions
        self._ttl_s = ttl_s

    def start(self, grant: LoginGrant) -> str:
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = _Session(grant, time.monotonic())
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str | None) -> LoginGrant | None:
        found = self._sessions.get(session_id) if session_id else None
        if found is None:
            return None
        if time.monotonic() - found.started > self._ttl_s:
            self._sessions.pop(session_id or "", None)
            return None
        return found.grant

    def end_for(self, marketgate_session: str) -> int:
        """End the demo sessions started from one MarketGate session; how many there were."""
        ended = [key for key, value in self._sessions.items() if value.grant.session_id == marketgate_session]
        for key in ended:
            del self._sessions[key]
        return len(ended)

    def __len__(self) -> int:
        return len(self._sessions)


def sso_routes(
    *, product: str, product_name: str, sessions: DemoSessions, login_tokens: LoginTokens | None
) -> list[BaseRoute]:
    """The demo product's SSO pages (mounted with its other pages at /apps/<product>/)."""
    base = f"/apps/{quote(product, safe='')}"
    marketgate_login = f"/sso/{quote(product, safe='')}/login"

    async def login_page(request: Request) -> Response:
        content = (
            f"<h1>{escape(product_name)}</h1>\n"
            f'<form id="sso-login" method="get" action="{escape(marketgate_login)}">\n'
            '<label for="tenant">Enterprise (tenant ID, optional)</label> <input id="tenant" name="tenant">\n'
            '<button id="sign-in" type="submit">Sign in with Huawei Cloud</button>\n'
            "</form>"
        )
        return _page(f"Sign in — {product_name}", content)

    async def enter(request: Request) -> Response:
        token = request.query_params.get("login_token", "")
        grant = await login_tokens.redeem(token) if login_tokens is not None and token else None
        if grant is None:
            content = (
                '<h1 id="enter-failed">This sign-in link is no longer valid</h1>\n'
                f'<p><a id="sign-in-again" href="{base}/login">Sign in again</a></p>'
            )
            return _page("Sign-in link expired", content, status_code=400)
        response = RedirectResponse(f"{base}/me", status_code=303, headers={"Referrer-Policy": "no-referrer"})
        response.set_cookie(
            SESSION_COOKIE,
            sessions.start(grant),
            path=f"{base}/",
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="lax",
        )
        return response

    async def me(request: Request) -> Response:
        grant = sessions.get(request.cookies.get(SESSION_COOKIE))
        if grant is None:
            content = (
                f"<h1>{escape(product_name)}</h1>\n"
                '<p id="signed-out">You are not signed in.</p>\n'
                f'<p><a id="sign-in" href="{base}/login">Sign in</a></p>'
            )
            return _page(product_name, content)
        member = grant.member
        content = (
            f"<h1>{escape(product_name)}</h1>\n"
            f'<p id="member">Signed in as <strong id="member-name">{escape(member.name)}</strong> '
            f'(<code id="member-user">{escape(member.user_name)}</code>)</p>\n'
            "<dl>\n"
            f'<dt>Role</dt><dd id="member-role">{escape(member.role)}</dd>\n'
            f'<dt>Enterprise</dt><dd id="member-tenant">{escape(member.tenant_id)}</dd>\n'
            "</dl>\n"
            f'<p><a id="sign-out" href="/sso/{quote(product, safe="")}/logout">Sign out</a></p>'
        )
        return _page(f"{product_name} — {member.name}", content)

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/sso/enter", enter, methods=["GET"]),
        Route("/me", me, methods=["GET"]),
    ]
