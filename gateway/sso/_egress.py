"""An HTTP transport that only connects to public addresses: tenant identity domains receive
client secrets and codes, so a domain that resolves to a private or loopback address (DNS can
change after tenantSync checked the name) must not make MarketGate call an internal service.

The check runs at connection time, on the addresses the name resolves to then, and the
connection goes to the checked address (TLS still verifies the host name). Proxies from the
environment are not used for identity domains.
"""

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import anyio
import httpcore
import httpx

Resolve = Callable[[str, int], Awaitable[list[str]]]


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class PublicAddressBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, refusing hosts that resolve to any non-public address."""

    def __init__(self, *, resolve: Resolve = _resolve, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}") from exc
        if not addresses or not all(is_public_address(address) for address in addresses):
            raise httpcore.ConnectError(f"{host!r} resolves to a non-public address; not connecting")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("identity domains are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PublicOnlyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses `PublicAddressBackend`."""

    def __init__(self, *, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        super().__init__(trust_env=False)
        # httpx 0.28 builds its pool without a network backend option; replace it (pinned version).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend or PublicAddressBackend(),
        )


class SharedTransport(httpx.AsyncBaseTransport):
    """Lends one long-lived transport to short-lived clients: closing a client leaves it open."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """The owner closes the shared transport, not the borrowing client."""
