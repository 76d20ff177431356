"""The SSO tests' world: a tenant bound through signed Kit calls, its identity domain played by
the authlib identity server, and a cookie-keeping "browser" that reaches both over ASGI."""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import redis.asyncio
from starlette.applications import Starlette

from gateway.simulator.identity import SESSION_COOKIE as IDP_COOKIE
from gateway.simulator.identity import IdentityDirectory, Role
from gateway.sso import Sso
from gateway.store import MemoryStore, Store
from tests.conftest import Backend, Marketplace
from tests.kit.helpers import application_sync, auth_sync, tenant_sync, user

MG = "https://mg.test"
IDP_HOST = "idp.acme.example"
IDP = f"https://{IDP_HOST}"
TENANT = "68cbc86abc2018ab880d92f36422fa0e"
OTHER_TENANT = "tenant-b-0000000000000000000001"
CLIENT_ID = "client-1"
CLIENT_SECRET = "sEcReT-client-9f3a1c"
APP_ID = "app-001"
REDEEM_KEY = "alpha-redeem-key-0123456789"
CALLBACK = f"{MG}/sso/alpha/callback"
PASSWORD = "correct horse battery"


@dataclass
class MovableClock:
    """The identity server's clock."""

    current: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def identity_directory(*, callback: str = CALLBACK) -> IdentityDirectory:
    """Tenant A with alice (admin), bob (user), dave (disabled for the app), carol (not authorized);
    tenant B with erin. Passwords are all `PASSWORD`."""
    directory = IdentityDirectory(password_iterations=1_000)
    directory.add_tenant(TENANT, "Acme Ltd")
    directory.add_tenant(OTHER_TENANT, "Beta Corp")
    directory.register_client(TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[callback])
    directory.register_client(OTHER_TENANT, client_id="client-b", client_secret="secret-b", redirect_uris=[callback])
    users: tuple[tuple[str, Role], ...] = (("alice", "admin"), ("bob", "user"), ("dave", "user"), ("carol", "user"))
    for name, role in users:
        directory.add_user(TENANT, name, password=PASSWORD, name=name.title(), role=role, organization_code="10000")
    directory.add_user(OTHER_TENANT, "erin", password=PASSWORD, name="Erin")
    return directory


async def bind_tenant(marketplace: Marketplace, *, domain: str = IDP, slug: str = "alpha") -> None:
    """tenantSync, applicationSync and authSync: alice admin, bob user, dave disabled."""
    answers = [
        await marketplace.kit(slug, "tenantSync", tenant_sync(TENANT, 1, name="Acme Ltd", domain=domain)),
        await marketplace.kit(
            slug, "applicationSync", application_sync(TENANT, 1, client_id=CLIENT_ID, secret=CLIENT_SECRET)
        ),
        await marketplace.kit(
            slug,
            "authSync",
            auth_sync(TENANT, 1, [user("alice", role="admin"), user("bob"), user("dave", enable="false")]),
        ),
    ]
    for answer in answers:
        assert answer.status_code == 200 and answer.json()["resultCode"] == "000000", answer.text


def browser(mg_app: Starlette, identity_app: Starlette) -> httpx.AsyncClient:
    """A cookie-keeping client that reaches MarketGate at MG and the identity domain at IDP."""
    return httpx.AsyncClient(
        mounts={
            MG: httpx.ASGITransport(app=mg_app, client=("203.0.113.7", 50000)),
            IDP: httpx.ASGITransport(app=identity_app),
        },
        follow_redirects=False,
    )


def sign_in_at_identity(client: httpx.AsyncClient, directory: IdentityDirectory, user_name: str) -> None:
    client.cookies.set(IDP_COOKIE, directory.log_in(TENANT, user_name), domain=IDP_HOST)


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def callback_from_button(client: httpx.AsyncClient, *, tenant: str = TENANT, **params: str) -> str:
    """The vendor's login button through the identity domain: the callback URL it answers."""
    started = await client.get(f"{MG}/sso/alpha/login", params={"tenant": tenant, **params})
    assert started.status_code == 302, started.text
    authorized = await client.get(started.headers["location"])
    assert authorized.status_code == 302, authorized.text
    location: str = authorized.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return location


async def callback_from_workbench(client: httpx.AsyncClient) -> str:
    launched = await client.get(f"{IDP}/workbench/launch", params={"client_id": CLIENT_ID})
    assert launched.status_code == 302, launched.text
    location: str = launched.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return location


def sso(app: Starlette) -> Sso:
    found: Sso = app.state.sso
    return found


async def store_keys(store: Store, backend: Backend) -> set[str]:
    """Every key in the shared store (what a refusal must not add to, rate counters aside)."""
    if isinstance(store, MemoryStore):
        return set(store._entries)
    assert backend.redis_url is not None
    client = redis.asyncio.from_url(backend.redis_url)
    try:
        return {key.decode() if isinstance(key, bytes) else key for key in await client.keys("mg:*")}
    finally:
        await client.aclose()


def created(before: set[str], after: set[str]) -> set[str]:
    """Keys added, leaving out the rate-limit counters a refused request may count in."""
    return {key for key in after - before if not key.startswith("mg:sso:rate:")}


def refused_event(logs: Sequence[Mapping[str, Any]], code: str) -> bool:
    return any(entry.get("event") == "sso_refused" and entry.get("code") == code for entry in logs)
