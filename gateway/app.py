"""The composition root: `create_app(settings)` builds the whole MarketGate ASGI app.

Nothing connects at import time or in `create_app`: the lifespan opens the database, the
shared store, the HTTP client and the adapters, and puts them on `app.state`.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.adapters.contract import AdapterContext, LoginTokens
from gateway.adapters.registry import Factory, build_adapters
from gateway.basic_calls import BasicCalls
from gateway.call_log import CallLogWriter
from gateway.clock import Clock, SystemClock
from gateway.kit_syncs import KitSyncs, private_keys
from gateway.metrics import Metrics
from gateway.middleware import RequestIdMiddleware
from gateway.order_query import OrderQueryClient
from gateway.outbound import outbound_client
from gateway.products import Product
from gateway.provisioning import InstanceJobs
from gateway.reconcile import AdapterReconciler
from gateway.routes import health
from gateway.routes import sso as sso_routes
from gateway.routes.edge import Edge
from gateway.routes.kit import handle_kit_sync
from gateway.routes.production import handle_production_call
from gateway.settings import ConfigError, ProductConfig, Settings
from gateway.sso import Sso, SsoOptions
from gateway.store import Store, open_store
from gateway.verification import CallVerifier
from gateway.worker import JobRunner
from graphql_api.app import ApiOptions, create_graphql_app
from graphql_api.context import ApiHost, ProductInfo
from graphql_api.principals import CSRF_HEADER
from tenants.database import Database
from tenants.migrate import upgrade
from tenants.roles import InvalidRoleCatalogError, RoleCatalog
from tenants.secretbox import SecretBox

log = structlog.get_logger(__name__)


def adapter_context(
    settings: Settings, *, login_tokens: Callable[[str], LoginTokens] | None = None
) -> Callable[[str, ProductConfig], AdapterContext]:
    def context_for(slug: str, product: ProductConfig) -> AdapterContext:
        return AdapterContext(
            product=slug,
            product_name=product.name,
            public_url=settings.public_url,
            database_url=settings.database_url,
            data_dir=str(settings.data_dir),
            login_tokens=login_tokens(slug) if login_tokens is not None else None,
            config_dir=str(settings.config.parent) if settings.config is not None else ".",
        )

    return context_for


async def _serve_adapter_pages(scope: Scope, receive: Receive, send: Send) -> None:
    """/apps/<slug>/…: the pages of an adapter that serves its own (the demo product does)."""
    products: Mapping[str, Product] = scope["app"].state.edge.products
    product = products.get(scope["path_params"]["slug"])
    web_app = getattr(product.adapter, "web_app", None) if product is not None else None
    if web_app is None:
        response: Response = JSONResponse({"error": "not_found"}, status_code=404)
        await response(scope, receive, send)
        return
    await web_app(scope, receive, send)


def api_products(products: Mapping[str, Product]) -> list[ProductInfo]:
    """The products as the admin API shows them, each with its roles: the products file's `roles`
    and `default_roles`, and those the adapter contributes (`product_roles`, contract 3)."""
    shown = []
    for slug, product in products.items():
        contributed = getattr(product.adapter, "product_roles", ())
        if isinstance(contributed, str) or not all(isinstance(role, str) for role in contributed):
            raise ConfigError(f"product {slug!r}: the adapter's product_roles must be a sequence of role names")
        try:
            catalog = RoleCatalog.build(
                declared=product.config.roles,
                contributed=contributed,
                defaults={str(role): names for role, names in product.config.default_roles.items()},
            )
        except InvalidRoleCatalogError as exc:
            raise ConfigError(f"product {slug!r}: {exc}") from exc
        shown.append(ProductInfo(slug, product.config.name, product.config.adapter, roles=catalog))
    return shown


def _graphql_host(request: Request) -> ApiHost:
    host: ApiHost = request.app.state.graphql_host
    return host


def admin_api(settings: Settings) -> ASGIApp:
    """The GraphQL admin API, served at /graphql; its services come from `app.state.graphql_host`."""
    options = ApiOptions(
        introspection=settings.graphql_introspection,
        graphiql=settings.graphiql,
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        max_body_bytes=settings.graphql_max_body_bytes,
        cors_origins=tuple(settings.cors_origins),
    )
    return create_graphql_app(options, host_of=_graphql_host)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return JSONResponse({"error": "not_found" if status == 404 else "error"}, status_code=status)


def sso_routes_for(settings: Settings) -> list[Route]:
    """SSO's routes; the two a separate admin frontend calls also answer CORS for `cors_origins`."""
    cors = (
        [
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_credentials=True,
                allow_methods=["GET", "POST"],
                allow_headers=[CSRF_HEADER, "Content-Type"],
                max_age=600,
            )
        ]
        if settings.cors_origins
        else []
    )
    api_methods = ["OPTIONS"] if settings.cors_origins else []
    return [
        Route("/sso/{slug}/login", sso_routes.login, methods=["GET"]),
        Route("/sso/{slug}/callback", sso_routes.callback, methods=["GET"]),
        Route("/sso/{slug}/logout", sso_routes.logout, methods=["GET"]),
        Route("/sso/{slug}/signed-out", sso_routes.signed_out, methods=["GET"]),
        Route("/sso/{slug}/session", sso_routes.session, methods=["GET", *api_methods], middleware=cors),
        Route("/sso/{slug}/token", sso_routes.token, methods=["POST", *api_methods], middleware=cors),
        Route("/sso/{slug}/redeem", sso_routes.redeem, methods=["POST"]),
    ]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    adapter_factories: Mapping[str, Factory] | None = None,
    store: Store | None = None,
    http_client: httpx.AsyncClient | None = None,
    identity_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The MarketGate app; tests pass a clock, adapter factories, a store, an HTTP client, or the
    transport that serves every tenant identity domain (SSO)."""
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(upgrade, settings.database_url)
        rsa_keys = await asyncio.to_thread(private_keys, settings.products)
        database = Database(settings.database_url, pool_size=settings.database_pool_size)
        shared_store = store if store is not None else open_store(settings.redis_url)
        http = (
            http_client
            if http_client is not None
            else outbound_client(timeout=httpx.Timeout(5.0))
        )
        # SSO comes before the adapters (their context redeems its login tokens); `products` is
        # filled once they exist.
        products: dict[str, Product] = {}
        sso = Sso(
            options=SsoOptions.from_settings(settings),
            products=products,
            database=database,
            store=shared_store,
            master_key=settings.secret,
            clock=clock,
            transport=identity_transport,
        )
        adapters = build_adapters(
            settings.products,
            context_for=adapter_context(settings, login_tokens=sso.sessions.login_tokens_for),
            factories=adapter_factories,
        )
        products.update({slug: Product(slug, config, adapters[slug]) for slug, config in settings.products.items()})
        shown_products = api_products(products)
        instance_jobs = InstanceJobs(
            database=database,
            products=products,
            order_queries=OrderQueryClient(http),
            secret_box=SecretBox(settings.secret),
            clock=clock,
            public_url=settings.public_url,
        )
        kit_syncs = KitSyncs(
            database=database,
            runner=None,
            products=products,
            secret_box=SecretBox(settings.secret),
            private_keys=rsa_keys,
            clock=clock,
            access_listener=sso.sessions,
            catalogs={product.slug: product.roles for product in shown_products},
        )
        runner = JobRunner(
            database,
            handlers={**instance_jobs.handlers, **kit_syncs.handlers},
            clock=clock,
            lease_s=settings.job_lease_s,
            poll_interval_s=settings.job_poll_interval_s,
            max_attempts=settings.job_max_attempts,
            concurrency=settings.job_concurrency,
            on_dead={"provision": instance_jobs.provisioning_gave_up},
            retention=timedelta(days=settings.job_retention_days),
        )
        kit_syncs.attach(runner)
        call_log = CallLogWriter(database)
        app.state.database = database
        app.state.schema_current = settings.auto_migrate  # just upgraded; else `/readyz` looks
        app.state.store = shared_store
        app.state.runner = runner
        app.state.edge = Edge(
            products=products,
            verifier=CallVerifier(store=shared_store, clock=clock),
            call_log=call_log,
            metrics=Metrics(),
            clock=clock,
            call_log_body_bytes=settings.call_log_body_bytes,
        )
        app.state.basic_calls = BasicCalls(
            database=database, runner=runner, instance_jobs=instance_jobs, products=products, clock=clock
        )
        app.state.kit_syncs = kit_syncs
        app.state.sso = sso
        app.state.graphql_host = ApiHost(
            database=database,
            products=shown_products,
            reconciler=AdapterReconciler(products=products, instance_jobs=instance_jobs),
            now=clock.now,
            member_sessions=sso.sessions,
            jobs_created=runner.wake,
        )
        runner.start()
        call_log.start()
        log.info("marketgate_started", products=sorted(products))
        async with contextlib.AsyncExitStack() as shutdown:
            # Run from the last pushed to the first, each even if one before it failed: the
            # buffered call log is flushed and the database closed whatever the job runner did.
            shutdown.push_async_callback(database.dispose)
            if store is None:
                shutdown.push_async_callback(shared_store.aclose)
            if http_client is None:
                shutdown.push_async_callback(http.aclose)
            shutdown.push_async_callback(sso.aclose)
            for adapter in reversed(adapters.values()):
                shutdown.push_async_callback(adapter.aclose)
            shutdown.push_async_callback(call_log.stop)
            shutdown.push_async_callback(runner.stop)
            yield

    routes = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", health.metrics),
        Route("/koogallery/{slug}", handle_production_call, methods=["POST"]),
        Route("/koogallery/{slug}/produceAPI/v2/{sync}", handle_kit_sync, methods=["POST"]),
        *sso_routes_for(settings),
        Mount("/apps/{slug}", app=_serve_adapter_pages),
        Route("/graphql", admin_api(settings)),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
