"""Relay global ids, and cursor connections over the services' keyset pages (newest first, forward only)."""

from collections.abc import Callable
from typing import Any, TypeVar

from strawberry import relay
from strawberry.relay.utils import from_base64, to_base64

from graphql_api.errors import bad_input
from tenants.admin import MAX_PAGE_SIZE, Page, PageRequest

_CURSOR = "cursor"
_MAX_ROW_ID = 2**63 - 1
ConnectionT = TypeVar("ConnectionT", bound=relay.Connection[Any])


def _row_id(text: str) -> int:
    row_id = int(text)
    if not 0 < row_id <= _MAX_ROW_ID:
        raise ValueError(text)
    return row_id


def parse_node_id(value: str) -> tuple[str, int] | None:
    """(type name, row id) of a global id; None for anything malformed."""
    try:
        global_id = relay.GlobalID.from_id(value)
        return global_id.type_name, _row_id(global_id.node_id)
    except ValueError:
        return None


def encode_cursor(row_id: int) -> str:
    return to_base64(_CURSOR, row_id)


def encode_key_cursor(prefix: str, key: str) -> str:
    """A cursor of a list in key order (members by userName): opaque, and tied to its list."""
    return to_base64(prefix, key)


def key_after(prefix: str, first: int, after: str | None) -> tuple[int, str | None]:
    """`first` checked, and the key a cursor of `prefix` carries; bad values are the client's error."""
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise bad_input(f"first must be between 0 and {MAX_PAGE_SIZE}")
    if after is None:
        return first, None
    try:
        found, key = from_base64(after)
    except ValueError:
        found, key = "", ""
    if found != prefix or not key:
        raise bad_input("after is not a cursor of this list")
    return first, key


def page_request(first: int, after: str | None) -> PageRequest:
    """The service's page for Relay's `first`/`after`; bad values are the client's error."""
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise bad_input(f"first must be between 0 and {MAX_PAGE_SIZE}")
    if after is None:
        return PageRequest(first=first)
    try:
        prefix, row_id = from_base64(after)
        if prefix != _CURSOR:
            raise ValueError(prefix)
        return PageRequest(first=first, after=_row_id(row_id))
    except ValueError:
        raise bad_input("after is not a cursor of this list") from None


def connection(
    cls: type[ConnectionT],
    page: Page[Any],
    *,
    request: PageRequest,
    node: Callable[[Any], Any],
    counter: Callable[[], Any],
) -> ConnectionT:
    """A connection of `cls` for `page`; `counter` counts every match, when asked."""
    edges = [relay.Edge(cursor=encode_cursor(row.id), node=node(row)) for row in page.items]
    info = relay.PageInfo(
        has_next_page=page.has_next,
        has_previous_page=request.after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return cls(page_info=info, edges=edges, counter=counter)  # type: ignore[call-arg]
