"""The HTTP client for MarketGate's own outbound calls: the order query and the HTTP adapter.

httpx's API (what the callers and their tests use) over aiohttp's connections
(`httpx-aiohttp`): httpx's own transport (httpcore, h11, anyio) spends about 0.4 ms of CPU per
request here, which was a tenth of a newInstance; aiohttp's takes about a third of that.

- TLS is verified as with httpx (its default context, certifi's authorities).
- Proxies: when the environment names one (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, with
  `NO_PROXY`), the client is httpx's own, which honours them exactly as before; the aiohttp
  connections serve direct traffic only.
- Timeouts: httpx's connect, read and pool timeouts apply; its write timeout is not passed on.
- aiohttp writes the request target in its normalized form (`%7E` goes out as `~`); the APIG
  signature is over the canonical form, so it is unaffected.
- Every failure reaches the caller as an `httpx.TransportError` of the right kind (connect, read,
  timeout, protocol, proxy; see `_httpx_error`), whose message names the failure without the
  request's address.
- No cookies are kept: a cookie one answer sets is not sent with any later request. One client
  serves every call of its kind (the HTTP adapter's events of every tenant, say), so a kept
  cookie would carry one call's state into another's.

A transport passed in (tests) is used as it is.
"""

import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import Cookie, CookieJar
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def _httpx_error(cause: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp failure. httpx-aiohttp's own mapping reports a refused
    connection or an untrusted certificate as a connect *timeout*, and lets a response it cannot
    parse through as aiohttp's error; callers (and their messages) need the real kind."""
    message = _description(cause)
    if isinstance(cause, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx.ProxyError(message)
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(cause, TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, DNS, TLS certificate
        return httpx.ConnectError(message)
    if isinstance(cause, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(cause, aiohttp.ClientPayloadError | aiohttp.ClientOSError | aiohttp.ClientConnectionResetError):
        return httpx.ReadError(message)
    if isinstance(cause, ValueError):  # a request aiohttp refuses to send
        return httpx.LocalProtocolError(message)
    return httpx.RemoteProtocolError(message)  # disconnected without an answer, unparsable answer


def _description(cause: BaseException) -> str:
    """What failed, without the address: aiohttp's messages carry the whole URL."""
    if isinstance(cause, aiohttp.ClientConnectorError):
        detail = cause.os_error.strerror or type(cause.os_error).__name__
    elif isinstance(cause, aiohttp.ClientResponseError):
        detail = cause.message.splitlines()[0] if cause.message else ""
    else:
        detail = ""
    return f"{type(cause).__name__}: {detail}"[:200] if detail else type(cause).__name__


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, ValueError) as exc:
        raise _httpx_error(exc) from exc
    except httpx.TransportError as exc:
        if isinstance(exc.__cause__, aiohttp.ClientError | TimeoutError):
            raise _httpx_error(exc.__cause__) from exc.__cause__
        raise


class AnswerTooLargeError(Exception):
    """An answer's body is longer than its reader takes."""


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """A streamed answer's body, refused (`AnswerTooLargeError`) once it passes `limit` bytes,
    before it is read to its end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise AnswerTooLargeError(f"over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Body(httpx.AsyncByteStream):
    """The response body, with aiohttp's errors as `_httpx_error` names them."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._inner.aclose()


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing (httpx's maintainers' recipe: httpx has no switch for it)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class _ReadNoCookies(httpx.Cookies):
    """httpx's cookies over `_NoCookies`, reading none from an answer: httpx's own would first
    build two urllib stand-ins of the request and the answer for the jar to look at, about a
    fifth of the order query's CPU, only for the jar to keep nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.AsyncClient):
    """httpx's client with `_ReadNoCookies` as its cookies, whatever it is given."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._no_cookies = _ReadNoCookies(_NoCookies())

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None


class _Transport(AiohttpTransport):
    def get_client(self) -> aiohttp.ClientSession:
        """httpx-aiohttp's session, but with a cookie jar that keeps nothing: its default session
        has aiohttp's own jar, which kept a host name's cookies beneath httpx's (see `_NoCookies`)."""
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,  # httpx's None and aiohttp's 0: no limit
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors():
            response = await super().handle_async_request(request)
        if not isinstance(response.stream, httpx.AsyncByteStream):
            raise TypeError("httpx-aiohttp answered with a synchronous body")
        response.stream = _Body(response.stream)
        return response


def outbound_client(
    *,
    timeout: httpx.Timeout,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` that follows no redirects and keeps no cookies, on aiohttp's
    connections (httpx's own where the environment names a proxy), or on `transport` when one
    is given."""
    if transport is None and not urllib.request.getproxies():
        transport = _Transport()
    return _Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport, follow_redirects=False)
