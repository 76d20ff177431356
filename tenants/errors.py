"""Errors of the domain layer; each has a stable `code`."""


class TenantsError(Exception):
    """Root of the domain errors."""

    code = "tenants_error"


class DatabaseUnavailableError(TenantsError):
    """The database could not be reached or refused the work; the caller may retry."""

    code = "database_unavailable"


class InstanceNotFoundError(TenantsError):
    """No such instance for this product."""

    code = "instance_not_found"


class InvalidTransitionError(TenantsError):
    """The instance's state does not allow the requested change."""

    code = "invalid_transition"
