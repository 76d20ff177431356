"""The exported schema, the package's dependency direction, and the admin tables' migration."""

import ast
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, create_engine, text
from sqlmodel import SQLModel

import tenants.admin_models
import tenants.role_models
from graphql_api.export_schema import SCHEMA_PATH, schema_sdl
from graphql_api.schema import build_schema
from tenants.database import sync_url
from tests.conftest import POSTGRES_URL, Backend, _in_schema, _postgres_schema

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)

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


def test_the_admin_migrations_go_down_and_up_again(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from tenants.migrate import alembic_config, pending_revisions, upgrade

    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    assert pending_revisions(url) == []
    command.downgrade(alembic_config(url), "0004")
    assert pending_revisions(url) == ["0009", "0008", "0007", "0006", "0005"]
    engine = create_engine(sync_url(url))
    try:
        inspector = inspect(engine)
        assert "member_role_grants" not in inspector.get_table_names()
        assert "directory_member_counts" not in inspector.get_table_names()
        assert "is_test" not in {column["name"] for column in inspector.get_columns("audit_log")}
        assert "ix_directory_members_present" not in {
            index["name"] for index in inspector.get_indexes("directory_members")
        }
    finally:
        engine.dispose()
    upgrade(url)
    assert pending_revisions(url) == []


@pytest.fixture
def empty_database(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """A database of its own, migrated by the test: a SQLite file, or a PostgreSQL schema."""
    if backend.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    schema = f"marketgate_migrations_{os.getpid()}"
    _postgres_schema(POSTGRES_URL, schema, create=True)
    try:
        yield _in_schema(POSTGRES_URL, schema)
    finally:
        _postgres_schema(POSTGRES_URL, schema, create=False)


def test_the_audit_log_migration_marks_earlier_actions_on_debug_data(empty_database: str) -> None:
    from tenants.migrate import upgrade

    upgrade(empty_database, "0006")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as connection:
            now = {"created_at": NOW, "updated_at": NOW}
            connection.execute(
                text(
                    "INSERT INTO instances (product, instance_id, order_id, order_line_id, status, is_test, "
                    "created_at, updated_at) VALUES (:product, :instance_id, :instance_id, 'l', 'active', :is_test, "
                    ":created_at, :updated_at)"
                ),
                [
                    {"product": "alpha", "instance_id": "real-1", "is_test": False, **now},
                    {"product": "alpha", "instance_id": "debug-1", "is_test": True, **now},
                    {"product": "beta", "instance_id": "real-1", "is_test": True, **now},
                ],
            )
            jobs = [
                (1, "alpha", {"instance_id": "debug-1"}),
                (2, "alpha", {"instance_id": "real-1"}),
                (3, "alpha", {"type": "tenant.changed", "tenant_id": "t", "is_test": True, "data": {}}),
                (4, "alpha", {"type": "tenant.changed", "tenant_id": "t", "is_test": False, "data": {}}),
            ]
            connection.execute(
                text(
                    "INSERT INTO jobs (id, product, kind, payload, state, attempts, run_at, created_at, updated_at) "
                    "VALUES (:id, :product, 'some_job', :payload, 'dead', 1, :created_at, :created_at, :updated_at)"
                ),
                [
                    {"id": job, "product": product, "payload": json.dumps(payload), **now}
                    for job, product, payload in jobs
                ],
            )
            entries = [
                ("memberRolesGrant", "alpha", "tenant:t:test", {"is_test": True, "roles": ["a"]}),
                ("memberRolesRevoke", "alpha", "tenant:t", {"is_test": False, "roles": ["a"]}),
                ("instanceReconcile", "alpha", "instance:debug-1", {"changed": False}),
                ("instanceReconcile", "alpha", "instance:real-1", {"changed": False}),
                ("jobRetry", "alpha", "job:1", {"kind": "provision"}),
                ("jobRetry", "alpha", "job:2", {"kind": "provision"}),
                ("jobRetry", "alpha", "job:3", {"kind": "directory_event"}),
                ("jobRetry", "alpha", "job:4", {"kind": "directory_event"}),
                ("apiTokenCreate", None, "api_token:1", {"is_test": True}),
            ]
            connection.execute(
                text(
                    "INSERT INTO audit_log (actor_kind, actor, action, product, target, detail, created_at) "
                    "VALUES ('operator', 'someone', :action, :product, :target, :detail, :created_at)"
                ),
                [
                    {"action": action, "product": product, "target": target, "detail": json.dumps(detail), **now}
                    for action, product, target, detail in entries
                ],
            )
        upgrade(empty_database)
        with engine.connect() as connection:
            marked = connection.execute(text("SELECT target FROM audit_log WHERE is_test ORDER BY id")).scalars()
            assert list(marked) == ["tenant:t:test", "instance:debug-1", "job:1", "job:3"]
    finally:
        engine.dispose()


def test_the_grants_of_tenants_unbound_earlier_are_forgotten(empty_database: str) -> None:
    from tenants.migrate import upgrade

    upgrade(empty_database, "0007")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO directory_tenants (product, tenant_id, is_test, instance_id, order_id, deleted, "
                    "created_at, updated_at) VALUES (:product, :tenant_id, :is_test, '', '', :deleted, :now, :now)"
                ),
                [
                    {"product": "alpha", "tenant_id": "gone", "is_test": False, "deleted": True, "now": NOW},
                    {"product": "alpha", "tenant_id": "gone", "is_test": True, "deleted": False, "now": NOW},
                    {"product": "beta", "tenant_id": "gone", "is_test": False, "deleted": False, "now": NOW},
                ],
            )
            connection.execute(
                text(
                    "INSERT INTO member_role_grants (product, tenant_id, is_test, subject_kind, subject_code, role, "
                    "include_sub_departments, granted_by, created_at, updated_at) VALUES (:product, 'gone', "
                    ":is_test, 'member', 'ann', 'auditor', false, 'someone', :now, :now)"
                ),
                [
                    {"product": "alpha", "is_test": False, "now": NOW},
                    {"product": "alpha", "is_test": True, "now": NOW},
                    {"product": "beta", "is_test": False, "now": NOW},
                ],
            )
        upgrade(empty_database)
        with engine.connect() as connection:
            left = connection.execute(text("SELECT product, is_test FROM member_role_grants ORDER BY id")).all()
            assert [(product, bool(is_test)) for product, is_test in left] == [("alpha", True), ("beta", False)]
    finally:
        engine.dispose()


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
    assert checked == 12
