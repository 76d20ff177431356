"""Liveness, readiness and metrics."""

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def healthz(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database and the shared store both answer."""
    database_ok = await request.app.state.database.ping()
    store_ok = await request.app.state.store.ping()
    ready = database_ok and store_ok
    checks = {"database": "ok" if database_ok else "down", "store": "ok" if store_ok else "down"}
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.edge.metrics.registry), media_type=CONTENT_TYPE_LATEST)
