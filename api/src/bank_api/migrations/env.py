"""Alembic environment: the URL comes from the API's settings, never from alembic.ini."""

from alembic import context
from sqlalchemy import create_engine, pool

from bank_api.core import embedded
from bank_api.core.config import get_settings
from bank_api.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    from logging.config import fileConfig

    fileConfig(config.config_file_name)


def database_url() -> str:
    if url := config.attributes.get("database_url"):
        return url
    settings = get_settings()
    return settings.database_url or embedded.start(settings.embedded_pg_dir)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
