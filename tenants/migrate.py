"""Schema changes, only through Alembic migrations; configured in code, no alembic.ini."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine

from tenants.database import sync_url

_SCRIPTS = Path(__file__).with_name("migrations")

MigrationError = CommandError
"""Alembic's error when the migrations cannot be applied; `pending_revisions` raises it too."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["database_url"] = sync_url(database_url)
    return config


def prepare_database_folder(database_url: str) -> None:
    """Create the folder of a SQLite file if it does not exist yet (nothing for other databases)."""
    url = sync_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply every pending migration (creating the SQLite file's folder if needed)."""
    prepare_database_folder(database_url)
    command.upgrade(alembic_config(database_url), revision)


def pending_revisions(database_url: str) -> list[str]:
    """Migrations not yet applied to the database. Raises `MigrationError` if the database is at a
    revision these migrations do not know (a newer MarketGate upgraded it)."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    unknown = current - {revision.revision for revision in script.walk_revisions()}
    if unknown:
        raise MigrationError(
            f"the database is at revision {', '.join(sorted(unknown))}, which this MarketGate does not know "
            "(a newer one upgraded it)"
        )
    heads = script.get_revisions("heads")
    pending: list[str] = []
    for head in heads:
        for revision in script.iterate_revisions(head.revision, "base"):
            if revision.revision in current:
                break
            pending.append(revision.revision)
    return pending
