"""The schema, built with the safety extensions its options ask for."""

import strawberry
import structlog
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from graphql_api.extensions import safety_extensions, unexpected
from graphql_api.mutations import Mutation
from graphql_api.queries import Query

log = structlog.get_logger(__name__)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log the unexpected errors only, as structured lines (the request id bound) with their
        traceback. Strawberry's own logging wrote every error, a refused sign-in or a typo in a
        query included, as a plain-text traceback: any anonymous client could flood the log."""
        for error in errors:
            if unexpected(error):
                log.error("graphql_unexpected_error", path=error.path, exc_info=error.original_error)


def build_schema(
    *, max_depth: int = 10, max_aliases: int = 30, max_tokens: int = 2000, introspection: bool = False
) -> strawberry.Schema:
    return _Schema(
        query=Query,
        mutation=Mutation,
        extensions=safety_extensions(
            max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens, introspection=introspection
        ),
    )
