"""Sending signed calls to a production address the way the marketplace does, over httpx.

Basic calls go to the production address itself with the signature in the query string; Kit
calls go to `{address}/produceAPI/v2/<sync>` with the signature in `x-` headers. Every call
gets a fresh nonce and a millisecond timestamp, and is given up after the timeout, as the
console debugger gives up after 20 s.
"""

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.koogallery.signing import CallKind
from gateway.simulator.checks import Exchange
from gateway.simulator.signer import SignedCall, marketplace_body, sign_call

KIT_PATH = "/produceAPI/v2/"
CONSOLE_TIMEOUT_S = 20.0
"""The Seller Console debugger gives up on a call after 20 s."""
PRODUCTION_TIMEOUT_S = 5.0
"""The marketplace gives up on a production call after 5 s."""


def epoch_ms_now() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Target:
    """Where the calls go and the keys they are signed with (basic and Kit)."""

    url: str
    key: bytes
    kit_key: bytes

    def address(self, kind: CallKind, interface: str) -> str:
        """The basic production address, or the Kit address of sync `interface`."""
        base = self.url.rstrip("/")
        return f"{base}{KIT_PATH}{interface}" if kind is CallKind.KIT else base


class Caller:
    """Signs and sends calls; remembers each call's latency for the report."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: Target,
        *,
        timeout_s: float = CONSOLE_TIMEOUT_S,
        now_ms: Callable[[], int] = epoch_ms_now,
    ) -> None:
        self._client = client
        self._target = target
        self.timeout_s = timeout_s
        self.now_ms = now_ms
        self.latencies: list[float] = []

    def sign(
        self, kind: CallKind, fields: dict[str, Any], *, skew_s: float = 0.0, nonce: str | None = None
    ) -> SignedCall:
        """The body as the marketplace writes it, signed with a timestamp shifted by `skew_s`."""
        key = self._target.key if kind is CallKind.BASIC else self._target.kit_key
        now = self.now_ms() + round(skew_s * 1000)
        return sign_call(kind, marketplace_body(fields), key=key, now_ms=now, nonce=nonce)

    async def call(self, kind: CallKind, interface: str, fields: dict[str, Any], *, skew_s: float = 0.0) -> Exchange:
        """Sign `fields` and send them to `interface` (an activity or a Kit sync name)."""
        return await self.send(self.sign(kind, fields, skew_s=skew_s), interface=interface)

    async def send(self, call: SignedCall, *, interface: str, body: bytes | None = None) -> Exchange:
        """Send a signed call; `body` replaces the signed body (to tamper with it)."""
        if body is not None:
            call = dataclasses.replace(call, body=body)
        url = self._target.address(call.kind, interface)
        params = call.query if call.kind is CallKind.BASIC else None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.post(
                    url, params=params, content=call.body, headers=call.headers, timeout=self.timeout_s
                )
        except (TimeoutError, httpx.TimeoutException):
            elapsed = time.perf_counter() - started
            self.latencies.append(elapsed)
            limit = f"{self.timeout_s:g}"
            return Exchange(None, "", b"", elapsed, error=f"no answer within {limit} s (调用接口超时{limit}s)")
        except (httpx.HTTPError, OSError) as exc:
            elapsed = time.perf_counter() - started
            self.latencies.append(elapsed)
            detail = f"{type(exc).__name__}: {exc}"[:200]
            return Exchange(None, "", b"", elapsed, error=f"production address unreachable: {detail} (生产地址不可达)")
        elapsed = time.perf_counter() - started
        self.latencies.append(elapsed)
        return Exchange(response.status_code, response.headers.get("content-type", ""), response.content, elapsed)
