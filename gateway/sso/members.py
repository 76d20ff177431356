"""What SSO reads from the Kit's directory: a tenant's identity domain and OAuth client, and
whether a userName is a member the buyer authorized for the product's app.

Services take the session first and the scope explicitly; they only read.
"""

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.sso.errors import (
    MemberDisabledError,
    MemberNotAuthorizedError,
    MemberRevokedError,
    NoAppCredentialsError,
    UnknownTenantError,
)
from tenants import directory
from tenants.directory import TenantLogin
from tenants.directory_models import DirectoryApp, DirectoryAuthorization, DirectoryMember
from tenants.secretbox import SecretBox


@dataclass(frozen=True, slots=True)
class TenantAccess:
    """A bound tenant's login set-up: identity domain, OAuth client, and its instance."""

    login: TenantLogin
    instance_id: str


async def get_tenant_access(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool | None, secret_box: SecretBox
) -> TenantAccess:
    """The tenant's login set-up; `is_test` None tries the real tenant first, then the debug one.

    Raises `UnknownTenantError` (never bound, or unbound) or `NoAppCredentialsError`.
    """
    bound_without_app = False
    for flag in (False, True) if is_test is None else (is_test,):
        tenant = await directory.get_tenant(session, product=product, tenant_id=tenant_id, is_test=flag)
        if tenant is None or not directory.is_bound(tenant) or not tenant.domain_name:
            continue
        login = await directory.get_tenant_login(
            session, product=product, tenant_id=tenant_id, is_test=flag, secret_box=secret_box
        )
        if login is None:
            bound_without_app = True
            continue
        return TenantAccess(login=login, instance_id=tenant.instance_id)
    if bound_without_app:
        raise NoAppCredentialsError(f"tenant {tenant_id!r} has no application credentials")
    raise UnknownTenantError(f"tenant {tenant_id!r} is not bound to the product")


async def get_login_member(
    session: AsyncSession, *, product: str, tenant_id: str, is_test: bool, user_name: str, app_id: str
) -> tuple[DirectoryMember, DirectoryAuthorization]:
    """The member and their live, enabled authorization for `app_id`, or the reason there is none."""
    found = await directory.get_authorized_member(
        session, product=product, tenant_id=tenant_id, is_test=is_test, user_name=user_name, app_id=app_id
    )
    if found is not None:
        return found
    authorizations = [
        authorization
        for authorization in await directory.list_authorizations(
            session, product=product, tenant_id=tenant_id, is_test=is_test, user_name=user_name
        )
        if authorization.app_id == app_id
    ]
    if any(item.revoked_at is None and not item.enabled for item in authorizations):
        raise MemberDisabledError(f"authorization of {user_name!r} is disabled")
    if authorizations:
        raise MemberRevokedError(f"authorization of {user_name!r} was revoked")
    raise MemberNotAuthorizedError(f"{user_name!r} is not authorized for app {app_id!r}")


async def get_latest_app_id(session: AsyncSession, *, product: str) -> str | None:
    """The appId whose credentials the Kit synced last for the product (real tenants first)."""
    query = (
        select(DirectoryApp.app_id)
        .where(col(DirectoryApp.product) == product)
        .order_by(col(DirectoryApp.is_test), col(DirectoryApp.updated_at).desc(), col(DirectoryApp.id).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()
