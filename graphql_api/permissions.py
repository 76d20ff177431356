"""Permission classes: who may call a field at all. What rows they see is the services' job.

Fields list the classes in order, broadest first: `[IsAuthenticated, IsOperator, CanWrite]`.
Buyer organizations (tenants, departments, members, roles) are read by operators and tenant
admins (`ReadsOrganizations`); an ordinary member reads only themselves, through `viewer`.
"""

from typing import Any

from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from graphql_api.context import Context
from graphql_api.errors import FORBIDDEN, UNAUTHENTICATED, ApiError


class IsAuthenticated(BasePermission):
    """The request carries valid credentials; anonymous callers get nothing."""

    message = "authentication required: send Authorization: Bearer <token>, or the session cookie"
    error_extensions = {"code": UNAUTHENTICATED}  # noqa: RUF012 (strawberry reads it as a class attribute)

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        rejection = info.context.rejection
        if rejection is not None:
            raise ApiError(rejection.code, rejection.message)
        return info.context.caller.is_authenticated


class IsOperator(BasePermission):
    """The caller is one of the vendor's operators (an API token)."""

    message = "an operator token is required"
    error_extensions = {"code": FORBIDDEN}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        return info.context.caller.is_operator


class ReadsOrganizations(BasePermission):
    """The caller reads buyer organizations: an operator (their products) or a tenant admin (their tenant)."""

    message = "an operator token or a tenant admin's session is required"
    error_extensions = {"code": FORBIDDEN}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        caller = info.context.caller
        return caller.is_operator or caller.is_tenant_admin


class CanWrite(BasePermission):
    """The caller may change things: an operator token with scope `write`, or a tenant admin."""

    message = "a write token is required"
    error_extensions = {"code": FORBIDDEN}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        return info.context.caller.can_write


def authenticated() -> PermissionExtension:
    """Any caller with valid credentials."""
    return PermissionExtension(permissions=[IsAuthenticated()])


def operator() -> PermissionExtension:
    """Read access to the vendor's operations view."""
    return PermissionExtension(permissions=[IsAuthenticated(), IsOperator()])


def operator_write() -> PermissionExtension:
    """Changes in the vendor's operations view."""
    return PermissionExtension(permissions=[IsAuthenticated(), IsOperator(), CanWrite()])


def organization() -> PermissionExtension:
    """Read access to buyer organizations (what the caller reaches of them is the services' job)."""
    return PermissionExtension(permissions=[IsAuthenticated(), ReadsOrganizations()])


def organization_write() -> PermissionExtension:
    """Changes to buyer organizations' product roles."""
    return PermissionExtension(permissions=[IsAuthenticated(), ReadsOrganizations(), CanWrite()])
