"""The whole free login in a real headless Chromium (Debian's, driven by Playwright), on both backends.

MarketGate runs under uvicorn on one loopback port with the demo product; the authlib identity
server on another, reached as `localhost` so the identity domain is a different site from
MarketGate (127.0.0.1) and the SameSite=Lax cookies meet the cross-site redirects they would in
production. The tenant is bound with `https://idp.acme.example` through signed Kit calls, and
development's `dev_identity_domain_overrides` points that domain at the local server.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from gateway.adapters.demo import DemoAdapter
from gateway.app import create_app
from gateway.settings import Settings
from gateway.simulator.identity import create_identity_app
from gateway.store import Store
from tests.conftest import Marketplace
from tests.fakes import Behaviour, recording_factory
from tests.kit.helpers import auth_sync, user
from tests.sso.helpers import CLIENT_ID, IDP, PASSWORD, TENANT, bind_tenant, identity_directory
from tests.sso.live import loopback_socket, serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class Live:
    marketgate: str
    identity: str


@pytest.fixture
async def live(settings: Settings, store: Store, behaviours: dict[str, Behaviour]) -> AsyncIterator[Live]:
    """MarketGate and the identity domain, each on its own loopback port (`store` only flushes Redis)."""
    with loopback_socket() as mg_socket, loopback_socket() as idp_socket:
        marketgate = f"http://127.0.0.1:{mg_socket.getsockname()[1]}"
        identity = f"http://localhost:{idp_socket.getsockname()[1]}"
        directory = identity_directory(callback=f"{marketgate}/sso/alpha/callback")
        products = dict(settings.products)
        products["alpha"] = products["alpha"].model_copy(update={"adapter": "demo"})
        live_settings = settings.model_copy(
            update={
                "products": products,
                "public_url": marketgate,
                "dev_identity_domain_overrides": {IDP: identity},
                "sso_identity_timeout_s": 5.0,
            }
        )
        factories = {"demo": DemoAdapter, "recording": recording_factory(behaviours)}
        app = create_app(live_settings, adapter_factories=factories)
        with serve(create_identity_app(directory, issuer=identity), idp_socket, lifespan="off"), serve(app, mg_socket):
            yield Live(marketgate, identity)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in_at_identity(page: Page, user_name: str) -> None:
    await page.wait_for_selector("#username")
    await page.fill("#username", user_name)
    await page.fill("#password", PASSWORD)
    await page.click("#login")


async def test_member_signs_in_from_both_sides_signs_out_and_is_refused_once_revoked(
    live: Live, chromium: Browser
) -> None:
    async with httpx.AsyncClient(base_url=live.marketgate, timeout=10) as client:
        marketplace = Marketplace(client)
        await bind_tenant(marketplace)
        context = await chromium.new_context()
        context.set_default_timeout(15_000)
        page = await context.new_page()

        # From the vendor's login button: the identity domain's form, then the product as alice, admin
        await page.goto(f"{live.marketgate}/apps/alpha/login")
        await page.fill("#tenant", TENANT)
        await page.click("#sign-in")
        await sign_in_at_identity(page, "alice")
        await page.wait_for_url(f"{live.marketgate}/apps/alpha/me")
        assert await page.text_content("#member-name") == "Alice"
        assert await page.text_content("#member-user") == "alice"
        assert await page.text_content("#member-role") == "admin"
        assert "login_token" not in page.url

        # Signing out: MarketGate, then the identity domain, then MarketGate's signed-out page
        await page.click("#sign-out")
        await page.wait_for_url(f"{live.marketgate}/sso/alpha/signed-out")
        await page.goto(f"{live.marketgate}/apps/alpha/me")
        assert await page.is_visible("#signed-out")

        # From the marketplace side: the workbench starts the sign-in, without MarketGate's state
        await page.goto(f"{live.identity}/workbench/launch?client_id={CLIENT_ID}")
        await sign_in_at_identity(page, "alice")
        await page.wait_for_url(f"{live.marketgate}/apps/alpha/me")
        assert await page.text_content("#member-role") == "admin"

        # The buyer revokes alice: her live session ends, and she cannot sign in again
        answer = await marketplace.kit("alpha", "authSync", auth_sync(TENANT, 3, [user("alice")]))
        assert answer.json()["resultCode"] == "000000"
        await page.reload()
        assert await page.is_visible("#signed-out")
        await page.goto(f"{live.identity}/workbench/launch?client_id={CLIENT_ID}")
        await page.wait_for_selector("#error-code")
        assert await page.text_content("#error-code") == "sso_member_revoked"
        assert page.url.startswith(f"{live.marketgate}/sso/alpha/callback?")
        await context.close()
