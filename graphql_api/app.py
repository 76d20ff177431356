"""The ASGI app of the admin API, for the host to mount at /graphql."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from graphql_api.context import ApiHost, Context, build_context
from graphql_api.errors import REQUEST_TOO_LARGE
from graphql_api.principals import CSRF_HEADER
from graphql_api.schema import build_schema


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """How the API is served; the host fills it from its settings."""

    introspection: bool = False
    graphiql: bool = False
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    max_body_bytes: int = 1024 * 1024
    cors_origins: Sequence[str] = ()


class _GraphQLView(GraphQL[Context, None]):
    def __init__(self, options: ApiOptions, host_of: Callable[[Request], ApiHost]) -> None:
        schema = build_schema(
            max_depth=options.max_depth,
            max_aliases=options.max_aliases,
            max_tokens=options.max_tokens,
            introspection=options.introspection,
        )
        # Queries over GET would be cross-site requests a browser sends freely: POST only.
        super().__init__(
            schema,
            graphql_ide="graphiql" if options.graphiql else None,
            allow_queries_via_get=False,
            subscription_protocols=(),
        )
        self._host_of = host_of

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        if not isinstance(request, Request) or not isinstance(response, Response):
            raise TypeError("the admin API serves HTTP only")
        return await build_context(request, response, self._host_of(request))


def create_graphql_app(options: ApiOptions, *, host_of: Callable[[Request], ApiHost]) -> ASGIApp:
    """The API as an ASGI app; `host_of(request)` returns the host's services for a request."""
    # Credentials: a tenant admin's frontend on an allowed origin sends the session cookie, and
    # must echo the session's CSRF token, which a page on any other origin cannot read.
    return CORSMiddleware(
        _BodyCap(_GraphQLView(options, host_of), max_body_bytes=options.max_body_bytes),
        allow_origins=list(options.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-Request-Id", CSRF_HEADER],
        allow_credentials=True,
        expose_headers=["X-Request-Id"],
        max_age=600,
    )


class _BodyCap:
    """Reads a request's body up to `max_body_bytes` before the API sees it: a longer one (by its
    Content-Length or as it arrives) is answered HTTP 413 with `REQUEST_TOO_LARGE`, whoever
    sends it, and never read to its end. The token limit bounds the query text only, not its
    variables; this bounds both."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self._max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: the API sees the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = {
            "message": f"the request body is over {self._max_body_bytes} bytes",
            "extensions": {"code": REQUEST_TOO_LARGE},
        }
        await JSONResponse({"data": None, "errors": [error]}, status_code=413)(scope, receive, send)
