"""`strawberry.field` and `strawberry.mutation` as typed decorators.

Used as decorator factories, Strawberry's return `Any`, which `mypy --strict` refuses; these
keep the resolver's own signature visible to the type checker and change nothing at run time.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import strawberry
from strawberry.extensions.field_extension import FieldExtension

ResolverT = TypeVar("ResolverT", bound=Callable[..., Any])


def field(
    *, description: str, extensions: Sequence[FieldExtension] = (), graphql_type: Any | None = None
) -> Callable[[ResolverT], ResolverT]:
    """`graphql_type` gives the field's GraphQL type when the resolver's annotation cannot: a resolver
    that answers from data at hand, or else returns an awaitable to load it."""
    return cast(
        "Callable[[ResolverT], ResolverT]",
        strawberry.field(description=description, extensions=list(extensions), graphql_type=graphql_type),
    )


def mutation(*, description: str, extensions: Sequence[FieldExtension] = ()) -> Callable[[ResolverT], ResolverT]:
    return cast(
        "Callable[[ResolverT], ResolverT]", strawberry.mutation(description=description, extensions=list(extensions))
    )
