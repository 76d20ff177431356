"""The exported schema, the package's dependency direction, and the admin tables' migration."""

import ast
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, create_engine
from sqlmodel import SQLModel

import tenants.admin_models
import tenants.role_models
from graphql_api.export_schema import SCHEMA_PATH, schema_sdl
from graphql_api.schema import build_schema
from tenants.database import sync_url
from tests.conftest import Backend

ROOT = Path(__file__).parents[2]


def test_the_exported_schema_matches_the_code() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_sdl(), (
        "graphql_api/schema.graphql is out of date: run `python -m graphql_api.export_schema`"
    )


def _imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("graphql_api", {"gateway"}), ("tenants", {"gateway", "graphql_api", "starlette", "strawberry"})],
)
def test_dependencies_point_one_way(package: str, forbidden: set[str]) -> None:
    assert _imported_packages(package) & forbidden == set()


def test_the_migration_creates_the_admin_tables_as_modelled(backend: Backend) -> None:
    admin_tables = {
        tenants.admin_models.ApiToken.__tablename__,
        tenants.admin_models.AuditEntry.__tablename__,
        tenants.role_models.MemberRoleGrant.__tablename__,
    }
    engine = create_engine(sync_url(backend.database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()

    def tables(difference: Any) -> set[str]:
        """The tables of ('add_table', Table), ('add_index', Index), [('modify_type', schema, table, …)]."""
        steps = difference if isinstance(difference, list) else [difference]
        names = {item for step in steps for item in step if isinstance(item, str)}
        names |= {getattr(item, "name", "") for step in steps for item in step if isinstance(item, Table)}
        names |= {item.table.name for step in steps for item in step if isinstance(getattr(item, "table", None), Table)}
        return names

    assert [difference for difference in differences if tables(difference) & admin_tables] == []


def test_the_role_grants_migration_is_the_head_and_goes_down_and_up_again(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from tenants.migrate import alembic_config, pending_revisions, upgrade

    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    assert pending_revisions(url) == []
    command.downgrade(alembic_config(url), "0004")
    assert pending_revisions(url) == ["0005"]
    engine = create_engine(sync_url(url))
    try:
        assert "member_role_grants" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    upgrade(url)
    assert pending_revisions(url) == []


def test_the_readmes_example_queries_are_valid_against_the_schema() -> None:
    import re

    from graphql import DocumentNode, parse, validate

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", readme, flags=re.DOTALL)
    schema = build_schema()._schema
    checked = 0
    for block in blocks:
        for definition in parse(block).definitions:
            errors = validate(schema, DocumentNode(definitions=(definition,)))
            assert errors == [], (block, errors)
            checked += 1
    assert checked == 11
