"""The outbound HTTP client over real sockets: answers, and every failure as an httpx error."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.order_query import OrderQueryClient, OrderQueryUnavailableError
from gateway.outbound import outbound_client

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A raw TCP server on loopback; yields its base URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.close()


async def _request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def answering(raw: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(raw)
        await writer.drain()

    return handle


async def test_a_request_goes_out_with_its_headers_and_its_answer_comes_back() -> None:
    heads: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # one kept-alive connection serves both requests
            try:
                head = await _request_head(reader)
            except asyncio.IncompleteReadError:
                break
            heads.append(head)
            body = b'{"ok":true}'
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Answer: yes\r\n")
            writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async with serving(echo) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        first = await client.get(f"{url}/path?q=a%2Bb", headers={"X-Sdk-Date": "20261126T120000Z"})
        second = await client.get(f"{url}/again")
    assert (first.status_code, first.headers["x-answer"], first.json()) == (201, "yes", {"ok": True})
    assert second.status_code == 201
    assert heads[0].startswith(b"GET /path?q=a%2Bb HTTP/1.1\r\n")
    header_lines = heads[0].decode("ascii").split("\r\n")[1:]
    headers = dict(line.split(": ", 1) for line in header_lines if line)
    assert {name.lower(): value for name, value in headers.items()}["x-sdk-date"] == "20261126T120000Z"
    assert heads[1].startswith(b"GET /again HTTP/1.1\r\n")


async def test_a_cookie_an_answer_sets_is_not_sent_again() -> None:
    """One client serves every call of its kind (every tenant's events): no call's cookie may
    reach another."""
    heads: list[bytes] = []

    async def setting_cookies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                heads.append(await _request_head(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=tenant-a; Path=/\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with serving(setting_cookies) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        # By host name: aiohttp's own cookie jar ignores cookies from IP addresses, and kept others.
        by_name = url.replace("127.0.0.1", "localhost")
        first = await client.get(f"{by_name}/a")
        await client.get(f"{by_name}/b")
    assert first.cookies["session"] == "tenant-a"  # the answer shows it; the client does not keep it
    assert len(heads) == 2
    assert b"cookie:" not in heads[1].lower()
    assert not client.cookies


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: xyz\r\n\r\nabc", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", httpx.ReadError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", httpx.RemoteProtocolError),
        (b"", httpx.RemoteProtocolError),
    ],
    ids=["bad-status-line", "bad-header", "cut-short", "bad-chunk", "no-answer"],
)
async def test_a_malformed_answer_is_an_httpx_transport_error(raw: bytes, error: type[Exception]) -> None:
    async with serving(answering(raw)) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        with pytest.raises(error):
            async with client.stream("GET", f"{url}/x") as response:
                await response.aread()


async def test_a_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        await reader.read()  # until the client gives up and closes

    async with serving(silent) as url, outbound_client(timeout=httpx.Timeout(0.3)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{url}/x")


async def test_a_closed_port_is_a_connect_error() -> None:
    async with serving(answering(b"")) as url:
        pass  # the port is free again
    async with outbound_client(timeout=httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/x")


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


async def test_a_certificate_that_is_not_trusted_is_refused(tmp_path: Path) -> None:
    answer = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    tls = _self_signed(tmp_path)
    async with serving(answer, tls=tls) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/x")


async def test_a_trusted_certificate_is_accepted_only_for_the_host_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certificate names `localhost` only: trusted (`SSL_CERT_FILE`), it serves that name,
    and the same server reached as 127.0.0.1 is refused."""
    answer = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    tls = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    async with serving(answer, tls=tls) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        by_name = url.replace("127.0.0.1", "localhost")
        assert (await client.get(f"{by_name}/x")).json() == {}
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/x")


async def test_a_server_that_does_not_accept_the_connection_is_a_connect_timeout() -> None:
    """A listening socket whose backlog is full: the kernel drops further handshakes."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(4):  # more than the backlog holds; the later ones never complete
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.05)
        async with outbound_client(timeout=httpx.Timeout(5.0, connect=0.3)) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"http://127.0.0.1:{port}/x")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_the_order_query_sees_a_garbled_answer_as_unavailable() -> None:
    async with serving(answering(b"garbage\r\n\r\n")) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        with pytest.raises(OrderQueryUnavailableError):
            await OrderQueryClient(client).query(endpoint=url, ak="ak", sk="sk", order_id="CS1", order_line_id=None)


async def test_a_post_carries_its_body() -> None:
    received: list[bytes] = []

    async def read_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _request_head(reader)
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
        received.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with serving(read_body) as url, outbound_client(timeout=httpx.Timeout(5.0)) as client:
        response = await client.post(f"{url}/marketgate/v1/provision", content=b'{"instanceId":"i-1"}')
    assert (response.status_code, received) == (200, [b'{"instanceId":"i-1"}'])


async def test_a_proxy_named_by_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    targets: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        targets.append((await _request_head(reader)).split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with serving(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with outbound_client(timeout=httpx.Timeout(5.0)) as client:
            response = await client.get("http://order-api.example/api/query?orderId=CS1")
    assert response.status_code == 200
    assert targets == [b"GET http://order-api.example/api/query?orderId=CS1 HTTP/1.1"]
