"""Fixtures of the admin API tests: an app whose adapters can describe instances, operator
tokens, a GraphQL client, and data seeded straight through the tenants services."""

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, update
from sqlmodel import col
from starlette.applications import Starlette

from gateway.adapters.contract import AdapterContext, AppInfo, InstanceRef
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import Store
from graphql_api.principals import CSRF_HEADER, SESSION_COOKIE, MemberPrincipal
from tenants import admin, instances, jobs
from tenants.admin_models import TokenScope
from tenants.models import CallLogEntry, Instance, InstanceStatus, Job, JobState
from tests.fakes import Behaviour, RecordingAdapter, recording_factory

Described = dict[tuple[str, str], AppInfo | Exception]
"""What an adapter's describe() answers, by (product, instance id); absent: None."""


class DescribingAdapter(RecordingAdapter):
    def __init__(self, behaviour: Behaviour, context: AdapterContext, described: Described) -> None:
        super().__init__(behaviour, context)
        self.described = described

    async def describe(self, instance: InstanceRef) -> AppInfo | None:
        self._record("describe", instance)
        answer = self.described.get((instance.product, instance.instance_id))
        if isinstance(answer, Exception):
            raise answer
        return answer


ROLES = ["viewer", "editor", "approver", "auditor"]
DEFAULT_ROLES = {"admin": ["editor", "viewer"], "user": ["viewer"]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Jobs run only when a test makes them: a retried job must not run under the assertions.
    products = {
        slug: product.model_copy(update={"roles": ROLES, "default_roles": DEFAULT_ROLES})
        for slug, product in settings.products.items()
    }
    return settings.model_copy(update={"job_poll_interval_s": 60.0, "products": products})


@pytest.fixture
def described() -> Described:
    return {}


@pytest.fixture
async def app(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store, described: Described
) -> AsyncIterator[Starlette]:
    def factory(adapter_settings: Mapping[str, Any], context: AdapterContext) -> DescribingAdapter:
        return DescribingAdapter(behaviours[context.product], context, described)

    application = create_app(settings, adapter_factories={"recording": factory}, store=store)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


class GraphQL:
    """Posts GraphQL documents to /graphql as a frontend would."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": dict(variables or {})}, headers={**sent, **(headers or {})}
        )

    async def __call__(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token=token, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQL:
    return GraphQL(client)


@dataclass(frozen=True)
class MemberLogin:
    """A member's SSO session as the fake hands it out: the cookie, its CSRF token, a bearer token."""

    principal: MemberPrincipal
    cookie: str
    bearer: str

    def cookie_headers(self, *, csrf: str | None = None) -> dict[str, str]:
        """What a browser page of the admin frontend sends: the cookie and the CSRF header."""
        return {
            "Cookie": f"{SESSION_COOKIE}={self.cookie}",
            CSRF_HEADER: self.principal.csrf_token if csrf is None else csrf,
        }

    def bearer_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer}"}


@dataclass
class FakeMemberSessions:
    """`MemberSessions` as the SSO module implements it, without an identity domain behind it."""

    by_cookie: dict[str, MemberPrincipal] = field(default_factory=dict)
    by_bearer: dict[str, MemberPrincipal] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def login(
        self, product: str, tenant_id: str, user_name: str, *, role: str = "admin", is_test: bool = False
    ) -> MemberLogin:
        principal = MemberPrincipal(
            product=product,
            tenant_id=tenant_id,
            is_test=is_test,
            user_name=user_name,
            marketplace_role=role,
            session_id=secrets.token_urlsafe(16),
            csrf_token=secrets.token_urlsafe(16),
        )
        login = MemberLogin(principal, cookie=secrets.token_urlsafe(24), bearer="mgb_" + secrets.token_urlsafe(24))
        self.by_cookie[login.cookie] = principal
        self.by_bearer[login.bearer] = principal
        return login

    def logout(self, login: MemberLogin) -> None:
        self.by_cookie.pop(login.cookie, None)
        self.by_bearer.pop(login.bearer, None)

    async def principal_for_session(self, cookie_value: str) -> MemberPrincipal | None:
        self.asked.append("session")
        return self.by_cookie.get(cookie_value)

    async def principal_for_bearer(self, token: str) -> MemberPrincipal | None:
        self.asked.append("bearer")
        return self.by_bearer.get(token)


@pytest.fixture
def sessions(app: Starlette) -> FakeMemberSessions:
    """The fake stands in for the SSO module's sessions in the app's admin API."""
    fake = FakeMemberSessions()
    app.state.graphql_host = replace(app.state.graphql_host, member_sessions=fake)
    return fake


@asynccontextmanager
async def serving(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour], **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(
        settings.model_copy(update=overrides),
        adapter_factories={"recording": recording_factory(behaviours)},
        store=store,
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://mg.test") as client:
            client.app = application  # type: ignore[attr-defined]
            yield client


def codes(body: Mapping[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


async def issue_token(app: Starlette, name: str, products: list[str], scope: TokenScope) -> str:
    async with app.state.database.transaction() as session:
        issued = await admin.create_api_token(
            session, caller=admin.Caller.system(), name=name, products=products, scope=scope, now=datetime.now(UTC)
        )
    return issued.secret


@dataclass(frozen=True)
class Tokens:
    alpha_read: str
    alpha_write: str
    beta_write: str


@pytest.fixture
async def tokens(app: Starlette) -> Tokens:
    return Tokens(
        alpha_read=await issue_token(app, "alpha-reader", ["alpha"], TokenScope.READ),
        alpha_write=await issue_token(app, "alpha-writer", ["alpha"], TokenScope.WRITE),
        beta_write=await issue_token(app, "beta-writer", ["beta"], TokenScope.WRITE),
    )


NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


async def seed_instance(
    app: Starlette,
    product: str,
    instance_id: str,
    *,
    status: InstanceStatus = InstanceStatus.ACTIVE,
    is_test: bool = False,
    expire_time: datetime | None = None,
    app_info: dict[str, str] | None = None,
    created_at: datetime = NOW,
) -> Instance:
    """An instance with the history of how it got to `status`."""
    async with app.state.database.transaction() as session:
        await instances.create_instance_if_absent(
            session,
            product=product,
            instance_id=instance_id,
            order_id=f"CS-{instance_id}",
            order_line_id=f"CS-{instance_id}-1",
            is_test=is_test,
            now=created_at,
        )
        instance = await instances.get_instance_for_update(session, product=product, instance_id=instance_id)
        assert instance is not None
        path = {
            InstanceStatus.PROVISIONING: [],
            InstanceStatus.ACTIVE: [InstanceStatus.ACTIVE],
            InstanceStatus.FROZEN: [InstanceStatus.ACTIVE, InstanceStatus.FROZEN],
            InstanceStatus.RELEASED: [InstanceStatus.ACTIVE, InstanceStatus.RELEASED],
            InstanceStatus.FAILED: [InstanceStatus.FAILED],
        }[status]
        for step, target in enumerate(path, start=1):
            await instances.change_status(
                session,
                instance=instance,
                status=target,
                activity=f"to {target.value}",
                now=created_at + timedelta(seconds=step),
                detail={"by": product},
            )
        instance.expire_time = expire_time
        instance.app_info = (
            app_info if app_info is not None else {"frontEndUrl": f"https://{product}.example.com/{instance_id}"}
        )
        session.add(instance)
    return instance


async def seed_job(
    app: Starlette,
    product: str,
    instance_id: str,
    *,
    state: JobState = JobState.PENDING,
    attempts: int = 0,
    kind: str = "provision",
) -> int:
    async with app.state.database.transaction() as session:
        job = await jobs.create_job(session, product=product, kind=kind, payload={"instance_id": instance_id}, now=NOW)
        assert job.id is not None
        error = "backend exploded" if attempts else None
        await session.exec(
            update(Job).where(col(Job.id) == job.id).values(state=state, attempts=attempts, last_error=error)
        )
        return job.id


async def seed_call(
    app: Starlette,
    product: str,
    *,
    activity: str = "newInstance",
    result_code: str = "000000",
    kind: str = "basic",
    at: datetime = NOW,
    instance_id: str | None = None,
) -> None:
    async with app.state.database.transaction() as session:
        session.add(
            CallLogEntry(
                product=product,
                kind=kind,
                activity=activity,
                result_code=result_code,
                request_id=f"req-{activity}-{at:%s}",
                instance_id=instance_id,
                created_at=at,
                body=json.dumps({"activity": activity}),
            )
        )


async def rows(app: Starlette, model: Any) -> list[Any]:
    from sqlmodel import col, select

    async with app.state.database.reader() as session:
        return list((await session.exec(select(model).order_by(col(model.id)))).all())


class StatementCounter:
    """Counts SQL statements the app's engine sends, while active."""

    def __init__(self, app: Starlette) -> None:
        self.engine = app.state.database.engine.sync_engine
        self.statements: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> "StatementCounter":
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)
