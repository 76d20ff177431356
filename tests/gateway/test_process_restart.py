"""A real MarketGate process killed mid-provisioning: the next process finishes the job.

MarketGate runs as `marketgate serve` in a subprocess with the built-in HTTP adapter, whose
backend (in this test) hangs on its first provisioning request. The process is killed with
SIGKILL while it waits; a second process takes the job over once the lease has expired and
delivers the same request again, which the backend recognises by its event id.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.adapters.http import verify_backend_signature
from gateway.clock import epoch_ms
from gateway.koogallery.signing import CallKind
from gateway.simulator.signer import marketplace_body, sign_call
from tests.conftest import Backend

pytestmark = pytest.mark.anyio

KEY = "restart-access-key-0123456789"
SECRET = "backend-shared-secret-0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProductBackend:
    """The product's backend: hangs on the first provision, remembers event ids."""

    def __init__(self) -> None:
        self.release_hang = threading.Event()
        self.provision_events: list[str] = []
        self.workspaces_created: list[str] = []

    def app(self) -> Starlette:
        async def provision(request: Request) -> JSONResponse:
            body = await request.body()
            headers = request.headers
            assert verify_backend_signature(
                SECRET,
                timestamp=headers["x-marketgate-timestamp"],
                nonce=headers["x-marketgate-nonce"],
                operation="provision",
                product=headers["x-marketgate-product"],
                body=body,
                signature=headers["x-marketgate-signature"],
                now_ms=epoch_ms_now(),
            )
            event_id = headers["x-marketgate-event-id"]
            first = not self.provision_events
            self.provision_events.append(event_id)
            if first:
                await asyncio.to_thread(self.release_hang.wait, 30)
                return JSONResponse({"error": "too late"}, status_code=503)
            instance_id = (await request.json())["instance"]["instanceId"]
            if instance_id not in self.workspaces_created:  # idempotent per instance, as the contract asks
                self.workspaces_created.append(instance_id)
            return JSONResponse({"appInfo": {"frontEndUrl": f"https://product.example.com/{instance_id}"}})

        return Starlette(routes=[Route("/marketgate/v1/provision", provision, methods=["POST"])])


def epoch_ms_now() -> int:
    from datetime import UTC, datetime

    return epoch_ms(datetime.now(UTC))


@contextlib.contextmanager
def serve_in_thread(app: Starlette, port: int) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(5)


def start_marketgate(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(port: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError("marketgate did not start")


async def basic_call(port: int, fields: dict[str, Any]) -> dict[str, Any]:
    body = marketplace_body(fields)
    call = sign_call(CallKind.BASIC, body, key=KEY.encode(), now_ms=epoch_ms_now())
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"http://127.0.0.1:{port}/koogallery/restart", params=call.query, content=body)
    answer: dict[str, Any] = response.json()
    return answer


async def test_killed_process_leaves_its_job_to_the_next_one(backend: Backend, tmp_path: Path) -> None:
    backend.reset()
    backend_port, gateway_port = free_port(), free_port()
    products = tmp_path / "products.toml"
    products.write_text(
        f"""[products.restart]
name = "Restart"
adapter = "http"
access_key = "{KEY}"
answer_deadline_s = 1.0
[products.restart.adapter_settings]
url = "http://127.0.0.1:{backend_port}"
secret = "{SECRET}"
timeout_s = 20
"""
    )
    env = {
        **os.environ,
        "MARKETGATE_ENVIRONMENT": "development",
        "MARKETGATE_CONFIG": str(products),
        "MARKETGATE_DATABASE_URL": backend.database_url,
        "MARKETGATE_DATA_DIR": str(tmp_path),
        "MARKETGATE_JOB_LEASE_S": "2",
        "MARKETGATE_JOB_POLL_INTERVAL_S": "0.1",
        "MARKETGATE_LOG_LEVEL": "WARNING",
    }
    if backend.redis_url:
        env["MARKETGATE_REDIS_URL"] = backend.redis_url
    product_backend = ProductBackend()
    new = {"activity": "newInstance", "orderId": "CSK", "orderLineId": "CSK-000001", "businessId": "biz-k"}
    with serve_in_thread(product_backend.app(), backend_port):
        first = start_marketgate(env, gateway_port)
        try:
            await wait_ready(gateway_port)
            answer = await basic_call(gateway_port, new)
        finally:
            first.send_signal(signal.SIGKILL)
            _, first_errors = first.communicate(timeout=10)
        expected = {"resultCode": "000004", "resultMsg": "request is processing", "instanceId": "biz-k"}
        assert answer == expected, first_errors.decode()[-3000:]
        assert len(product_backend.provision_events) == 1
        product_backend.release_hang.set()

        second = start_marketgate(env, gateway_port)
        try:
            await wait_ready(gateway_port)
            query = {"activity": "queryInstance", "instanceId": "biz-k"}
            for _ in range(100):
                info = (await basic_call(gateway_port, query))["info"]
                if info:
                    break
                await asyncio.sleep(0.1)
            assert info == [{"instanceId": "biz-k", "appInfo": {"frontEndUrl": "https://product.example.com/biz-k"}}]
            repeat = await basic_call(gateway_port, {**new, "businessId": "biz-k2"})
            assert (repeat["resultCode"], repeat["instanceId"]) == ("000000", "biz-k")
        finally:
            second.send_signal(signal.SIGTERM)
            _, errors = second.communicate(timeout=15)
    # The same request was delivered twice (before and after the crash), and carried out once.
    assert len(product_backend.provision_events) == 2
    assert len(set(product_backend.provision_events)) == 1
    assert product_backend.workspaces_created == ["biz-k"]
    assert b"Traceback" not in errors
