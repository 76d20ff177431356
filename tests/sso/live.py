"""Serving an ASGI app with uvicorn on a loopback port, in a thread of its own (lifespan on)."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def loopback_socket() -> Iterator[socket.socket]:
    """A bound (not yet listening) socket on 127.0.0.1, so its port is known before the app is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


@contextmanager
def serve(app: ASGIApp, sock: socket.socket, *, lifespan: Literal["auto", "on", "off"] = "on") -> Iterator[None]:
    """Serve `app` on `sock` until the block ends; in-flight requests finish, then the thread joins."""
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan=lifespan, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(15)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
