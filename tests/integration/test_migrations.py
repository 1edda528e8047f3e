"""The same migrations build the schema the models describe, on SQLite and PostgreSQL, and undo cleanly."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from conversation_api.db import Base
from conversation_api.settings import Settings
from tests.support.database import alembic_config, drop_schema, new_schema_name, postgres_settings, sqlite_settings


def sync_url(settings: Settings) -> str:
    return settings.database_url.replace("+aiosqlite", "")


def assert_models_match_migrations(settings: Settings) -> None:
    connect_args = {"options": f"-csearch_path={settings.database_schema}"} if settings.database_schema else {}
    engine = create_engine(sync_url(settings), connect_args=connect_args)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"conversation", "message"} <= tables


def upgrade_check_downgrade(settings: Settings) -> None:
    config = alembic_config(settings)
    command.upgrade(config, "heads")
    assert_models_match_migrations(settings)
    command.downgrade(config, "base")
    command.upgrade(config, "heads")


def test_migrations_on_sqlite(tmp_path) -> None:
    upgrade_check_downgrade(sqlite_settings(tmp_path / "m.db"))


def test_migrations_on_postgresql() -> None:
    schema = new_schema_name()
    try:
        upgrade_check_downgrade(postgres_settings(schema))
    finally:
        drop_schema(schema)
