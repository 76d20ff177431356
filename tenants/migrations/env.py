"""Alembic environment: runs migrations over the URL the caller put in the config."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import tenants.admin_models  # (registers the admin tables on SQLModel.metadata)
import tenants.directory_models  # (registers the Kit directory tables)
import tenants.models  # (registers the tables on SQLModel.metadata)
import tenants.role_models  # noqa: F401  (registers the product role grants)

config = context.config


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave alone tables MarketGate does not own (adapters may keep theirs in the same database)."""
    return not (type_ == "table" and reflected and compare_to is None)

url = config.attributes["database_url"]
engine = create_engine(url)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=url.get_backend_name() == "sqlite",
            compare_type=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
