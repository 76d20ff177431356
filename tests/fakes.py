"""A product adapter for tests: records every call and does what the test tells it to."""

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.adapters.contract import (
    AdapterContext,
    AppInfo,
    ChangeCheckRequest,
    ChangeDecision,
    DirectoryEvent,
    InstanceRef,
    LoginRequest,
    ProvisionRequest,
    Refused,
    RenewRequest,
    SessionEnd,
    StatusRequest,
    UpgradeRequest,
)


@dataclass
class Behaviour:
    """What the recording adapter does; tests change it while the app runs."""

    provision_delay_s: float = 0.0
    provision_refusal: Refused | None = None
    provision_errors: int = 0
    provision_memo: str | None = None
    accept_changes: bool = True
    handles_test_calls: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    provisioned: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    directory_errors: int = 0
    events: list[DirectoryEvent] = field(default_factory=list)
    """Directory events in the order they were delivered, failed deliveries included."""
    login_error: Exception | None = None
    login_delay_s: float = 0.0
    logins: list[LoginRequest] = field(default_factory=list)
    session_ends: list[SessionEnd] = field(default_factory=list)


class RecordingAdapter:
    contract_version: ClassVar[int] = 3
    handles_test_calls: ClassVar[bool] = False

    def __init__(self, behaviour: Behaviour, context: AdapterContext) -> None:
        self.behaviour = behaviour
        self.context = context

    def _record(self, name: str, request: Any) -> None:
        self.behaviour.calls[name] += 1
        self.behaviour.requests.append((name, request))

    async def provision(self, request: ProvisionRequest) -> AppInfo:
        self._record("provision", request)
        await asyncio.sleep(self.behaviour.provision_delay_s)
        if self.behaviour.provision_errors > 0:
            self.behaviour.provision_errors -= 1
            raise RuntimeError("backend exploded")
        if self.behaviour.provision_refusal is not None:
            raise self.behaviour.provision_refusal
        self.behaviour.provisioned[request.instance.instance_id] += 1
        url = f"https://{self.context.product}.example.com/{request.instance.instance_id}"
        return AppInfo(
            front_end_url=url, user_name="admin", password="initial-Pa55", memo=self.behaviour.provision_memo
        )

    async def renew(self, request: RenewRequest) -> None:
        self._record("renew", request)

    async def set_status(self, request: StatusRequest) -> None:
        self._record("set_status", request)

    async def release(self, instance: InstanceRef) -> None:
        self._record("release", instance)

    async def upgrade(self, request: UpgradeRequest) -> None:
        self._record("upgrade", request)

    async def check_change(self, request: ChangeCheckRequest) -> ChangeDecision:
        self._record("check_change", request)
        return ChangeDecision(self.behaviour.accept_changes, "" if self.behaviour.accept_changes else "too small")

    async def describe(self, instance: InstanceRef) -> AppInfo | None:
        self._record("describe", instance)
        return None

    async def on_directory_event(self, event: DirectoryEvent) -> None:
        self._record("on_directory_event", event)
        self.behaviour.events.append(event)
        if self.behaviour.directory_errors > 0:
            self.behaviour.directory_errors -= 1
            raise RuntimeError("directory backend exploded")

    async def on_login(self, request: LoginRequest) -> str:
        """Records the login; the product's landing page carries the token."""
        self._record("on_login", request)
        await asyncio.sleep(self.behaviour.login_delay_s)
        if self.behaviour.login_error is not None:
            raise self.behaviour.login_error
        self.behaviour.logins.append(request)
        return f"https://{self.context.product}.example.com/sso?login_token={request.login_token}"

    async def on_session_end(self, end: SessionEnd) -> None:
        self._record("on_session_end", end)
        self.behaviour.session_ends.append(end)

    async def aclose(self) -> None:
        return None


class TestCallsAdapter(RecordingAdapter):
    handles_test_calls: ClassVar[bool] = True


def recording_factory(behaviours: Mapping[str, Behaviour]) -> Any:
    def factory(settings: Mapping[str, Any], context: AdapterContext) -> RecordingAdapter:
        behaviour = behaviours[context.product]
        cls = TestCallsAdapter if behaviour.handles_test_calls else RecordingAdapter
        return cls(behaviour, context)

    return factory
