"""Alembic environment: runs migrations over the URL the caller put in the config."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import tenants.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
url = config.attributes["database_url"]
engine = create_engine(url)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=url.get_backend_name() == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
