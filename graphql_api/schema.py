"""The schema, built with the safety extensions its options ask for."""

import strawberry

from graphql_api.extensions import safety_extensions
from graphql_api.mutations import Mutation
from graphql_api.queries import Query


def build_schema(
    *, max_depth: int = 10, max_aliases: int = 30, max_tokens: int = 2000, introspection: bool = False
) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=safety_extensions(
            max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens, introspection=introspection
        ),
    )
