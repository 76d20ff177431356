"""A small vendor server for the simulator's tests: correct by default, broken on request.

It implements the basic interfaces and the Kit syncs the simplest correct way (signature,
timestamp window, nonces, idempotent instances keyed by order) with the protocol module's
own signing code; each field of `Faults` breaks one thing the marketplace relies on, so a
test can show that the simulator names exactly the case that breaks and why.
"""

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.clock import SystemClock, epoch_ms
from gateway.koogallery import signing
from gateway.koogallery.errors import ProtocolError, ReplayedNonceError
from gateway.koogallery.payload import canonical_payload, parse_object
from gateway.koogallery.signing import CallKind, SignatureInputs
from gateway.simulator.signer import marketplace_body

JSON = "application/json;charset=UTF-8"
WINDOW_MS = 60_000


@dataclass
class Faults:
    """What the toy gets wrong; all off by default."""

    result_code: dict[str, str] = field(default_factory=dict)
    """activity (or Kit sync) -> the code it answers instead of the right one."""
    drop_instance_id: bool = False
    status: int = 200
    content_type: str = JSON
    delay_s: float = 0.0
    new_instance_id_each_call: bool = False
    skip_signature_check: bool = False
    skip_nonce_check: bool = False
    long_front_end_url: bool = False


@dataclass
class ToyVendor:
    key: bytes
    kit_key: bytes
    faults: Faults = field(default_factory=Faults)
    private_key: rsa.RSAPrivateKey | None = None
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[tuple[str, str], str] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    kit_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    client_secrets: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/isv/produce", self._basic, methods=["POST"]),
            Route("/isv/produce/produceAPI/v2/{sync}", self._kit, methods=["POST"]),
        ])

    def _authenticate(self, kind: CallKind, inputs: SignatureInputs, raw: bytes) -> dict[str, Any]:
        signature, timestamp, nonce = signing.check_inputs(inputs)
        signing.check_timestamp(timestamp, now_ms=epoch_ms(SystemClock().now()), window_ms=WINDOW_MS)
        payload = parse_object(raw)
        if not self.faults.skip_signature_check:
            canonical = canonical_payload(payload) or raw
            keys = [self.key if kind is CallKind.BASIC else self.kit_key]
            signing.verify(kind, keys=keys, signature=signature, nonce=nonce, timestamp=timestamp,
                           payloads=[canonical, raw])
        if not self.faults.skip_nonce_check:
            if nonce in self.nonces:
                raise ReplayedNonceError("replayed nonce")
            self.nonces.add(nonce)
        return payload

    async def _answer(self, name: str, code: str, **fields: Any) -> Response:
        await asyncio.sleep(self.faults.delay_s)
        code = self.faults.result_code.get(name, code)
        body = {"resultCode": code, "resultMsg": "success." if code == "000000" else "refused"} | fields
        if self.faults.drop_instance_id:
            body.pop("instanceId", None)
        return Response(marketplace_body(body), status_code=self.faults.status, media_type=self.faults.content_type)

    async def _basic(self, request: Request) -> Response:
        raw = await request.body()
        query = request.query_params
        inputs = SignatureInputs(query.get("signature"), query.get("timestamp"), query.get("nonce"))
        try:
            call = self._authenticate(CallKind.BASIC, inputs, raw)
        except ProtocolError as exc:
            return await self._answer("auth", exc.result_code.value)
        activity = str(call.get("activity"))
        if activity == "newInstance":
            order = (call["orderId"], call["orderLineId"])
            instance_id = self.orders.setdefault(order, call["businessId"])
            if self.faults.new_instance_id_each_call:
                instance_id = call["businessId"]
            self.instances.setdefault(instance_id, {"status": "active"})
            return await self._answer(activity, "000000", instanceId=instance_id)
        if activity == "queryInstance":
            url_length = 600 if self.faults.long_front_end_url else 20
            info = [
                {"instanceId": instance_id, "appInfo": {"frontEndUrl": "https://toy.example/" + "x" * url_length}}
                for instance_id in call["instanceId"].split(",")
                if self.instances.get(instance_id, {}).get("status") in ("active", "frozen")
            ]
            return await self._answer(activity, "000000", info=info)
        instance = self.instances.get(str(call.get("instanceId")))
        if activity == "releaseInstance":
            if instance is None:
                return await self._answer(activity, "000003")
            instance["status"] = "released"
            return await self._answer(activity, "000000")
        if instance is None or instance["status"] == "released":
            return await self._answer(activity, "000003")
        if activity == "updateInstanceStatus":
            instance["status"] = "frozen" if call["status"] == "FREEZE" else "active"
        return await self._answer(activity, "000000")

    async def _kit(self, request: Request) -> Response:
        raw = await request.body()
        headers = request.headers
        inputs = SignatureInputs(headers.get("x-sign"), headers.get("x-timestamp"), headers.get("x-nonce"))
        sync = request.path_params["sync"]
        try:
            call = self._authenticate(CallKind.KIT, inputs, raw)
        except ProtocolError as exc:
            return await self._answer("auth", exc.result_code.value)
        self.kit_calls.append((sync, call))
        if sync == "applicationSync" and self.private_key is not None:
            oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
            self.client_secrets.append(self.private_key.decrypt(base64.b64decode(call["clientSecret"]), oaep).decode())
        return await self._answer(sync, "000000")
