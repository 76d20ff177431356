"""Liveness, readiness and metrics."""

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tenants.migrate import MigrationError, pending_revisions


async def healthz(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database and the shared store both answer, and the database's schema is current (a
    worker started with `--no-migrate` on a database that was not upgraded answers every call
    `000005`). The schema is looked at until it is found current, then no more."""
    state = request.app.state
    database_ok = await state.database.ping()
    store_ok = await state.store.ping()
    if database_ok and not state.schema_current:
        try:
            pending = await asyncio.to_thread(pending_revisions, state.settings.database_url)
        except (SQLAlchemyError, MigrationError):  # unreachable, or at a revision this code does not know
            pending = ["unknown"]
        state.schema_current = not pending
    schema_ok = database_ok and state.schema_current
    ready = database_ok and store_ok and schema_ok
    checks = {
        "database": "ok" if database_ok else "down",
        "schema": "ok" if schema_ok else ("behind" if database_ok else "unknown"),
        "store": "ok" if store_ok else "down",
    }
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.edge.metrics.registry), media_type=CONTENT_TYPE_LATEST)
