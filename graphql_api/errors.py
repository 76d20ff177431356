"""Errors the API returns, each with a stable code.

Two tiers: expected failures of a mutation are members of its result union (`ErrorCode`);
refusals and malformed requests are GraphQL errors whose `extensions.code` is one of the
constants below. Anything else is masked (`INTERNAL_SERVER_ERROR`).
"""

import enum

import strawberry
from graphql import GraphQLError

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
CSRF_FAILED = "CSRF_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class ApiError(GraphQLError):
    """A GraphQL error the client is meant to see, with a stable `extensions.code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, extensions={"code": code})


def bad_input(message: str) -> ApiError:
    return ApiError(BAD_USER_INPUT, message)


@strawberry.enum(description="Stable codes of the expected failures of mutations.")
class ErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    JOB_FINISHED = "JOB_FINISHED"
    INSTANCE_NOT_RECONCILABLE = "INSTANCE_NOT_RECONCILABLE"
    ADAPTER_FAILED = "ADAPTER_FAILED"
    UNKNOWN_ROLES = "UNKNOWN_ROLES"
    UNKNOWN_SUBJECTS = "UNKNOWN_SUBJECTS"
    TOO_MANY_SUBJECTS = "TOO_MANY_SUBJECTS"


@strawberry.interface(description="An expected failure of a mutation; nothing was changed.")
class Error:
    code: ErrorCode
    message: str


@strawberry.type(description="No such object among those the caller may reach.")
class NotFoundError(Error):
    @classmethod
    def of(cls, what: str) -> "NotFoundError":
        return cls(code=ErrorCode.NOT_FOUND, message=f"{what} not found")


@strawberry.type(description="The job is done; there is nothing to retry.")
class JobFinishedError(Error):
    @classmethod
    def of(cls) -> "JobFinishedError":
        return cls(code=ErrorCode.JOB_FINISHED, message="the job is done")


@strawberry.type(description="The instance is not live (provisioning, failed or released).")
class InstanceNotReconcilableError(Error):
    @classmethod
    def of(cls, status: str) -> "InstanceNotReconcilableError":
        return cls(code=ErrorCode.INSTANCE_NOT_RECONCILABLE, message=f"the instance is {status}")


@strawberry.type(description="The product's adapter failed or did not answer in time; try again later.")
class AdapterFailedError(Error):
    @classmethod
    def of(cls) -> "AdapterFailedError":
        return cls(code=ErrorCode.ADAPTER_FAILED, message="the adapter did not describe the instance")


_LISTED = 100


@strawberry.type(description="Roles the product does not declare; nothing was changed.")
class UnknownRolesError(Error):
    roles: list[str] = strawberry.field(description="The unknown roles.")

    @classmethod
    def of(cls, roles: list[str]) -> "UnknownRolesError":
        return cls(code=ErrorCode.UNKNOWN_ROLES, message="the product does not declare these roles", roles=roles)


@strawberry.type(description="Members or departments the tenant's directory does not have; nothing was changed.")
class UnknownSubjectsError(Error):
    members: list[str] = strawberry.field(description="Unknown userNames (the first 100).")
    departments: list[str] = strawberry.field(description="Unknown orgCodes (the first 100).")

    @classmethod
    def of(cls, members: list[str], departments: list[str]) -> "UnknownSubjectsError":
        return cls(
            code=ErrorCode.UNKNOWN_SUBJECTS,
            message=f"{len(members)} unknown members and {len(departments)} unknown departments",
            members=members[:_LISTED],
            departments=departments[:_LISTED],
        )


@strawberry.type(description="More members and departments than one change may name; nothing was changed.")
class TooManySubjectsError(Error):
    limit: int
    given: int

    @classmethod
    def of(cls, *, given: int, limit: int) -> "TooManySubjectsError":
        return cls(
            code=ErrorCode.TOO_MANY_SUBJECTS,
            message=f"{given} members and departments given, at most {limit} at once",
            limit=limit,
            given=given,
        )
