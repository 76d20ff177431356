"""Schema extensions that keep the API safe: size limits, no introspection, masked errors.

Strawberry's limiters report plain GraphQL errors; the subclasses here give each a stable
`extensions.code`, so a client can tell "query too deep" from a typo. `KnownDocuments` spares
a frontend's repeated queries the parse and the validation (several milliseconds each time).
"""

from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import partial

from graphql import DocumentNode, GraphQLError, GraphQLSyntaxError, ValidationContext, ValidationRule
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from graphql_api.errors import (
    GRAPHQL_PARSE_FAILED,
    GRAPHQL_VALIDATION_FAILED,
    INTERNAL_SERVER_ERROR,
    INTROSPECTION_DISABLED,
    QUERY_TOO_DEEP,
    QUERY_TOO_LARGE,
    TOO_MANY_ALIASES,
)


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    error.extensions = {**(error.extensions or {}), "code": code}
    return error


def _coded(rule: type[ASTValidationRule], code: str) -> type[ASTValidationRule]:
    """`rule`, its errors marked with `code`. For rules that check the whole document when created."""

    class CodedRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            report: Callable[[GraphQLError], None] = context.report_error
            context.report_error = lambda error: report(_with_code(error, code))  # type: ignore[method-assign]
            try:
                rule(context)
            finally:
                context.report_error = report  # type: ignore[method-assign,assignment]
            super().__init__(context)

    return CodedRule


class DepthLimit(QueryDepthLimiter):
    """At most `max_depth` levels of nested fields (`QUERY_TOO_DEEP`)."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(max_depth=max_depth)
        self.validation_rules = [_coded(rule, QUERY_TOO_DEEP) for rule in self.validation_rules]


class AliasLimit(MaxAliasesLimiter):
    """At most `max_alias_count` aliases in a document (`TOO_MANY_ALIASES`)."""

    def __init__(self, max_alias_count: int) -> None:
        super().__init__(max_alias_count=max_alias_count)
        self.validation_rules = [_coded(rule, TOO_MANY_ALIASES) for rule in self.validation_rules]


class TokenLimit(MaxTokensLimiter):
    """At most `max_token_count` tokens in a document, checked while parsing (`QUERY_TOO_LARGE`)."""

    def on_parse(self) -> Iterator[None]:
        yield
        marker = f"more than {self.max_token_count} tokens"
        for error in self.execution_context.pre_execution_errors or []:
            if isinstance(error, GraphQLSyntaxError) and marker in error.message:
                _with_code(error, QUERY_TOO_LARGE)


class _NoIntrospectionRule(NoSchemaIntrospectionCustomRule):
    def report_error(self, error: GraphQLError) -> None:
        super().report_error(_with_code(error, INTROSPECTION_DISABLED))


class NoIntrospection(AddValidationRules):
    """Refuse `__schema` and `__type` (`INTROSPECTION_DISABLED`); `__typename` stays allowed."""

    def __init__(self) -> None:
        super().__init__([_NoIntrospectionRule])


def unexpected(error: GraphQLError) -> bool:
    # Errors raised on purpose are GraphQL errors (permissions, ApiError); the rest are bugs
    # or outages whose text may hold anything.
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Replace unexpected errors by "Unexpected error." (`INTERNAL_SERVER_ERROR`), no details.

    The schema has logged the original, traceback included (`_Schema.process_errors`). Errors left
    without a code get one: parse and validation errors, and execution errors raised by
    GraphQL itself (a null in a non-null field, say), which are bugs.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return _with_code(super().anonymise_error(error), INTERNAL_SERVER_ERROR)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            if (error.extensions or {}).get("code"):
                continue
            if error.path is not None:
                _with_code(error, INTERNAL_SERVER_ERROR)
            elif isinstance(error, GraphQLSyntaxError):
                _with_code(error, GRAPHQL_PARSE_FAILED)
            else:
                _with_code(error, GRAPHQL_VALIDATION_FAILED)
        return processed


class DocumentCache:
    """The documents one schema parsed and found valid, by their text; the least recently used go first.

    Only a document that passed every validation rule of the schema (limits included) is kept,
    so a cached one needs neither again: the rules and the parse options are fixed when the
    schema is built, and validation reads nothing but the document and the schema.
    """

    def __init__(self, max_size: int = 256) -> None:
        self.max_size = max_size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, text: str) -> DocumentNode | None:
        document = self._documents.get(text)
        if document is not None:
            self._documents.move_to_end(text)
        return document

    def add(self, text: str, document: DocumentNode) -> None:
        self._documents[text] = document
        self._documents.move_to_end(text)
        while len(self._documents) > self.max_size:
            self._documents.popitem(last=False)


class KnownDocuments(SchemaExtension):
    """Skip parsing and validating a document the schema has already found valid (see `DocumentCache`)."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self._known = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        document = self.cache.get(context.query) if context.query else None
        if document is not None:
            context.graphql_document = document  # Strawberry parses only when no document is set
            self._known = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._known:
            context.pre_execution_errors = []  # Strawberry validates only when this is None
        yield
        if not self._known and context.pre_execution_errors == [] and context.query and context.graphql_document:
            self.cache.add(context.query, context.graphql_document)


def safety_extensions(
    *, max_depth: int, max_aliases: int, max_tokens: int, introspection: bool
) -> list[Callable[[], SchemaExtension]]:
    """Factories of the extensions every schema of this API runs with (fresh ones per request)."""
    factories: list[Callable[[], SchemaExtension]] = [
        partial(KnownDocuments, DocumentCache()),
        partial(TokenLimit, max_token_count=max_tokens),
        partial(DepthLimit, max_depth=max_depth),
        partial(AliasLimit, max_alias_count=max_aliases),
    ]
    if not introspection:
        factories.append(NoIntrospection)
    factories.append(MaskUnexpectedErrors)
    return factories
