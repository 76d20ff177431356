"""A tenant identity domain (Huawei OneAccess) played locally: a real OAuth 2.0 server, authlib's.

`create_identity_app(directory, issuer=...)` serves the paths of a tenant's `{domainName}`
(koogallery-kit-sso.md §4) with authlib's authorization server, grants and resource protector:

- `GET /api/v1/oauth2/authorize` (response_type=code, client_id, redirect_uri, scope, state):
  not logged in (or logged into another tenant) -> 302 to the login page, which continues the
  authorization; logged in -> 302 to `redirect_uri?code=...&state=...&tenant=<tenant id>`.
  redirect_uri must be one of the client's, exactly. Codes are single use and live 5 minutes.
- `GET /workbench/launch?client_id=...`: the enterprise workbench starting a login the app did not
  start: 302 to the client's first redirect URI with `code` and `tenant`, no `state`.
- `GET|POST /api/v1/login`: the login form (ids `username`, `password`, `login`) and its handler.
- `POST /api/v1/oauth2/token`: authorization_code and refresh_token grants, client_secret_post or
  HTTP Basic; 2 h access tokens, 30-day refresh tokens, rotated unless the directory says not.
- `GET /api/v1/oauth2/userinfo` (Bearer): the user, or 401 `unauthorized` as OneAccess answers it.
- `GET /api/v1/logout?redirect_url=...`: ends the login session, 302 to redirect_url or the login page.

Tests drive it through `httpx.ASGITransport`, or over real HTTP with `serve_identity`. Faults
(`directory.faults`), request statistics (`directory.stats`) and programmatic logins
(`directory.log_in`, cookie `SESSION_COOKIE`) live on the directory.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from urllib.parse import urlencode, urlsplit

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.clock import Clock, SystemClock
from gateway.simulator._identity_directory import (
    DEFAULT_SCOPE,
    IdentityClient,
    IdentityDirectory,
    IdentityFaults,
    IdentitySetupError,
    IdentityTenant,
    IdentityUser,
    RequestStats,
    Role,
)
from gateway.simulator._identity_oauth import (
    CLIENT_AUTH_METHODS,
    GRANT_TYPES,
    OAUTH2_ERROR,
    IdentityAuthorizationServer,
    ReadRequest,
    oauth2_error_response,
    read_request,
)

__all__ = [
    "AUTHORIZE_PATH",
    "LOGIN_PATH",
    "LOGOUT_PATH",
    "METADATA_PATH",
    "SESSION_COOKIE",
    "TOKEN_PATH",
    "USERINFO_PATH",
    "WORKBENCH_PATH",
    "IdentityClient",
    "IdentityDirectory",
    "IdentityFaults",
    "IdentitySetupError",
    "IdentityTenant",
    "IdentityUser",
    "RequestStats",
    "Role",
    "create_identity_app",
    "serve_identity",
]

AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
TOKEN_PATH = "/api/v1/oauth2/token"  # noqa: S105 - a path
USERINFO_PATH = "/api/v1/oauth2/userinfo"
LOGIN_PATH = "/api/v1/login"
LOGOUT_PATH = "/api/v1/logout"
WORKBENCH_PATH = "/workbench/launch"
METADATA_PATH = "/.well-known/oauth-authorization-server"
SESSION_COOKIE = "oneaccess_session"

UNAUTHORIZED = {"error": "unauthorized", "error_description": "Full authentication is required to access this resource"}
INJECTED_FAILURE = {"error": "server_error", "error_description": "Failure injected by the identity simulator"}


def create_identity_app(directory: IdentityDirectory, *, issuer: str, clock: Clock | None = None) -> Starlette:
    """The identity domain's HTTP face over `directory`; `issuer` is its public base URL.

    `clock` decides when codes and tokens expire (default: the system clock). The app keeps
    `directory` and `issuer` on `app.state.identity_directory` / `app.state.identity_issuer`.
    """
    server = IdentityAuthorizationServer(directory, clock or SystemClock())
    base = issuer.rstrip("/")

    async def authorize(request: Request) -> Response:
        read = await read_request(request)
        return _authorize(server, read, _session_user(directory, request), continue_to=_path_and_query(request))

    async def workbench_launch(request: Request) -> Response:
        # The workbench asks on the user's behalf: the client's first redirect URI, no state.
        client_id = request.query_params.get("client_id", "")
        client = directory.client(client_id)
        query = [("response_type", "code"), ("client_id", client_id), ("scope", DEFAULT_SCOPE)]
        if client is not None:
            query.append(("redirect_uri", client.redirect_uris[0]))
        read = ReadRequest("GET", str(request.url), request.headers, query, [])
        return _authorize(server, read, _session_user(directory, request), continue_to=_path_and_query(request))

    async def login_page(request: Request) -> Response:
        return _login_form(request.query_params.get("next", ""), request.query_params.get("tenant", ""))

    async def login(request: Request) -> Response:
        form = dict((await read_request(request)).form)
        next_path, tenant = form.get("next", ""), form.get("tenant", "")
        user = directory.authenticate(tenant, form.get("username", ""), form.get("password", ""))
        if user is None:
            return _login_form(next_path, tenant, error="Invalid username or password.", status_code=401)
        response: Response
        if _is_local_path(next_path):
            response = RedirectResponse(next_path, status_code=302)
        else:
            response = HTMLResponse(f'<p id="signed-in">Signed in as {escape(user.user_name)}.</p>')
        response.set_cookie(
            SESSION_COOKIE,
            directory.log_in(user.tenant_id, user.user_name),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            directory.log_out(session_id)
        target = request.query_params.get("redirect_url", "")
        response = RedirectResponse(target if _is_redirect_target(target) else LOGIN_PATH, status_code=302)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
        return response

    async def token(request: Request) -> Response:
        faults = directory.faults
        if faults.token_delay_s > 0:
            await anyio.sleep(faults.token_delay_s)
        if faults.token_status is not None:
            return JSONResponse(INJECTED_FAILURE, faults.token_status)
        response: Response = server.create_token_response(await read_request(request))
        return response

    async def userinfo(request: Request) -> Response:
        faults = directory.faults
        if faults.userinfo_delay_s > 0:
            await anyio.sleep(faults.userinfo_delay_s)
        if faults.userinfo_status is not None:
            return JSONResponse(INJECTED_FAILURE, faults.userinfo_status)
        user = server.user_for_token(await read_request(request))
        if user is not None and faults.userinfo_as is not None:
            user = directory.user(*faults.userinfo_as)
        tenant = directory.tenant(user.tenant_id) if user is not None else None
        if user is None or tenant is None:
            return JSONResponse(UNAUTHORIZED, 401, headers={"WWW-Authenticate": 'Bearer realm="oneaccess"'})
        return JSONResponse(user.userinfo(tenant))

    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": base + AUTHORIZE_PATH,
                "token_endpoint": base + TOKEN_PATH,
                "userinfo_endpoint": base + USERINFO_PATH,
                "response_types_supported": ["code"],
                "grant_types_supported": list(GRANT_TYPES),
                "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
                "scopes_supported": [DEFAULT_SCOPE],
            }
        )

    app = Starlette(
        routes=[
            Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
            Route(WORKBENCH_PATH, workbench_launch, methods=["GET"]),
            Route(LOGIN_PATH, login_page, methods=["GET"]),
            Route(LOGIN_PATH, login, methods=["POST"]),
            Route(LOGOUT_PATH, logout, methods=["GET"]),
            Route(TOKEN_PATH, token, methods=["POST"]),
            Route(USERINFO_PATH, userinfo, methods=["GET"]),
            Route(METADATA_PATH, metadata, methods=["GET"]),
        ],
        middleware=[Middleware(_CountRequests, stats=directory.stats)],
        exception_handlers={OAUTH2_ERROR: oauth2_error_response},
    )
    app.state.identity_directory = directory
    app.state.identity_issuer = base
    return app


@contextmanager
def serve_identity(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` with uvicorn in a background thread; yields its base URL (`port=0`: a free port).

    The socket is bound before the thread starts, so the URL is right even for port 0. On exit
    the server finishes in-flight requests and the thread is joined.
    """
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off", ws="none")
    server = uvicorn.Server(config)
    with _bound_socket(host, port) as sock:
        bound_port = int(sock.getsockname()[1])
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="identity-server", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the identity server did not start")
                time.sleep(0.01)
            yield f"http://{host}:{bound_port}"
        finally:
            server.should_exit = True
            thread.join(10)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5)


@contextmanager
def _bound_socket(host: str, port: int) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        yield sock
    finally:
        sock.close()


class _CountRequests:
    """Counts requests and the seconds spent on them, per path, into `RequestStats`."""

    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.stats.record(scope["path"], time.perf_counter() - started)


def _authorize(
    server: IdentityAuthorizationServer, read: ReadRequest, user: IdentityUser | None, *, continue_to: str
) -> Response:
    """Validate with authlib; send strangers to the login page; else issue a code (and `tenant`)."""
    oauth_request = server.create_oauth2_request(read)
    grant = server.authorization_grant(oauth_request)
    if isinstance(grant, Response):
        return grant
    tenant_id = grant.tenant_id
    if user is None or user.tenant_id != tenant_id:
        return RedirectResponse(f"{LOGIN_PATH}?{urlencode({'next': continue_to, 'tenant': tenant_id})}", 302)
    answer: Response = server.create_authorization_response(request=oauth_request, grant_user=user, grant=grant)
    return answer


def _login_form(next_path: str, tenant: str, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    message = f'<p id="error" role="alert">{escape(error)}</p>' if error else ""
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - identity domain simulator</title></head>
<body>
<h1>Sign in</h1>
{message}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="next" value="{escape(next_path)}">
<input type="hidden" name="tenant" value="{escape(tenant)}">
<label for="username">Username</label> <input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login" type="submit">Sign in</button>
</form>
</body></html>
""",
        status_code=status_code,
    )


def _session_user(directory: IdentityDirectory, request: Request) -> IdentityUser | None:
    return directory.session_user(request.cookies.get(SESSION_COOKIE))


def _path_and_query(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def _is_local_path(target: str) -> bool:
    """Only same-site paths after login: `//host` and `/\\host` would leave the site."""
    return target.startswith("/") and not target.startswith(("//", "/\\"))


def _is_redirect_target(target: str) -> bool:
    parts = urlsplit(target)
    return _is_local_path(target) or (parts.scheme in ("http", "https") and bool(parts.netloc))
