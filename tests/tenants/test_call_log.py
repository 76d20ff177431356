"""The call log's write side and its table stay one shape."""

from typing import get_type_hints

from tenants.call_log import NewCallLogEntry
from tenants.models import CallLogEntry


def test_a_new_entry_names_every_column_of_the_call_log_but_its_id() -> None:
    columns = {column.name for column in CallLogEntry.__table__.columns}  # type: ignore[attr-defined]
    assert set(get_type_hints(NewCallLogEntry)) == columns - {"id"}
