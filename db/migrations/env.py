"""Alembic environment: the URL comes from the config soundtag builds (db.schema) or from
SOUNDTAG_DATABASE_URL when the alembic CLI is used directly."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from soundtag.errors import ConfigError
    from soundtag.settings import load_settings

    try:
        url = load_settings().database_url
    except ConfigError as exc:  # the alembic command has no soundtag error boundary: its one line
        raise SystemExit(f"error: {exc}") from None


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.begin() as conn:
        _migrate(conn)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
