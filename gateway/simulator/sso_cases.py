"""The `sso` flow: free login (免登) played end to end, as the marketplace and a tenant's identity domain play it.

The simulator serves the run's tenant identity domain itself (`identity.serve_identity`), knowing
the tenant, the OAuth client and the members the `kit` flow synced (tenantSync, applicationSync,
authSync), plus a user of the tenant the buyer never authorized. The server calls it from its
side (token, userinfo): it is served at `--identity-host`/`--identity-port` while the tenant sync
names it `--tenant-domain`, so the server must map that name to the local address (MarketGate in
development: `MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES`, which `marketgate demo` sets).

A browser (`browser.Browser`) plays the members:

- `sso.login`: the server's login entry (`<sso-url>/login?tenant=…`), the identity domain's
  authorize endpoint and login form, then the callback (`<sso-url>/callback?code&state&tenant`):
  the server must exchange the code and read the user at the identity domain, then hand the
  member to the product: redirects, a session cookie, and a page answering 2xx (or another site);
- `sso.login.replay`: the same callback again, in the same browser: refused;
- `sso.forged-state`: a fresh sign-in whose callback carries another state: refused;
- `sso.forged-code`: a callback with a code the identity domain never issued: refused;
- `sso.workbench`: the enterprise workbench starts the sign-in (no state): handed to the product;
- `sso.unauthorized`: a user of the tenant authSync never authorized, from the workbench: refused.

Refused means an error page: HTTP 4xx, neither a server error (5xx) nor a redirect onwards.
A server that sends the browser to another identity domain, or whose callback answers 502 or
504 without having called the token endpoint, cannot reach the one served here: the case is
skipped, saying how to let it.
"""

import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx

from gateway.simulator.browser import Browser, next_url, origin, shown
from gateway.simulator.cases import RunState, client_credentials, tenant_name, users
from gateway.simulator.errors import CaseFailedError, CaseSkippedError, MissingValueError
from gateway.simulator.identity import (
    AUTHORIZE_PATH,
    LOGIN_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    WORKBENCH_PATH,
    IdentityDirectory,
)

SSO_FLOW = "sso"
DEFAULT_IDENTITY_HOST = "127.0.0.1"
DEFAULT_IDENTITY_PORT = 8002
"""`marketgate demo` maps the default tenant domain to this port (its own port + 2)."""
KIT_REQUIREMENTS = ("kit.tenantSync", "kit.applicationSync", "kit.authSync")
MAX_REDIRECTS = 10
UPSTREAM_FAILURES = (502, 504)
PASSWORD_ITERATIONS = 1_000
"""The simulator's own throw-away users need no slow password hash."""

_PRODUCTION_PATH = re.compile(r"^/koogallery/([a-z0-9-]{1,48})/?$")
_ERROR_CODE = re.compile(r'id="error-code">([A-Za-z0-9_.-]{1,64})<')


def default_sso_url(production_url: str) -> str | None:
    """MarketGate's SSO address beside its production address `…/koogallery/<slug>`: `…/sso/<slug>`."""
    parts = urlsplit(production_url)
    found = _PRODUCTION_PATH.match(parts.path)
    return f"{parts.scheme}://{parts.netloc}/sso/{found.group(1)}" if found else None


def member(run: RunState, role: str) -> str:
    """The userName of the run's authorized member with `role` (admin or user)."""
    return next(str(user["userName"]) for user in users(run) if user["role"] == role)


def guest(run: RunState) -> str:
    """A user of the run's tenant whom authSync never authorized."""
    return f"guest-{run.run_id.lower()}"


def tenant_identity(run: RunState, *, callback: str, password: str) -> IdentityDirectory:
    """The run's tenant as its identity domain knows it: the synced client and members, and a guest."""
    directory = IdentityDirectory(password_iterations=PASSWORD_ITERATIONS)
    directory.add_tenant(run.tenant_id, tenant_name(run))
    client_id, client_secret = client_credentials(run)
    directory.register_client(run.tenant_id, client_id=client_id, client_secret=client_secret,
                              redirect_uris=[callback])
    for user in users(run):
        directory.add_user(run.tenant_id, str(user["userName"]), password=password, name=str(user["name"]),
                           role=user["role"], organization_code=str(user["orgCode"]))
    directory.add_user(run.tenant_id, guest(run), password=password, name="Guest")
    return directory


@dataclass
class SsoContext:
    """One run's SSO set-up: the server's SSO address, the identity domain served, fresh browsers."""

    run: RunState
    sso_url: str
    identity_url: str
    directory: IdentityDirectory
    password: str
    new_browser: Callable[[httpx.Cookies | None], Browser]
    signed_in: tuple[httpx.Cookies, httpx.URL] | None = None
    """The browser's cookies and the callback of `sso.login`, for its replay."""

    @property
    def callback(self) -> str:
        return f"{self.sso_url}/callback"

    @property
    def login_entry(self) -> str:
        return f"{self.sso_url}/login?{urlencode({'tenant': self.run.tenant_id})}"

    @property
    def workbench(self) -> str:
        client_id, _ = client_credentials(self.run)
        return f"{self.identity_url}{WORKBENCH_PATH}?{urlencode({'client_id': client_id})}"

    def browser(self, cookies: httpx.Cookies | None = None) -> Browser:
        return self.new_browser(cookies)

    def unreachable(self, seen: str) -> CaseSkippedError:
        override = json.dumps({self.run.tenant_domain: self.identity_url})
        return CaseSkippedError(
            f"the server does not reach the identity domain served here ({seen}); it must call "
            f"{self.run.tenant_domain} at {self.identity_url}: MarketGate in development takes "
            f"MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES='{override}'"
        )


def describe(answer: httpx.Response) -> str:
    """`HTTP 400`, with MarketGate's error code when the answer is its error page."""
    found = _ERROR_CODE.search(answer.text) if answer.headers.get("content-type", "").startswith("text/html") else None
    return f"HTTP {answer.status_code}" + (f" ({found.group(1)})" if found else "")


def _identity_error(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return f"HTTP {answer.status_code} {body['error']}: {str(body.get('error_description', ''))[:160]}"
    return describe(answer)


def _sets_cookie(answer: httpx.Response) -> bool:
    """Whether the answer sets a cookie (deleting one does not count)."""
    for header in answer.headers.get_list("set-cookie"):
        pair, _, attributes = header.partition(";")
        value = pair.partition("=")[2].strip().strip('"')
        if value and "max-age=0" not in attributes.lower().replace(" ", ""):
            return True
    return False


def refused(answer: httpx.Response, *, step: str) -> str:
    """The reason a refusal passed, or `CaseFailedError`: an error page answers 4xx."""
    status = answer.status_code
    if 400 <= status < 500:
        return f"{step}: refused with {describe(answer)}"
    if status >= 500:
        raise CaseFailedError(f"{step}: {describe(answer)}, a server error instead of an error page")
    if answer.is_redirect:
        raise CaseFailedError(
            f"{step}: {describe(answer)} to {shown(next_url(answer))}, accepted; must be refused with an error page"
        )
    raise CaseFailedError(f"{step}: {describe(answer)}, not refused (an error page answers 4xx)")


async def _authorize_url(ctx: SsoContext, browser: Browser) -> httpx.URL:
    """The server's login entry must send the browser to the identity domain's authorize endpoint."""
    answer = await browser.get(ctx.login_entry, step="login entry")
    if not answer.is_redirect:
        hint = " (no SSO login entry there: see --sso-url)" if answer.status_code == 404 else ""
        raise CaseFailedError(f"login entry {shown(ctx.login_entry)}: {describe(answer)}, not a redirect{hint}")
    target = next_url(answer)
    if not target.path.endswith(AUTHORIZE_PATH):
        raise CaseFailedError(f"login entry: redirected to {shown(target)}, not to an authorize endpoint")
    if not browser.on_identity(target):
        raise ctx.unreachable(f"its login entry sends the browser to {shown(target)}")
    redirect_uri = target.params.get("redirect_uri")
    if redirect_uri is not None and redirect_uri != ctx.callback:
        raise CaseFailedError(
            f"login entry: asks to come back to {redirect_uri}, not to the registered callback {ctx.callback} "
            "(see --sso-url)"
        )
    return target


async def _sign_in(ctx: SsoContext, browser: Browser, url: httpx.URL | str, *, user_name: str) -> httpx.URL:
    """Through the identity domain from `url`, signing in on its login form: where it sends the browser."""
    signed = False
    for _ in range(MAX_REDIRECTS):
        answer = await browser.get(url, step="identity domain")
        if answer.status_code == 200 and answer.url.path == LOGIN_PATH and not signed:
            signed = True
            form = {"next": answer.url.params.get("next", ""), "tenant": answer.url.params.get("tenant", ""),
                    "username": user_name, "password": ctx.password}
            answer = await browser.post_form(answer.url.copy_with(query=None), form, step="identity login form")
        if not answer.is_redirect:
            raise CaseFailedError(f"the identity domain answered {shown(answer.url)} with {_identity_error(answer)}")
        url = next_url(answer)
        if not browser.on_identity(url):
            return url
    raise CaseFailedError(f"more than {MAX_REDIRECTS} redirects inside the identity domain")


async def _hand_off(ctx: SsoContext, browser: Browser, callback: httpx.URL) -> str:
    """The callback: the code exchanged and the user read at the identity domain, then the product."""
    stats = ctx.directory.stats
    tokens, userinfos = stats.count(TOKEN_PATH), stats.count(USERINFO_PATH)
    answer = await browser.get(callback, step="callback")
    exchanged = stats.count(TOKEN_PATH) > tokens
    if not exchanged and answer.status_code in UPSTREAM_FAILURES:
        raise ctx.unreachable(f"its callback answered {describe(answer)} without calling the token endpoint")
    if not answer.is_redirect:
        raise CaseFailedError(f"callback: {describe(answer)}, not a redirect to the product")
    if not exchanged:
        raise CaseFailedError("callback: redirected without exchanging the code at the identity domain")
    if stats.count(USERINFO_PATH) == userinfos:
        raise CaseFailedError("callback: redirected without reading the user at the identity domain")
    session = _sets_cookie(answer)
    server = origin(ctx.sso_url)
    for _ in range(MAX_REDIRECTS):
        target = next_url(answer)
        if browser.on_identity(target):
            raise CaseFailedError(f"callback: sent the browser back to the identity domain ({shown(target)})")
        if origin(target) != server:
            landed = f"handed to {shown(target)}"
            break
        answer = await browser.get(target, step="the product")
        session = session or _sets_cookie(answer)
        if not answer.is_redirect:
            if not answer.is_success:
                raise CaseFailedError(f"callback: handed to {shown(target)}, which answered {describe(answer)}")
            landed = f"handed to {shown(target)} (HTTP {answer.status_code})"
            break
    else:
        raise CaseFailedError(f"callback: more than {MAX_REDIRECTS} redirects on the way to the product")
    if not session:
        raise CaseFailedError(f"callback: {landed} without setting a cookie: no session")
    return f"{landed} with a session"


async def login(ctx: SsoContext) -> str:
    admin = member(ctx.run, "admin")
    async with ctx.browser() as browser:
        callback = await _sign_in(ctx, browser, await _authorize_url(ctx, browser), user_name=admin)
        landed = await _hand_off(ctx, browser, callback)
        ctx.signed_in = (httpx.Cookies(browser.cookies), callback)
    return f"{admin} signed in from the login entry, {landed}"


async def login_replay(ctx: SsoContext) -> str:
    if ctx.signed_in is None:
        raise MissingValueError("sso.login's callback")
    cookies, callback = ctx.signed_in
    async with ctx.browser(cookies) as browser:
        return refused(await browser.get(callback, step="callback"), step="the same callback again")


async def forged_state(ctx: SsoContext) -> str:
    async with ctx.browser() as browser:
        authorize = await _authorize_url(ctx, browser)
        if "state" not in authorize.params:
            raise CaseSkippedError("the login entry sends no state to forge")
        callback = await _sign_in(ctx, browser, authorize, user_name=member(ctx.run, "admin"))
        forged = callback.copy_set_param("state", secrets.token_hex(20))
        return refused(await browser.get(forged, step="callback"), step="callback with another state")


async def forged_code(ctx: SsoContext) -> str:
    forged = httpx.URL(ctx.callback, params={"code": secrets.token_urlsafe(24), "tenant": ctx.run.tenant_id})
    async with ctx.browser() as browser:
        return refused(await browser.get(forged, step="callback"), step="callback with a code never issued")


async def workbench(ctx: SsoContext) -> str:
    user = member(ctx.run, "user")
    async with ctx.browser() as browser:
        landed = await _hand_off(ctx, browser, await _sign_in(ctx, browser, ctx.workbench, user_name=user))
    return f"{user} signed in from the workbench, {landed}"


async def unauthorized(ctx: SsoContext) -> str:
    user = guest(ctx.run)
    async with ctx.browser() as browser:
        callback = await _sign_in(ctx, browser, ctx.workbench, user_name=user)
        return refused(await browser.get(callback, step="callback"), step=f"{user}, never authorized")


@dataclass(frozen=True, slots=True)
class SsoCase:
    """A case of the `sso` flow; it runs once the cases it `requires` passed."""

    name: str
    summary: str
    perform: Callable[[SsoContext], Awaitable[str]]
    requires: tuple[str, ...] = ("sso.login",)

    @property
    def flow(self) -> str:
        return SSO_FLOW


SSO_CASES: tuple[SsoCase, ...] = (
    SsoCase("sso.login", "sign-in from the server's login entry: handed to the product", login, KIT_REQUIREMENTS),
    SsoCase("sso.login.replay", "the same callback again: refused", login_replay),
    SsoCase("sso.forged-state", "a callback with another state: refused", forged_state),
    SsoCase("sso.forged-code", "a callback with a code never issued: refused", forged_code),
    SsoCase("sso.workbench", "sign-in started from the enterprise workbench: handed to the product", workbench),
    SsoCase("sso.unauthorized", "a tenant user authSync never authorized: refused", unauthorized),
)
