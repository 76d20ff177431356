"""The demo product, "Demo Workspace": a small real product sold through MarketGate.

Each marketplace instance is a workspace, kept in the product's own `demo_workspaces` table
(created on first use: beside MarketGate's tables on PostgreSQL, never touching them; on SQLite
in a file of its own, `demo-<slug>.db` in the data folder). A workspace has a plan, an
expiry, an administrator account and a page at `{public_url}/apps/{product}/w/{instance_id}`
served by `DemoAdapter.web_app`.

Settings (`[products.<slug>.adapter_settings]`):

- `plan_label` (str, default "Standard"): the plan name shown when the order names none,
  which is the case when the product has no open-API key to query orders with.
- `refuse_when_more_than` (int, optional): a quota. New purchases are refused with
  `Refusal.NO_RESOURCE` once that many live (active or frozen) workspaces exist. Within
  one process the check and the insert are serialised; across processes it is best effort.

Members: the Kit's directory events keep `demo_members`, the people each buyer enterprise
authorized for the product, with their role (`list_members`); revocations and unbinding
remove them.

SSO free login (contract 3): `on_login` sends a member to the demo's `/sso/enter` page, which
redeems the login token and shows who is signed in, with their role, at `/me`; its own login
page, `/login`, has the "Sign in with Huawei Cloud" button. See `_demo_sso.py`.

Repeated provisioning: the administrator password is generated once, returned only by the
first `provision` and kept only as a hash. A repeated `provision` of the same instance (a
retry after MarketGate lost the first answer) returns the same access information without a
password; issuing a second password could contradict the first if both answers were in flight.
"""

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from starlette.applications import Starlette

from gateway.adapters._demo_pages import build_pages
from gateway.adapters._demo_passwords import hash_password, new_password, verify_password
from gateway.adapters._demo_sso import DemoSessions, sso_routes
from gateway.adapters._demo_store import Workspace, WorkspaceStatus, WorkspaceStore
from gateway.adapters.contract import (
    AdapterConfigError,
    AdapterContext,
    AdapterError,
    AppInfo,
    ChangeCheckRequest,
    ChangeDecision,
    DirectoryEvent,
    DirectoryEventType,
    InstanceRef,
    LoginRequest,
    ProvisionRequest,
    Refusal,
    Refused,
    RenewRequest,
    SessionEnd,
    StatusRequest,
    UpgradeRequest,
)
from tenants.database import shown_url

__all__ = ["DemoAdapter", "DemoSettings", "WorkspaceNotFoundError"]

REPEAT_MEMO = "The initial password was given with the first answer."


class WorkspaceNotFoundError(AdapterError):
    """A call names a workspace that was never provisioned, or is released."""

    code = "workspace_not_found"


class DemoSettings(BaseModel):
    """The demo adapter's settings; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_label: str = Field(default="Standard", min_length=1, max_length=100)
    refuse_when_more_than: int | None = Field(default=None, ge=0)


def _settings(settings: Mapping[str, Any]) -> DemoSettings:
    try:
        return DemoSettings.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise AdapterConfigError(f"invalid demo settings: {problems}") from exc


def _now() -> datetime:
    return datetime.now(UTC)


def admin_user_for(instance_id: str) -> str:
    """The workspace administrator's name: stable for an instance, short, no personal data."""
    return "admin-" + hashlib.sha256(instance_id.encode("utf-8")).hexdigest()[:8]


def _own_database(context: AdapterContext) -> str:
    """Where the demo keeps its tables: beside MarketGate's on PostgreSQL; in a file of its own
    on SQLite, so that its writes never wait on MarketGate's (SQLite has one writer per file)."""
    if make_url(context.database_url).get_backend_name() != "sqlite":
        return context.database_url
    return f"sqlite:///{Path(context.data_dir) / f'demo-{context.product}.db'}"


class DemoAdapter:
    """The adapter of the demo product; see the module docstring for its settings."""

    contract_version: ClassVar[int] = 3
    handles_test_calls: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        self.settings = _settings(settings)
        self.context = context
        try:
            self._store = WorkspaceStore(_own_database(context))
        except (ValueError, ArgumentError) as exc:
            shown = shown_url(context.database_url)
            problem = str(exc).replace(context.database_url, shown)
            raise AdapterConfigError(f"demo adapter cannot use database {shown!r}: {problem}") from exc
        self._provision_lock = asyncio.Lock()
        self.sessions = DemoSessions()
        self.web_app: Starlette = build_pages(
            self._page_workspace,
            product_name=context.product_name,
            plan_label=self.settings.plan_label,
            extra_routes=sso_routes(
                product=context.product,
                product_name=context.product_name,
                sessions=self.sessions,
                login_tokens=context.login_tokens,
            ),
        )

    def __repr__(self) -> str:
        return f"DemoAdapter(product={self.context.product!r})"

    def workspace_url(self, instance_id: str) -> str:
        return f"{self.context.public_url}/apps/{self.context.product}/w/{quote(instance_id, safe='')}"

    def _app_info(self, workspace: Workspace, *, password: str | None = None, memo: str | None = None) -> AppInfo:
        # No adminUrl: the demo serves no admin console (it only checks the password, see
        # `verify_admin_password`), and a link to a missing page is worse than none.
        url = self.workspace_url(workspace.instance_id)
        return AppInfo(front_end_url=url, user_name=workspace.admin_user, password=password, memo=memo)

    async def _page_workspace(self, instance_id: str) -> Workspace | None:
        return await self._store.get(product=self.context.product, instance_id=instance_id)

    async def _live_workspace(self, instance: InstanceRef) -> Workspace:
        workspace = await self._store.get(product=instance.product, instance_id=instance.instance_id)
        if workspace is None or not workspace.is_live:
            raise WorkspaceNotFoundError(f"no live demo workspace for instance {instance.instance_id!r}")
        return workspace

    async def provision(self, request: ProvisionRequest) -> AppInfo:
        """Create the workspace and its administrator; a repeat returns the same, without password."""
        instance = request.instance
        limit = self.settings.refuse_when_more_than
        password = new_password()
        # Only a quota needs provisionings in line (count, then insert); without one they run side by side.
        async with self._provision_lock if limit is not None else contextlib.nullcontext():
            existing = None
            if limit is not None:
                existing = await self._store.get(product=instance.product, instance_id=instance.instance_id)
                if existing is None and await self._store.count_live(product=instance.product) >= limit:
                    raise Refused(Refusal.NO_RESOURCE, f"all {limit} demo workspaces are taken")
            if existing is None:
                workspace = self._new_workspace(request, password_hash=hash_password(password))
                if await self._store.insert(workspace):
                    return self._app_info(workspace, password=password)
                # A repeat, or another process created it first.
                existing = await self._store.get(product=instance.product, instance_id=instance.instance_id)
        if existing is None or not existing.is_live:
            raise Refused(Refusal.SERVICE_ERROR, "this instance was released and cannot be provisioned again")
        return self._app_info(existing, memo=REPEAT_MEMO)

    def _new_workspace(self, request: ProvisionRequest, *, password_hash: str) -> Workspace:
        order, now = request.order, _now()
        return Workspace(
            product=request.instance.product,
            instance_id=request.instance.instance_id,
            status=WorkspaceStatus.ACTIVE,
            sku_code=order.sku_code if order else None,
            product_name=order.product_name if order else None,
            linear_value=order.linear_value if order else None,
            expire_time=order.expire_time if order else None,
            admin_user=admin_user_for(request.instance.instance_id),
            admin_password_hash=password_hash,
            created_at=now,
            updated_at=now,
        )

    async def _change(self, instance: InstanceRef, changes: Mapping[str, Any]) -> None:
        await self._live_workspace(instance)
        await self._store.update(
            product=instance.product, instance_id=instance.instance_id, changes={**changes, "updated_at": _now()}
        )

    async def renew(self, request: RenewRequest) -> None:
        """Record the new expiry."""
        await self._change(request.instance, {"expire_time": request.expire_time})

    async def set_status(self, request: StatusRequest) -> None:
        """Freeze or unfreeze: a frozen workspace keeps its data and shows a renewal notice."""
        status = WorkspaceStatus.FROZEN if request.frozen else WorkspaceStatus.ACTIVE
        await self._change(request.instance, {"status": status})

    async def release(self, instance: InstanceRef) -> None:
        """Mark the workspace released and delete its plan and administrator; repeats do nothing."""
        workspace = await self._store.get(product=instance.product, instance_id=instance.instance_id)
        if workspace is None or workspace.status is WorkspaceStatus.RELEASED:
            return
        cleared = dict.fromkeys(("sku_code", "product_name", "linear_value", "expire_time", "admin_user"))
        await self._store.update(
            product=instance.product,
            instance_id=instance.instance_id,
            changes={**cleared, "admin_password_hash": None, "status": WorkspaceStatus.RELEASED, "updated_at": _now()},
        )

    async def upgrade(self, request: UpgradeRequest) -> None:
        """Apply the plan of the upgrade order (the parts the order states)."""
        order = request.order
        if order is None:
            await self._live_workspace(request.instance)
            return
        plan = {
            "sku_code": order.sku_code,
            "product_name": order.product_name,
            "linear_value": order.linear_value,
            "expire_time": order.expire_time,
        }
        await self._change(request.instance, {name: value for name, value in plan.items() if value is not None})

    async def check_change(self, request: ChangeCheckRequest) -> ChangeDecision:
        """Refuse a plan smaller than what the workspace has now; accept anything else."""
        workspace = await self._store.get(product=request.instance.product, instance_id=request.instance.instance_id)
        if workspace is None or not workspace.is_live:
            return ChangeDecision(accepted=False, reason="unknown workspace")
        current, wanted = workspace.linear_value, request.linear_value
        if current is not None and wanted is not None and wanted < current:
            return ChangeDecision(accepted=False, reason=f"the workspace uses {current}; cannot go down to {wanted}")
        return ChangeDecision(accepted=True)

    async def describe(self, instance: InstanceRef) -> AppInfo | None:
        """Where the workspace is and who administers it (never the password); None if not live."""
        workspace = await self._store.get(product=instance.product, instance_id=instance.instance_id)
        if workspace is None or not workspace.is_live:
            return None
        return self._app_info(workspace)

    async def verify_admin_password(self, instance: InstanceRef, password: str) -> bool:
        """True when `password` is the workspace administrator's (for the product's own login)."""
        workspace = await self._store.get(product=instance.product, instance_id=instance.instance_id)
        if workspace is None or not workspace.is_live or workspace.admin_password_hash is None:
            return False
        return verify_password(password, workspace.admin_password_hash)

    async def on_directory_event(self, event: DirectoryEvent) -> None:
        """Keep the product's member list: who the buyer authorized, with which role."""
        scope: dict[str, Any] = {"product": event.product, "tenant_id": event.tenant_id, "is_test": event.is_test}
        match event.type:
            case DirectoryEventType.MEMBERS_AUTHORIZED | DirectoryEventType.MEMBERS_CHANGED:
                now = _now()
                rows = [
                    {
                        **scope,
                        "user_name": member["user_name"],
                        "name": member["name"],
                        "org_code": member["org_code"],
                        "role": member["role"],
                        "enabled": member["enabled"],
                        "updated_at": now,
                    }
                    for member in event.data["members"]
                ]
                await self._store.upsert_members(rows)
            case DirectoryEventType.MEMBERS_REVOKED:
                names = [member["user_name"] for member in event.data["members"]]
                await self._store.delete_members(**scope, user_names=names)
            case DirectoryEventType.TENANT_UNBOUND:
                await self._store.delete_members(**scope, user_names=None)
            case _:
                return

    async def list_members(self, *, tenant_id: str, is_test: bool = False) -> list[dict[str, Any]]:
        """The members authorized for this product in one tenant, by userName."""
        return await self._store.list_members(product=self.context.product, tenant_id=tenant_id, is_test=is_test)

    async def on_login(self, request: LoginRequest) -> str:
        """The demo's sign-in page for the member, carrying the login token it redeems."""
        return (
            f"{self.context.public_url}/apps/{quote(self.context.product, safe='')}/sso/enter"
            f"?login_token={quote(request.login_token, safe='')}"
        )

    async def on_session_end(self, end: SessionEnd) -> None:
        """End the demo sessions started from the MarketGate session that ended."""
        self.sessions.end_for(end.session_id)

    async def aclose(self) -> None:
        await self._store.dispose()

