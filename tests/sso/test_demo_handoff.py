"""The demo product takes the hand-off: it redeems the login token and shows who is signed in."""

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from gateway.settings import Settings
from gateway.simulator.identity import IdentityDirectory
from tests.conftest import Marketplace
from tests.sso.conftest import AppFactory
from tests.sso.helpers import MG, TENANT, bind_tenant, browser, callback_from_button, sign_in_at_identity

pytestmark = pytest.mark.anyio


@pytest.fixture
async def demo(app_factory: AppFactory, settings: Settings) -> AsyncIterator[Starlette]:
    products = dict(settings.products)
    products["alpha"] = products["alpha"].model_copy(update={"adapter": "demo"})
    async with app_factory(products=products) as application:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=MG) as client:
            await bind_tenant(Marketplace(client))
        yield application


async def test_the_demo_page_shows_the_member_and_ends_with_the_session(
    demo: Starlette, identity_app: Starlette, directory: IdentityDirectory
) -> None:
    async with browser(demo, identity_app) as web:
        login_page = await web.get(f"{MG}/apps/alpha/login")
        sign_in_at_identity(web, directory, "alice")
        landed = await web.get(await callback_from_button(web))
        enter = landed.headers["location"]
        entered = await web.get(enter)
        me = await web.get(f"{MG}{entered.headers['location']}")
        replayed = await web.get(enter)
        await web.get(f"{MG}/sso/alpha/logout")
        after_logout = await web.get(f"{MG}/apps/alpha/me")

    assert 'action="/sso/alpha/login"' in login_page.text and 'id="sign-in"' in login_page.text
    assert enter.startswith(f"{MG}/apps/alpha/sso/enter?login_token=")
    assert entered.status_code == 303 and entered.headers["location"] == "/apps/alpha/me"
    assert "demo_session=" in entered.headers["set-cookie"] and "Path=/apps/alpha/" in entered.headers["set-cookie"]
    assert me.status_code == 200
    assert '<strong id="member-name">Alice</strong>' in me.text
    assert '<code id="member-user">alice</code>' in me.text
    assert '<dd id="member-role">admin</dd>' in me.text
    assert f'<dd id="member-tenant">{TENANT}</dd>' in me.text
    assert replayed.status_code == 400 and 'id="enter-failed"' in replayed.text
    assert 'id="signed-out"' in after_logout.text
