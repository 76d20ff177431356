"""A member's browser, played over httpx: it keeps cookies and takes one redirect at a time.

The server under test is reached through the run's transport (the network, or an ASGI app in
tests). The identity domain the simulator serves is reached in process, both at the address it
is served on and at the tenant's `domainName`, since a server may send the browser to either.
Each answer of the server is timed into the run's latencies; a server that does not answer
fails the case.
"""

import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import httpx
from starlette.types import ASGIApp

from gateway.simulator.errors import CaseFailedError


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    """Scheme, host and port (None: the scheme's default) of `url`."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _pattern(scheme: str, host: str, port: int | None) -> str:
    """An httpx mount pattern for exactly one origin."""
    bracketed = f"[{host}]" if ":" in host else host
    return f"{scheme}://{bracketed}" + (f":{port}" if port is not None else "")


def shown(url: httpx.URL | str) -> str:
    """`url` without its query: what a report may print (login tokens and codes travel in queries)."""
    return str(httpx.URL(url).copy_with(query=None, fragment=None))


def next_url(answer: httpx.Response) -> httpx.URL:
    """Where a redirect sends the browser, resolved against the address that answered."""
    return answer.url.join(answer.headers["location"])


class Browser:
    """Cookies and requests of one member; use as an async context manager."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None,
        identity_app: ASGIApp,
        identity_origins: Iterable[str],
        timeout_s: float,
        latencies: list[float],
        cookies: httpx.Cookies | None = None,
    ) -> None:
        self._identity = {origin(address) for address in identity_origins}
        self._latencies = latencies
        self._timeout_s = timeout_s
        in_process = httpx.ASGITransport(app=identity_app)
        self._client = httpx.AsyncClient(
            transport=transport,
            mounts={_pattern(*found): in_process for found in self._identity},
            cookies=cookies,
            follow_redirects=False,
            timeout=timeout_s,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._client.aclose()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def on_identity(self, url: httpx.URL | str) -> bool:
        return origin(url) in self._identity

    async def get(self, url: httpx.URL | str, *, step: str) -> httpx.Response:
        return await self._send(self._client.build_request("GET", url), step=step)

    async def post_form(self, url: httpx.URL | str, form: dict[str, str], *, step: str) -> httpx.Response:
        return await self._send(self._client.build_request("POST", url, data=form), step=step)

    async def _send(self, request: httpx.Request, *, step: str) -> httpx.Response:
        timed = not self.on_identity(request.url)
        started = time.perf_counter()
        try:
            answer = await self._client.send(request)
        except httpx.TimeoutException as exc:
            raise CaseFailedError(f"{step}: no answer within {self._timeout_s:g} s from {shown(request.url)}") from exc
        except (httpx.HTTPError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
            raise CaseFailedError(f"{step}: {shown(request.url)} unreachable: {detail}") from exc
        finally:
            if timed:
                self._latencies.append(time.perf_counter() - started)
        return answer
