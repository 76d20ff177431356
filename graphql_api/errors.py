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
BAD_USER_INPUT = "BAD_USER_INPUT"
QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
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
